//! The real-time rule "a worker step allocates nothing", checked by the allocator in debug builds.
//!
//! With the `alloc-guard` feature, in debug builds, every step of a session (on a worker thread,
//! or inline on the host's) runs under the `assert_no_alloc` crate's guard: in a process whose
//! global allocator is `assert_no_alloc::AllocDisabler` (the engine's own tests install it; a
//! host may), an allocation or a free inside a step aborts the process with "memory allocation
//! of N bytes failed". The flag is per thread, so each worker thread is checked on its own and
//! the host's threads are free to allocate meanwhile.
//!
//! What a step allocates by design runs under `permit`: parsing (a `start` owns its stream's
//! identity, an escaped string is unescaped into a copy, a rejected message's JSON error is boxed;
//! well-formed `media` and mark echoes allocate nothing, which `tests/no_alloc.rs` counts), the
//! handling of a message that owns memory, and the `start` event an overflowing event queue drops.
//! A panic inside a step also allocates, so under the guard it aborts instead of failing the
//! session.
//!
//! Release builds, and builds without the feature, compile `forbid` and `permit` to a plain
//! call.

/// Runs `f` (a session's step) where nothing may allocate or free.
#[inline]
pub(crate) fn forbid<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(all(feature = "alloc-guard", debug_assertions))]
    {
        assert_no_alloc::assert_no_alloc(|| {
            test_hook::allocate_if_asked();
            f()
        })
    }
    #[cfg(not(all(feature = "alloc-guard", debug_assertions)))]
    {
        f()
    }
}

/// Runs `f`, which may allocate by design, inside a step.
#[inline]
pub(crate) fn permit<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(all(feature = "alloc-guard", debug_assertions))]
    {
        assert_no_alloc::permit_alloc(f)
    }
    #[cfg(not(all(feature = "alloc-guard", debug_assertions)))]
    {
        f()
    }
}

/// Test support: shows that the guard catches an allocation inside a step.
#[cfg(all(feature = "alloc-guard", debug_assertions))]
#[doc(hidden)]
pub mod test_hook {
    use std::sync::atomic::{AtomicBool, Ordering};

    static ALLOCATE: AtomicBool = AtomicBool::new(false);

    /// While `on`, every step of every session in the process allocates (and frees) a few bytes.
    pub fn allocate_in_every_step(on: bool) {
        ALLOCATE.store(on, Ordering::Relaxed);
    }

    pub(super) fn allocate_if_asked() {
        if ALLOCATE.load(Ordering::Relaxed) {
            drop(std::hint::black_box(Box::new(0u64)));
        }
    }
}
