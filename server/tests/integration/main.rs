//! The offload server's integration tests, in one test binary (one build and one link on a fresh
//! machine instead of one per file); run one subject with its module path, e.g.
//! `cargo test -p trunkline-server --test integration offload::`. Kept apart: `logs`, which
//! installs a process-wide log recorder that the other tests' servers would write into, and
//! `soak`, which measures the process's memory and latency under its own load.

#[path = "../../../engine/tests/support/alloc_guarded.rs"]
mod alloc_guarded;
#[path = "../../../engine/tests/common/mod.rs"]
mod common;

mod carriers;
mod metrics;
mod offload;
#[cfg(feature = "tls")]
mod tls;
