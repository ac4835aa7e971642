//! The Plivo Audio Streams dialect against Plivo's documented messages, then through a session.
//!
//! Fixtures (engine/tests/fixtures/plivo/) are the literal examples of Plivo's audio streaming
//! reference, with the ids and payloads it elides ("…", "<base64>") filled in:
//! - `start.json`: the reference's `start` example (verbatim);
//! - `media.json`: its `media` example, the payload 160 bytes of the pattern `fixture_pattern(41)`
//!   (encoded with Python's `base64`);
//! - `dtmf.json`, `played_stream.json`, `cleared_audio.json`: its `dtmf`, `playedStream` and
//!   `clearedAudio` examples;
//! - `play_audio.json`, `checkpoint.json`, `clear_audio.json`: its outbound `playAudio` (payload
//!   `fixture_pattern(7)`), `checkpoint` and `clearAudio` examples;
//! - `send_dtmf.json`: the `sendDTMF` shape of Plivo's own transport code.
//!
//! Expectations are independent of the code under test: payloads are checked against the byte
//! patterns the fixtures were generated from, against a small reference base64 encoder written
//! here and against the ITU-T µ-law formula (`crate::common::reference_ulaw_decode`); written messages are
//! re-parsed with `serde_json::Value`. Allocations are counted per thread (the
//! test binary's allocator: `thread_allocations`).

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Value, json};
use trunkline::protocol::plivo::PlivoDialect;
use trunkline::protocol::{
    AudioEncoding, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat, MediaFrame,
    MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, Event, Session, SessionConfig};

use crate::thread_allocations::allocations_in;

use crate::dialect_session::{errors, events, fixture_pattern, open_with, read_all};
use crate::wire::{json_of, ramp, reference_base64, reference_unbase64};

// ---------------------------------------------------------------------------------------------
// Helpers

const STREAM_ID: &str = "87654321-4321-4321-4321-cba987654321";
const CALL_ID: &str = "12345678-1234-1234-1234-123456789abc";
const OTHER_ID: &str = "00000000-0000-0000-0000-000000000000";

const START: &str = include_str!("../fixtures/plivo/start.json");
const MEDIA: &str = include_str!("../fixtures/plivo/media.json");
const DTMF: &str = include_str!("../fixtures/plivo/dtmf.json");
const PLAYED_STREAM: &str = include_str!("../fixtures/plivo/played_stream.json");
const CLEARED_AUDIO: &str = include_str!("../fixtures/plivo/cleared_audio.json");

fn parse_with_limit(message: &[u8], limit: usize) -> (Result<Inbound<'_>, ProtocolError>, Vec<u8>) {
    let mut dialect = PlivoDialect::new();
    let mut payload = PayloadBuffer::with_limit(limit);
    let result = dialect.parse(message, MessageKind::Text, &mut payload);
    (result, payload.as_slice().to_vec())
}

fn parse(message: &str) -> Result<Inbound<'_>, ProtocolError> {
    parse_with_limit(message.as_bytes(), 4096).0
}

fn parse_start(message: &str) -> Result<StreamStart, ProtocolError> {
    match parse(message)? {
        Inbound::Start(start) => Ok(*start),
        other => panic!("not a start: {other:?}"),
    }
}

fn start_with(media_format: &str, extra: &str) -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":1,"start":{{"callId":"{CALL_ID}","streamId":"{STREAM_ID}","accountId":"MA1","tracks":["inbound"],"mediaFormat":{media_format}}}{extra}}}"#
    )
}

fn media_message(sequence: u64, timestamp: u64, payload: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":{sequence},"streamId":"{STREAM_ID}","media":{{"track":"inbound","timestamp":"{timestamp}","chunk":{},"payload":"{}"}},"extra_headers":"userId=12345;sessionId=abc-xyz"}}"#,
        sequence - 1,
        reference_base64(payload)
    )
}

fn started_dialect(format: MediaFormat) -> PlivoDialect {
    let mut dialect = PlivoDialect::new();
    let start = StreamStart {
        sequence: Some(1),
        account_id: "MA1".into(),
        stream_id: STREAM_ID.into(),
        call_id: CALL_ID.into(),
        tracks: vec![Track::Inbound],
        custom_parameters: Vec::new(),
        media_format: format,
    };
    assert_eq!(dialect.on_start(&start), Ok(format), "Plivo takes back what it sends");
    dialect
}

const MULAW_8K: MediaFormat = MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 };
const L16_8K: MediaFormat = MediaFormat { encoding: AudioEncoding::L16, sample_rate: 8000, channels: 1 };
const L16_16K: MediaFormat = MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 };

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

// ---------------------------------------------------------------------------------------------
// The reference's messages

#[test]
fn the_reference_codecs_match_rfc_4648() {
    for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
    {
        assert_eq!(reference_base64(plain.as_bytes()), encoded);
        assert_eq!(reference_unbase64(encoded), plain.as_bytes());
    }
}

#[test]
fn start_fixture() {
    let expected = StreamStart {
        sequence: Some(1),
        account_id: "MAXXXXXXXXXXXXXXXXXX".into(),
        stream_id: STREAM_ID.into(),
        call_id: CALL_ID.into(),
        tracks: vec![Track::Inbound],
        // `extra_headers`, in the order sent.
        custom_parameters: pairs(&[("userId", "12345"), ("sessionId", "abc-xyz")]),
        media_format: MULAW_8K,
    };
    assert_eq!(parse(START), Ok(Inbound::Start(Box::new(expected))));
}

#[test]
fn media_fixture() {
    let (result, payload) = parse_with_limit(MEDIA.as_bytes(), 160);
    // The first media of a stream is its time zero (its Unix-ms timestamp is not stream time).
    let frame = MediaFrame { sequence: Some(42), chunk: Some(41), timestamp_ms: 0, track: Track::Inbound };
    assert_eq!(result, Ok(Inbound::Media(frame)));
    assert_eq!(payload, fixture_pattern(41, 160));
}

#[test]
fn dtmf_checkpoint_and_clear_fixtures() {
    assert_eq!(parse(DTMF), Ok(Inbound::Dtmf { sequence: Some(50), digit: b'5', duration_ms: None }));
    assert_eq!(
        parse(PLAYED_STREAM),
        Ok(Inbound::Mark {
            sequence: Some(75),
            name: Cow::Borrowed("greeting-complete"),
            said: MarkSaid::Nothing
        })
    );
    // The older name of the checkpoint echo.
    let played = PLAYED_STREAM.replace("playedStream", "played");
    assert_eq!(
        parse(&played),
        Ok(Inbound::Mark { sequence: Some(75), name: "greeting-complete".into(), said: MarkSaid::Nothing })
    );
    // The answer to `clearAudio`: nothing for the engine to do.
    assert_eq!(parse(CLEARED_AUDIO), Ok(Inbound::Notice));
}

#[test]
fn events_plivo_is_not_documented_to_send_are_accepted() {
    let with = |event: &str| {
        format!(r#"{{"event":"{event}","sequenceNumber":9,"streamId":"{STREAM_ID}","reason":"x"}}"#)
    };
    assert_eq!(parse(&with("stop")), Ok(Inbound::Stop { sequence: Some(9) }));
    for notice in ["muteStream", "unmuteStream"] {
        assert_eq!(parse(&with(notice)), Ok(Inbound::Notice), "{notice}");
    }
    // A failure Plivo reports reaches the host, named.
    assert_eq!(parse(&with("error")), Err(ProtocolError::CarrierReported("error")));
    assert_eq!(parse(&with("playFailed")), Err(ProtocolError::CarrierReported("playFailed")));
    // Plivo sends no `connected`.
    assert_eq!(parse(r#"{"event":"connected"}"#), Err(ProtocolError::UnknownEvent));
}

#[test]
fn a_whole_call_parses_in_order_through_one_dialect() {
    let mut dialect: Box<dyn Dialect> = Box::new(PlivoDialect::new());
    let mut payload = PayloadBuffer::with_limit(160);
    let t0 = 1_705_312_200_000u64;
    let mut call = vec![START.to_owned()];
    for i in 0..5u64 {
        call.push(media_message(i + 2, t0 + 20 * i, &fixture_pattern(i, 160)));
    }
    call.extend([DTMF.to_owned(), PLAYED_STREAM.to_owned(), CLEARED_AUDIO.to_owned()]);
    let mut kinds = Vec::new();
    for message in &call {
        let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).unwrap();
        // The quick look the offload server uses: never misses a start, skips the media.
        let quick = dialect.may_start_or_stop(message.as_bytes(), MessageKind::Text);
        assert_eq!(quick, matches!(parsed, Inbound::Start(_)), "{message}");
        match parsed {
            Inbound::Start(start) => {
                assert_eq!(dialect.on_start(&start), Ok(MULAW_8K));
                kinds.push("start");
            }
            Inbound::Media(frame) => {
                let i = frame.sequence.unwrap() - 2;
                assert_eq!(frame.timestamp_ms, 20 * i, "ms since the stream's first media");
                assert_eq!(payload.as_slice(), fixture_pattern(i, 160));
                kinds.push("media");
            }
            Inbound::Dtmf { .. } => kinds.push("dtmf"),
            Inbound::Mark { .. } => kinds.push("checkpoint"),
            Inbound::Notice => kinds.push("cleared"),
            Inbound::Connected => kinds.push("connected"),
            Inbound::Stop { .. } => kinds.push("stop"),
        }
    }
    assert_eq!(
        kinds,
        ["start", "media", "media", "media", "media", "media", "dtmf", "checkpoint", "cleared"]
    );
    assert!(!dialect.may_start_or_stop(START.as_bytes(), MessageKind::Binary));
}

#[test]
fn extra_headers_take_either_separator_and_every_encoding() {
    let custom =
        |extra: &str| parse_start(&start_with(r#"{"encoding":"audio/x-mulaw","sampleRate":8000}"#, extra));
    let three = pairs(&[("test1", "12"), ("test2", "123"), ("test3", "x")]);
    // `;` (the guide, the start example), `,` (the XML reference), or both.
    for extra in [
        r#","extra_headers":"test1=12;test2=123;test3=x""#,
        r#","extra_headers":"test1=12,test2=123,test3=x""#,
        r#","extra_headers":"test1=12,test2=123;test3=x""#,
        r#","extra_headers":" test1 = 12 ; ;test2=123,test3=x;""#,
        // A JSON object in a string (Plivo's own code takes it), or a JSON object.
        r#","extra_headers":"{\"test1\":\"12\",\"test2\":\"123\",\"test3\":\"x\"}""#,
        r#","extra_headers":{"test1":"12","test2":123,"test3":"x"}"#,
    ] {
        assert_eq!(custom(extra).map(|s| s.custom_parameters), Ok(three.clone()), "{extra}");
    }
    for extra in ["", r#","extra_headers":null"#, r#","extra_headers":"""#] {
        assert_eq!(custom(extra).map(|s| s.custom_parameters), Ok(Vec::new()), "{extra}");
    }
    assert_eq!(custom(r#","extra_headers":"flag""#).unwrap().custom_parameters, pairs(&[("flag", "")]));
    for bad in [r#","extra_headers":7"#, r#","extra_headers":["a=1"]"#, r#","extra_headers":"{\"a\":[1]}""#] {
        assert_eq!(custom(bad), Err(ProtocolError::WrongType("extra_headers")), "{bad}");
    }
}

#[test]
fn media_formats() {
    let format = |media_format: &str| parse_start(&start_with(media_format, "")).map(|s| s.media_format);
    assert_eq!(format(r#"{"encoding":"audio/x-mulaw","sampleRate":8000}"#), Ok(MULAW_8K));
    assert_eq!(format(r#"{"encoding":"audio/x-l16","sampleRate":8000}"#), Ok(L16_8K));
    assert_eq!(format(r#"{"encoding":"audio/x-l16","sampleRate":16000}"#), Ok(L16_16K));
    // As the `<Stream contentType>` attribute spells it, and case-insensitively.
    assert_eq!(format(r#"{"encoding":"audio/x-l16;rate=16000"}"#), Ok(L16_16K));
    assert_eq!(format(r#"{"encoding":"Audio/L16","sampleRate":"16000"}"#), Ok(L16_16K));
    assert_eq!(format(r#"{"encoding":"audio/x-mulaw"}"#), Ok(MULAW_8K));
    assert_eq!(format(r#"{"encoding":"audio/x-mulaw;rate=8000"}"#), Ok(MULAW_8K));
    // Codecs Plivo does not stream (or the engine does not convert) refuse the start.
    for codec in ["audio/x-alaw", "audio/opus", "audio/G722", "", "mulaw"] {
        let media_format = format!(r#"{{"encoding":"{codec}","sampleRate":8000}}"#);
        assert_eq!(format(&media_format), Err(ProtocolError::UnsupportedFormat), "{codec}");
    }
    // No default is guessed (the documented defaults contradict each other).
    let no_format = format!(r#"{{"event":"start","start":{{"streamId":"{STREAM_ID}"}}}}"#);
    assert_eq!(parse(&no_format), Err(ProtocolError::MissingField("start.mediaFormat")));
    assert_eq!(format("\"audio/x-mulaw\""), Err(ProtocolError::WrongType("start.mediaFormat")));
    assert_eq!(
        format(r#"{"sampleRate":8000}"#),
        Err(ProtocolError::MissingField("start.mediaFormat.encoding"))
    );
    assert_eq!(
        format(r#"{"encoding":"audio/x-l16"}"#),
        Err(ProtocolError::MissingField("start.mediaFormat.sampleRate"))
    );
    for rate in ["0", "-8000", "8000.0", "\"8k\"", "4294967296", "true"] {
        let media_format = format!(r#"{{"encoding":"audio/x-l16","sampleRate":{rate}}}"#);
        assert_eq!(
            format(&media_format),
            Err(ProtocolError::WrongType("start.mediaFormat.sampleRate")),
            "{rate}"
        );
    }
    assert_eq!(
        format(r#"{"encoding":"audio/x-l16;rate=fast"}"#),
        Err(ProtocolError::WrongType("start.mediaFormat.encoding"))
    );
}

#[test]
fn start_identity_fields() {
    // The stream id may sit at the top level; if both are present they must agree.
    let top = format!(
        r#"{{"event":"start","streamId":"{STREAM_ID}","start":{{"mediaFormat":{{"encoding":"audio/x-mulaw"}}}}}}"#
    );
    let start = parse_start(&top).unwrap();
    assert_eq!(
        (start.stream_id.as_str(), start.call_id.as_str(), start.account_id.as_str()),
        (STREAM_ID, "", "")
    );
    assert_eq!(start.tracks, [Track::Inbound]);
    assert_eq!(start.sequence, None);
    let both = top.replace(r#""start":{"#, &format!(r#""start":{{"streamId":"{OTHER_ID}","#));
    assert_eq!(parse(&both), Err(ProtocolError::WrongType("streamId")));
    let neither = r#"{"event":"start","start":{"mediaFormat":{"encoding":"audio/x-mulaw"}}}"#;
    assert_eq!(parse(neither), Err(ProtocolError::MissingField("start.streamId")));
    let tracks = start_with(r#"{"encoding":"audio/x-mulaw"}"#, "")
        .replace(r#"["inbound"]"#, r#"["inbound","outbound"]"#);
    assert_eq!(parse_start(&tracks).unwrap().tracks, [Track::Inbound, Track::Outbound]);
    for (field, value) in
        [("callId", "7"), ("accountId", "[]"), ("tracks", r#"["both"]"#), ("tracks", "\"inbound\"")]
    {
        let message = start_with(r#"{"encoding":"audio/x-mulaw"}"#, "")
            .replace(&format!(r#""{field}":"#), &format!(r#""{field}":{value},"ignored":"#));
        let expected = ProtocolError::WrongType(match field {
            "callId" => "start.callId",
            "accountId" => "start.accountId",
            _ => "start.tracks",
        });
        assert_eq!(parse(&message), Err(expected), "{message}");
    }
    assert_eq!(parse(r#"{"event":"start"}"#), Err(ProtocolError::MissingField("start")));
    assert_eq!(parse(r#"{"event":"start","start":[]}"#), Err(ProtocolError::WrongType("start")));
}

#[test]
fn numbers_may_be_numbers_or_strings() {
    let payload = reference_base64(&[1, 2]);
    for (sequence, chunk, timestamp) in [("42", "41", "1705312200000"), ("\"42\"", "\"41\"", "1705312200000")]
    {
        let message = format!(
            r#"{{"event":"media","sequenceNumber":{sequence},"media":{{"chunk":{chunk},"timestamp":{timestamp},"payload":"{payload}"}}}}"#
        );
        assert_eq!(
            parse(&message),
            Ok(Inbound::Media(MediaFrame {
                sequence: Some(42),
                chunk: Some(41),
                timestamp_ms: 0,
                track: Track::Inbound
            }))
        );
    }
    // Optional: a media message with nothing but its payload.
    let bare = format!(r#"{{"event":"media","media":{{"payload":"{payload}"}}}}"#);
    assert_eq!(
        parse(&bare),
        Ok(Inbound::Media(MediaFrame {
            sequence: None,
            chunk: None,
            timestamp_ms: 0,
            track: Track::Inbound
        }))
    );
    for (field, message) in [
        (
            "sequenceNumber",
            format!(r#"{{"event":"media","sequenceNumber":-1,"media":{{"payload":"{payload}"}}}}"#),
        ),
        ("media.chunk", format!(r#"{{"event":"media","media":{{"chunk":"1.5","payload":"{payload}"}}}}"#)),
        (
            "media.timestamp",
            format!(r#"{{"event":"media","media":{{"timestamp":"+1","payload":"{payload}"}}}}"#),
        ),
        ("media.track", format!(r#"{{"event":"media","media":{{"track":"both","payload":"{payload}"}}}}"#)),
    ] {
        assert_eq!(parse(&message), Err(ProtocolError::WrongType(field)), "{message}");
    }
}

#[test]
fn timestamps_count_from_the_first_accepted_media() {
    let mut dialect = PlivoDialect::new();
    let mut payload = PayloadBuffer::with_limit(160);
    let mut timestamp_of =
        |message: &str| match dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload) {
            Ok(Inbound::Media(frame)) => Ok(frame.timestamp_ms),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
    let t0 = 1_705_312_200_000u64;
    // A refused message does not set the stream's time zero.
    let bad = format!(r#"{{"event":"media","media":{{"timestamp":{},"payload":"!"}}}}"#, t0 - 500);
    assert_eq!(timestamp_of(&bad), Err(ProtocolError::InvalidBase64));
    assert_eq!(timestamp_of(&media_message(2, t0, &[0xff; 160])), Ok(0));
    assert_eq!(timestamp_of(&media_message(3, t0 + 20, &[0xff; 160])), Ok(20));
    // Earlier than the first (a carrier clock step back) counts as the start.
    assert_eq!(timestamp_of(&media_message(4, t0 - 20, &[0xff; 160])), Ok(0));
    // Absent: zero (the engine takes Plivo's audio in arrival order anyway).
    assert_eq!(
        timestamp_of(&format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, reference_base64(&[1]))),
        Ok(0)
    );
}

#[test]
fn every_dtmf_digit_and_no_other() {
    for digit in "0123456789*#ABCD".bytes() {
        let message = DTMF.replace(r#""digit": "5""#, &format!(r#""digit": "{}""#, digit as char));
        assert_eq!(parse(&message), Ok(Inbound::Dtmf { sequence: Some(50), digit, duration_ms: None }));
    }
    for bad in ["\"a\"", "\"E\"", "\"55\"", "\"\"", "5"] {
        let message = DTMF.replace(r#""digit": "5""#, &format!(r#""digit": {bad}"#));
        assert_eq!(parse(&message), Err(ProtocolError::WrongType("dtmf.digit")), "{bad}");
    }
    assert_eq!(parse(r#"{"event":"dtmf","dtmf":{}}"#), Err(ProtocolError::MissingField("dtmf.digit")));
    assert_eq!(parse(r#"{"event":"dtmf"}"#), Err(ProtocolError::MissingField("dtmf")));
}

#[test]
fn malformed_and_wrong_messages() {
    let payload = reference_base64(&[0; 4]);
    let cases: Vec<(String, ProtocolError)> = vec![
        ("not json".into(), ProtocolError::MalformedJson),
        (r#"{"event":"media""#.into(), ProtocolError::MalformedJson),
        (r#"{"event":"dtmf"} {}"#.into(), ProtocolError::MalformedJson),
        (r#"["event","start"]"#.into(), ProtocolError::MalformedJson),
        (r#"{"event":"stop","event":"stop"}"#.into(), ProtocolError::MalformedJson),
        ("{}".into(), ProtocolError::MissingField("event")),
        (r#"{"event":7}"#.into(), ProtocolError::WrongType("event")),
        (r#"{"event":"playAudio"}"#.into(), ProtocolError::UnknownEvent),
        (r#"{"event":"media"}"#.into(), ProtocolError::MissingField("media")),
        (r#"{"event":"media","media":"x"}"#.into(), ProtocolError::WrongType("media")),
        (r#"{"event":"media","media":{}}"#.into(), ProtocolError::MissingField("media.payload")),
        (r#"{"event":"media","media":{"payload":5}}"#.into(), ProtocolError::WrongType("media.payload")),
        (r#"{"event":"media","media":{"payload":"AAA!"}}"#.into(), ProtocolError::InvalidBase64),
        (r#"{"event":"media","media":{"payload":"AAAAA"}}"#.into(), ProtocolError::InvalidBase64),
        (r#"{"event":"playedStream"}"#.into(), ProtocolError::MissingField("name")),
        (r#"{"event":"playedStream","name":{}}"#.into(), ProtocolError::WrongType("name")),
        (r#"{"event":"stop","streamId":3}"#.into(), ProtocolError::WrongType("streamId")),
        (r#"{"event":"stop","sequenceNumber":"x"}"#.into(), ProtocolError::WrongType("sequenceNumber")),
        (
            format!(r#"{{"event":"media","media":{{"payload":"{payload}","payload":"{payload}"}}}}"#),
            ProtocolError::MalformedJson,
        ),
    ];
    for (message, expected) in &cases {
        assert_eq!(parse(message), Err(*expected), "{message}");
    }
    let mut dialect = PlivoDialect::new();
    let mut buffer = PayloadBuffer::with_limit(16);
    assert_eq!(
        dialect.parse(MEDIA.as_bytes(), MessageKind::Binary, &mut buffer),
        Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary))
    );
    assert_eq!(
        dialect.parse(b"{\"event\":\"\xff\"}", MessageKind::Text, &mut buffer),
        Err(ProtocolError::MalformedJson)
    );
    // Over the payload limit: refused before decoding; over Plivo's 64 KiB message cap: refused
    // before parsing.
    assert_eq!(parse_with_limit(MEDIA.as_bytes(), 159).0, Err(ProtocolError::PayloadTooLarge));
    let huge = format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, "A".repeat(64 * 1024));
    assert_eq!(parse_with_limit(huge.as_bytes(), 1 << 20).0, Err(ProtocolError::MessageTooLarge));
    let just_fits = format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, "A".repeat(64 * 1024 - 40));
    assert_eq!(just_fits.len(), 64 * 1024);
    assert!(matches!(parse_with_limit(just_fits.as_bytes(), 1 << 20).0, Ok(Inbound::Media(_))));
}

#[test]
fn the_payload_buffer_holds_only_the_last_valid_media_payload() {
    let mut dialect = PlivoDialect::new();
    let mut payload = PayloadBuffer::with_limit(160);
    dialect.parse(MEDIA.as_bytes(), MessageKind::Text, &mut payload).unwrap();
    assert_eq!(payload.as_slice(), fixture_pattern(41, 160));
    let bad = r#"{"event":"media","media":{"chunk":"x","payload":"AAAA"}}"#;
    assert!(dialect.parse(bad.as_bytes(), MessageKind::Text, &mut payload).is_err());
    assert!(payload.as_slice().is_empty());
    dialect.parse(DTMF.as_bytes(), MessageKind::Text, &mut payload).unwrap();
    assert!(payload.as_slice().is_empty());
}

#[test]
fn after_start_messages_naming_another_stream_are_foreign() {
    let messages = [
        MEDIA.to_owned(),
        DTMF.to_owned(),
        PLAYED_STREAM.to_owned(),
        CLEARED_AUDIO.to_owned(),
        format!(r#"{{"event":"stop","streamId":"{STREAM_ID}"}}"#),
    ];
    let mut dialect = started_dialect(MULAW_8K);
    let mut payload = PayloadBuffer::with_limit(160);
    for message in &messages {
        assert!(dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).is_ok(), "{message}");
        let foreign = message.replace(STREAM_ID, OTHER_ID);
        assert_eq!(
            dialect.parse(foreign.as_bytes(), MessageKind::Text, &mut payload),
            Err(ProtocolError::ForeignStream),
            "{foreign}"
        );
        // Naming no stream: taken as this one's.
        let anonymous = [r#""streamId": "{}","#, r#", "streamId": "{}""#, r#","streamId":"{}""#]
            .iter()
            .fold(message.clone(), |m, pattern| m.replace(&pattern.replace("{}", STREAM_ID), ""));
        assert!(!anonymous.contains(STREAM_ID), "{anonymous}");
        assert!(dialect.parse(anonymous.as_bytes(), MessageKind::Text, &mut payload).is_ok(), "{anonymous}");
    }
    // A second `start` is the session's to refuse, whatever stream it names.
    let other_start = START.replace(STREAM_ID, OTHER_ID);
    assert!(matches!(
        dialect.parse(other_start.as_bytes(), MessageKind::Text, &mut payload),
        Ok(Inbound::Start(s)) if s.stream_id == OTHER_ID
    ));
    // Before `start`, any stream is accepted.
    let mut fresh = PlivoDialect::new();
    let foreign = MEDIA.replace(STREAM_ID, OTHER_ID);
    assert!(fresh.parse(foreign.as_bytes(), MessageKind::Text, &mut payload).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Writers

#[test]
fn play_audio_is_exactly_the_reference_shape() {
    let dialect = started_dialect(MULAW_8K);
    let mulaw = fixture_pattern(7, 160);
    let mut out = b"stale".to_vec();
    assert_eq!(dialect.write_media(&mulaw, &mut out), MessageKind::Text);
    let reference: Value = serde_json::from_str(include_str!("../fixtures/plivo/play_audio.json")).unwrap();
    assert_eq!(json_of(&out), reference);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!(
            r#"{{"event":"playAudio","media":{{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"{}"}}}}"#,
            reference_base64(&mulaw)
        )
    );
    assert_eq!(out.len(), dialect.max_media_message_len(160));
    // The stream's own content type and rate, `sampleRate` a JSON number.
    for (format, content_type, rate) in [(L16_8K, "audio/x-l16", 8000), (L16_16K, "audio/x-l16", 16000)] {
        let dialect = started_dialect(format);
        let l16 = fixture_pattern(3, 640);
        dialect.write_media(&l16, &mut out);
        assert_eq!(
            json_of(&out),
            json!({"event": "playAudio", "media": {"contentType": content_type, "sampleRate": rate, "payload": reference_base64(&l16)}})
        );
        assert_eq!(out.len(), dialect.max_media_message_len(640));
    }
    // Before `start`: 8 kHz µ-law, the only format valid for every Plivo stream.
    PlivoDialect::new().write_media(&[0xff], &mut out);
    assert_eq!(json_of(&out)["media"]["contentType"], "audio/x-mulaw");
}

#[test]
fn checkpoint_and_clear_audio_are_exactly_the_reference_shapes() {
    let dialect = started_dialect(MULAW_8K);
    let mut out = Vec::new();
    assert_eq!(dialect.write_mark("greeting-complete", &mut out), MessageKind::Text);
    let reference: Value = serde_json::from_str(include_str!("../fixtures/plivo/checkpoint.json")).unwrap();
    assert_eq!(json_of(&out), reference);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!(r#"{{"event":"checkpoint","streamId":"{STREAM_ID}","name":"greeting-complete"}}"#)
    );
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    let reference: Value = serde_json::from_str(include_str!("../fixtures/plivo/clear_audio.json")).unwrap();
    assert_eq!(json_of(&out), reference);
    // Names and ids are JSON-escaped.
    let mut odd = PlivoDialect::new();
    let mut start = parse_start(START).unwrap();
    start.stream_id = "a\"b\\c\u{1}é".into();
    odd.on_start(&start).unwrap();
    for name in ["", "plain", "quote\"back\\slash", "ctl\n\t\u{0}\u{1f}", "ünï😀"] {
        odd.write_mark(name, &mut out);
        assert_eq!(json_of(&out), json!({"event": "checkpoint", "streamId": start.stream_id, "name": name}));
    }
    odd.write_clear(&mut out);
    assert_eq!(json_of(&out), json!({"event": "clearAudio", "streamId": start.stream_id}));
    // Before `start` the stream id is empty.
    PlivoDialect::new().write_clear(&mut out);
    assert_eq!(json_of(&out), json!({"event": "clearAudio", "streamId": ""}));
}

#[test]
fn send_dtmf_is_exactly_the_documented_shape() {
    let mut out = Vec::new();
    assert_eq!(PlivoDialect::write_send_dtmf("12#", &mut out), Ok(MessageKind::Text));
    let reference: Value = serde_json::from_str(include_str!("../fixtures/plivo/send_dtmf.json")).unwrap();
    assert_eq!(json_of(&out), reference);
}

#[test]
fn write_media_round_trips_every_length_within_the_bound() {
    for format in [MULAW_8K, L16_8K, L16_16K] {
        let dialect = started_dialect(format);
        let mut out = Vec::new();
        for len in 0..=700 {
            let audio: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            dialect.write_media(&audio, &mut out);
            assert_eq!(out.len(), dialect.max_media_message_len(len), "{len}");
            let value = json_of(&out);
            assert_eq!(reference_unbase64(value["media"]["payload"].as_str().unwrap()), audio);
        }
    }
    assert_eq!(PlivoDialect::new().max_media_message_len(usize::MAX), usize::MAX);
}

#[test]
fn capabilities_are_plivos() {
    let caps = PlivoDialect::new().capabilities();
    assert_eq!(caps.framing, Framing::Messages);
    assert!(!caps.timestamps, "Plivo's timestamps are wall-clock time");
    assert_eq!(caps.frame_ms, 20);
    assert_eq!(caps.max_lead_ms, None);
    assert_eq!(caps.confirmation, Confirmation::Echo { on_clear: false });
    assert_eq!(caps.clear, ClearKind::Message);
    // A-law is no format Plivo's `playAudio` takes.
    let mut dialect = PlivoDialect::new();
    let mut start = parse_start(START).unwrap();
    start.media_format.encoding = AudioEncoding::Alaw;
    assert_eq!(dialect.on_start(&start), Err(ProtocolError::UnsupportedFormat));
    start.media_format = MediaFormat { channels: 2, ..MULAW_8K };
    assert_eq!(dialect.on_start(&start), Err(ProtocolError::UnsupportedFormat));
}

// ---------------------------------------------------------------------------------------------
// Allocation

#[test]
fn parsing_media_and_writing_allocate_nothing() {
    let t0 = 1_705_312_200_000u64;
    let messages: Vec<String> = (0..500u64)
        .map(|i| {
            let len = [160, 320, 640, 1, 0][i as usize % 5];
            let mut message = media_message(i + 2, t0 + 20 * i, &fixture_pattern(i, len));
            if i % 2 == 0 {
                // Key order varies; `extra_headers` before `event` is read, then dropped unused.
                message = message.replacen(
                    r#"{"event":"media","#,
                    r#"{"extra_headers":"a=1;b=2","event":"media","#,
                    1,
                );
                message = message.replace(r#","extra_headers":"userId=12345;sessionId=abc-xyz""#, "");
            }
            message
        })
        .collect();
    let mut dialect = started_dialect(L16_16K);
    let mut payload = PayloadBuffer::with_limit(640);
    for message in &messages {
        let (allocations, result) =
            allocations_in(|| dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).map(|_| ()));
        assert_eq!(result, Ok(()), "{message}");
        assert_eq!(allocations, 0, "{message}");
    }
    let mut out = Vec::with_capacity(dialect.max_media_message_len(640));
    let frame = fixture_pattern(1, 640);
    let (allocations, ()) = allocations_in(|| {
        dialect.write_media(&frame, &mut out);
        dialect.write_mark("trunkline-sync-1", &mut out);
        dialect.write_clear(&mut out);
    });
    assert_eq!(allocations, 0);
}

// ---------------------------------------------------------------------------------------------
// Through a session

fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    open_with(clock, config, PlivoDialect::new())
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

fn l16_start() -> String {
    start_with(r#"{"encoding":"audio/x-l16","sampleRate":16000}"#, r#","extra_headers":"lang=en;bot=7""#)
}

fn le_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn caller_mulaw_with_unix_timestamps_reaches_an_8_khz_agent_sample_for_sample() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8000, ..Default::default() });
    s.push_text(START).unwrap();
    // Plivo's timestamps are Unix ms (beyond the engine's stream-time range): still accepted.
    let t0 = 1_705_312_200_000u64;
    let mut expected = Vec::new();
    for i in 0..25u64 {
        let mulaw = fixture_pattern(i, 160);
        expected.extend(mulaw.iter().map(|&c| crate::common::reference_ulaw_decode(c)));
        s.push_text(&media_message(i + 2, t0 + 20 * i, &mulaw)).unwrap();
    }
    assert_eq!(read_all(&mut s), expected);
    s.push_text(DTMF).unwrap();
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!(start.media_format, MULAW_8K);
    assert_eq!(start.custom_parameters, pairs(&[("userId", "12345"), ("sessionId", "abc-xyz")]));
    assert!(evs.contains(&Event::Dtmf { digit: '5', stream_ms: 500, duration_ms: None }), "{evs:?}");
    assert_eq!(errors(&evs), []);
    // Agent audio goes back as 20 ms of 8 kHz µ-law per `playAudio`.
    s.play(&[0i16; 160], 8000).unwrap();
    let sent = outbound(&mut s);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["event"], "playAudio");
    assert_eq!(sent[0]["media"]["contentType"], "audio/x-mulaw");
    assert_eq!(sent[0]["media"]["sampleRate"], 8000);
    assert_eq!(reference_unbase64(sent[0]["media"]["payload"].as_str().unwrap()).len(), 160);
}

#[test]
fn l16_at_16_khz_passes_untouched_both_ways_in_20_ms_play_audio_frames() {
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 16_000, play_rate: 16_000, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push_text(&l16_start()).unwrap();
    let caller = ramp(320 * 20, 0);
    for (i, frame) in caller.chunks(320).enumerate() {
        s.push_text(&media_message(i as u64 + 2, 1_705_312_200_000 + 20 * i as u64, &le_bytes(frame)))
            .unwrap();
    }
    // Little-endian L16 in, 16 kHz to the agent: the samples themselves.
    assert_eq!(read_all(&mut s), caller);
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!(start.custom_parameters, pairs(&[("lang", "en"), ("bot", "7")]));
    assert_eq!(errors(&evs), []);

    // 210 ms of agent audio: eleven 20 ms frames of 640 bytes, the last padded with silence.
    let reply = ramp(3360, 5);
    assert_eq!(s.play(&reply, 16_000).unwrap(), reply.len());
    let mut sent = Vec::new();
    for _ in 0..20 {
        for message in outbound(&mut s) {
            assert_eq!(message["event"], "playAudio", "{message}");
            assert_eq!(message["media"]["contentType"], "audio/x-l16");
            assert_eq!(message["media"]["sampleRate"], 16000);
            let payload = reference_unbase64(message["media"]["payload"].as_str().unwrap());
            assert_eq!(payload.len(), 640, "every frame is exactly 20 ms of 16 kHz L16");
            sent.extend(payload);
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    assert_eq!(sent.len(), 11 * 640);
    assert_eq!(&sent[..reply.len() * 2], le_bytes(&reply).as_slice());
    assert!(sent[reply.len() * 2..].iter().all(|&b| b == 0));
}

/// A started call, 8 kHz both ways, whose marks are only the host's: what the model has played
/// is then what the clock says, uncorrected by any echo.
fn started_at_8_khz_without_sync_marks(clock: &ManualClock) -> (Engine, Session) {
    let config =
        SessionConfig { agent_rate: 8000, play_rate: 8000, sync_mark_interval_ms: 0, ..Default::default() };
    let (engine, mut s) = open(clock, &config);
    s.push_text(START).unwrap();
    events(&mut s);
    (engine, s)
}

#[test]
fn checkpoints_reached_are_played_and_the_rest_are_cleared_at_the_clear() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_at_8_khz_without_sync_marks(&clock);
    // 40 ms, "heard", 40 ms, "unheard", one second, "queued".
    s.play(&[1000; 320], 8000).unwrap();
    s.mark("heard").unwrap();
    s.play(&[2000; 320], 8000).unwrap();
    s.mark("unheard").unwrap();
    s.play(&vec![3000; 8000], 8000).unwrap();
    s.mark("queued").unwrap();
    // The lead (100 ms): five frames, with the two checkpoints where their audio ends.
    let kinds = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .map(|m| match m["event"].as_str().unwrap() {
                "checkpoint" => format!("checkpoint:{}", m["name"].as_str().unwrap()),
                other => other.to_owned(),
            })
            .collect()
    };
    let first = outbound(&mut s);
    assert_eq!(
        kinds(&first),
        [
            "playAudio",
            "playAudio",
            "checkpoint:heard",
            "playAudio",
            "playAudio",
            "checkpoint:unheard",
            "playAudio"
        ]
    );
    assert_eq!(first[2], json!({"event": "checkpoint", "streamId": STREAM_ID, "name": "heard"}));

    // 60 ms later the caller has heard "heard" (at 40 ms) but not "unheard" (at 80 ms).
    clock.advance(Duration::from_millis(60));
    s.read_audio(&mut [0; 16]);
    outbound(&mut s);
    s.interrupt().unwrap();
    let evs = events(&mut s);
    assert_eq!(evs[0], Event::Interrupted { played_ms: 60 }, "{evs:?}");
    // Plivo never answers a checkpoint it cleared: "unheard" is reported cleared now, with the
    // queued one. "heard" still waits for its answer.
    let mut cleared: Vec<_> = evs[1..].to_vec();
    cleared.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        cleared,
        [Event::MarkCleared { name: "queued".into() }, Event::MarkCleared { name: "unheard".into() }]
    );
    assert_eq!(outbound(&mut s), [json!({"event": "clearAudio", "streamId": STREAM_ID})]);

    // Plivo answers the checkpoint that played, then acknowledges the clear.
    s.push_text(PLAYED_STREAM.replace("greeting-complete", "heard").as_str()).unwrap();
    s.push_text(CLEARED_AUDIO).unwrap();
    let evs = events(&mut s);
    // (The acknowledgement is a notice: counted, not reported.)
    assert_eq!(evs, [Event::MarkPlayed { name: "heard".into(), played_ms: 40 }]);
    // An answer for the cleared checkpoint (Plivo documents none) is not taken as played.
    s.push_text(PLAYED_STREAM.replace("greeting-complete", "unheard").as_str()).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::UnknownMark]);
    let stats = s.stats();
    assert_eq!((stats.marks_sent, stats.marks_played, stats.marks_cleared, stats.clears_sent), (2, 1, 2, 1));
}

/// A checkpoint the model had played when the clear came, but that Plivo had not (the model
/// ran ahead of the carrier, before any sync mark measured it): the clear dropped it and Plivo
/// never answers it. It is reported cleared a second after the clear, not left pending for the
/// rest of the call (holding one of the session's mark slots).
#[test]
fn a_checkpoint_plivo_never_answers_after_a_clear_is_reported_cleared_after_the_grace() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_at_8_khz_without_sync_marks(&clock);
    s.play(&[1000; 320], 8000).unwrap();
    s.mark("heard-by-the-model").unwrap();
    s.play(&vec![3000; 8000], 8000).unwrap();
    outbound(&mut s);
    clock.advance(Duration::from_millis(60));
    s.read_audio(&mut [0; 16]);
    outbound(&mut s);
    s.interrupt().unwrap();
    assert_eq!(events(&mut s), [Event::Interrupted { played_ms: 60 }]);
    s.push_text(CLEARED_AUDIO).unwrap();
    // Plivo's answer would come within a network round trip: none comes.
    clock.advance(Duration::from_millis(999));
    s.read_audio(&mut [0; 16]);
    assert_eq!(events(&mut s), []);
    clock.advance(Duration::from_millis(1));
    s.read_audio(&mut [0; 16]);
    assert_eq!(events(&mut s), [Event::MarkCleared { name: "heard-by-the-model".into() }]);
    let stats = s.stats();
    assert_eq!((stats.marks_sent, stats.marks_played, stats.marks_cleared), (1, 0, 1));
    assert_eq!(stats.cleared_marks_unechoed, 1);
    // Its answer, should it come after all, is not a mark.
    s.push_text(PLAYED_STREAM.replace("greeting-complete", "heard-by-the-model").as_str()).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::UnknownMark]);
}

#[test]
fn the_socket_closing_ends_the_stream_and_clears_what_is_pending() {
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 8000, play_rate: 8000, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push_text(START).unwrap();
    s.push_text(MEDIA).unwrap();
    s.play(&[500; 160], 8000).unwrap();
    s.mark("pending").unwrap();
    outbound(&mut s);
    // Plivo sends no stop: the host reports the WebSocket closing.
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert_eq!(evs[1..], [Event::MarkCleared { name: "pending".into() }, Event::Stopped]);
    s.push_text(MEDIA).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::AfterStop]);
    assert_eq!(read_all(&mut s).len(), 160);

    // A `stop`, should one come, ends it the same way.
    let (_engine, mut s) = open(&clock, &config);
    s.push_text(START).unwrap();
    s.push_text(&format!(r#"{{"event":"stop","streamId":"{STREAM_ID}"}}"#)).unwrap();
    assert_eq!(events(&mut s).last(), Some(&Event::Stopped));
}

#[test]
fn an_unsupported_codec_refuses_the_start_and_its_media() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig::default());
    s.push_text(&start_with(r#"{"encoding":"audio/opus","sampleRate":16000}"#, "")).unwrap();
    s.push_text(MEDIA).unwrap();
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::UnsupportedFormat, ProtocolError::MediaBeforeStart], "{evs:?}");
    assert!(!evs.iter().any(|e| matches!(e, Event::Started(_))));
    // A foreign stream's messages never reach a started session.
    s.push_text(START).unwrap();
    s.push_text(&MEDIA.replace(STREAM_ID, OTHER_ID)).unwrap();
    s.push_text(&format!(r#"{{"event":"stop","streamId":"{OTHER_ID}"}}"#)).unwrap();
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::ForeignStream, ProtocolError::ForeignStream]);
    assert!(!evs.contains(&Event::Stopped));
}
