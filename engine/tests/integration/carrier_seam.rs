//! The carrier seam, proved with a dialect unlike Twilio's in every way the engine must adapt to:
//! a TCP-style byte stream of type-length-value messages (not one JSON message per frame), caller
//! and agent audio as 16 kHz L16 (not 8 kHz µ-law), no timestamps (arrival order), no played
//! confirmation and no clear (the engine's pacer is the truth), and a handshake reply. It lives
//! here, not in the library: the engine must serve it through the public trait alone.
//!
//! Runs inline on a manual clock, so every count below is exact.

use std::time::Duration;
use trunkline::protocol::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, MediaFormat, MediaFrame,
    MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig};

use crate::dialect_session::{events, open_with};
use crate::wire::{l16, ramp};

/// Message types of the test protocol: a one-byte type, a big-endian u16 length, the value.
const HANGUP: u8 = 0x00;
const HELLO: u8 = 0x01;
const READY: u8 = 0x02;
const DTMF: u8 = 0x03;
const AUDIO: u8 = 0x10;
const RATE: u32 = 16_000;
/// One 20 ms frame of 16 kHz L16.
const FRAME_BYTES: usize = 640;

#[derive(Default)]
struct TlvDialect {
    /// A hello was parsed and not answered yet.
    reply_due: bool,
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out
}

impl Dialect for TlvDialect {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            framing: Framing::Stream { header_len: 3 },
            timestamps: false,
            frame_ms: 20,
            // It plays what it gets: the pacer keeps it 40 ms ahead, whatever the session asks.
            max_lead_ms: Some(40),
            confirmation: Confirmation::None,
            clear: ClearKind::None,
        }
    }

    fn stream_message_len(&self, header: &[u8]) -> usize {
        3 + usize::from(u16::from_be_bytes([header[1], header[2]]))
    }

    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        assert_eq!(kind, MessageKind::Binary, "a byte stream is pushed as binary");
        assert_eq!(self.stream_message_len(message), message.len(), "the engine hands out whole messages");
        let value = &message[3..];
        payload.raw_mut().clear();
        Ok(match message[0] {
            HELLO => {
                let id = std::str::from_utf8(value).map_err(|_| ProtocolError::WrongType("hello"))?;
                self.reply_due = true;
                Inbound::Start(Box::new(StreamStart {
                    sequence: None,
                    account_id: String::new(),
                    stream_id: id.to_owned(),
                    call_id: id.to_owned(),
                    tracks: vec![Track::Inbound],
                    custom_parameters: vec![("transport".to_owned(), "tlv".to_owned())],
                    media_format: MediaFormat {
                        encoding: AudioEncoding::L16,
                        sample_rate: RATE,
                        channels: 1,
                    },
                }))
            }
            AUDIO => {
                if value.len() > payload.limit() {
                    return Err(ProtocolError::PayloadTooLarge);
                }
                payload.raw_mut().extend_from_slice(value);
                Inbound::Media(MediaFrame {
                    sequence: None,
                    chunk: None,
                    timestamp_ms: 0,
                    track: Track::Inbound,
                })
            }
            DTMF => Inbound::Dtmf {
                sequence: None,
                digit: *value.first().ok_or(ProtocolError::MissingField("digit"))?,
                duration_ms: None,
            },
            HANGUP => Inbound::Stop { sequence: None },
            _ => return Err(ProtocolError::UnknownEvent),
        })
    }

    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        Ok(start.media_format)
    }

    fn poll_reply(&mut self, out: &mut Vec<u8>) -> Option<MessageKind> {
        if !std::mem::take(&mut self.reply_due) {
            return None;
        }
        *out = tlv(READY, b"ready");
        Some(MessageKind::Binary)
    }

    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.push(AUDIO);
        out.extend_from_slice(&(audio.len() as u16).to_be_bytes());
        out.extend_from_slice(audio);
        MessageKind::Binary
    }

    fn write_mark(&self, _: &str, _: &mut Vec<u8>) -> MessageKind {
        panic!("a carrier without confirmation is never sent a mark");
    }

    fn write_clear(&self, _: &mut Vec<u8>) -> MessageKind {
        panic!("a carrier without a clear is never sent one");
    }

    fn max_media_message_len(&self, payload_len: usize) -> usize {
        3 + payload_len
    }
}

fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    open_with(clock, config, TlvDialect::default())
}

/// A 16 kHz test signal no resampler would pass unchanged by accident: a ramp of odd steps.
fn caller_audio(frames: usize) -> Vec<i16> {
    ramp(frames * 320, 0)
}

fn outbound(s: &mut Session) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| {
        let kind = s.next_outbound(&mut buf)?;
        assert_eq!(kind, MessageKind::Binary);
        Some(buf.clone())
    })
    .collect()
}

#[test]
fn a_byte_stream_in_any_chunks_delivers_16_khz_audio_untouched() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    let audio = caller_audio(50);
    let mut stream = tlv(HELLO, b"call-7");
    for frame in audio.chunks(320) {
        stream.extend(tlv(AUDIO, &l16(frame)));
    }
    stream.extend(tlv(DTMF, b"5"));
    stream.extend(tlv(HANGUP, b""));

    // Chunks of every size from 1 byte to more than a message, cutting headers and values.
    let mut received = Vec::new();
    let mut pcm = [0i16; 4096];
    let (mut at, mut size) = (0, 1);
    while at < stream.len() {
        let end = (at + size).min(stream.len());
        s.push(&stream[at..end], MessageKind::Binary).unwrap();
        at = end;
        size = size % 700 + 97;
        loop {
            let n = s.read_audio(&mut pcm);
            if n == 0 {
                break;
            }
            received.extend_from_slice(&pcm[..n]);
        }
    }

    // 16 kHz in, 16 kHz to the agent: the samples themselves, in order, none lost or added.
    assert_eq!(received, audio);
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!((start.call_id.as_str(), start.stream_id.as_str()), ("call-7", "call-7"));
    assert_eq!(
        start.media_format,
        MediaFormat { encoding: AudioEncoding::L16, sample_rate: RATE, channels: 1 }
    );
    assert_eq!(start.custom_parameters, [("transport".to_owned(), "tlv".to_owned())]);
    // Stream time counts 16 kHz samples: 50 frames are 1000 ms.
    assert!(evs.contains(&Event::Dtmf { digit: '5', stream_ms: 1_000, duration_ms: None }), "{evs:?}");
    assert_eq!(evs.last(), Some(&Event::Stopped));
    assert!(!evs.iter().any(|e| matches!(e, Event::ProtocolError { .. })), "{evs:?}");
    // The handshake reply went out, and nothing else (no agent audio was played).
    assert_eq!(outbound(&mut s), [tlv(READY, b"ready")]);
    let stats = s.stats();
    assert_eq!((stats.messages_in, stats.media_frames_in, stats.protocol_errors), (53, 50, 0));
    assert_eq!(stats.inbound_samples, audio.len() as u64);
}

#[test]
fn agent_audio_goes_out_in_exact_16_khz_frames_and_marks_play_by_the_engines_clock() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: RATE, lead_ms: 60, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(&tlv(HELLO, b"call-8"), MessageKind::Binary).unwrap();
    assert_eq!(outbound(&mut s), [tlv(READY, b"ready")]);
    // 210 ms of agent audio at the carrier's rate, then a mark.
    let reply: Vec<i16> = (0..3360).map(|i| ((i * 11) % 6000) as i16 - 3000).collect();
    assert_eq!(s.play(&reply, RATE).unwrap(), reply.len());
    s.mark("end-of-reply").unwrap();

    let mut sent = Vec::new();
    let mut played_at = None;
    for step in 0..30u64 {
        let frames = outbound(&mut s);
        for f in &frames {
            assert_eq!(f[0], AUDIO, "only audio goes to a carrier without marks");
            assert_eq!(f.len(), 3 + FRAME_BYTES, "every frame is exactly 20 ms of 16 kHz L16");
            sent.extend_from_slice(&f[3..]);
        }
        // Paced: never more than the lead (60 ms, three frames) ahead of the clock.
        let now_ms = step * 20;
        assert!(
            sent.len() / FRAME_BYTES <= (now_ms / 20 + 3) as usize,
            "at {now_ms} ms: {} frames",
            sent.len() / FRAME_BYTES
        );
        for e in events(&mut s) {
            if let Event::MarkPlayed { name, played_ms } = e {
                assert_eq!(name, "end-of-reply");
                // The mark's frame is cut at it and padded: the position is the reply's 210 ms,
                // not the 10 ms of padding after it.
                assert_eq!(played_ms, 210);
                played_at = Some(now_ms);
            }
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    // The audio itself (16 kHz to 16 kHz, L16 to L16): bit-exact, the last frame padded with
    // silence to a whole 20 ms.
    assert_eq!(sent.len(), 11 * FRAME_BYTES);
    assert_eq!(&sent[..reply.len() * 2], l16(&reply).as_slice());
    assert!(sent[reply.len() * 2..].iter().all(|&b| b == 0));
    // The mark is reported once its audio has played by the pacer's model (the first frame went
    // out at 0 ms, so eleven frames end at 220 ms), not when it was sent (at 160 ms).
    let played_at = played_at.expect("the mark is reported played");
    assert!((220..=240).contains(&played_at), "reported at {played_at} ms");
    let stats = s.stats();
    assert_eq!(
        (stats.frames_out, stats.marks_sent, stats.marks_played, stats.sync_marks_sent),
        (11, 1, 1, 0)
    );
}

#[test]
fn without_a_clear_an_interrupt_stops_sending_and_what_was_sent_still_plays() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: RATE, lead_ms: 60, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(&tlv(HELLO, b"call-9"), MessageKind::Binary).unwrap();
    s.play(&vec![1000i16; 640], RATE).unwrap(); // 40 ms
    s.mark("sent").unwrap();
    s.play(&vec![1000i16; 16_000], RATE).unwrap(); // one second
    s.mark("never-sent").unwrap();
    // The reply, then the two frames the carrier allows ahead (the "sent" mark ends them).
    assert_eq!(outbound(&mut s).len(), 3);
    clock.advance(Duration::from_millis(20));
    s.interrupt().unwrap();
    assert!(outbound(&mut s).is_empty(), "no clear exists, and nothing more is sent");
    let evs = events(&mut s);
    assert_eq!(
        evs[1..],
        [Event::Interrupted { played_ms: 20 }, Event::MarkCleared { name: "never-sent".into() }],
        "{evs:?}"
    );
    // The carrier still plays what it holds: the mark inside it is heard at 40 ms.
    clock.advance(Duration::from_millis(20));
    s.read_audio(&mut [0; 16]);
    assert_eq!(events(&mut s), [Event::MarkPlayed { name: "sent".into(), played_ms: 40 }]);
    let stats = s.stats();
    assert_eq!((stats.frames_out, stats.clears_sent), (2, 0));
    assert_eq!(stats.flushed_samples, 16_640 - 2 * 320);
}

#[test]
fn an_oversized_message_is_reported_once_and_the_stream_stays_in_step() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    s.push(&tlv(HELLO, b"call-10"), MessageKind::Binary).unwrap();
    // A value of 60,000 bytes: over the 6 KiB message limit. It arrives in pieces.
    let huge = tlv(AUDIO, &vec![0u8; 60_000]);
    for piece in huge.chunks(4_000) {
        s.push(piece, MessageKind::Binary).unwrap();
    }
    s.push(&tlv(DTMF, b"#"), MessageKind::Binary).unwrap();
    let evs = events(&mut s);
    let errors: Vec<_> = evs.iter().filter(|e| matches!(e, Event::ProtocolError { .. })).collect();
    assert_eq!(errors, [&Event::ProtocolError { error: ProtocolError::MessageTooLarge }]);
    assert!(evs.contains(&Event::Dtmf { digit: '#', stream_ms: 0, duration_ms: None }), "{evs:?}");
}

/// The seam serves the built-in dialect too: a Twilio-compatible carrier streaming the caller as
/// 16 kHz L16 (SignalWire offers it) reaches a 16 kHz agent untouched and on the 16 kHz clock,
/// while the agent's audio still goes back as the 8 kHz µ-law that dialect takes.
#[test]
fn a_twilio_compatible_stream_at_16_khz_reaches_the_agent_at_its_own_rate() {
    use crate::common::{media, start};
    let clock = ManualClock::new();
    let engine = Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock)
        .expect("inline engine");
    let mut s = engine.open_session(&SessionConfig { agent_rate: RATE, ..Default::default() }).unwrap();
    s.push_text(
        &start()
            .replace("audio/x-mulaw", "audio/x-l16")
            .replace("\"sampleRate\":8000", "\"sampleRate\":16000"),
    )
    .unwrap();
    let audio = caller_audio(10);
    for (i, frame) in audio.chunks(320).enumerate() {
        let i = i as u64;
        s.push_text(&media(i + 2, i + 1, i * 20, &l16(frame))).unwrap();
    }
    let mut pcm = vec![0i16; audio.len() + 16];
    let n = s.read_audio(&mut pcm);
    assert_eq!(&pcm[..n], audio.as_slice());
    s.push_text(&crate::common::dtmf(12, '1')).unwrap();
    let evs = events(&mut s);
    assert!(evs.contains(&Event::Dtmf { digit: '1', stream_ms: 200, duration_ms: None }), "{evs:?}");
    // Agent audio goes back as Twilio's 20 ms µ-law frames.
    s.play(&[0; 160], 8_000).unwrap();
    let mut buf = Vec::new();
    assert_eq!(s.next_outbound(&mut buf), Some(MessageKind::Text));
    assert!(
        matches!(crate::common::parse_outbound(&buf), crate::common::Outbound::Media(p) if p.len() == 160)
    );
}

/// A carrier that sends no stop (or a connection that drops) ends the stream when the host says
/// the connection closed: the same end as a stop message, once.
#[test]
fn the_connection_closing_ends_the_stream_like_a_stop() {
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: RATE, play_rate: RATE, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(&tlv(HELLO, b"call-11"), MessageKind::Binary).unwrap();
    s.push(&tlv(AUDIO, &l16(&caller_audio(2))), MessageKind::Binary).unwrap();
    s.play(&[500; 320], RATE).unwrap();
    s.mark("queued").unwrap();
    s.end_stream().unwrap();
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert_eq!(evs[1..], [Event::MarkCleared { name: "queued".into() }, Event::Stopped], "{evs:?}");
    assert_eq!(s.stats().messages_in, 2, "a closed connection is not a carrier message");

    // Before the stream started, the host still learns the call is over.
    let (_engine, mut s) = open(&clock, &config);
    s.end_stream().unwrap();
    assert_eq!(events(&mut s), [Event::Stopped]);
}
