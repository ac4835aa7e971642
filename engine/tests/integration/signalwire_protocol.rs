//! The SignalWire dialect (Twilio's messages, the stream's own format back) against SignalWire's
//! documented messages, then through a whole session.
//!
//! Fixtures (engine/tests/fixtures/signalwire/), from SignalWire's cXML `<Stream>` documentation.
//! Its examples wrap each frame in a log record (`timestamp`, `direction`, `eventType`,
//! `rawEvent`); the fixtures are the frames themselves, the `rawEvent` of each example:
//! - `connected.json`, `start.json`, `stop.json`, `dtmf.json`, `mark.json`, `clear.json`: the
//!   Connected, Start, Stop, DTMF, Mark and Clear examples' `rawEvent`, verbatim.
//! - `media.json`: the Media example's `rawEvent`, its payload placeholder replaced by a real
//!   20 ms frame of 24 kHz L16: 960 bytes `(i * 37 + 1001 * 11) & 0xff` encoded with Python's
//!   `base64`.
//! - `connected_logged.json`: the Connected example whole, wrapper included.
//! - `client_media.json`, `client_mark.json`, `client_clear.json`: the "send a media / mark /
//!   clear message" examples (the media payload being the 960 bytes above).
//!
//! Expectations are independent of the code under test: payloads against the byte patterns the
//! fixtures were generated from, written messages re-parsed with `serde_json::Value` and decoded
//! with the `base64` crate, audio against samples the test encodes itself.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use trunkline::protocol::twilio::SignalWireDialect;
use trunkline::protocol::{
    AudioEncoding, Capabilities, Dialect, Inbound, MediaFormat, MediaFrame, MessageKind, PayloadBuffer,
    ProtocolError, StreamStart, Track, TwilioDialect,
};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, Event, Session, SessionConfig};

use crate::dialect_session::{errors, events, fixture_pattern, open_with, read_all};
use crate::wire::{json_of, ramp};

const STREAM_SID: &str = "7d56cc11-536d-4a45-b4fb-ed3d55be843b";
const CLIENT_SID: &str = "c0c7d59b-df06-435e-afbc-9217ce318390";

const CONNECTED: &str = include_str!("../fixtures/signalwire/connected.json");
const CONNECTED_LOGGED: &str = include_str!("../fixtures/signalwire/connected_logged.json");
const START: &str = include_str!("../fixtures/signalwire/start.json");
const MEDIA: &str = include_str!("../fixtures/signalwire/media.json");
const DTMF: &str = include_str!("../fixtures/signalwire/dtmf.json");
const MARK: &str = include_str!("../fixtures/signalwire/mark.json");
const CLEAR: &str = include_str!("../fixtures/signalwire/clear.json");
const STOP: &str = include_str!("../fixtures/signalwire/stop.json");
const CLIENT_MEDIA: &str = include_str!("../fixtures/signalwire/client_media.json");
const CLIENT_MARK: &str = include_str!("../fixtures/signalwire/client_mark.json");
const CLIENT_CLEAR: &str = include_str!("../fixtures/signalwire/client_clear.json");

const L16_24K: MediaFormat = MediaFormat { encoding: AudioEncoding::L16, sample_rate: 24_000, channels: 1 };

fn parse_with(
    dialect: &mut SignalWireDialect,
    message: &str,
    limit: usize,
) -> (Result<Inbound<'static>, ProtocolError>, Vec<u8>) {
    let mut payload = PayloadBuffer::with_limit(limit);
    // Leaked so the borrowed result can outlive this helper: test-only, a few bytes each.
    let message: &'static str = Box::leak(message.to_owned().into_boxed_str());
    let result = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload);
    (result, payload.as_slice().to_vec())
}

fn parse(message: &str) -> Result<Inbound<'static>, ProtocolError> {
    parse_with(&mut SignalWireDialect::new(), message, 2048).0
}

fn start_record(stream_sid: &str, format: MediaFormat) -> StreamStart {
    StreamStart {
        sequence: Some(1),
        account_id: "b08dacad-2f6c-4de1-93d6-cc732e0c69c5".into(),
        stream_id: stream_sid.into(),
        call_id: "76ac3c36-56da-4a3e-a0d6-b5f8df6da9ad".into(),
        tracks: vec![Track::Inbound],
        custom_parameters: Vec::new(),
        media_format: format,
    }
}

/// The Start example at another codec, as `codec="…"` (or its absence) selects.
fn start_with(encoding: &str, sample_rate: u32) -> String {
    START
        .replace("audio/x-L16", encoding)
        .replace(r#""sampleRate": 24000"#, &format!(r#""sampleRate": {sample_rate}"#))
}

fn little_endian(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing: Twilio's rules on SignalWire's examples

#[test]
fn capabilities_are_twilios() {
    assert_eq!(SignalWireDialect::new().capabilities(), Capabilities::TWILIO);
    assert_eq!(SignalWireDialect::default().capabilities(), TwilioDialect::new().capabilities());
}

#[test]
fn connected_start_media_dtmf_mark_and_stop_examples() {
    assert_eq!(parse(CONNECTED), Ok(Inbound::Connected));
    assert_eq!(parse(START), Ok(Inbound::Start(Box::new(start_record(STREAM_SID, L16_24K)))));
    let (result, payload) = parse_with(&mut SignalWireDialect::new(), MEDIA, 960);
    assert_eq!(
        result,
        Ok(Inbound::Media(MediaFrame {
            sequence: Some(1002),
            chunk: Some(1001),
            timestamp_ms: 20041,
            track: Track::Inbound,
        }))
    );
    assert_eq!(payload, fixture_pattern(1001, 960));
    // The DTMF example carries a duration: a number, ms ("duration": 2700).
    assert_eq!(parse(DTMF), Ok(Inbound::Dtmf { sequence: None, digit: b'8', duration_ms: Some(2700) }));
    assert!(
        matches!(parse(MARK), Ok(Inbound::Mark { name, .. }) if name == "item_CK5XvgANb1jVorf5VQlKQ:43500")
    );
    assert_eq!(parse(STOP), Ok(Inbound::Stop { sequence: Some(1002) }));
}

#[test]
fn the_documentations_log_wrapper_is_not_a_frame_and_its_clear_is_a_notice() {
    // The wrapper has no `event` of its own: the frame is its `rawEvent`.
    assert_eq!(parse(CONNECTED_LOGGED), Err(ProtocolError::MissingField("event")));
    // The "clear" acknowledgement is accepted and not reported; another unknown event still is.
    assert_eq!(parse(CLEAR), Ok(Inbound::Notice));
    assert_eq!(parse(&CLEAR.replace("\"clear\"", "\"cleared\"")), Err(ProtocolError::UnknownEvent));
}

#[test]
fn signalwire_takes_back_the_format_it_sends_where_twilio_takes_8_khz_mulaw() {
    let cases = [
        ("audio/x-L16", 24_000, L16_24K),
        (
            "audio/x-L16",
            16_000,
            MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 },
        ),
        (
            "audio/x-mulaw",
            8000,
            MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 },
        ),
        ("audio/x-alaw", 8000, MediaFormat { encoding: AudioEncoding::Alaw, sample_rate: 8000, channels: 1 }),
    ];
    for (encoding, rate, expected) in cases {
        let Ok(Inbound::Start(start)) = parse(&start_with(encoding, rate)) else { panic!("{encoding}") };
        assert_eq!(start.media_format, expected);
        assert_eq!(SignalWireDialect::new().on_start(&start), Ok(expected), "{encoding} {rate}");
        let twilio = MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 };
        assert_eq!(TwilioDialect::new().on_start(&start), Ok(twilio), "Twilio is unchanged");
    }
    // Two channels (`both_tracks`): what goes back is still mono.
    let stereo = start_with("audio/x-L16", 24_000).replace(r#""channels": 1"#, r#""channels": 2"#);
    let Ok(Inbound::Start(start)) = parse(&stereo) else { panic!() };
    assert_eq!(start.media_format.channels, 2);
    assert_eq!(SignalWireDialect::new().on_start(&start), Ok(L16_24K));
}

#[test]
fn after_start_messages_for_another_stream_are_refused() {
    let mut dialect = SignalWireDialect::new();
    let Ok(Inbound::Start(start)) = parse_with(&mut dialect, START, 960).0 else { panic!() };
    dialect.on_start(&start).unwrap();
    let foreign = MARK.replace(STREAM_SID, "00000000-0000-0000-0000-000000000000");
    assert_eq!(parse_with(&mut dialect, &foreign, 960).0, Err(ProtocolError::ForeignStream));
    assert!(parse_with(&mut dialect, MARK, 960).0.is_ok());
    // The media example names no stream: this one's.
    assert!(parse_with(&mut dialect, MEDIA, 960).0.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Writers: the "send a … message" examples

#[test]
fn media_mark_and_clear_are_written_as_documented() {
    let mut dialect = SignalWireDialect::new();
    dialect.on_start(&start_record(CLIENT_SID, L16_24K)).unwrap();
    let mut out = Vec::new();
    assert_eq!(dialect.write_media(&fixture_pattern(1001, 960), &mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLIENT_MEDIA.as_bytes()));
    assert_eq!(out.len(), dialect.max_media_message_len(960));
    assert_eq!(dialect.write_mark("my label", &mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLIENT_MARK.as_bytes()));
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLIENT_CLEAR.as_bytes()));
}

// ---------------------------------------------------------------------------------------------
// Through a session

fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    open_with(clock, config, SignalWireDialect::new())
}

fn config(rate: u32) -> SessionConfig {
    // No hidden sync marks: every outbound message below is one the test expects.
    SessionConfig { agent_rate: rate, play_rate: rate, sync_mark_interval_ms: 0, ..Default::default() }
}

fn outbound(s: &mut Session) -> Vec<Value> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| {
        let kind = s.next_outbound(&mut buf)?;
        assert_eq!(kind, MessageKind::Text);
        Some(json_of(&buf))
    })
    .collect()
}

fn media(seq: u64, timestamp_ms: u64, payload: &[u8]) -> String {
    json!({
        "event": "media",
        "sequenceNumber": seq.to_string(),
        "streamSid": STREAM_SID,
        "media": {"track": "inbound", "chunk": (seq - 1).to_string(), "timestamp": timestamp_ms.to_string(), "payload": STANDARD.encode(payload)},
    })
    .to_string()
}

fn mark_echo(name: &str) -> String {
    json!({"event": "mark", "streamSid": STREAM_SID, "mark": {"name": name}}).to_string()
}

#[test]
fn l16_at_24_khz_comes_in_and_goes_back_little_endian_in_960_byte_frames() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &config(24_000));
    s.push_text(CONNECTED).unwrap();
    s.push_text(START).unwrap();
    let caller = ramp(480 * 6, 0);
    for (k, frame) in caller.chunks(480).enumerate() {
        let k = k as u64;
        s.push_text(&media(k + 2, k * 20, &little_endian(frame))).unwrap();
    }
    assert_eq!(read_all(&mut s), caller, "24 kHz in, 24 kHz to the agent: the samples themselves");
    s.push_text(DTMF).unwrap();
    let evs = events(&mut s);
    assert_eq!(evs[0], Event::Connected);
    assert!(matches!(&evs[1], Event::Started(start) if start.media_format == L16_24K), "{evs:?}");
    assert!(evs.contains(&Event::Dtmf { digit: '8', stream_ms: 120, duration_ms: Some(2700) }), "{evs:?}");
    assert!(errors(&evs).is_empty(), "{evs:?}");

    // The agent's reply goes back as 24 kHz L16, 20 ms per message.
    let reply: Vec<i16> = (0..1500).map(|i| ((i * 11) % 6000) as i16 - 3000).collect();
    s.play(&reply, 24_000).unwrap();
    let mut sent = Vec::new();
    for _ in 0..10 {
        for m in outbound(&mut s) {
            assert_eq!(m["event"], "media", "{m}");
            assert_eq!(m["streamSid"], STREAM_SID);
            let payload = STANDARD.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
            assert_eq!(payload.len(), 960, "exactly 20 ms of 24 kHz L16");
            sent.extend(payload);
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    // 1500 samples: four frames, the last padded with silence.
    assert_eq!(sent.len(), 4 * 960);
    assert_eq!(sent[..3000], little_endian(&reply)[..]);
    assert!(sent[3000..].iter().all(|&b| b == 0));
}

#[test]
fn marks_echoed_on_clear_are_reported_cleared_and_stop_ends_the_stream() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { lead_ms: 100, ..config(24_000) });
    s.push_text(START).unwrap();
    events(&mut s);
    s.play(&[1000; 480], 24_000).unwrap();
    s.mark("heard").unwrap();
    s.play(&[1000; 960], 24_000).unwrap();
    s.mark("queued").unwrap();
    let names: Vec<String> = outbound(&mut s)
        .iter()
        .filter(|m| m["event"] == "mark")
        .map(|m| m["mark"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["heard", "queued"]);
    clock.advance(Duration::from_millis(30));
    s.push_text(&mark_echo("heard")).unwrap();
    assert_eq!(events(&mut s), [Event::MarkPlayed { name: "heard".into(), played_ms: 20 }]);
    s.interrupt().unwrap();
    let after = outbound(&mut s);
    assert_eq!(after, [json!({"event": "clear", "streamSid": STREAM_SID})]);
    // SignalWire returns the pending mark on clear: it was not heard.
    s.push_text(&mark_echo("queued")).unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Interrupted { .. }), "{evs:?}");
    assert_eq!(evs[1..], [Event::MarkCleared { name: "queued".into() }]);

    s.push_text(STOP).unwrap();
    assert_eq!(events(&mut s), [Event::Stopped]);
    s.end_stream().unwrap();
    assert!(events(&mut s).is_empty(), "the stream ended once");
}

#[test]
fn the_socket_closing_without_a_stop_ends_the_stream() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &config(8000));
    s.push_text(&start_with("audio/x-mulaw", 8000)).unwrap();
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert_eq!(evs[1..], [Event::Stopped]);
    // And µ-law streams go back as Twilio's 160-byte frames.
    let (_engine, mut s) = open(&clock, &config(8000));
    s.push_text(&start_with("audio/x-mulaw", 8000)).unwrap();
    s.play(&[0; 160], 8000).unwrap();
    let sent = outbound(&mut s);
    let payload = STANDARD.decode(sent[0]["media"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload.len(), 160);
    assert!(payload.iter().all(|&b| crate::common::reference_ulaw_decode(b) == 0));
}
