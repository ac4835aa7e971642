//! Config structs that can grow: each begins with `size_t struct_size`, the size of the struct in
//! the header its caller was compiled against.
//!
//! - A `_default(out, struct_size)` function writes the fields that fit in `struct_size` bytes (and
//!   `struct_size` itself), never more, so a caller compiled against an older, smaller struct gets
//!   no write past its end.
//! - A function that takes a config reads the fields that lie wholly within the caller's
//!   `struct_size`; the others (fields added after the caller was compiled) take their defaults.
//! - A `struct_size` smaller than a `size_t`, or larger than the struct this library knows (a caller
//!   compiled against a newer header), is INVALID_ARGUMENT.
//!
//! To add a setting, append a field: never reorder, remove or retype one. A new field must start
//! at or after the previous `sizeof` of the struct (if it would fall into the old tail padding, put
//! an explicit padding field before it), so that an older caller's `struct_size` ends before it.

use crate::result::trunkline_result;
use std::mem::{MaybeUninit, size_of};

/// A config struct whose leading `size_t struct_size` says how much of it the caller has.
///
/// # Safety
///
/// `Self` is `#[repr(C)]`, starts with a `usize` (the size), and every byte pattern of every field
/// whose end is listed by [`Versioned::prefix_len`] is a valid value of it, except the `bool`s at
/// [`Versioned::bool_offsets`]: integers and raw pointers only.
pub(crate) unsafe trait Versioned: Copy {
    /// The end of the last field that lies wholly within the first `size` bytes (0 if none).
    fn prefix_len(size: usize) -> usize;

    /// The offsets of the `bool` fields.
    fn bool_offsets() -> &'static [usize];
}

/// The size of a field, given a projection to it (for [`versioned!`]).
pub(crate) fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Implements [`Versioned`] for a config struct: every field in order (`struct_size` first), then
/// the `bool` ones.
macro_rules! versioned {
    ($t:ident { $($field:ident),+ $(,)? } bools { $($b:ident),* $(,)? }) => {
        // SAFETY: each config given to this macro is `#[repr(C)]`, starts with
        // `struct_size: usize`, and its fields are integers, raw pointers and the listed `bool`s
        // (a field of another type needs this trait's reading extended first). The tests check
        // that each field list covers its struct.
        unsafe impl $crate::versioned::Versioned for $t {
            fn prefix_len(size: usize) -> usize {
                let mut len = 0;
                $(
                    let end = ::std::mem::offset_of!($t, $field)
                        + $crate::versioned::field_size(|c: &$t| &c.$field);
                    if end <= size {
                        len = len.max(end);
                    }
                )+
                len
            }

            fn bool_offsets() -> &'static [usize] {
                &[$(::std::mem::offset_of!($t, $b)),*]
            }
        }
    };
}
pub(crate) use versioned;

/// Checks a caller's `struct_size` against the struct this library knows.
fn check_size<T>(size: usize) -> Result<(), trunkline_result> {
    if size < size_of::<usize>() || size > size_of::<T>() {
        return Err(trunkline_result::InvalidArgument);
    }
    Ok(())
}

/// Reads the config at `ptr` (non-NULL): the fields within the caller's `struct_size` are the
/// caller's, the others `default`'s. INVALID_ARGUMENT for a bad `struct_size`.
pub(crate) fn read<T: Versioned>(ptr: *const T, default: T) -> Result<T, trunkline_result> {
    // SAFETY: non-NULL; the header requires a config pointer to be aligned and to point to a
    // config of this type from some version of the header, and every version begins with its
    // `size_t struct_size`.
    let size = unsafe { ptr.cast::<usize>().read() };
    check_size::<T>(size)?;
    let len = T::prefix_len(size);
    let mut out = MaybeUninit::new(default);
    let bytes = out.as_mut_ptr().cast::<u8>();
    // SAFETY: `len <= size`, and the caller's struct has `size` readable bytes (its `struct_size`);
    // `out` is a local of `size_of::<T>() >= size` bytes, so the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), bytes, len) };
    for &offset in T::bool_offsets().iter().filter(|&&o| o < len) {
        // SAFETY: `offset < len <= size_of::<T>()`: an initialised byte of `out`. A C `bool` that
        // is neither 0 nor 1 is read as true instead of becoming an invalid Rust `bool`.
        unsafe { bytes.add(offset).write(u8::from(bytes.add(offset).read() != 0)) };
    }
    // SAFETY: `out` began as a valid `T`; the bytes copied over it make up whole fields (`len` is a
    // field's end) of types valid for any bit pattern, except the `bool`s, just made 0 or 1.
    Ok(unsafe { out.assume_init() })
}

/// Writes `value` into the caller's `*out` as a struct of `struct_size` bytes: the fields that fit,
/// with `struct_size` set to it. Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (bad size).
pub(crate) fn write<T: Versioned>(out: *mut T, struct_size: usize, value: T) -> trunkline_result {
    if out.is_null() {
        return trunkline_result::NullParameter;
    }
    if let Err(e) = check_size::<T>(struct_size) {
        return e;
    }
    let len = T::prefix_len(struct_size);
    // SAFETY: the header requires `out` to be aligned and valid for writes of `struct_size >= len`
    // bytes; `value` is a local, so they do not overlap. Only written, never read.
    unsafe { std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), out.cast::<u8>(), len) };
    // SAFETY: `struct_size >= size_of::<usize>()` (checked): the leading field is the caller's.
    unsafe { out.cast::<usize>().write(struct_size) };
    trunkline_result::Ok
}

/// Asserts that the field list of `T` given to [`versioned!`] covers the struct up to its end (a
/// field appended to the struct but not to its list would never be read).
#[cfg(test)]
pub(crate) fn assert_covers<T: Versioned>() {
    let end = T::prefix_len(size_of::<T>());
    assert_eq!(end.next_multiple_of(std::mem::align_of::<T>()), size_of::<T>());
    assert_eq!(T::prefix_len(size_of::<usize>() - 1), 0);
    assert_eq!(T::prefix_len(size_of::<usize>()), size_of::<usize>());
}
