//! callsim's integration tests, in one test binary (one build and one link on a fresh machine
//! instead of one per file); run one subject with its module path, e.g.
//! `cargo test -p trunkline-callsim --test integration echo::`.

#[path = "../../../engine/tests/support/alloc_guarded.rs"]
mod alloc_guarded;
#[path = "../../../engine/tests/common/mod.rs"]
mod common;

mod callsim;
mod carriers;
mod echo;
mod recording;
