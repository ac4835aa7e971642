//! Fixtures shared by the benchmarks: the committed speech recording and Twilio messages built
//! from it, exactly as Twilio sends them; [`carriers`] has every dialect's.
#![warn(missing_docs)]

pub mod carriers;

use trunkline::pipeline::SessionPipeline;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The committed caller speech: 8 kHz µ-law, about 10.6 s with speech and pauses.
pub const SPEECH_ULAW: &[u8] = include_bytes!("../../engine/tests/fixtures/speech_8k.ulaw");

/// Bytes in one 20 ms µ-law frame.
pub const FRAME: usize = 160;

/// The stream SID used in the fixtures.
pub const STREAM_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

/// Twilio's `connected` message.
pub const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;

/// A Twilio `start` message for a µ-law 8 kHz inbound stream.
pub fn start_message() -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC0123456789abcdef0123456789abcdef","streamSid":"{STREAM_SID}","callSid":"CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"caller":"+15550100"}}}},"streamSid":"{STREAM_SID}"}}"#
    )
}

/// A Twilio `media` message carrying `payload` (µ-law) at `timestamp_ms`.
pub fn media_message(seq: u64, chunk: u64, timestamp_ms: u64, payload: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp_ms}","payload":"{}"}},"streamSid":"{STREAM_SID}"}}"#,
        STANDARD.encode(payload)
    )
}

/// The speech fixture as 20 ms µ-law frames.
pub fn speech_frames() -> Vec<&'static [u8]> {
    SPEECH_ULAW.chunks_exact(FRAME).collect()
}

/// The speech fixture decoded to 8 kHz s16 PCM.
pub fn speech_pcm() -> Vec<i16> {
    let mut pcm = vec![0i16; SPEECH_ULAW.len()];
    trunkline::codec::decode_ulaw(SPEECH_ULAW, &mut pcm);
    pcm
}

/// One `media` message per 20 ms frame of the speech fixture, sequence numbers from 2.
pub fn speech_messages() -> Vec<String> {
    speech_frames()
        .iter()
        .enumerate()
        .map(|(i, f)| media_message(i as u64 + 2, i as u64 + 1, i as u64 * 20, f))
        .collect()
}

/// Counts what a [`SessionPipeline`] produces, and never allocates: the benches' stand-in for a
/// runtime that takes every output.
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Caller audio samples handed out.
    pub samples: usize,
    /// Events taken.
    pub events: usize,
    /// Carrier messages taken.
    pub messages: usize,
    /// Their bytes.
    pub bytes: usize,
}

impl CountingSink {
    /// Counts caller audio.
    #[inline]
    pub fn audio(&mut self, pcm: &[i16]) {
        self.samples += pcm.len();
    }

    /// Takes every event and every message due, as a runtime with room for them would.
    /// (Inlined like the benches' own code was before it moved here, so the figures keep
    /// measuring the pipeline, not a call across crates.)
    #[inline]
    pub fn drain(&mut self, p: &mut SessionPipeline, now: u64) {
        while let Some(event) = p.poll_event() {
            std::hint::black_box(&event);
            self.events += 1;
        }
        while let Some((_, message)) = p.poll_transmit(now) {
            self.messages += 1;
            self.bytes += message.len();
        }
    }
}
