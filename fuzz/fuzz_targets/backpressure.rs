//! Backpressure instead of drops: a session (inline engine, the runtime's own rings and hold
//! policy) fed bursts of carrier messages of any size and schedule, by a host that reads caller
//! audio with any buffer size and polls events at arbitrary moments, on a configuration with
//! small rings. The host always counts as reading (`read_hold_ms` far beyond a run), so:
//!
//! - after every step, no caller sample and no event was dropped (`agent_samples_dropped` and
//!   `events_dropped` stay 0), and `agent_samples_out` = samples read + samples waiting;
//! - a message refused with `Full` is pushed again later, and at the end, once every message is
//!   in and everything is read, the caller audio read equals, sample for sample, what a second
//!   session with rings large enough never to fill delivers for the same messages, and every
//!   DTMF digit pushed was reported, in order.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use trunkline::pipeline::AGENT_RATES;
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig, SessionError};

#[derive(Arbitrary, Debug)]
enum Op {
    /// This many media messages arrive at once, each with this many bytes of µ-law (1..=256).
    Burst { frames: u8, bytes: u8, fill: u8 },
    /// A DTMF digit arrives.
    Dtmf(u8),
    /// The host reads caller audio into a buffer of this many samples (1..=4096).
    Read(u16),
    /// The host polls at most this many events.
    Poll(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    agent_rate: u8,
    agent_ring_ms: u8,
    inbound_kib: u8,
    event_capacity: u8,
    ops: Vec<Op>,
}

const STREAM: &str = "MZ00000000000000000000000000000000";

fn start() -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"streamSid":"{STREAM}","callSid":"CA1","accountSid":"AC1","tracks":["inbound"],"customParameters":{{}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"{STREAM}"}}"#
    )
}

struct Host {
    session: Session,
    /// Messages that arrived and were not taken yet (refused with `Full`).
    pending: VecDeque<String>,
    audio: Vec<i16>,
    digits: Vec<char>,
}

impl Host {
    /// Pushes what is pending until the engine refuses.
    fn push_pending(&mut self) {
        while let Some(m) = self.pending.front() {
            match self.session.push_text(m) {
                Ok(()) => {
                    self.pending.pop_front();
                }
                Err(SessionError::Full) => return,
                Err(e) => panic!("push: {e}"),
            }
        }
    }

    fn read(&mut self, cap: usize) {
        let mut buf = vec![0i16; cap];
        let n = self.session.read_audio(&mut buf);
        self.audio.extend_from_slice(&buf[..n]);
    }

    fn poll(&mut self, most: usize) {
        for _ in 0..most {
            match self.session.poll_event() {
                Some(Event::Dtmf { digit, .. }) => self.digits.push(digit),
                Some(_) => {}
                None => return,
            }
        }
    }

    fn check(&mut self) {
        let st = self.session.stats();
        assert_eq!(st.agent_samples_dropped, 0, "caller audio dropped while the host reads: {st:?}");
        assert_eq!(st.events_dropped, 0, "events dropped while the host polls: {st:?}");
        let waiting = self.session.audio_available() as u64;
        assert_eq!(st.agent_samples_out, self.audio.len() as u64 + waiting, "{st:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else { return };
    let agent_rate = AGENT_RATES[usize::from(input.agent_rate) % AGENT_RATES.len()];
    let config = SessionConfig {
        agent_rate,
        // Small rings, so that bursts meet every kind of "full".
        // At least 100 ms: one message's largest output (256 bytes of payload) plus the reorder
        // window (60 ms) must fit, or the engine rightly lets it through and drops the excess.
        agent_ring_ms: 100 + u32::from(input.agent_ring_ms),
        inbound_ring_bytes: (13 + usize::from(input.inbound_kib % 16)) * 1024,
        event_capacity: 4 + usize::from(input.event_capacity % 60),
        // Room for the largest burst payload plus the reorder window in the smallest agent ring.
        max_payload_bytes: 256,
        read_hold_ms: 600_000,
        ..Default::default()
    };
    // The engine's time stands still (a manual clock, never advanced), so both sessions below
    // see the same instants however slowly this runs: on the wall clock, a run slower than the
    // reorder wait (a loaded machine, ASan) let the first session release audio it had held
    // back, which the second, fed at once, still held.
    let engine = Engine::with_manual_clock(
        EngineConfig { workers: Some(0), ..Default::default() },
        ManualClock::new(),
    )
    .unwrap();
    let mut host = Host {
        session: engine.open_session(&config).unwrap(),
        pending: VecDeque::new(),
        audio: vec![],
        digits: vec![],
    };
    let mut sent = vec![start()];
    host.pending.push_back(start());
    let (mut seq, mut ts_samples, mut digits) = (2u64, 0u64, vec![]);
    for op in input.ops.iter().take(400) {
        match *op {
            // At most a minute of audio (the roomy session below holds all of it).
            Op::Burst { frames, bytes, fill } if ts_samples < 60 * 8_000 => {
                let len = 1 + usize::from(bytes);
                for k in 0..frames % 64 {
                    let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i as u8) ^ k)).collect();
                    let m = format!(
                        r#"{{"event":"media","sequenceNumber":"{seq}","streamSid":"{STREAM}","media":{{"track":"inbound","chunk":"{seq}","timestamp":"{}","payload":"{}"}}}}"#,
                        ts_samples / 8,
                        STANDARD.encode(&payload)
                    );
                    // Timestamps have 1 ms resolution: keep frames whole milliseconds long.
                    ts_samples += (len as u64).div_ceil(8) * 8;
                    seq += 1;
                    sent.push(m.clone());
                    host.pending.push_back(m);
                }
                host.push_pending();
            }
            Op::Dtmf(d) => {
                let digit = char::from(b"0123456789*#"[usize::from(d) % 12]);
                let m = format!(
                    r#"{{"event":"dtmf","sequenceNumber":"{seq}","streamSid":"{STREAM}","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#
                );
                seq += 1;
                digits.push(digit);
                sent.push(m.clone());
                host.pending.push_back(m);
                host.push_pending();
            }
            Op::Burst { .. } => {}
            Op::Read(cap) => host.read(1 + usize::from(cap) % 4096),
            Op::Poll(n) => host.poll(usize::from(n)),
        }
        host.check();
    }
    // Everything in, everything out.
    let mut rounds = 0;
    while !host.pending.is_empty() {
        host.push_pending();
        host.read(4096);
        host.poll(usize::MAX);
        host.check();
        rounds += 1;
        assert!(rounds < 100_000, "the host reads and polls, yet the engine never takes the rest");
    }
    // Messages may still wait in the inbound ring for room: read until every one was processed.
    while host.session.stats().messages_in < sent.len() as u64 || host.session.audio_available() > 0 {
        host.read(4096);
        host.poll(usize::MAX);
        host.check();
        rounds += 1;
        assert!(rounds < 200_000, "messages pushed were never processed");
    }
    host.poll(usize::MAX);
    assert_eq!(host.digits, digits);

    // The same messages through a session whose rings never fill.
    // Inline, each push is processed at once, so its inbound ring never fills.
    let roomy = SessionConfig {
        agent_ring_ms: (ts_samples / 8) as u32 + 1_000,
        event_capacity: 4096,
        read_hold_ms: 0,
        ..config
    };
    let mut reference = engine.open_session(&roomy).unwrap();
    for m in &sent {
        reference.push_text(m).unwrap();
    }
    let mut want = vec![0i16; reference.audio_available()];
    let n = reference.read_audio(&mut want);
    want.truncate(n);
    assert_eq!(reference.stats().agent_samples_dropped, 0);
    assert_eq!(host.audio.len(), want.len());
    assert!(host.audio == want, "caller audio differs from the roomy session's");
});
