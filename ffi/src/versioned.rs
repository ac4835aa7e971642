//! Structs that can grow: each begins with `size_t struct_size`, the size of the struct in the
//! header its caller was compiled against.
//!
//! Configs (read by the library):
//! - A `_default(out, struct_size)` function writes the fields that fit in `struct_size` bytes (and
//!   `struct_size` itself), never more, so a caller compiled against an older, smaller struct gets
//!   no write past its end.
//! - A function that takes a config reads the fields that lie wholly within the caller's
//!   `struct_size`; the others (fields added after the caller was compiled) take their defaults.
//! - A `struct_size` smaller than a `size_t`, or larger than the struct this library knows (a caller
//!   compiled against a newer header), is INVALID_ARGUMENT.
//!
//! Outputs (written by the library into the caller's struct, [`OutStruct`]): the caller sets
//! `struct_size` before the call; the library writes the fields that lie wholly within it (and
//! `struct_size`, unchanged), never a byte past it. A `struct_size` smaller than the struct's first
//! version, or larger than the struct this library knows, is INVALID_ARGUMENT, and nothing is
//! written.
//!
//! To add a field, append it: never reorder, remove or retype one. A new field must start at or
//! after the previous `sizeof` of the struct (if it would fall into the old tail padding, put an
//! explicit padding field before it), so that an older caller's `struct_size` ends before it.
//! Each struct's tests list its layouts ([`assert_layouts`]), which holds every change to this.

use crate::result::trunkline_result;
use std::mem::{MaybeUninit, size_of};
use std::ptr::NonNull;

/// A struct whose leading `size_t struct_size` says how much of it the caller has.
///
/// # Safety
///
/// `Self` is `#[repr(C)]` and starts with a `usize` (the size); [`Versioned::prefix_len`] only
/// ever returns the end of one of its fields (or 0).
pub(crate) unsafe trait Versioned: Copy {
    /// The end of the last field that lies wholly within the first `size` bytes (0 if none).
    fn prefix_len(size: usize) -> usize;

    /// Each field's offset, in order (for [`assert_layouts`]).
    #[cfg(test)]
    fn field_offsets() -> Vec<usize>;
}

/// A config: a [`Versioned`] struct the library reads from the caller's memory.
///
/// # Safety
///
/// Every byte pattern of every field is a valid value of it, except the `bool`s at
/// [`VersionedConfig::bool_offsets`]: integers and raw pointers only.
pub(crate) unsafe trait VersionedConfig: Versioned {
    /// The offsets of the `bool` fields.
    fn bool_offsets() -> &'static [usize];
}

/// An output: a [`Versioned`] struct the library writes into the caller's memory (see
/// [`OutStruct`]).
pub(crate) trait VersionedOutput: Versioned {
    /// The size of the struct's first version (the end of its last field then): the smallest
    /// `struct_size` accepted. Fixed forever: a field added later does not change it.
    const FIRST_SIZE: usize;
}

/// The size of a field, given a projection to it (for [`versioned!`]).
pub(crate) fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Implements [`Versioned`] for a struct: every field in order (`struct_size` first); for a config
/// ([`VersionedConfig`]), then the `bool` ones.
macro_rules! versioned {
    ($t:ident { $($field:ident),+ $(,)? }) => {
        // SAFETY: each struct given to this macro is `#[repr(C)]` and starts with
        // `struct_size: usize`; `prefix_len` returns a field's end or 0. The tests check that each
        // field list covers its struct.
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

            #[cfg(test)]
            fn field_offsets() -> Vec<usize> {
                vec![$(::std::mem::offset_of!($t, $field)),+]
            }
        }
    };
    ($t:ident { $($field:ident),+ $(,)? } bools { $($b:ident),* $(,)? }) => {
        $crate::versioned::versioned!($t { $($field),+ });
        // SAFETY: each config given to this macro has fields of integer, raw pointer and the listed
        // `bool` types only (a field of another type needs `read` extended first).
        unsafe impl $crate::versioned::VersionedConfig for $t {
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
pub(crate) fn read<T: VersionedConfig>(ptr: *const T, default: T) -> Result<T, trunkline_result> {
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
    let Some(out) = NonNull::new(out) else { return trunkline_result::NullParameter };
    if let Err(e) = check_size::<T>(struct_size) {
        return e;
    }
    // SAFETY: `struct_size` is checked; the header requires `out` to be aligned and valid for writes
    // of `struct_size` bytes.
    unsafe { write_prefix(out, struct_size, value) };
    trunkline_result::Ok
}

/// Writes the fields of `value` that lie wholly within `struct_size` bytes into `*out`, then
/// `struct_size` into its leading field.
///
/// # Safety
///
/// `struct_size` passed [`check_size`] for `T`, and `out` is aligned and valid for writes of
/// `struct_size` bytes.
unsafe fn write_prefix<T: Versioned>(out: NonNull<T>, struct_size: usize, value: T) {
    let len = T::prefix_len(struct_size);
    // SAFETY: `out` is aligned and valid for writes of `struct_size >= len` bytes (this function's
    // contract); `value` is a local, so they do not overlap. Only written, never read.
    unsafe { std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), out.as_ptr().cast::<u8>(), len) };
    // SAFETY: `struct_size >= size_of::<usize>()` (checked): the leading field is the caller's.
    unsafe { out.as_ptr().cast::<usize>().write(struct_size) };
}

/// A caller's output struct, checked before anything is done for it: non-NULL, and its
/// `struct_size` (set by the caller) one this library can fill. Like [`crate::Out`], it is only
/// ever written through, never read as a Rust value, apart from its leading `struct_size`.
pub(crate) struct OutStruct<T> {
    ptr: NonNull<T>,
    size: usize,
}

impl<T: VersionedOutput> OutStruct<T> {
    /// NULL_PARAMETER for NULL; INVALID_ARGUMENT for a `struct_size` smaller than the struct's
    /// first version or larger than this library's struct.
    pub(crate) fn new(ptr: *mut T) -> Result<Self, trunkline_result> {
        let ptr = NonNull::new(ptr).ok_or(trunkline_result::NullParameter)?;
        // SAFETY: non-NULL; the header requires an output struct pointer to be aligned, valid for
        // its `struct_size` bytes, and its leading `size_t struct_size` set by the caller.
        let size = unsafe { ptr.as_ptr().cast::<usize>().read() };
        if size < T::FIRST_SIZE {
            return Err(trunkline_result::InvalidArgument);
        }
        check_size::<T>(size)?;
        Ok(Self { ptr, size })
    }

    /// Writes the fields of `value` that fit in the caller's struct (once: it consumes `self`).
    pub(crate) fn set(self, value: T) {
        // SAFETY: `self.size` passed `check_size` in `new`; the header requires the pointer to be
        // aligned and valid for writes of its `struct_size` bytes.
        unsafe { write_prefix(self.ptr, self.size, value) };
    }
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

/// Asserts that `T` only ever grew by fields appended past its previous size. `layouts` are the
/// struct's published layouts, oldest first, as (number of fields, `sizeof`); the last must be the
/// struct as it is. Adding a field fails this until its layout is appended to the list, and then
/// fails if the field lies in the previous layout's tail padding, where an older caller's
/// `struct_size` would take that caller's padding bytes for its value.
#[cfg(test)]
pub(crate) fn assert_layouts<T: Versioned>(layouts: &[(usize, usize)]) {
    let name = std::any::type_name::<T>();
    let offsets = T::field_offsets();
    assert_eq!(
        layouts.last().copied(),
        Some((offsets.len(), size_of::<T>())),
        "{name} changed: append its new layout (fields, sizeof) to the list of its layouts"
    );
    for pair in layouts.windows(2) {
        let ((before, size_before), (after, _)) = (pair[0], pair[1]);
        for (i, &offset) in offsets.iter().enumerate().take(after).skip(before) {
            assert!(
                offset >= size_before,
                "{name}: field {i} starts at {offset}, inside the tail padding of the {size_before}-byte \
                 layout before it (put an explicit padding field before it)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// An output struct in its second version: `b` was appended to the first, `{ struct_size, a }`
    /// (sizeof 16 on LP64, its tail padding included).
    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    struct Grown {
        struct_size: usize,
        a: u32,
        b: u64,
    }

    versioned!(Grown { struct_size, a, b });

    impl VersionedOutput for Grown {
        const FIRST_SIZE: usize = offset_of!(Grown, b);
    }

    /// The caller's memory. `MaybeUninit`: the library copies whole fields and the padding between
    /// them, which a Rust value need not have initialised.
    #[repr(C, align(8))]
    struct Memory([MaybeUninit<u8>; 48]);

    impl Memory {
        /// Bytes `range`, which the test knows to be initialised: POISON, or written fields.
        fn bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
            // SAFETY: the caller asks only for bytes that are POISON or were copied from fields.
            self.0[range].iter().map(|b| unsafe { b.assume_init() }).collect()
        }

        fn untouched_from(&self, start: usize) -> bool {
            self.bytes(start..48).iter().all(|&b| b == POISON)
        }
    }

    const POISON: u8 = 0xA5;

    /// Writes `Grown { a: 1, b: 2 }` for a caller whose struct has `struct_size` bytes, into memory
    /// that is POISON past its first `size_t`.
    fn write_grown(struct_size: usize) -> (Result<(), trunkline_result>, Memory) {
        let mut memory = Memory([MaybeUninit::new(POISON); 48]);
        for (dst, b) in memory.0.iter_mut().zip(struct_size.to_ne_bytes()) {
            *dst = MaybeUninit::new(b);
        }
        let out = (&raw mut memory).cast::<Grown>();
        let result = OutStruct::new(out).map(|o| o.set(Grown { struct_size: 999, a: 1, b: 2 }));
        (result, memory)
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_older_smaller_output_struct_is_written_no_further_than_its_size() {
        assert_covers::<Grown>();
        // A caller compiled against the first version: `a` written, nothing from its tail padding
        // (bytes 12..16) on, where the newer `b` lies.
        let (result, memory) = write_grown(16);
        assert_eq!(result, Ok(()));
        assert_eq!(memory.bytes(0..8), 16usize.to_ne_bytes(), "struct_size kept");
        assert_eq!(memory.bytes(8..12), 1u32.to_ne_bytes());
        assert!(memory.untouched_from(12), "written past an older struct's end");
        // The current version: every field, nothing past it (bytes 12..16 are padding).
        let (result, memory) = write_grown(24);
        assert_eq!(result, Ok(()));
        assert_eq!(memory.bytes(16..24), 2u64.to_ne_bytes());
        assert!(memory.untouched_from(24));
        // Smaller than the first version, or larger than this library's struct: nothing written.
        for bad in [0, 7, 8, 15, 25, 1 << 40] {
            let (result, memory) = write_grown(bad);
            assert_eq!(result, Err(trunkline_result::InvalidArgument), "{bad}");
            assert!(memory.untouched_from(8), "{bad}");
        }
        assert_eq!(
            OutStruct::new(std::ptr::null_mut::<Grown>()).err(),
            Some(trunkline_result::NullParameter)
        );
    }
}
