//! The real FFT plans every session shares: one planner for the process, which caches its plans
//! by length, so each length's twiddle tables are built once, read-only, and stay in cache with
//! many sessions on a worker. Taken when a session is built, never on the audio path (the lock
//! below is only for that).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

/// A length's forward and inverse plans.
pub(crate) type Plans = (Arc<dyn RealToComplex<f32>>, Arc<dyn ComplexToReal<f32>>);

/// The plans for transforms of `len` samples (built on first use, then the cached ones).
pub(crate) fn shared_plans(len: usize) -> Plans {
    static PLANNER: OnceLock<Mutex<RealFftPlanner<f32>>> = OnceLock::new();
    with_planner(&PLANNER, RealFftPlanner::new, |p| (p.plan_fft_forward(len), p.plan_fft_inverse(len)))
}

/// A complex length's forward and inverse plans.
pub(crate) type ComplexPlans = (Arc<dyn Fft<f32>>, Arc<dyn Fft<f32>>);

/// The plans for complex transforms of `len` points (built on first use, then the cached ones).
pub(crate) fn shared_complex_plans(len: usize) -> ComplexPlans {
    static PLANNER: OnceLock<Mutex<FftPlanner<f32>>> = OnceLock::new();
    with_planner(&PLANNER, FftPlanner::new, |p| (p.plan_fft_forward(len), p.plan_fft_inverse(len)))
}

/// Plans with the process's `planner` (made by `new` on first use).
fn with_planner<P, R>(planner: &OnceLock<Mutex<P>>, new: fn() -> P, plan: impl FnOnce(&mut P) -> R) -> R {
    plan(&mut planner.get_or_init(|| Mutex::new(new())).lock().unwrap_or_else(PoisonError::into_inner))
}
