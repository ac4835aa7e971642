//! The Telnyx Media Streaming dialect against Telnyx's documented messages, then through a whole
//! session.
//!
//! Fixtures (engine/tests/fixtures/telnyx/):
//! - `connected.json`, `start.json`: Telnyx's media streaming WebSocket reference, the `connected`
//!   and `start` examples, verbatim.
//! - `media.json`, `dtmf.json`, `mark.json`, `stop.json`, `error.json`: the shapes that reference
//!   describes for those frames (their examples elide ids and the payload): ids filled in from the
//!   `start` example, the payload made of 160 bytes `(i * 37 + 22) & 0xff` encoded with Python's
//!   `base64`, the error detail written out.
//! - `client_media.json`, `client_mark.json`, `client_clear.json`: the reference's outbound
//!   (client) `media`, `mark` and `clear` examples, the media payload being the bytes above.
//!
//! Expectations are independent of the code under test: payloads against the byte patterns the
//! fixtures were generated from, written messages re-parsed with `serde_json::Value` and their
//! payloads decoded by the `base64` crate, caller audio against G.711 decoded by the ITU-T
//! formula (tests/common). Allocations are counted per thread (the
//! test binary's allocator: `thread_allocations`).

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use trunkline::protocol::telnyx::TelnyxDialect;
use trunkline::protocol::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat,
    MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Event, Session, SessionConfig};

use crate::common::reference_ulaw_decode;

use crate::thread_allocations::allocations_in;

use crate::dialect_session::{errors, events, fixture_pattern, open_with, read_all};
use crate::wire::json_of;

// ---------------------------------------------------------------------------------------------
// Helpers

const STREAM_ID: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";
const CALL_CONTROL_ID: &str = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ";
const USER_ID: &str = "3E6F995F-85F7-4705-9741-53B116D28237";

const CONNECTED: &str = include_str!("../fixtures/telnyx/connected.json");
const START: &str = include_str!("../fixtures/telnyx/start.json");
const MEDIA: &str = include_str!("../fixtures/telnyx/media.json");
const DTMF: &str = include_str!("../fixtures/telnyx/dtmf.json");
const MARK: &str = include_str!("../fixtures/telnyx/mark.json");
const STOP: &str = include_str!("../fixtures/telnyx/stop.json");
const ERROR: &str = include_str!("../fixtures/telnyx/error.json");
const CLIENT_MEDIA: &str = include_str!("../fixtures/telnyx/client_media.json");
const CLIENT_MARK: &str = include_str!("../fixtures/telnyx/client_mark.json");
const CLIENT_CLEAR: &str = include_str!("../fixtures/telnyx/client_clear.json");

const PCMU_8K: MediaFormat = MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 };
const L16_16K: MediaFormat = MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 };
const G722_16K: MediaFormat = MediaFormat { encoding: AudioEncoding::G722, sample_rate: 16_000, channels: 1 };

fn parse_with(
    dialect: &mut TelnyxDialect,
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
    parse_with(&mut TelnyxDialect::new(), message, 4096).0
}

/// The `start` example with another media format.
fn start_with(encoding: &str, sample_rate: u32) -> String {
    START
        .replace(r#""encoding": "PCMU""#, &format!(r#""encoding": "{encoding}""#))
        .replace(r#""sample_rate": 8000"#, &format!(r#""sample_rate": {sample_rate}"#))
}

fn media(sequence: u64, chunk: u64, timestamp_ms: u64, track: &str, payload: &[u8]) -> String {
    json!({
        "event": "media",
        "sequence_number": sequence.to_string(),
        "stream_id": STREAM_ID,
        "media": {
            "track": track,
            "chunk": chunk.to_string(),
            "timestamp": timestamp_ms.to_string(),
            "payload": STANDARD.encode(payload),
        },
    })
    .to_string()
}

fn mark_echo(sequence: u64, name: &str) -> String {
    json!({"event": "mark", "sequence_number": sequence.to_string(), "stream_id": STREAM_ID, "mark": {"name": name}})
        .to_string()
}

fn start_record(format: MediaFormat) -> StreamStart {
    StreamStart {
        sequence: Some(1),
        account_id: USER_ID.into(),
        stream_id: STREAM_ID.into(),
        call_id: CALL_CONTROL_ID.into(),
        tracks: vec![Track::Inbound],
        custom_parameters: vec![("customer_id".into(), "customer_123".into())],
        media_format: format,
    }
}

fn started(dialect: &mut TelnyxDialect, format: MediaFormat) -> MediaFormat {
    dialect.on_start(&start_record(format)).expect("Telnyx takes a PCMU, PCMA or L16 start")
}

fn big_endian(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_be_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Capabilities and formats

#[test]
fn capabilities_are_json_messages_with_timestamps_20_ms_frames_marks_echoed_on_clear_and_a_clear() {
    assert_eq!(
        TelnyxDialect::new().capabilities(),
        Capabilities {
            framing: Framing::Messages,
            timestamps: true,
            frame_ms: 20,
            max_lead_ms: None,
            confirmation: Confirmation::Echo { on_clear: true },
            clear: ClearKind::Message,
        }
    );
}

#[test]
fn telnyx_takes_back_pcmu_8k_unless_told_the_bidirectional_codec() {
    // Whatever the caller's format: the bidirectional codec is configured apart from it.
    let mut dialect = TelnyxDialect::default();
    assert_eq!(started(&mut dialect, L16_16K), PCMU_8K);
    let alaw = MediaFormat { encoding: AudioEncoding::Alaw, sample_rate: 8000, channels: 1 };
    let mut dialect = TelnyxDialect::with_outbound_format(alaw);
    assert_eq!(started(&mut dialect, PCMU_8K), alaw);
    let mut dialect = TelnyxDialect::with_outbound_format(L16_16K);
    assert_eq!(started(&mut dialect, PCMU_8K), L16_16K);
}

// ---------------------------------------------------------------------------------------------
// The documented messages

#[test]
fn connected_example() {
    assert_eq!(parse(CONNECTED), Ok(Inbound::Connected));
    // With the stream token inside (its place is unconfirmed): ignored either way.
    let with_token =
        r#"{"event":"connected","version":"1.0.0","connected":{"x-telnyx-streaming-auth-token":"t"}}"#;
    assert_eq!(parse(with_token), Ok(Inbound::Connected));
}

#[test]
fn start_example() {
    let expected = start_record(PCMU_8K);
    assert_eq!(parse(START), Ok(Inbound::Start(Box::new(expected))));
}

#[test]
fn start_numbers_may_be_strings_or_numbers_and_custom_parameters_keep_their_order() {
    let message = r#"{"event":"start","sequence_number":1,"stream_id":"s","start":{
        "custom_parameters":{"z":"last","a":"first","n":7,"b":true},
        "media_format":{"encoding":"L16","sample_rate":"16000","channels":"1"}}}"#;
    let Ok(Inbound::Start(start)) = parse(message) else { panic!("{:?}", parse(message)) };
    assert_eq!(start.sequence, Some(1));
    assert_eq!((start.stream_id.as_str(), start.call_id.as_str(), start.account_id.as_str()), ("s", "", ""));
    assert_eq!(start.media_format, L16_16K);
    let params: Vec<(&str, &str)> =
        start.custom_parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(params, [("z", "last"), ("a", "first"), ("n", "7"), ("b", "true")]);
}

#[test]
fn start_encodings_map_and_codecs_the_engine_cannot_decode_are_refused() {
    for (name, encoding) in [
        ("PCMU", AudioEncoding::Mulaw),
        ("PCMA", AudioEncoding::Alaw),
        ("L16", AudioEncoding::L16),
        ("pcma", AudioEncoding::Alaw),
        ("G722", AudioEncoding::G722),
        #[cfg(feature = "opus")]
        ("OPUS", AudioEncoding::Opus),
    ] {
        let Ok(Inbound::Start(start)) = parse(&start_with(name, 8000)) else { panic!("{name}") };
        assert_eq!(start.media_format.encoding, encoding, "{name}");
    }
    // G.722 is 16 kHz audio whether RTP's clock (8000) or the audio's rate is announced.
    for rate in [8000, 16_000] {
        let Ok(Inbound::Start(start)) = parse(&start_with("G722", rate)) else { panic!("{rate}") };
        assert_eq!(start.media_format.sample_rate, 16_000);
    }
    assert_eq!(parse(&start_with("G722", 48_000)), Err(ProtocolError::UnsupportedFormat));
    #[cfg(not(feature = "opus"))]
    assert_eq!(parse(&start_with("OPUS", 16000)), Err(ProtocolError::UnsupportedFormat));
    for name in ["AMR-WB", "SPEEX", ""] {
        assert_eq!(parse(&start_with(name, 16000)), Err(ProtocolError::UnsupportedFormat), "{name}");
    }
}

#[test]
fn start_identity_rules() {
    // No media_format: PCMU at 8 kHz, mono.
    let bare = r#"{"event":"start","stream_id":"s1","start":{"call_control_id":"c1"}}"#;
    let Ok(Inbound::Start(start)) = parse(bare) else { panic!() };
    assert_eq!((start.media_format, start.call_id.as_str(), start.sequence), (PCMU_8K, "c1", None));
    assert_eq!(start.tracks, [Track::Inbound]);
    // The stream id inside `start` is taken when the top level has none; both must agree.
    let inner = r#"{"event":"start","start":{"stream_id":"s2"}}"#;
    assert!(matches!(parse(inner), Ok(Inbound::Start(s)) if s.stream_id == "s2"));
    let both = r#"{"event":"start","stream_id":"s3","start":{"stream_id":"s3"}}"#;
    assert!(matches!(parse(both), Ok(Inbound::Start(s)) if s.stream_id == "s3"));
    let differ = r#"{"event":"start","stream_id":"s3","start":{"stream_id":"s4"}}"#;
    assert_eq!(parse(differ), Err(ProtocolError::WrongType("stream_id")));
    let none = r#"{"event":"start","start":{"call_control_id":"c1"}}"#;
    assert_eq!(parse(none), Err(ProtocolError::MissingField("stream_id")));
}

#[test]
fn media_example() {
    let (result, payload) = parse_with(&mut TelnyxDialect::new(), MEDIA, 160);
    assert_eq!(
        result,
        Ok(Inbound::Media(MediaFrame {
            sequence: Some(4),
            chunk: Some(2),
            timestamp_ms: 5,
            track: Track::Inbound
        }))
    );
    assert_eq!(payload, fixture_pattern(2, 160));
}

#[test]
fn media_numbers_may_be_bare_integers_and_tracks_have_two_spellings() {
    let message =
        r#"{"event":"media","sequence_number":7,"media":{"chunk":2,"timestamp":40,"payload":"AAA="}}"#;
    assert_eq!(
        parse(message),
        Ok(Inbound::Media(MediaFrame {
            sequence: Some(7),
            chunk: Some(2),
            timestamp_ms: 40,
            track: Track::Inbound
        }))
    );
    for (spelling, track) in [
        ("inbound", Track::Inbound),
        ("inbound_track", Track::Inbound),
        ("outbound", Track::Outbound),
        ("outbound_track", Track::Outbound),
    ] {
        let message =
            format!(r#"{{"event":"media","media":{{"track":"{spelling}","timestamp":"0","payload":""}}}}"#);
        assert!(matches!(parse(&message), Ok(Inbound::Media(f)) if f.track == track), "{spelling}");
    }
}

#[test]
fn l16_arrives_big_endian_and_is_stored_little_endian() {
    let mut dialect = TelnyxDialect::new();
    let Ok(Inbound::Start(start)) = parse_with(&mut dialect, &start_with("L16", 16000), 16).0 else {
        panic!()
    };
    dialect.on_start(&start).unwrap();
    // 0x1234, -2 (0xfffe), 0x0080 on the wire, network order.
    let wire = [0x12, 0x34, 0xff, 0xfe, 0x00, 0x80];
    let (result, payload) = parse_with(&mut dialect, &media(2, 1, 0, "inbound", &wire), 16);
    assert!(matches!(result, Ok(Inbound::Media(_))), "{result:?}");
    let samples: Vec<i16> = payload.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    assert_eq!(samples, [0x1234, -2, 0x0080]);
    // Half a sample is no L16 audio.
    let (result, payload) = parse_with(&mut dialect, &media(3, 2, 20, "inbound", &wire[..5]), 16);
    assert_eq!(result, Err(ProtocolError::OddPayloadLength));
    assert!(payload.is_empty());
    // A µ-law stream's bytes are left as they are.
    let mut dialect = TelnyxDialect::new();
    started(&mut dialect, PCMU_8K);
    assert_eq!(parse_with(&mut dialect, &media(2, 1, 0, "inbound", &wire), 16).1, wire);
}

#[test]
fn dtmf_example_and_every_digit() {
    assert_eq!(parse(DTMF), Ok(Inbound::Dtmf { sequence: Some(5), digit: b'1', duration_ms: None }));
    for digit in "0123456789*#ABCD".bytes() {
        let message = format!(r#"{{"event":"dtmf","dtmf":{{"digit":"{}"}}}}"#, digit as char);
        assert_eq!(parse(&message), Ok(Inbound::Dtmf { sequence: None, digit, duration_ms: None }));
    }
    for bad in [r#""12""#, r#""""#, r#""E""#, "1"] {
        let message = format!(r#"{{"event":"dtmf","dtmf":{{"digit":{bad}}}}}"#);
        assert_eq!(parse(&message), Err(ProtocolError::WrongType("dtmf.digit")), "{bad}");
    }
}

#[test]
fn mark_stop_and_error_examples() {
    assert_eq!(
        parse(MARK),
        Ok(Inbound::Mark { sequence: Some(7), name: Cow::Borrowed("utt-12"), said: MarkSaid::Nothing })
    );
    assert_eq!(parse(STOP), Ok(Inbound::Stop { sequence: Some(99) }));
    // Telnyx's error frame is the carrier's own report: passed on as such, and the call goes on.
    assert_eq!(parse(ERROR), Err(ProtocolError::CarrierReported("error")));
}

#[test]
fn a_whole_call_parses_in_order_and_the_quick_look_finds_start_and_stop_only() {
    let mut dialect = TelnyxDialect::new();
    let mut payload = PayloadBuffer::with_limit(160);
    let mut kinds = Vec::new();
    for message in [CONNECTED, START, MEDIA, DTMF, MARK, STOP] {
        let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).unwrap();
        // The look the offload server takes: never misses a start or a stop, and does not send it
        // the call's audio.
        let lifecycle = matches!(parsed, Inbound::Start(_) | Inbound::Stop { .. });
        assert_eq!(dialect.may_start_or_stop(message.as_bytes(), MessageKind::Text), lifecycle, "{message}");
        kinds.push(match &parsed {
            Inbound::Connected => "connected",
            Inbound::Notice => "notice",
            Inbound::Start(start) => {
                dialect.on_start(start).unwrap();
                "start"
            }
            Inbound::Media(_) => "media",
            Inbound::Dtmf { .. } => "dtmf",
            Inbound::Mark { .. } => "mark",
            Inbound::Stop { .. } => "stop",
        });
    }
    assert_eq!(kinds, ["connected", "start", "media", "dtmf", "mark", "stop"]);
    assert!(!dialect.may_start_or_stop(START.as_bytes(), MessageKind::Binary));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_gets_the_right_error_and_leaves_no_payload() {
    let cases: &[(&str, ProtocolError)] = &[
        ("", ProtocolError::MalformedJson),
        ("not json", ProtocolError::MalformedJson),
        (r#"{"event":"media""#, ProtocolError::MalformedJson),
        (r#"["event","media"]"#, ProtocolError::MalformedJson),
        (r#"{"event":"stop"} trailing"#, ProtocolError::MalformedJson),
        (r#"{"event":"stop","event":"stop"}"#, ProtocolError::MalformedJson),
        (r#"{"stream_id":"x"}"#, ProtocolError::MissingField("event")),
        (r#"{"event":7}"#, ProtocolError::WrongType("event")),
        (r#"{"event":"streaming.started"}"#, ProtocolError::UnknownEvent),
        (r#"{"event":"stop","sequence_number":"-1"}"#, ProtocolError::WrongType("sequence_number")),
        (r#"{"event":"stop","sequence_number":1.5}"#, ProtocolError::WrongType("sequence_number")),
        (r#"{"event":"stop","stream_id":5}"#, ProtocolError::WrongType("stream_id")),
        (r#"{"event":"media"}"#, ProtocolError::MissingField("media")),
        (r#"{"event":"media","media":"AAAA"}"#, ProtocolError::WrongType("media")),
        (r#"{"event":"media","media":{"payload":"AAAA"}}"#, ProtocolError::MissingField("media.timestamp")),
        (
            r#"{"event":"media","media":{"timestamp":"5s","payload":"AAAA"}}"#,
            ProtocolError::WrongType("media.timestamp"),
        ),
        (
            r#"{"event":"media","media":{"timestamp":"5","chunk":[],"payload":"AAAA"}}"#,
            ProtocolError::WrongType("media.chunk"),
        ),
        (
            r#"{"event":"media","media":{"timestamp":"5","track":"both","payload":"AAAA"}}"#,
            ProtocolError::WrongType("media.track"),
        ),
        (r#"{"event":"media","media":{"timestamp":"5"}}"#, ProtocolError::MissingField("media.payload")),
        (
            r#"{"event":"media","media":{"timestamp":"5","payload":7}}"#,
            ProtocolError::WrongType("media.payload"),
        ),
        (r#"{"event":"media","media":{"timestamp":"5","payload":"AA@A"}}"#, ProtocolError::InvalidBase64),
        (r#"{"event":"media","media":{"timestamp":"5","payload":"AAAAA"}}"#, ProtocolError::InvalidBase64),
        (
            r#"{"event":"media","media":{"timestamp":"5","payload":"AAAAAAAA"}}"#,
            ProtocolError::PayloadTooLarge,
        ),
        (r#"{"event":"dtmf"}"#, ProtocolError::MissingField("dtmf")),
        (r#"{"event":"dtmf","dtmf":{}}"#, ProtocolError::MissingField("dtmf.digit")),
        (r#"{"event":"mark","mark":{}}"#, ProtocolError::MissingField("mark.name")),
        (r#"{"event":"mark","mark":{"name":null}}"#, ProtocolError::MissingField("mark.name")),
        (r#"{"event":"mark","mark":{"name":1}}"#, ProtocolError::WrongType("mark.name")),
        (r#"{"event":"start","stream_id":"s"}"#, ProtocolError::MissingField("start")),
        (
            r#"{"event":"start","stream_id":"s","start":{"call_control_id":7}}"#,
            ProtocolError::WrongType("start.call_control_id"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"custom_parameters":["a"]}}"#,
            ProtocolError::WrongType("start.custom_parameters"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"custom_parameters":{"a":null}}}"#,
            ProtocolError::WrongType("start.custom_parameters"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"media_format":"PCMU"}}"#,
            ProtocolError::WrongType("start.media_format"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"media_format":{"sample_rate":8000}}}"#,
            ProtocolError::MissingField("start.media_format.encoding"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"media_format":{"encoding":"PCMU"}}}"#,
            ProtocolError::MissingField("start.media_format.sample_rate"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"media_format":{"encoding":"PCMU","sample_rate":0}}}"#,
            ProtocolError::WrongType("start.media_format.sample_rate"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"media_format":{"encoding":"PCMU","sample_rate":4294967296}}}"#,
            ProtocolError::WrongType("start.media_format.sample_rate"),
        ),
        (
            r#"{"event":"start","stream_id":"s","start":{"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":"0"}}}"#,
            ProtocolError::WrongType("start.media_format.channels"),
        ),
    ];
    for (message, expected) in cases {
        let (result, payload) = parse_with(&mut TelnyxDialect::new(), message, 4);
        assert_eq!(result, Err(*expected), "{message}");
        assert!(payload.is_empty(), "{message}");
    }
    // Not UTF-8; a binary frame.
    let mut payload = PayloadBuffer::with_limit(4);
    let mut dialect = TelnyxDialect::new();
    assert_eq!(
        dialect.parse(b"{\"event\":\"stop\xff\"}", MessageKind::Text, &mut payload),
        Err(ProtocolError::MalformedJson)
    );
    assert_eq!(
        dialect.parse(STOP.as_bytes(), MessageKind::Binary, &mut payload),
        Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary))
    );
}

#[test]
fn after_start_messages_naming_another_stream_are_refused() {
    let mut dialect = TelnyxDialect::new();
    // Before `start`, no stream is known: any id passes (the session refuses media before start).
    assert!(parse_with(&mut dialect, &MEDIA.replace(STREAM_ID, "other"), 160).0.is_ok());
    started(&mut dialect, PCMU_8K);
    for message in [MEDIA, DTMF, MARK, STOP] {
        let foreign = message.replace(STREAM_ID, "9F1C0000-0000-0000-0000-000000000000");
        let (result, payload) = parse_with(&mut dialect, &foreign, 160);
        assert_eq!(result, Err(ProtocolError::ForeignStream), "{message}");
        assert!(payload.is_empty());
        assert!(parse_with(&mut dialect, message, 160).0.is_ok(), "{message}");
    }
    // A message naming no stream is this stream's.
    let anonymous = r#"{"event":"stop","sequence_number":"100"}"#;
    assert_eq!(parse_with(&mut dialect, anonymous, 160).0, Ok(Inbound::Stop { sequence: Some(100) }));
}

// ---------------------------------------------------------------------------------------------
// Writers

#[test]
fn media_is_written_as_the_documented_client_media_frame() {
    let dialect = TelnyxDialect::new();
    let mut out = Vec::new();
    assert_eq!(dialect.write_media(&fixture_pattern(2, 160), &mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLIENT_MEDIA.as_bytes()));
    assert_eq!(out.len(), dialect.max_media_message_len(160));
    // Byte for byte, with no whitespace: the shortest form.
    let compact = json_of(CLIENT_MEDIA.as_bytes()).to_string();
    assert_eq!(String::from_utf8(out).unwrap(), compact);
}

#[test]
fn l16_is_written_big_endian() {
    let mut dialect = TelnyxDialect::with_outbound_format(L16_16K);
    started(&mut dialect, PCMU_8K);
    let pcm: Vec<i16> = (0..320).map(|i| (i * 211 - 30_000) as i16).collect();
    let little: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = Vec::new();
    dialect.write_media(&little, &mut out);
    let v = json_of(&out);
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    assert_eq!(v["event"], "media");
    assert_eq!(v["media"].as_object().unwrap().len(), 1, "{v}");
    let sent = STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(sent, big_endian(&pcm));
    assert_eq!(out.len(), dialect.max_media_message_len(little.len()));
}

#[test]
fn mark_and_clear_are_written_as_documented() {
    let mut dialect = TelnyxDialect::new();
    started(&mut dialect, PCMU_8K);
    let mut out = Vec::new();
    assert_eq!(dialect.write_mark("utt-12", &mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLIENT_MARK.as_bytes()));
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLIENT_CLEAR.as_bytes()));
    assert_eq!(out, br#"{"event":"clear"}"#);
    // Names are JSON-escaped.
    let name = "a \"quoted\" \\ name\n\u{1}é";
    dialect.write_mark(name, &mut out);
    assert_eq!(json_of(&out), json!({"event": "mark", "mark": {"name": name}}));
}

#[test]
fn max_media_message_len_is_exact_for_every_length() {
    let dialect = TelnyxDialect::with_outbound_format(L16_16K);
    let mut out = Vec::new();
    for len in 0..700 {
        dialect.write_media(&vec![7u8; len], &mut out);
        assert_eq!(out.len(), dialect.max_media_message_len(len), "{len}");
    }
    assert_eq!(dialect.max_media_message_len(usize::MAX), usize::MAX);
}

// ---------------------------------------------------------------------------------------------
// Allocation

#[test]
fn parsing_media_allocates_nothing() {
    let l16 = media(2, 1, 0, "inbound", &[0x12; 640]);
    let g722 = media(2, 1, 0, "inbound", &[0x9A; 160]);
    for (format, message) in [(PCMU_8K, MEDIA.to_owned()), (L16_16K, l16), (G722_16K, g722)] {
        let mut dialect = TelnyxDialect::new();
        started(&mut dialect, format);
        let mut payload = PayloadBuffer::with_limit(640);
        // Once to warm up anything lazily initialised.
        assert!(dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).is_ok());
        let (allocations, result) =
            allocations_in(|| dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).map(|_| ()));
        assert_eq!(result, Ok(()));
        assert_eq!(allocations, 0, "{format:?}");
    }
}

#[test]
fn writers_allocate_nothing_when_out_has_capacity() {
    for format in [PCMU_8K, L16_16K, G722_16K] {
        let mut dialect = TelnyxDialect::with_outbound_format(format);
        started(&mut dialect, format);
        let audio = vec![0x55u8; 640];
        let mut out = Vec::with_capacity(dialect.max_media_message_len(audio.len()).max(256));
        let (allocations, ()) = allocations_in(|| {
            dialect.write_media(&audio, &mut out);
            dialect.write_mark("trunkline-sync-1", &mut out);
            dialect.write_clear(&mut out);
        });
        assert_eq!(allocations, 0, "{format:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Through a session

fn config(agent_rate: u32, play_rate: u32) -> SessionConfig {
    // No hidden sync marks: every outbound message below is one the test expects.
    SessionConfig { agent_rate, play_rate, sync_mark_interval_ms: 0, ..Default::default() }
}

/// What Telnyx receives, as parsed JSON.
fn outbound(s: &mut Session) -> Vec<Value> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| {
        let kind = s.next_outbound(&mut buf)?;
        assert_eq!(kind, MessageKind::Text);
        Some(json_of(&buf))
    })
    .collect()
}

/// The payload of an outbound `media` frame, checking the frame has exactly the documented shape.
fn media_payload(message: &Value) -> Option<Vec<u8>> {
    if message["event"] != "media" {
        return None;
    }
    let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "only event and media: {message}");
    assert_eq!(message["media"].as_object().unwrap().len(), 1, "only the payload: {message}");
    Some(STANDARD.decode(message["media"]["payload"].as_str().unwrap()).unwrap())
}

#[test]
fn pcmu_caller_audio_out_of_order_reaches_the_agent_sample_for_sample_in_order() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &config(8000, 8000), TelnyxDialect::new());
    s.push_text(CONNECTED).unwrap();
    s.push_text(START).unwrap();
    let frames: Vec<Vec<u8>> = (0..10).map(|k| fixture_pattern(k, 160)).collect();
    // Telnyx does not guarantee order: pairs swapped.
    for k in [0u64, 2, 1, 3, 5, 4, 6, 7, 9, 8] {
        s.push_text(&media(k + 2, k + 1, k * 20, "inbound", &frames[k as usize])).unwrap();
    }
    s.push_text(DTMF).unwrap();
    let received = read_all(&mut s);
    let expected: Vec<i16> = frames.concat().into_iter().map(reference_ulaw_decode).collect();
    assert_eq!(received, expected);
    let evs = events(&mut s);
    assert_eq!(evs[0], Event::Connected);
    let Event::Started(start) = &evs[1] else { panic!("{evs:?}") };
    assert_eq!(**start, start_record(PCMU_8K));
    assert!(evs.contains(&Event::Dtmf { digit: '1', stream_ms: 200, duration_ms: None }), "{evs:?}");
    assert!(errors(&evs).is_empty(), "{evs:?}");
    let stats = s.stats();
    assert_eq!(stats.media_frames_in, 10);
    assert!(stats.frames_reordered >= 1, "{stats:?}");
}

#[test]
fn big_endian_l16_at_16_khz_reaches_a_16_khz_agent_untouched() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &config(16_000, 16_000), TelnyxDialect::new());
    s.push_text(&start_with("L16", 16_000)).unwrap();
    let pcm: Vec<i16> = (0..320 * 8).map(|i| ((i * 37) % 20_000) as i16 - 10_000).collect();
    for (k, frame) in pcm.chunks(320).enumerate() {
        let k = k as u64;
        s.push_text(&media(k + 2, k + 1, k * 20, "inbound", &big_endian(frame))).unwrap();
    }
    assert_eq!(read_all(&mut s), pcm);
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!(start.media_format, L16_16K);
    assert!(errors(&evs).is_empty(), "{evs:?}");
}

#[test]
fn outbound_track_audio_is_not_the_callers() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &config(8000, 8000), TelnyxDialect::new());
    s.push_text(START).unwrap();
    s.push_text(&media(2, 1, 0, "outbound", &[0x00; 160])).unwrap();
    s.push_text(&media(3, 1, 0, "inbound", &[0xFF; 160])).unwrap();
    // 0xFF is µ-law zero: only the inbound frame's silence arrives.
    assert_eq!(read_all(&mut s), vec![0i16; 160]);
    assert_eq!(s.stats().media_outbound_track_ignored, 1);
}

#[test]
fn agent_audio_goes_out_as_exactly_one_20_ms_pcmu_frame_per_media_message() {
    let clock = ManualClock::new();
    let (_engine, mut s) =
        open_with(&clock, &SessionConfig { lead_ms: 60, ..config(8000, 8000) }, TelnyxDialect::new());
    s.push_text(START).unwrap();
    // 130 ms of µ-law levels (values the encoding represents exactly), so the decoded frames must
    // give them back.
    let levels: Vec<i16> = (0..=255u8).map(reference_ulaw_decode).collect();
    let reply: Vec<i16> = (0..1040).map(|i| levels[(i * 7) % 256]).collect();
    assert_eq!(s.play(&reply, 8000).unwrap(), reply.len());
    let mut sent = Vec::new();
    for step in 0..20u64 {
        let messages = outbound(&mut s);
        for m in &messages {
            let payload = media_payload(m).expect("only media goes out");
            assert_eq!(payload.len(), 160, "exactly 20 ms of 8 kHz PCMU");
            sent.extend(payload);
        }
        // Paced: at most the lead (three frames) ahead of the clock.
        assert!(sent.len() / 160 <= (step + 3) as usize, "at {} ms: {} frames", step * 20, sent.len() / 160);
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    // Seven frames: 130 ms of reply, the last padded with silence to a whole 20 ms.
    assert_eq!(sent.len(), 7 * 160);
    let decoded: Vec<i16> = sent.iter().map(|&b| reference_ulaw_decode(b)).collect();
    assert_eq!(decoded[..reply.len()], reply[..]);
    assert!(decoded[reply.len()..].iter().all(|&v| v == 0));
}

#[test]
fn l16_agent_audio_goes_out_big_endian_in_640_byte_frames() {
    let clock = ManualClock::new();
    let dialect = TelnyxDialect::with_outbound_format(L16_16K);
    let (_engine, mut s) = open_with(&clock, &config(16_000, 16_000), dialect);
    s.push_text(&start_with("L16", 16_000)).unwrap();
    let reply: Vec<i16> = (0..1000).map(|i| ((i * 11) % 6000) as i16 - 3000).collect();
    s.play(&reply, 16_000).unwrap();
    let mut sent = Vec::new();
    for _ in 0..10 {
        for m in outbound(&mut s) {
            let payload = media_payload(&m).expect("only media goes out");
            assert_eq!(payload.len(), 640, "exactly 20 ms of 16 kHz L16");
            sent.extend(payload);
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    // 1000 samples: four frames, the last padded with silence.
    assert_eq!(sent.len(), 4 * 640);
    assert_eq!(sent[..2000], big_endian(&reply)[..]);
    assert!(sent[2000..].iter().all(|&b| b == 0));
}

/// Telnyx takes L16 back at 48 kHz too (`stream_bidirectional_sampling_rate: 48000`).
#[test]
fn l16_agent_audio_goes_out_at_48_khz_when_the_dialect_names_it() {
    let clock = ManualClock::new();
    let config = SessionConfig { dialect: "telnyx;codec=L16;rate=48000".into(), ..config(16_000, 16_000) };
    let engine = trunkline::Engine::with_manual_clock(
        trunkline::EngineConfig { workers: Some(0), ..Default::default() },
        clock.clone(),
    )
    .unwrap();
    let mut s = engine.open_session(&config).unwrap();
    s.push_text(&start_with("L16", 48_000)).unwrap();
    // A 1 kHz tone at 16 kHz, played to a 48 kHz stream: 20 ms frames of 960 samples, the tone
    // at its frequency (48 samples a period).
    let reply: Vec<i16> = (0..16_000)
        .map(|i| (8000.0 * (i as f64 * 1000.0 * std::f64::consts::TAU / 16_000.0).sin()) as i16)
        .collect();
    s.play(&reply, 16_000).unwrap();
    let mut sent = Vec::new();
    for _ in 0..20 {
        for m in outbound(&mut s) {
            let payload = media_payload(&m).expect("only media goes out");
            assert_eq!(payload.len(), 1920, "exactly 20 ms of 48 kHz L16");
            sent.extend(payload.chunks(2).map(|b| i16::from_be_bytes([b[0], b[1]])));
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    assert!(sent.len() >= 10 * 960, "{}", sent.len());
    // Past the resampler's start, the tone repeats every 48 samples: 1 kHz at 48 kHz.
    let steady = &sent[960..sent.len() - 960];
    let error: f64 =
        steady.windows(49).map(|w| f64::from(w[48] - w[0]).abs()).sum::<f64>() / steady.len() as f64;
    let level: f64 = steady.iter().map(|&x| f64::from(x).abs()).sum::<f64>() / steady.len() as f64;
    assert!(level > 4000.0, "the tone is there: mean level {level}");
    assert!(error < level / 50.0, "a 48-sample period: mean difference {error} against level {level}");
}

#[test]
fn marks_are_reported_played_when_echoed_and_cleared_when_a_clear_returns_them() {
    let clock = ManualClock::new();
    let (_engine, mut s) =
        open_with(&clock, &SessionConfig { lead_ms: 100, ..config(8000, 8000) }, TelnyxDialect::new());
    s.push_text(START).unwrap();
    events(&mut s);
    // 20 ms, "heard"; 40 ms more, "queued"; then a second that will not fit under the lead.
    s.play(&[1000; 160], 8000).unwrap();
    s.mark("heard").unwrap();
    s.play(&[1000; 320], 8000).unwrap();
    s.mark("queued").unwrap();
    s.play(&vec![1000; 8000], 8000).unwrap();
    s.mark("never-sent").unwrap();
    let sent = outbound(&mut s);
    let shape: Vec<&str> = sent
        .iter()
        .map(|m| match m["event"].as_str().unwrap() {
            "media" => "media",
            "mark" => m["mark"]["name"].as_str().unwrap(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(shape, ["media", "heard", "media", "media", "queued", "media", "media"]);
    for m in &sent {
        if m["event"] == "mark" {
            assert_eq!(m.as_object().unwrap().len(), 2, "the documented mark frame: {m}");
        }
    }

    // Telnyx plays the first frame and echoes "heard".
    clock.advance(Duration::from_millis(30));
    s.push_text(&mark_echo(8, "heard")).unwrap();
    assert_eq!(events(&mut s), [Event::MarkPlayed { name: "heard".into(), played_ms: 20 }]);
    // Time has moved: the pacer tops the lead up with the next frame of the long reply.
    assert!(outbound(&mut s).iter().all(|m| media_payload(m).is_some()));

    // Interrupt at 30 ms: "queued" (due at 60 ms) was not reached, "never-sent" never left.
    s.interrupt().unwrap();
    let after = outbound(&mut s);
    assert_eq!(after, [json!({"event": "clear"})]);
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Interrupted { .. }), "{evs:?}");
    assert_eq!(evs[1..], [Event::MarkCleared { name: "never-sent".into() }]);
    // Telnyx returns the queued mark on clear: cleared, not played.
    s.push_text(&mark_echo(9, "queued")).unwrap();
    assert_eq!(events(&mut s), [Event::MarkCleared { name: "queued".into() }]);
    // And a second echo of it is not a mark this session has.
    s.push_text(&mark_echo(10, "queued")).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::UnknownMark]);
    let stats = s.stats();
    assert_eq!((stats.marks_sent, stats.marks_played, stats.marks_cleared, stats.clears_sent), (2, 1, 2, 1));
}

#[test]
fn stop_ends_the_stream_and_so_does_the_socket_closing() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &config(8000, 8000), TelnyxDialect::new());
    s.push_text(START).unwrap();
    s.push_text(&media(2, 1, 0, "inbound", &[0xFF; 160])).unwrap();
    s.play(&[500; 160], 8000).unwrap();
    s.mark("pending").unwrap();
    s.push_text(STOP).unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert!(evs.ends_with(&[Event::MarkCleared { name: "pending".into() }, Event::Stopped]), "{evs:?}");
    s.push_text(&media(3, 2, 20, "inbound", &[0xFF; 160])).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::AfterStop]);

    // No stop: the host says the WebSocket closed.
    let (_engine, mut s) = open_with(&clock, &config(8000, 8000), TelnyxDialect::new());
    s.push_text(START).unwrap();
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert_eq!(evs.last(), Some(&Event::Stopped), "{evs:?}");
    assert_eq!(evs.iter().filter(|e| **e == Event::Stopped).count(), 1);
}

#[test]
fn a_stream_in_a_codec_the_engine_cannot_decode_is_refused_and_its_media_with_it() {
    let clock = ManualClock::new();
    for codec in ["AMR-WB", "SPEEX"] {
        let (_engine, mut s) = open_with(&clock, &config(16_000, 16_000), TelnyxDialect::new());
        s.push_text(&start_with(codec, 16_000)).unwrap();
        s.push_text(&media(2, 1, 0, "inbound", &[1; 40])).unwrap();
        s.push_text(DTMF).unwrap();
        let evs = events(&mut s);
        assert_eq!(
            errors(&evs),
            [
                ProtocolError::UnsupportedFormat,
                ProtocolError::MediaBeforeStart,
                ProtocolError::MediaBeforeStart
            ],
            "{codec}: {evs:?}"
        );
        assert!(!evs.iter().any(|e| matches!(e, Event::Started(_))), "{codec}");
        assert!(read_all(&mut s).is_empty());
    }
}

#[test]
fn an_error_frame_is_reported_and_the_call_goes_on() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &config(8000, 8000), TelnyxDialect::new());
    s.push_text(START).unwrap();
    s.push_text(ERROR).unwrap();
    s.push_text(&media(2, 1, 0, "inbound", &[0xFF; 160])).unwrap();
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::CarrierReported("error")]);
    assert_eq!(read_all(&mut s).len(), 160);
}
