//! Hooks for the C tests (feature `test-hooks`): reach results that only a bug can cause.

use crate::result::trunkline_result;

/// Panics inside the boundary: returns PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_test_panic() -> trunkline_result {
    crate::guard(|| panic!("trunkline_test_panic"))
}
