//! A global allocator that counts the allocations of one thread while asked to, for the tests that
//! prove a parse or a write allocates nothing. Each test binary that includes this module gets it
//! as its global allocator.
//!
//! It allocates through `assert_no_alloc::AllocDisabler`, so the engine's allocation guard
//! (`trunkline::alloc_guard`) holds in these binaries as well: in a debug build, a session step
//! that allocates or frees aborts the binary, in every test that runs a session, not only in the
//! binaries written for the guard.

use assert_no_alloc::AllocDisabler;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    // `const` initialisers without destructors: touching these never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator may run during thread teardown, after the locals are gone.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `AllocDisabler` (which forwards to `System`, or aborts inside
// a guarded step) with the caller's arguments unchanged; counting only touches thread-local
// `Cell`s, which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { AllocDisabler.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { AllocDisabler.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above; `ptr` came from this allocator, hence from `AllocDisabler`.
        unsafe { AllocDisabler.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { AllocDisabler.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns how many allocations (including reallocations) it made on this thread.
pub fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    (ALLOCATIONS.with(Cell::get), result)
}

/// The counter is live in every binary that includes it: a test that sees no allocation is not
/// looking at a dead counter.
#[test]
fn the_counter_sees_an_allocation() {
    let (n, boxed) = allocations_in(|| Box::new(7u64));
    assert!(n >= 1);
    assert_eq!(*boxed, 7);
    assert_eq!(allocations_in(|| 1 + 1).0, 0);
}
