//! Version.

use std::ffi::c_char;

/// Major version of the library this header belongs to.
pub const TRUNKLINE_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const TRUNKLINE_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const TRUNKLINE_VERSION_PATCH: u32 = 0;
/// The version as a string.
pub const TRUNKLINE_VERSION: &str = "0.1.0";

/// The library's version, e.g. "0.1.0": static, NUL-terminated. Compare with TRUNKLINE_VERSION
/// to detect a header/library mismatch. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_cargo_toml() {
        assert_eq!(TRUNKLINE_VERSION, env!("CARGO_PKG_VERSION"));
        assert_eq!(TRUNKLINE_VERSION_MAJOR.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
        assert_eq!(TRUNKLINE_VERSION_MINOR.to_string(), env!("CARGO_PKG_VERSION_MINOR"));
        assert_eq!(TRUNKLINE_VERSION_PATCH.to_string(), env!("CARGO_PKG_VERSION_PATCH"));
        // SAFETY: trunkline_version returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(trunkline_version()) };
        assert_eq!(v.to_str().unwrap(), TRUNKLINE_VERSION);
    }
}
