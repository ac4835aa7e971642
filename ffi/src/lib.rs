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

mod codec;
mod config;
mod engine;
mod event;
mod result;
mod session;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod version;

pub use codec::*;
pub use config::*;
pub use engine::*;
pub use event::*;
pub use result::*;
pub use session::*;
#[cfg(feature = "test-hooks")]
pub use test_hooks::*;
pub use version::*;

/// Runs `body`, turning a panic into `trunkline_result::Panic`.
pub(crate) fn guard(body: impl FnOnce() -> trunkline_result) -> trunkline_result {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(trunkline_result::Panic)
}

/// Runs `body` for a function that cannot report (the `_free`s), swallowing a panic.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
}

/// Dereferences a possibly-NULL out-parameter or returns `NULL_PARAMETER`.
macro_rules! try_mut {
    ($ptr:expr) => {
        // SAFETY: the header requires non-NULL pointers to be valid and unaliased for the call.
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => return $crate::result::trunkline_result::NullParameter,
        }
    };
}

/// A slice from a C pointer and length: NULL with a zero length is the empty slice.
macro_rules! try_slice {
    ($ptr:expr, $len:expr) => {
        if $len == 0 {
            &[][..]
        } else if $ptr.is_null() {
            return $crate::result::trunkline_result::NullParameter;
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
        } else {
            // SAFETY: the header requires `ptr` to point to `len` writable elements that nothing
            // else accesses during the call.
            unsafe { std::slice::from_raw_parts_mut($ptr, $len) }
        }
    };
}

pub(crate) use {try_mut, try_slice, try_slice_mut};
