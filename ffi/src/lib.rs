//! The C ABI of Trunkline: a thin shell over the `trunkline` crate.
//!
//! Every export is `trunkline_<type>_<verb>`, takes its handle first, checks every pointer, and runs
//! behind [`guard`] so that no panic crosses into C. Handles are opaque: `Box`es cast to pointers of
//! the zero-sized marker types declared here, as rustls-ffi does. The header `include/trunkline.h`
//! is generated from these sources by cbindgen (`ffi/cbindgen.toml`).
#![warn(missing_docs)]
#![allow(non_camel_case_types)]
// C type names follow the C header's spelling.
// The exports are called from C, where `unsafe` means nothing: each one checks its pointers for
// NULL and documents, in the header, what a non-NULL pointer must satisfy. The dereferences are
// confined to the `try_*` macros and the handle casts, each with its SAFETY comment.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

#[cfg(test)]
mod c_header;
mod codec;
mod config;
mod encoded;
mod engine;
mod event;
mod log;
mod result;
#[cfg(feature = "server")]
mod server;
mod session;
mod started;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod vad;
mod version;
mod versioned;

pub use codec::*;
pub use config::*;
pub use encoded::*;
pub use engine::*;
pub use event::*;
pub use log::*;
pub use result::*;
#[cfg(feature = "server")]
pub use server::*;
pub use session::*;
pub use started::*;
#[cfg(feature = "test-hooks")]
pub use test_hooks::*;
pub use vad::*;
pub use version::*;

/// Runs `body`, turning a panic into `trunkline_result::Panic`.
pub(crate) fn guard(body: impl FnOnce() -> trunkline_result) -> trunkline_result {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(trunkline_result::Panic)
}

/// Runs `body` for a function that cannot report (the `_free`s), swallowing a panic.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
}

/// A checked, non-NULL out-parameter. It is only ever written, with `ptr::write`, never read
/// and never turned into a reference, so whatever the caller's (possibly uninitialised) memory
/// holds, e.g. a stale enum tag or bool, is never looked at as a Rust value.
pub(crate) struct Out<T>(std::ptr::NonNull<T>);

impl<T> Out<T> {
    /// `None` for NULL.
    pub(crate) fn new(ptr: *mut T) -> Option<Self> {
        std::ptr::NonNull::new(ptr).map(Self)
    }

    /// Writes the output (once: it consumes the out-parameter).
    pub(crate) fn set(self, value: T) {
        // SAFETY: non-NULL; the header requires out-pointers to be valid for writes and aligned.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// A possibly-NULL out-parameter as an [`Out`], or returns `NULL_PARAMETER`.
macro_rules! try_out {
    ($ptr:expr) => {
        match $crate::Out::new($ptr) {
            Some(out) => out,
            None => return $crate::result::trunkline_result::NullParameter,
        }
    };
}

/// The most elements of `T` any real buffer can hold (`isize::MAX` bytes): a longer length is a
/// lie, refused with `INVALID_ARGUMENT` before a slice is made of it (making one would already be
/// undefined behaviour).
pub(crate) fn max_elements<T>(_: *const T) -> usize {
    isize::MAX as usize / std::mem::size_of::<T>().max(1)
}

/// Whether two C buffers (element pointers and counts) share no byte. A call that makes a slice
/// of each, one of them mutable, refuses overlapping ones (`INVALID_ARGUMENT`): the two slices
/// would alias, which Rust does not allow (an in-place G.711 conversion, say). A NULL buffer
/// overlaps nothing: making its slice refuses it (`NULL_PARAMETER`).
pub(crate) fn disjoint<A, B>(a: *const A, a_len: usize, b: *const B, b_len: usize) -> bool {
    if a.is_null() || b.is_null() {
        return true;
    }
    let (a_start, b_start) = (a as usize, b as usize);
    let a_end = a_start.saturating_add(a_len.saturating_mul(std::mem::size_of::<A>()));
    let b_end = b_start.saturating_add(b_len.saturating_mul(std::mem::size_of::<B>()));
    a_len == 0 || b_len == 0 || a_end <= b_start || b_end <= a_start
}

/// A slice from a C pointer and length: NULL with a zero length is the empty slice.
macro_rules! try_slice {
    ($ptr:expr, $len:expr) => {
        if $len == 0 {
            &[][..]
        } else if $ptr.is_null() {
            return $crate::result::trunkline_result::NullParameter;
        } else if $len > $crate::max_elements($ptr) {
            return $crate::result::trunkline_result::InvalidArgument;
        } else {
            // SAFETY: the header requires `ptr` to point to `len` readable elements.
            unsafe { std::slice::from_raw_parts($ptr, $len) }
        }
    };
}

/// A mutable slice from a C pointer and capacity: NULL with a zero capacity is the empty slice.
macro_rules! try_slice_mut {
    ($ptr:expr, $len:expr) => {
        if $len == 0 {
            &mut [][..]
        } else if $ptr.is_null() {
            return $crate::result::trunkline_result::NullParameter;
        } else if $len > $crate::max_elements($ptr) {
            return $crate::result::trunkline_result::InvalidArgument;
        } else {
            // SAFETY: the header requires `ptr` to point to `len` writable elements that nothing
            // else accesses during the call (callers with a second buffer check first that the two
            // do not overlap: `disjoint`).
            unsafe { std::slice::from_raw_parts_mut($ptr, $len) }
        }
    };
}

pub(crate) use {try_out, try_slice, try_slice_mut};
