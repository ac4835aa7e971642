//! Threaded sessions get a worker slot (the flag the host sets to hand the worker work) even when
//! sessions are closed and opened faster than the worker retires them, and every session works,
//! whichever slot it got (including the shared overflow slot, which the worker polls).

use crate::common::*;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};
use trunkline::protocol::{
    Capabilities, Dialect, Inbound, MediaFormat, MessageKind, PayloadBuffer, ProtocolError, StreamStart,
    TwilioDialect,
};
use trunkline::{Engine, EngineConfig, Session, SessionConfig};

#[test]
fn sessions_closed_and_reopened_at_once_always_get_a_working_slot() {
    let engine =
        Engine::new(EngineConfig { workers: Some(1), max_sessions: 2, ..Default::default() }).unwrap();
    let config = SessionConfig::default();
    let keep = engine.open_session(&config).unwrap();
    // Far more open/close cycles than there are slots, with no pause for the worker.
    for _ in 0..200 {
        let mut s = engine.open_session(&config).unwrap();
        s.close();
    }
    let mut last = engine.open_session(&config).unwrap();
    last.push_text(&connected()).unwrap();
    last.push_text(&start()).unwrap();
    last.push(media(2, 1, 0, &[0xFF; 160]).as_bytes(), MessageKind::Text).unwrap();
    // Its audio comes through (2 x 160 samples at 16 kHz), by flag or by the overflow poll.
    let mut pcm = [0i16; 1024];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < 320 && Instant::now() < deadline {
        engine.wait(Some(Duration::from_millis(10)));
        got += last.read_audio(&mut pcm);
    }
    assert_eq!(got, 320);
    drop(keep);
}

/// Twilio, except that `parse` holds the worker thread (every session on it) while the gate is
/// shut; the first parse reports that the worker is held.
struct GatedTwilio {
    inner: TwilioDialect,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    held: Mutex<Option<mpsc::Sender<()>>>,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so a failing test does not leave the worker (and the engine's
/// drop, which joins it) held for ever.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Dialect for GatedTwilio {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        if let Some(held) = self.gate.held.lock().unwrap().take() {
            held.send(()).unwrap();
        }
        let mut open = self.gate.open.lock().unwrap();
        while !*open {
            open = self.gate.opened.wait(open).unwrap();
        }
        drop(open);
        self.inner.parse(message, kind, payload)
    }
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        self.inner.on_start(start)
    }
    fn write_media(&self, mulaw: &[u8], out: &mut Vec<u8>) -> MessageKind {
        self.inner.write_media(mulaw, out)
    }
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        self.inner.write_mark(name, out)
    }
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        self.inner.write_clear(out)
    }
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        self.inner.max_media_message_len(payload_len)
    }
}

/// Pushes the start of a call and its first 20 ms of audio (µ-law silence).
fn push_first_frame(session: &mut Session) {
    session.push_text(&connected()).unwrap();
    session.push_text(&start()).unwrap();
    session.push(media(2, 1, 0, &[0xFF; 160]).as_bytes(), MessageKind::Text).unwrap();
}

/// The samples the host reads from `session` within 5 s, stopping at the 320 (20 ms at 16 kHz)
/// of one frame.
fn read_first_frame(engine: &Engine, session: &mut Session) -> usize {
    let mut pcm = [0i16; 1024];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < 320 && Instant::now() < deadline {
        engine.wait(Some(Duration::from_millis(10)));
        got += session.read_audio(&mut pcm);
    }
    got
}

#[test]
fn a_session_in_the_overflow_slot_gets_its_audio_through() {
    // One worker, two sessions allowed: regular slots 0-3, then the shared overflow slot. A
    // closed session keeps its slot until the worker has retired it, so with the worker held
    // every slot can be filled with sessions it has not retired, and the next one overflows.
    let engine =
        Engine::new(EngineConfig { workers: Some(1), max_sessions: 2, ..Default::default() }).unwrap();
    let config = SessionConfig::default();
    let (held_tx, held_rx) = mpsc::channel();
    let gate = Arc::new(Gate { held: Mutex::new(Some(held_tx)), ..Default::default() });
    let _open_on_drop = OpenOnDrop(gate.clone());

    // Slot 0: the session whose first message holds the worker.
    let dialect = Box::new(GatedTwilio { inner: TwilioDialect::new(), gate: gate.clone() });
    let mut holder = engine.open_session_with(&config, dialect).unwrap();
    // Slot 1: a session the worker has taken over (its audio came through).
    let mut taken = engine.open_session(&config).unwrap();
    push_first_frame(&mut taken);
    assert_eq!(read_first_frame(&engine, &mut taken), 320);
    // Hold the worker, then close that session: it keeps slot 1 until the worker retires it.
    holder.push_text(&connected()).unwrap();
    held_rx.recv_timeout(Duration::from_secs(5)).expect("the worker runs the gated dialect");
    taken.close();
    // Slots 2 and 3: sessions opened and closed while the worker is held (still queued to it).
    for _ in 0..2 {
        engine.open_session(&config).unwrap().close();
    }
    // No regular slot is free: this one shares the overflow slot.
    let mut overflow = engine.open_session(&config).unwrap();
    push_first_frame(&mut overflow);
    gate.open();
    assert_eq!(read_first_frame(&engine, &mut overflow), 320, "audio of the session in the overflow slot");
    // The held session carries on too.
    holder.push_text(&start()).unwrap();
    holder.push(media(2, 1, 0, &[0xFF; 160]).as_bytes(), MessageKind::Text).unwrap();
    assert_eq!(read_first_frame(&engine, &mut holder), 320);
}
