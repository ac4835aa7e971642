//! Trunkline's logs on stderr, for hosts that have no `tracing` subscriber of their own (C and the
//! bindings). The offload server logs calls, refusals and drains through `tracing`; nothing is
//! written until a subscriber is installed, which this does once per process.

use crate::guard;
use crate::result::trunkline_result;
use std::ffi::{CStr, c_char};
use std::io::Write;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable read when no filter is given.
const FILTER_VAR: &str = "TRUNKLINE_LOG";

/// The filter when neither the caller nor the environment gives one: calls, refusals, drains.
const DEFAULT_FILTER: &str = "trunkline=info";

/// The text of an error this function cannot return otherwise (the ABI's results are codes with
/// static messages): on stderr, where the caller asked the logs to go.
fn report(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "trunkline: {text}");
}

/// Where the filter text comes from, for the error message.
enum Source {
    Argument,
    Environment,
    Default,
}

/// The filter's text: `filter`, else `TRUNKLINE_LOG` (unset or empty: the default).
fn filter_text(filter: *const c_char) -> Result<(String, Source), String> {
    if !filter.is_null() {
        // SAFETY: non-NULL; the header requires a NUL-terminated string valid for the call.
        let text = unsafe { CStr::from_ptr(filter) }.to_str().map_err(|_| "the log filter is not UTF-8")?;
        return Ok((text.to_owned(), Source::Argument));
    }
    match std::env::var(FILTER_VAR) {
        Ok(text) if !text.trim().is_empty() => Ok((text, Source::Environment)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok((DEFAULT_FILTER.to_owned(), Source::Default)),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{FILTER_VAR} is not UTF-8")),
    }
}

/// Writes Trunkline's logs to stderr, one line per event (time, level, target, message and
/// fields), filtered by `filter`: `tracing`'s EnvFilter syntax (the same as RUST_LOG), e.g.
/// "trunkline=info", "trunkline=debug" or "warn,trunkline_server=info". NULL: the environment
/// variable TRUNKLINE_LOG, or "trunkline=info" when it is unset or empty. What is logged: the
/// offload server's calls (start and end, with the call's summary: `info`), refusals and failed
/// calls with their reason (`warn`), drains (`info`), connection detail (`debug`); never one line
/// per audio frame, and never from an audio worker thread. Until this is called (or the process
/// installs a `tracing` subscriber of its own) nothing is written.
///
/// Results: OK; INVALID_ARGUMENT (the filter, or TRUNKLINE_LOG when `filter` is NULL, is not a
/// valid filter or not UTF-8: the reason is written to stderr); FULL (a subscriber is already
/// installed in this process, by an earlier call or by the host's own Rust code: nothing changed,
/// and a line saying so is written to stderr). Installs a process-wide logger once; any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_log_to_stderr(filter: *const c_char) -> trunkline_result {
    guard(|| {
        let (text, source) = match filter_text(filter) {
            Ok(found) => found,
            Err(why) => {
                report(&format!("log filter refused: {why}"));
                return trunkline_result::InvalidArgument;
            }
        };
        let filter = match EnvFilter::builder().parse(&text) {
            Ok(filter) => filter,
            Err(error) => {
                let from = match source {
                    Source::Argument => "the log filter",
                    Source::Environment => FILTER_VAR,
                    Source::Default => "the default log filter",
                };
                report(&format!("{from} {text:?} is not valid: {error}"));
                return trunkline_result::InvalidArgument;
            }
        };
        let subscriber =
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).finish();
        match subscriber.try_init() {
            Ok(()) => trunkline_result::Ok,
            Err(_) => {
                report(
                    "a log subscriber is already installed in this process; the logs go where they already went",
                );
                trunkline_result::Full
            }
        }
    })
}
