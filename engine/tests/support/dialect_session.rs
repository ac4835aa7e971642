//! What every dialect's session tests need: an inline engine on a manual clock with a session
//! speaking a given dialect, and the drains of its outputs.
#![allow(dead_code)]

use trunkline::protocol::{Dialect, ProtocolError};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig};

/// An inline engine whose time is `clock`, and a session on it speaking `dialect`.
pub fn open_with(
    clock: &ManualClock,
    config: &SessionConfig,
    dialect: impl Dialect + 'static,
) -> (Engine, Session) {
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .expect("inline engine");
    let session = engine.open_session_with(config, Box::new(dialect)).expect("session");
    (engine, session)
}

/// Every event waiting.
pub fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// The protocol errors among `evs`.
pub fn errors(evs: &[Event]) -> Vec<ProtocolError> {
    evs.iter()
        .filter_map(|e| match e {
            Event::ProtocolError { error } => Some(*error),
            _ => None,
        })
        .collect()
}

/// All the caller audio waiting.
pub fn read_all(s: &mut Session) -> Vec<i16> {
    let mut all = Vec::new();
    read_all_into(s, &mut all);
    all
}

/// All the caller audio waiting, appended to `into`.
pub fn read_all_into(s: &mut Session, into: &mut Vec<i16>) {
    let mut pcm = [0i16; 2048];
    loop {
        let n = s.read_audio(&mut pcm);
        if n == 0 {
            return;
        }
        into.extend_from_slice(&pcm[..n]);
    }
}

/// The bytes the carriers' media fixtures were generated from: `(i * 37 + chunk * 11) & 0xff`.
pub fn fixture_pattern(chunk: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i as u64 * 37 + chunk * 11) & 0xff) as u8).collect()
}
