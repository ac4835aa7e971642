//! The Exotel AgentStream dialect against Exotel's documented messages, then through a session.
//!
//! Fixtures (engine/tests/fixtures/exotel/) are the literal examples of Exotel's AgentStream
//! WebSocket protocol page, with the ids and payloads it elides ("…", "<base64 PCM>") filled in:
//! - `connected.json`, `start.json` (verbatim), `dtmf.json`, `mark.json`, `stop.json`: its inbound
//!   examples;
//! - `media.json`: its inbound `media` example, the payload 3200 bytes (100 ms at 8 kHz) of the
//!   pattern `fixture_pattern(2)` (encoded with Python's `base64`);
//! - `out_media.json` (payload `fixture_pattern(9)`, 3200 bytes), `out_mark.json`,
//!   `out_clear.json`: its outbound `media`, `mark` and `clear` examples.
//!
//! Other shapes come from Exotel's own sample code and documents (the `streamSid` spelling,
//! `linear16` with numeric rates, a `start` without a stream id) and are built inline.
//!
//! Expectations are independent of the code under test: payloads are checked against the byte
//! patterns the fixtures were generated from and a small reference base64 codec written here;
//! written messages are re-parsed with `serde_json::Value`. Allocations are counted per thread
//! (the test binary's allocator: `thread_allocations`).

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Value, json};
use trunkline::protocol::exotel::{self, ExotelDialect};
use trunkline::protocol::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat,
    MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Event, Session, SessionConfig};

use crate::thread_allocations::allocations_in;

use crate::dialect_session::{errors, events, fixture_pattern, open_with, read_all};
use crate::wire::{json_of, ramp, reference_base64, reference_unbase64};

// ---------------------------------------------------------------------------------------------
// Helpers

const STREAM_SID: &str = "MZxxxxxxxxxxxxxxxxxxxxxxxx";
const CALL_SID: &str = "CAxxxxxxxxxxxxxxxxxxxxxxxx";
const ACCOUNT_SID: &str = "ACxxxxxxxxxxxxxxxxxxxxxxxx";
const OTHER_SID: &str = "MZ000000000000000000000000";

const CONNECTED: &str = include_str!("../fixtures/exotel/connected.json");
const START: &str = include_str!("../fixtures/exotel/start.json");
const MEDIA: &str = include_str!("../fixtures/exotel/media.json");
const DTMF: &str = include_str!("../fixtures/exotel/dtmf.json");
const MARK: &str = include_str!("../fixtures/exotel/mark.json");
const STOP: &str = include_str!("../fixtures/exotel/stop.json");

fn parse_with(
    dialect: &mut ExotelDialect,
    message: &str,
    limit: usize,
) -> (Result<Inbound<'static>, ProtocolError>, Vec<u8>) {
    let mut payload = PayloadBuffer::with_limit(limit);
    // Leaked so the borrowed result can outlive this helper (a test's handful of messages).
    let message: &'static str = Box::leak(message.to_owned().into_boxed_str());
    let result = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload);
    (result, payload.as_slice().to_vec())
}

fn parse(message: &str) -> Result<Inbound<'static>, ProtocolError> {
    parse_with(&mut ExotelDialect::new(), message, 9600).0
}

fn parse_start_with(dialect: &mut ExotelDialect, message: &str) -> Result<StreamStart, ProtocolError> {
    match parse_with(dialect, message, 0).0? {
        Inbound::Start(start) => Ok(*start),
        other => panic!("not a start: {other:?}"),
    }
}

fn parse_start(message: &str) -> Result<StreamStart, ProtocolError> {
    parse_start_with(&mut ExotelDialect::new(), message)
}

/// A `start` whose `start` object holds `fields` (JSON members, without braces).
fn start_with(fields: &str) -> String {
    format!(r#"{{"event":"start","sequence_number":"1","start":{{{fields}}}}}"#)
}

fn media_message(sequence: u64, payload: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequence_number":"{sequence}","stream_sid":"{STREAM_SID}","media":{{"chunk":"{}","timestamp":"{}","payload":"{}"}}}}"#,
        sequence - 1,
        (sequence - 2) * 100,
        reference_base64(payload)
    )
}

const fn l16(sample_rate: u32) -> MediaFormat {
    MediaFormat { encoding: AudioEncoding::L16, sample_rate, channels: 1 }
}

fn started_dialect(format: MediaFormat) -> ExotelDialect {
    let mut dialect = ExotelDialect::new();
    let start = StreamStart {
        sequence: Some(1),
        account_id: ACCOUNT_SID.into(),
        stream_id: STREAM_SID.into(),
        call_id: CALL_SID.into(),
        tracks: vec![Track::Inbound],
        custom_parameters: Vec::new(),
        media_format: format,
    };
    assert_eq!(dialect.on_start(&start), Ok(format), "Exotel takes back what it sends");
    dialect
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

// ---------------------------------------------------------------------------------------------
// The protocol page's messages

#[test]
fn the_reference_codecs_match_rfc_4648() {
    for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
    {
        assert_eq!(reference_base64(plain.as_bytes()), encoded);
        assert_eq!(reference_unbase64(encoded), plain.as_bytes());
    }
}

#[test]
fn connected_fixture() {
    assert_eq!(parse(CONNECTED), Ok(Inbound::Connected));
    // As Exotel's own sample documents show it.
    let with_protocol = r#"{"event":"connected","protocol":"Exotel Media Stream","version":"1.0.0"}"#;
    assert_eq!(parse(with_protocol), Ok(Inbound::Connected));
}

#[test]
fn start_fixture() {
    let expected = StreamStart {
        sequence: Some(1),
        account_id: ACCOUNT_SID.into(),
        stream_id: STREAM_SID.into(),
        call_id: CALL_SID.into(),
        tracks: vec![Track::Inbound],
        custom_parameters: pairs(&[("key1", "value1")]),
        media_format: l16(8000),
    };
    assert_eq!(parse(START), Ok(Inbound::Start(Box::new(expected))));
}

#[test]
fn media_fixture() {
    let (result, payload) = parse_with(&mut ExotelDialect::new(), MEDIA, 3200);
    // The first media of a stream is its time zero.
    let frame = MediaFrame { sequence: Some(3), chunk: Some(2), timestamp_ms: 0, track: Track::Inbound };
    assert_eq!(result, Ok(Inbound::Media(frame)));
    assert_eq!(payload, fixture_pattern(2, 3200));
}

#[test]
fn dtmf_mark_and_stop_fixtures() {
    // The example's duration is a numeric string of ms: "100".
    assert_eq!(parse(DTMF), Ok(Inbound::Dtmf { sequence: Some(7), digit: b'5', duration_ms: Some(100) }));
    assert_eq!(
        parse(MARK),
        Ok(Inbound::Mark { sequence: Some(15), name: Cow::Borrowed("utt-12"), said: MarkSaid::Nothing })
    );
    assert_eq!(parse(STOP), Ok(Inbound::Stop { sequence: Some(120) }));
    // A stop with nothing but its event, and an inbound `clear` (Exotel's own bridge handles one).
    assert_eq!(parse(r#"{"event":"stop"}"#), Ok(Inbound::Stop { sequence: None }));
    let clear = format!(r#"{{"event":"clear","stream_sid":"{STREAM_SID}"}}"#);
    assert_eq!(parse(&clear), Ok(Inbound::Notice));
}

#[test]
fn a_whole_call_parses_in_order_through_one_dialect() {
    let mut dialect: Box<dyn Dialect> = Box::new(ExotelDialect::new());
    let mut payload = PayloadBuffer::with_limit(3200);
    let mut call = vec![CONNECTED.to_owned(), START.to_owned()];
    for i in 0..4u64 {
        call.push(media_message(i + 2, &fixture_pattern(i, 3200)));
    }
    call.extend([DTMF.to_owned(), MARK.to_owned(), STOP.to_owned()]);
    let mut kinds = Vec::new();
    for message in &call {
        let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).unwrap();
        let quick = dialect.may_start_or_stop(message.as_bytes(), MessageKind::Text);
        assert_eq!(quick, matches!(parsed, Inbound::Start(_) | Inbound::Stop { .. }), "{message}");
        match parsed {
            Inbound::Connected => kinds.push("connected"),
            Inbound::Notice => kinds.push("notice"),
            Inbound::Start(start) => {
                assert_eq!(dialect.on_start(&start), Ok(l16(8000)));
                kinds.push("start");
            }
            Inbound::Media(frame) => {
                let i = frame.sequence.unwrap() - 2;
                assert_eq!(frame.timestamp_ms, 100 * i);
                assert_eq!(payload.as_slice(), fixture_pattern(i, 3200));
                kinds.push("media");
            }
            Inbound::Dtmf { .. } => kinds.push("dtmf"),
            Inbound::Mark { .. } => kinds.push("mark"),
            Inbound::Stop { .. } => kinds.push("stop"),
        }
    }
    assert_eq!(kinds, ["connected", "start", "media", "media", "media", "media", "dtmf", "mark", "stop"]);
}

#[test]
fn ids_in_either_spelling() {
    let snake = parse_start(START).unwrap();
    // camelCase, as Exotel's own provider code reads them, inside `start` or at the top level.
    let camel = START
        .replace("stream_sid", "streamSid")
        .replace("call_sid", "callSid")
        .replace("account_sid", "accountSid");
    assert_eq!(parse_start(&camel), Ok(snake.clone()));
    let top_only = format!(
        r#"{{"event":"start","streamSid":"{STREAM_SID}","start":{{"callSid":"{CALL_SID}","account_sid":"{ACCOUNT_SID}","custom_parameters":{{"key1":"value1"}}}}}}"#
    );
    assert_eq!(
        parse_start(&top_only).map(|s| (s.stream_id, s.call_id, s.account_id)),
        Ok((STREAM_SID.into(), CALL_SID.into(), ACCOUNT_SID.into()))
    );
    // Both spellings: they must agree.
    let both = start_with(&format!(r#""stream_sid":"{STREAM_SID}","streamSid":"{STREAM_SID}""#));
    assert_eq!(parse_start(&both).map(|s| s.stream_id), Ok(STREAM_SID.into()));
    let disagree = start_with(&format!(r#""stream_sid":"{STREAM_SID}","streamSid":"{OTHER_SID}""#));
    assert_eq!(parse_start(&disagree), Err(ProtocolError::WrongType("start.stream_sid")));
    let inner_outer = START.replacen(STREAM_SID, OTHER_SID, 1);
    assert_eq!(parse_start(&inner_outer), Err(ProtocolError::WrongType("stream_sid")));
    let calls = start_with(&format!(r#""call_sid":"{CALL_SID}","callSid":"CA1""#));
    assert_eq!(parse_start(&calls), Err(ProtocolError::WrongType("start.call_sid")));
    let accounts = start_with(r#""accountSid":7"#);
    assert_eq!(parse_start(&accounts), Err(ProtocolError::WrongType("start.account_sid")));
    // No id at all (the shape of one of Exotel's sample documents): accepted, the id empty.
    let anonymous = r#"{"event":"start","sequence_number":"1","start":{"call_sid":"abc123","account_sid":"xyz789","from":"+1234567890","to":"+0987654321","media_format":{"encoding":"linear16","sample_rate":8000,"bit_rate":16},"custom_parameters":{"campaign_id":"12345"}}}"#;
    let start = parse_start(anonymous).unwrap();
    assert_eq!((start.stream_id.as_str(), start.call_id.as_str()), ("", "abc123"));
    assert_eq!(start.media_format, l16(8000));
    assert_eq!(start.custom_parameters, pairs(&[("campaign_id", "12345")]));
    assert_eq!(parse(r#"{"event":"start"}"#), Err(ProtocolError::MissingField("start")));
    assert_eq!(parse(r#"{"event":"start","start":"x"}"#), Err(ProtocolError::WrongType("start")));
}

#[test]
fn media_formats_and_the_default_rate() {
    let format = |fields: &str| parse_start(&start_with(fields)).map(|s| s.media_format);
    let mulaw = MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 };
    // No format: PCM at Exotel's default rate, or at the rate the host read from the URL.
    assert_eq!(format(""), Ok(l16(8000)));
    let mut url_16k = ExotelDialect::with_sample_rate(16_000);
    assert_eq!(parse_start_with(&mut url_16k, &start_with("")).map(|s| s.media_format), Ok(l16(16_000)));
    let mut url_24k = ExotelDialect::with_sample_rate(24_000);
    let no_rate = start_with(r#""media_format":{"encoding":"audio/x-raw"}"#);
    assert_eq!(parse_start_with(&mut url_24k, &no_rate).map(|s| s.media_format), Ok(l16(24_000)));
    // The start's own rate wins over the default.
    let named = start_with(r#""media_format":{"encoding":"audio/x-raw","sample_rate":"16000"}"#);
    assert_eq!(parse_start_with(&mut url_24k, &named).map(|s| s.media_format), Ok(l16(16_000)));
    for (fields, expected) in [
        (r#""media_format":{"encoding":"audio/x-raw","sample_rate":"24000","bit_rate":"16"}"#, l16(24_000)),
        (r#""media_format":{"encoding":"audio/x-raw","sample_rate":24000}"#, l16(24_000)),
        (
            r#""media_format":{"encoding":"audio/x-raw","sample_rate":"16000Hz","bit_rate":"16kbps"}"#,
            l16(16_000),
        ),
        (r#""media_format":{"encoding":"linear16","sample_rate":8000,"bit_rate":16}"#, l16(8000)),
        (r#""media_format":{"encoding":"audio/L16;rate=16000"}"#, l16(16_000)),
        (r#""media_format":{"sample_rate":"16000"}"#, l16(16_000)),
        (r#""media_format":{"encoding":"audio/x-mulaw;rate=8000"}"#, mulaw),
        (r#""media_format":{"encoding":"MULAW","sample_rate":"8000"}"#, mulaw),
        (r#""media_format":null"#, l16(8000)),
    ] {
        assert_eq!(format(fields), Ok(expected), "{fields}");
    }
    for codec in ["audio/x-alaw", "opus", "audio/G722", ""] {
        let fields = format!(r#""media_format":{{"encoding":"{codec}","sample_rate":"8000"}}"#);
        assert_eq!(format(&fields), Err(ProtocolError::UnsupportedFormat), "{codec}");
    }
    for rate in ["\"\"", "\"8k\"", "\"0\"", "-8000", "8000.5", "\"4294967296\"", "[]"] {
        let fields = format!(r#""media_format":{{"encoding":"audio/x-raw","sample_rate":{rate}}}"#);
        assert_eq!(
            format(&fields),
            Err(ProtocolError::WrongType("start.media_format.sample_rate")),
            "{rate}"
        );
    }
    assert_eq!(
        format(r#""media_format":{"encoding":"audio/l16;rate=x"}"#),
        Err(ProtocolError::WrongType("start.media_format.encoding"))
    );
    assert_eq!(
        format(r#""media_format":{"encoding":7}"#),
        Err(ProtocolError::WrongType("start.media_format.encoding"))
    );
    assert_eq!(
        format(r#""media_format":"audio/x-raw""#),
        Err(ProtocolError::WrongType("start.media_format"))
    );
}

#[test]
fn custom_parameters_in_every_form() {
    let custom = |value: &str| {
        parse_start(&start_with(&format!(r#""custom_parameters":{value}"#))).map(|s| s.custom_parameters)
    };
    assert_eq!(custom(r#"{"z":"1","a":2,"m":true}"#), Ok(pairs(&[("z", "1"), ("a", "2"), ("m", "true")])));
    // Pipecat's default is an empty string.
    assert_eq!(custom(r#""""#), Ok(Vec::new()));
    assert_eq!(custom("null"), Ok(Vec::new()));
    assert_eq!(custom(r#""a=1&b=two""#), Ok(pairs(&[("a", "1"), ("b", "two")])));
    assert_eq!(custom(r#""{\"a\":\"1\"}""#), Ok(pairs(&[("a", "1")])));
    for bad in ["7", "[]", r#"{"a":null}"#, r#"{"a":{}}"#] {
        assert_eq!(custom(bad), Err(ProtocolError::WrongType("start.custom_parameters")), "{bad}");
    }
}

#[test]
fn numbers_may_be_strings_or_numbers() {
    let payload = reference_base64(&[1, 2]);
    for message in [
        format!(
            r#"{{"event":"media","sequence_number":"3","media":{{"chunk":"2","timestamp":"200","payload":"{payload}"}}}}"#
        ),
        format!(
            r#"{{"event":"media","sequence_number":3,"media":{{"chunk":2,"timestamp":200,"payload":"{payload}"}}}}"#
        ),
    ] {
        assert_eq!(
            parse(&message),
            Ok(Inbound::Media(MediaFrame {
                sequence: Some(3),
                chunk: Some(2),
                timestamp_ms: 0,
                track: Track::Inbound
            }))
        );
    }
    for (field, message) in [
        (
            "sequence_number",
            format!(r#"{{"event":"media","sequence_number":"x","media":{{"payload":"{payload}"}}}}"#),
        ),
        ("media.chunk", format!(r#"{{"event":"media","media":{{"chunk":-2,"payload":"{payload}"}}}}"#)),
        (
            "media.timestamp",
            format!(r#"{{"event":"media","media":{{"timestamp":"2.0","payload":"{payload}"}}}}"#),
        ),
        ("media.track", format!(r#"{{"event":"media","media":{{"track":"both","payload":"{payload}"}}}}"#)),
    ] {
        assert_eq!(parse(&message), Err(ProtocolError::WrongType(field)), "{message}");
    }
    // Timestamps count from the stream's first accepted media.
    let mut dialect = ExotelDialect::new();
    for (timestamp, expected) in [(1_234_567_890u64, 0u64), (1_234_567_990, 100), (1_234_567_000, 0)] {
        let message =
            format!(r#"{{"event":"media","media":{{"timestamp":"{timestamp}","payload":"{payload}"}}}}"#);
        let (result, _) = parse_with(&mut dialect, &message, 2);
        assert!(matches!(result, Ok(Inbound::Media(f)) if f.timestamp_ms == expected), "{result:?}");
    }
}

#[test]
fn every_dtmf_digit_and_no_other() {
    for digit in "0123456789*#ABCD".bytes() {
        let message = DTMF.replace(r#""digit": "5""#, &format!(r#""digit": "{}""#, digit as char));
        assert_eq!(parse(&message), Ok(Inbound::Dtmf { sequence: Some(7), digit, duration_ms: Some(100) }));
    }
    for bad in ["\"a\"", "\"55\"", "\"\"", "5", "null"] {
        let message = DTMF.replace(r#""digit": "5""#, &format!(r#""digit": {bad}"#));
        let expected = if bad == "null" {
            ProtocolError::MissingField("dtmf.digit")
        } else {
            ProtocolError::WrongType("dtmf.digit")
        };
        assert_eq!(parse(&message), Err(expected), "{bad}");
    }
}

#[test]
fn malformed_and_wrong_messages() {
    let cases: Vec<(String, ProtocolError)> = vec![
        ("".into(), ProtocolError::MalformedJson),
        (r#"{"event":"media""#.into(), ProtocolError::MalformedJson),
        (r#"{"event":"stop"}x"#.into(), ProtocolError::MalformedJson),
        ("\"stop\"".into(), ProtocolError::MalformedJson),
        (r#"{"event":"stop","stream_sid":"a","stream_sid":"a"}"#.into(), ProtocolError::MalformedJson),
        (r#"{"sequence_number":"1"}"#.into(), ProtocolError::MissingField("event")),
        (r#"{"event":["media"]}"#.into(), ProtocolError::WrongType("event")),
        (r#"{"event":"playAudio"}"#.into(), ProtocolError::UnknownEvent),
        (r#"{"event":"media"}"#.into(), ProtocolError::MissingField("media")),
        (r#"{"event":"media","media":[]}"#.into(), ProtocolError::WrongType("media")),
        (r#"{"event":"media","media":{"chunk":"1"}}"#.into(), ProtocolError::MissingField("media.payload")),
        (r#"{"event":"media","media":{"payload":"A==="}}"#.into(), ProtocolError::InvalidBase64),
        (r#"{"event":"media","media":{"payload":"AA AA"}}"#.into(), ProtocolError::InvalidBase64),
        (r#"{"event":"dtmf"}"#.into(), ProtocolError::MissingField("dtmf")),
        (r#"{"event":"mark"}"#.into(), ProtocolError::MissingField("mark")),
        (r#"{"event":"mark","mark":{}}"#.into(), ProtocolError::MissingField("mark.name")),
        (r#"{"event":"mark","mark":{"name":1}}"#.into(), ProtocolError::WrongType("mark.name")),
        (r#"{"event":"stop","stream_sid":1}"#.into(), ProtocolError::WrongType("stream_sid")),
        (
            r#"{"event":"stop","stream_sid":"a","streamSid":"b"}"#.into(),
            ProtocolError::WrongType("stream_sid"),
        ),
    ];
    for (message, expected) in &cases {
        assert_eq!(parse(message), Err(*expected), "{message}");
    }
    let mut dialect = ExotelDialect::new();
    let mut buffer = PayloadBuffer::with_limit(16);
    assert_eq!(
        dialect.parse(MEDIA.as_bytes(), MessageKind::Binary, &mut buffer),
        Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary))
    );
    assert_eq!(
        dialect.parse(b"{\"event\":\"\xc3\"}", MessageKind::Text, &mut buffer),
        Err(ProtocolError::MalformedJson)
    );
    assert!(!dialect.may_start_or_stop(START.as_bytes(), MessageKind::Binary));
    // One byte over the limit: refused before decoding, and the buffer left empty.
    let (result, payload) = parse_with(&mut dialect, MEDIA, 3199);
    assert_eq!((result, payload.len()), (Err(ProtocolError::PayloadTooLarge), 0));
}

#[test]
fn after_start_messages_naming_another_stream_are_foreign() {
    let mut dialect = started_dialect(l16(8000));
    let clear = format!(r#"{{"event":"clear","stream_sid":"{STREAM_SID}"}}"#);
    for message in [MEDIA, DTMF, MARK, STOP, clear.as_str()] {
        assert!(parse_with(&mut dialect, message, 3200).0.is_ok(), "{message}");
        let foreign = message.replace(STREAM_SID, OTHER_SID);
        assert_eq!(
            parse_with(&mut dialect, &foreign, 3200).0,
            Err(ProtocolError::ForeignStream),
            "{foreign}"
        );
        let camel = foreign.replace("stream_sid", "streamSid");
        assert_eq!(parse_with(&mut dialect, &camel, 3200).0, Err(ProtocolError::ForeignStream), "{camel}");
        let anonymous = message.replace(&format!(r#""stream_sid": "{STREAM_SID}""#), r#""stream_sid": null"#);
        assert!(parse_with(&mut dialect, &anonymous, 3200).0.is_ok(), "{anonymous}");
    }
    // `connected` and `start` are the session's to judge.
    let connected = format!(r#"{{"event":"connected","stream_sid":"{OTHER_SID}"}}"#);
    assert_eq!(parse_with(&mut dialect, &connected, 0).0, Ok(Inbound::Connected));
    assert!(parse_with(&mut dialect, &START.replace(STREAM_SID, OTHER_SID), 0).0.is_ok());
    // A stream that named no id refuses nothing as foreign.
    let mut anonymous = ExotelDialect::new();
    let start = parse_start_with(&mut anonymous, &start_with("")).unwrap();
    anonymous.on_start(&start).unwrap();
    assert!(parse_with(&mut anonymous, &MEDIA.replace(STREAM_SID, OTHER_SID), 3200).0.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Writers

/// `value` without `media.chunk` and `media.timestamp`, which Trunkline adds to the documented
/// shape.
fn documented_part(mut value: Value) -> Value {
    let media = value["media"].as_object_mut().expect("media object");
    media.remove("chunk");
    media.remove("timestamp");
    value
}

#[test]
fn media_is_the_documented_shape_plus_chunk_and_timestamp_strings() {
    let dialect = started_dialect(l16(8000));
    let pcm = fixture_pattern(9, 3200);
    let mut out = b"stale".to_vec();
    assert_eq!(dialect.write_media(&pcm, &mut out), MessageKind::Text);
    let reference: Value = serde_json::from_str(include_str!("../fixtures/exotel/out_media.json")).unwrap();
    assert_eq!(documented_part(json_of(&out)), reference);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!(
            r#"{{"event":"media","stream_sid":"{STREAM_SID}","media":{{"chunk":"1","timestamp":"0","payload":"{}"}}}}"#,
            reference_base64(&pcm)
        )
    );
    assert!(out.len() <= dialect.max_media_message_len(3200));
    // Chunks count from 1; timestamps are the ms of audio sent before (200 ms per 3200 B at 8 kHz).
    for (chunk, timestamp) in [("2", "200"), ("3", "400")] {
        dialect.write_media(&pcm, &mut out);
        let value = json_of(&out);
        assert_eq!(
            (&value["media"]["chunk"], &value["media"]["timestamp"]),
            (&json!(chunk), &json!(timestamp))
        );
    }
    // At 24 kHz, 9600 bytes are 200 ms.
    let dialect = started_dialect(l16(24_000));
    for (chunk, timestamp) in [("1", "0"), ("2", "200"), ("3", "400")] {
        dialect.write_media(&fixture_pattern(1, 9600), &mut out);
        let value = json_of(&out);
        assert_eq!(
            (&value["media"]["chunk"], &value["media"]["timestamp"]),
            (&json!(chunk), &json!(timestamp))
        );
    }
}

#[test]
fn mark_and_clear_are_exactly_the_documented_shapes() {
    let dialect = started_dialect(l16(8000));
    let mut out = Vec::new();
    assert_eq!(dialect.write_mark("utt-12", &mut out), MessageKind::Text);
    let reference: Value = serde_json::from_str(include_str!("../fixtures/exotel/out_mark.json")).unwrap();
    assert_eq!(json_of(&out), reference);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!(r#"{{"event":"mark","stream_sid":"{STREAM_SID}","mark":{{"name":"utt-12"}}}}"#)
    );
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    let reference: Value = serde_json::from_str(include_str!("../fixtures/exotel/out_clear.json")).unwrap();
    assert_eq!(json_of(&out), reference);
    for name in ["", "quote\"back\\slash", "ctl\n\u{0}", "ünï😀"] {
        dialect.write_mark(name, &mut out);
        assert_eq!(json_of(&out), json!({"event": "mark", "stream_sid": STREAM_SID, "mark": {"name": name}}));
    }
    // Before `start`: an empty id.
    ExotelDialect::new().write_clear(&mut out);
    assert_eq!(json_of(&out), json!({"event": "clear", "stream_sid": ""}));
}

#[test]
fn outbound_messages_spell_the_id_as_the_start_did() {
    let camel = START.replace("stream_sid", "streamSid");
    let top_camel = format!(r#"{{"event":"start","streamSid":"{STREAM_SID}","start":{{}}}}"#);
    for (start, key) in [(START.to_owned(), "stream_sid"), (camel, "streamSid"), (top_camel, "streamSid")] {
        let mut dialect = ExotelDialect::new();
        let parsed = parse_start_with(&mut dialect, &start).unwrap();
        dialect.on_start(&parsed).unwrap();
        let mut out = Vec::new();
        dialect.write_clear(&mut out);
        assert_eq!(json_of(&out), json!({"event": "clear", key: STREAM_SID}), "{start}");
        dialect.write_mark("m", &mut out);
        assert_eq!(json_of(&out)[key], STREAM_SID);
        dialect.write_media(&[0; 320], &mut out);
        assert_eq!(json_of(&out)[key], STREAM_SID);
        assert!(out.len() <= dialect.max_media_message_len(320));
    }
    // A duplicate `start` the session refuses (no `on_start`) does not change the spelling.
    let mut dialect = ExotelDialect::new();
    let parsed = parse_start_with(&mut dialect, START).unwrap();
    dialect.on_start(&parsed).unwrap();
    parse_start_with(&mut dialect, &START.replace("stream_sid", "streamSid")).unwrap();
    let mut out = Vec::new();
    dialect.write_clear(&mut out);
    assert_eq!(json_of(&out), json!({"event": "clear", "stream_sid": STREAM_SID}));
}

#[test]
fn write_media_round_trips_and_stays_within_the_bound() {
    let dialect = started_dialect(l16(16_000));
    let mut out = Vec::new();
    for len in (0..=700).chain([6400, 9600]) {
        let audio: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
        dialect.write_media(&audio, &mut out);
        assert!(out.len() <= dialect.max_media_message_len(len), "{len}");
        assert_eq!(reference_unbase64(json_of(&out)["media"]["payload"].as_str().unwrap()), audio);
    }
    assert_eq!(ExotelDialect::new().max_media_message_len(usize::MAX), usize::MAX);
}

#[test]
fn capabilities_are_exotels() {
    let caps = ExotelDialect::new().capabilities();
    assert_eq!(caps.framing, Framing::Messages);
    assert!(!caps.timestamps);
    assert_eq!(caps.frame_ms, 100);
    assert_eq!(caps.max_lead_ms, None);
    assert_eq!(caps.confirmation, Confirmation::Echo { on_clear: true });
    assert_eq!(caps.clear, ClearKind::Message);
    let mut dialect = ExotelDialect::new();
    let mut start = parse_start(START).unwrap();
    start.media_format.encoding = AudioEncoding::Alaw;
    assert_eq!(dialect.on_start(&start), Err(ProtocolError::UnsupportedFormat));
    start.media_format = MediaFormat { channels: 2, ..l16(8000) };
    assert_eq!(dialect.on_start(&start), Err(ProtocolError::UnsupportedFormat));
    // At 1 MHz, 100 ms is 200 KB: no chunk can be both 100 ms and at most 100 KB.
    start.media_format = l16(1_000_000);
    assert_eq!(dialect.on_start(&start), Err(ProtocolError::UnsupportedFormat));
    start.media_format = l16(0);
    assert_eq!(dialect.on_start(&start), Err(ProtocolError::UnsupportedFormat));
    // A refused start leaves the frame length as it was.
    assert_eq!(dialect.capabilities().frame_ms, 100);
}

// ---------------------------------------------------------------------------------------------
// Allocation

#[test]
fn parsing_media_and_writing_allocate_nothing() {
    let messages: Vec<String> = (0..300u64)
        .map(|i| {
            let len = [3200, 6400, 9600, 2][i as usize % 4];
            let message = media_message(i + 2, &fixture_pattern(i, len));
            if i % 2 == 0 { message.replace("stream_sid", "streamSid") } else { message }
        })
        .collect();
    let mut dialect = started_dialect(l16(24_000));
    let mut payload = PayloadBuffer::with_limit(9600);
    for message in &messages {
        let (allocations, result) =
            allocations_in(|| dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload).map(|_| ()));
        assert_eq!(result, Ok(()));
        assert_eq!(allocations, 0);
    }
    let mut out = Vec::with_capacity(dialect.max_media_message_len(9600));
    let frame = fixture_pattern(1, 9600);
    let (allocations, ()) = allocations_in(|| {
        dialect.write_media(&frame, &mut out);
        dialect.write_mark("trunkline-sync-1", &mut out);
        dialect.write_clear(&mut out);
    });
    assert_eq!(allocations, 0);
}

// ---------------------------------------------------------------------------------------------
// Through a session

/// A session sized for Exotel's chunks at `rate` (up to 200 ms: see the dialect's documentation),
/// with the agent reading and playing at the carrier's rate so audio passes untouched.
fn exotel_config(rate: u32) -> SessionConfig {
    let chunk = rate as usize / 5 * 2;
    let message = chunk.div_ceil(3) * 4 + 512;
    SessionConfig {
        agent_rate: rate,
        play_rate: rate,
        max_payload_bytes: chunk,
        max_message_bytes: message,
        inbound_ring_bytes: 4 * message,
        // The default outbound ring (8 KiB) holds a 24 kHz chunk's message; a larger play ring
        // takes a whole reply of a few chunks in one `play`.
        play_ring_bytes: 64 * 1024,
        ..Default::default()
    }
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

fn start_at(rate: u32) -> String {
    START.replace(r#""sample_rate": "8000""#, &format!(r#""sample_rate": "{rate}""#))
}

fn le_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn caller_pcm_at_every_rate_reaches_an_agent_at_that_rate_sample_for_sample() {
    for rate in [8000, 16_000, 24_000] {
        let clock = ManualClock::new();
        let (_engine, mut s) = open_with(&clock, &exotel_config(rate), ExotelDialect::new());
        s.push_text(CONNECTED).unwrap();
        s.push_text(&start_at(rate)).unwrap();
        let per_chunk = rate as usize / 10;
        let caller = ramp(per_chunk * 10, rate as usize);
        for (i, chunk) in caller.chunks(per_chunk).enumerate() {
            s.push_text(&media_message(i as u64 + 2, &le_bytes(chunk))).unwrap();
        }
        assert_eq!(read_all(&mut s), caller, "{rate}");
        s.push_text(DTMF).unwrap();
        s.push_text(STOP).unwrap();
        let evs = events(&mut s);
        assert_eq!(evs[0], Event::Connected);
        let Event::Started(start) = &evs[1] else { panic!("{evs:?}") };
        assert_eq!(start.media_format, l16(rate));
        assert_eq!(start.custom_parameters, pairs(&[("key1", "value1")]));
        // Ten 100 ms chunks: the key press is stamped at one second.
        assert!(
            evs.contains(&Event::Dtmf { digit: '5', stream_ms: 1000, duration_ms: Some(100) }),
            "{evs:?}"
        );
        assert_eq!(evs.last(), Some(&Event::Stopped));
        assert_eq!(errors(&evs), [], "{rate}");
    }
}

/// A G.711 µ-law encoder written from the standard's reference code (14-bit magnitude, bias 33,
/// eight segments), independent of the engine's table.
fn reference_ulaw(sample: i16) -> u8 {
    const SEGMENT_ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    let value = i32::from(sample) >> 2;
    let (magnitude, mask) = if value < 0 { (-value, 0x7F) } else { (value, 0xFF) };
    let biased = magnitude.min(8159) + 33;
    match SEGMENT_ENDS.iter().position(|&end| biased <= end) {
        Some(segment) => (((segment << 4) as i32 | ((biased >> (segment + 1)) & 0xF)) ^ mask) as u8,
        None => (0x7F ^ mask) as u8,
    }
}

/// `pcm` as the carrier takes it in `encoding`, by the independent encoders above.
fn encoded(pcm: &[i16], encoding: AudioEncoding) -> Vec<u8> {
    match encoding {
        AudioEncoding::Mulaw => pcm.iter().map(|&s| reference_ulaw(s)).collect(),
        _ => le_bytes(pcm),
    }
}

#[test]
fn the_reference_ulaw_encoder_matches_g711() {
    // Codes from CPython's `audioop.lin2ulaw` (the same reference): silence, the smallest
    // negative, full scale either way, and a segment's first code.
    let samples = [0, -1, i16::MAX, i16::MIN, 124];
    assert_eq!(samples.map(reference_ulaw), [0xFF, 0x7E, 0x80, 0x00, 0xEF]);
}

/// Exotel's four stream formats and the chunk each must get: the shortest whole number of 20 ms
/// that is at least 100 ms and at least 3200 bytes, and a multiple of 320 bytes.
const CHUNKS: [(AudioEncoding, u32, u32); 4] = [
    (AudioEncoding::L16, 8000, 200),
    (AudioEncoding::L16, 16_000, 100),
    (AudioEncoding::L16, 24_000, 100),
    (AudioEncoding::Mulaw, 8000, 400),
];

fn start_in(encoding: AudioEncoding, rate: u32) -> String {
    let name = if encoding == AudioEncoding::Mulaw { "audio/x-mulaw" } else { "audio/x-raw" };
    start_at(rate).replace("audio/x-raw", name)
}

#[test]
fn chunk_lengths_are_declared_once_the_format_is_known() {
    for (encoding, rate, ms) in CHUNKS {
        let format = MediaFormat { encoding, sample_rate: rate, channels: 1 };
        assert_eq!(exotel::chunk_ms(format), Some(ms), "{format:?}");
        let mut dialect = ExotelDialect::new();
        assert_eq!(dialect.capabilities().frame_ms, 100, "before start");
        let start = parse_start_with(&mut dialect, &start_in(encoding, rate)).unwrap();
        assert_eq!(start.media_format, format);
        dialect.on_start(&start).unwrap();
        assert_eq!(dialect.capabilities().frame_ms, ms, "{format:?}");
        // Only the frame length changes.
        let before = ExotelDialect::new().capabilities();
        assert_eq!(dialect.capabilities(), Capabilities { frame_ms: ms, ..before });
    }
}

/// Every chunk, whatever cuts it, is exactly one chunk long at every format: a reply of 1.5
/// chunks, a mark, then 2.25 chunks. The mark cuts the second chunk (half of it padding), and
/// the last chunk is three quarters padding.
#[test]
fn every_outbound_chunk_follows_exotels_byte_rule_at_every_format() {
    for (encoding, rate, ms) in CHUNKS {
        let format = format!("{encoding:?} {rate}");
        let clock = ManualClock::new();
        let (_engine, mut s) = open_with(&clock, &exotel_config(rate), ExotelDialect::new());
        s.push_text(&start_in(encoding, rate)).unwrap();
        let chunk_samples = (rate / 1000 * ms) as usize;
        let chunk_bytes = chunk_samples * encoding.bytes_per_sample();
        let first = ramp(chunk_samples * 3 / 2, 3);
        let second = ramp(chunk_samples * 9 / 4, 5);
        assert_eq!(s.play(&first, rate).unwrap(), first.len());
        s.mark("cut").unwrap();
        assert_eq!(s.play(&second, rate).unwrap(), second.len());
        let mut sent = Vec::new();
        let mut order = Vec::new();
        let mut stamps = Vec::new();
        for pass in 0..10 {
            let messages = outbound(&mut s);
            if pass == 0 {
                // The pacer keeps two chunks at Exotel (more than the session's 100 ms lead).
                let media = messages.iter().filter(|m| m["event"] == "media").count();
                assert_eq!(media, 2, "{format}: the lead is two chunks");
            }
            for message in messages {
                if message["event"] == "mark" {
                    let name = message["mark"]["name"].as_str().unwrap();
                    if !name.starts_with("trunkline-sync-") {
                        order.push(format!("mark:{name}"));
                    }
                    continue;
                }
                assert_eq!(message["event"], "media", "{format}");
                let payload = reference_unbase64(message["media"]["payload"].as_str().unwrap());
                // Exotel's rule, literally: at least 3.2 KB, a multiple of 320 B, at most 100 KB;
                // and at least 100 ms.
                assert!(payload.len() >= 3200, "{format}: {} B", payload.len());
                assert_eq!(payload.len() % 320, 0, "{format}");
                assert!(payload.len() <= 100_000, "{format}");
                assert_eq!(payload.len(), chunk_bytes, "{format}: exactly {ms} ms");
                stamps.push(message["media"]["timestamp"].as_str().unwrap().parse::<u32>().unwrap());
                order.push("media".to_owned());
                sent.push(payload);
            }
            clock.advance(Duration::from_millis(u64::from(ms)));
            s.read_audio(&mut [0; 16]);
        }
        assert_eq!(order, ["media", "media", "mark:cut", "media", "media", "media"], "{format}");
        assert_eq!(stamps, (0..5).map(|i| i * ms).collect::<Vec<_>>(), "{format}");
        let silence = encoded(&[0], encoding)[0];
        let (first_audio, second_audio) = (encoded(&first, encoding), encoded(&second, encoding));
        // Compared by the position of the first difference: the buffers are kilobytes long.
        let difference = |a: &[u8], b: &[u8]| a.iter().zip(b).position(|(x, y)| x != y);
        let before_mark = [sent[0].as_slice(), &sent[1]].concat();
        assert_eq!(difference(&before_mark, &first_audio), None, "{format}: bit-exact");
        assert!(before_mark[first_audio.len()..].iter().all(|&b| b == silence), "{format}: mark padding");
        assert_eq!(before_mark.len() - first_audio.len(), chunk_bytes / 2, "{format}");
        let after_mark = sent[2..].concat();
        assert_eq!(difference(&after_mark, &second_audio), None, "{format}: bit-exact");
        assert!(after_mark[second_audio.len()..].iter().all(|&b| b == silence), "{format}: tail padding");
        assert_eq!(after_mark.len() - second_audio.len(), chunk_bytes * 3 / 4, "{format}");
    }
}

/// A streaming TTS: its first chunk's worth at once, then 20 ms pieces twice as fast as real
/// time (every 10 ms). Exotel plays 200-400 ms chunks, and the pacer keeps two of them there: a chunk only
/// partly filled goes out padded with silence when the carrier is about to run dry, not as soon
/// as the chunk before has begun to play (then every chunk after the first was sent padded, a
/// gap in mid-sentence each time). The reply reaches Exotel whole, the last chunk alone padded.
#[test]
fn a_reply_streamed_faster_than_real_time_is_sent_without_silence_inside_it() {
    for (encoding, rate, ms) in CHUNKS {
        let format = format!("{encoding:?} {rate}");
        let clock = ManualClock::new();
        let (_engine, mut s) = open_with(&clock, &exotel_config(rate), ExotelDialect::new());
        s.push_text(&start_in(encoding, rate)).unwrap();
        let per_ms = (rate / 1000) as usize;
        let reply = ramp(per_ms * 3_000, 7);
        let mut queued = per_ms * ms as usize;
        assert_eq!(s.play(&reply[..queued], rate).unwrap(), queued);
        let mut sent = Vec::new();
        for now_ms in 0..6_000u64 {
            if queued < reply.len() && now_ms % 10 == 0 && now_ms > 0 {
                let piece = &reply[queued..(queued + per_ms * 20).min(reply.len())];
                assert_eq!(s.play(piece, rate).unwrap(), piece.len(), "{format}");
                queued += piece.len();
            }
            for message in outbound(&mut s) {
                if message["event"] == "media" {
                    sent.extend(reference_unbase64(message["media"]["payload"].as_str().unwrap()));
                }
            }
            clock.advance(Duration::from_millis(1));
            s.read_audio(&mut [0; 16]);
        }
        let chunk_bytes = (rate / 1000 * ms) as usize * encoding.bytes_per_sample();
        let want = encoded(&reply, encoding);
        assert_eq!(sent.len(), want.len().next_multiple_of(chunk_bytes), "{format}: the reply and its tail");
        let first_difference = sent.iter().zip(&want).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "{format}: silence inside the reply");
        assert_eq!(s.stats().frames_padded, u64::from(!want.len().is_multiple_of(chunk_bytes)), "{format}");
    }
}

/// Samples in one chunk at 8 kHz L16 (200 ms: 3200 B, Exotel's minimum).
const CHUNK_8K: usize = 1600;

#[test]
fn marks_echoed_after_a_clear_are_cleared_unless_the_caller_had_heard_them() {
    let clock = ManualClock::new();
    let config = SessionConfig { sync_mark_interval_ms: 0, ..exotel_config(8000) };
    let (_engine, mut s) = open_with(&clock, &config, ExotelDialect::new());
    s.push_text(START).unwrap();
    events(&mut s);
    // A 200 ms chunk, "heard", a chunk, "unheard", two seconds, "queued".
    s.play(&[1000; CHUNK_8K], 8000).unwrap();
    s.mark("heard").unwrap();
    s.play(&[2000; CHUNK_8K], 8000).unwrap();
    s.mark("unheard").unwrap();
    s.play(&[3000; 10 * CHUNK_8K], 8000).unwrap();
    s.mark("queued").unwrap();
    // The lead is two 200 ms chunks: each followed by its mark.
    let names = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .map(|m| match m["event"].as_str().unwrap() {
                "mark" => format!("mark:{}", m["mark"]["name"].as_str().unwrap()),
                other => other.to_owned(),
            })
            .collect()
    };
    let first = outbound(&mut s);
    assert_eq!(names(&first), ["media", "mark:heard", "media", "mark:unheard"]);
    assert_eq!(first[1], json!({"event": "mark", "stream_sid": STREAM_SID, "mark": {"name": "heard"}}));

    // 300 ms later the caller has heard "heard" (at 200 ms) but not "unheard" (at 400 ms).
    clock.advance(Duration::from_millis(300));
    s.read_audio(&mut [0; 16]);
    assert_eq!(names(&outbound(&mut s)), ["media"]);
    s.interrupt().unwrap();
    // Only the mark never sent is cleared now: Exotel is taken to echo the ones it held.
    assert_eq!(
        events(&mut s),
        [Event::Interrupted { played_ms: 300 }, Event::MarkCleared { name: "queued".into() }]
    );
    assert_eq!(outbound(&mut s), [json!({"event": "clear", "stream_sid": STREAM_SID})]);
    // The echoes: the one heard is played, the one the clear dropped is cleared.
    s.push_text(&MARK.replace("utt-12", "heard")).unwrap();
    s.push_text(&MARK.replace("utt-12", "unheard")).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::MarkPlayed { name: "heard".into(), played_ms: 200 },
            Event::MarkCleared { name: "unheard".into() }
        ]
    );
    let stats = s.stats();
    assert_eq!((stats.marks_sent, stats.marks_played, stats.marks_cleared, stats.clears_sent), (2, 1, 2, 1));
}

/// A mark after less than a chunk of audio cuts the chunk, padded to 200 ms: the caller reaches
/// the mark only after the padding, and its position is the 100 ms of audio before it.
#[test]
fn a_mark_within_a_chunk_is_played_after_its_padding() {
    let clock = ManualClock::new();
    let config = SessionConfig { sync_mark_interval_ms: 0, ..exotel_config(8000) };
    let (_engine, mut s) = open_with(&clock, &config, ExotelDialect::new());
    s.push_text(START).unwrap();
    events(&mut s);
    s.play(&[1000; CHUNK_8K / 2], 8000).unwrap();
    s.mark("half").unwrap();
    let sent = outbound(&mut s);
    assert_eq!(sent.len(), 2);
    let payload = reference_unbase64(sent[0]["media"]["payload"].as_str().unwrap());
    assert_eq!(payload.len(), 3200);
    assert!(payload[1600..].iter().all(|&b| b == 0));
    clock.advance(Duration::from_millis(200));
    s.read_audio(&mut [0; 16]);
    s.push_text(&MARK.replace("utt-12", "half")).unwrap();
    assert_eq!(events(&mut s), [Event::MarkPlayed { name: "half".into(), played_ms: 100 }]);
}

#[test]
fn cleared_marks_exotel_does_not_echo_are_reported_cleared_and_counted() {
    let clock = ManualClock::new();
    let config = SessionConfig { sync_mark_interval_ms: 0, ..exotel_config(8000) };
    let (_engine, mut s) = open_with(&clock, &config, ExotelDialect::new());
    s.push_text(START).unwrap();
    events(&mut s);
    s.play(&[1000; CHUNK_8K], 8000).unwrap();
    s.mark("first").unwrap();
    s.play(&[2000; CHUNK_8K], 8000).unwrap();
    s.mark("second").unwrap();
    assert_eq!(outbound(&mut s).len(), 4);
    // Both marks are still ahead of the caller when the host interrupts.
    clock.advance(Duration::from_millis(50));
    s.read_audio(&mut [0; 16]);
    s.interrupt().unwrap();
    assert_eq!(events(&mut s), [Event::Interrupted { played_ms: 50 }]);
    // The carrier echoes neither. A mark sent after the clear is echoed: the two before it
    // never will be, and are settled in send order before it.
    s.play(&[3000; CHUNK_8K], 8000).unwrap();
    s.mark("third").unwrap();
    outbound(&mut s);
    clock.advance(Duration::from_millis(200));
    s.read_audio(&mut [0; 16]);
    s.push_text(&MARK.replace("utt-12", "third")).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::MarkCleared { name: "first".into() },
            Event::MarkCleared { name: "second".into() },
            Event::MarkPlayed { name: "third".into(), played_ms: 200 }
        ]
    );
    // With no later echo, a second after the clear settles what it flushed.
    s.play(&[4000; CHUNK_8K], 8000).unwrap();
    s.mark("fourth").unwrap();
    outbound(&mut s);
    s.interrupt().unwrap();
    // The utterance that began with "third" had played 200 ms.
    assert_eq!(events(&mut s), [Event::Interrupted { played_ms: 200 }]);
    clock.advance(Duration::from_millis(990));
    s.read_audio(&mut [0; 16]);
    assert_eq!(events(&mut s), []);
    clock.advance(Duration::from_millis(20));
    s.read_audio(&mut [0; 16]);
    assert_eq!(events(&mut s), [Event::MarkCleared { name: "fourth".into() }]);
    let stats = s.stats();
    assert_eq!((stats.marks_cleared, stats.cleared_marks_unechoed), (3, 3));
    // An echo arriving after that is not a mark the session knows.
    s.push_text(&MARK.replace("utt-12", "fourth")).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::UnknownMark]);
}

#[test]
fn the_socket_closing_ends_the_stream_and_clears_pending_marks() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &exotel_config(8000), ExotelDialect::new());
    s.push_text(START).unwrap();
    s.push_text(MEDIA).unwrap();
    // Half a chunk, cut by the mark: one padded chunk, then the mark.
    s.play(&[500; CHUNK_8K / 2], 8000).unwrap();
    s.mark("pending").unwrap();
    assert_eq!(outbound(&mut s).len(), 2);
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert_eq!(evs[1..], [Event::MarkCleared { name: "pending".into() }, Event::Stopped]);
    assert_eq!(read_all(&mut s).len(), 1600);
    s.push_text(MARK).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::AfterStop]);
}

#[test]
fn the_url_rate_reaches_a_start_that_names_none() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &exotel_config(16_000), ExotelDialect::with_sample_rate(16_000));
    s.push_text(&start_with(&format!(r#""stream_sid":"{STREAM_SID}""#))).unwrap();
    let caller = ramp(1600 * 3, 11);
    for (i, chunk) in caller.chunks(1600).enumerate() {
        s.push_text(&media_message(i as u64 + 2, &le_bytes(chunk))).unwrap();
    }
    assert_eq!(read_all(&mut s), caller);
    let evs = events(&mut s);
    assert!(matches!(&evs[0], Event::Started(start) if start.media_format == l16(16_000)), "{evs:?}");
    assert_eq!(errors(&evs), []);
}

/// An outbound ring too small for the stream's messages (a 16 kHz chunk's `media` is about
/// 4.4 KB) never had room for one: the call started and not a byte of the agent's audio was ever
/// sent. The start is refused instead, as its messages are over the size configured.
#[test]
fn a_stream_whose_messages_the_outbound_ring_cannot_hold_is_refused_at_its_start() {
    let clock = ManualClock::new();
    let config = SessionConfig { outbound_ring_bytes: 4096, ..exotel_config(16_000) };
    let (_engine, mut s) = open_with(&clock, &config, ExotelDialect::new());
    s.push_text(&start_at(16_000)).unwrap();
    let evs = events(&mut s);
    assert!(!evs.iter().any(|e| matches!(e, Event::Started(_))), "{evs:?}");
    assert_eq!(errors(&evs), [ProtocolError::MessageTooLarge]);
    // With the default ring, the same stream starts and its audio goes out.
    let (_engine, mut s) = open_with(&clock, &exotel_config(16_000), ExotelDialect::new());
    s.push_text(&start_at(16_000)).unwrap();
    s.play(&ramp(3200, 8), 16_000).unwrap();
    assert!(matches!(&events(&mut s)[..], [Event::Started(_), ..]));
    assert!(!outbound(&mut s).is_empty());
}

#[test]
fn default_session_limits_take_exotels_largest_chunks() {
    // The defaults are Twilio's (2 KiB of payload in 6 KiB messages); a session on Exotel takes
    // what the dialect says its largest chunk is: 200 ms at 24 kHz, untouched to a 24 kHz agent.
    // A larger chunk than that is still refused.
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 24_000, ..Default::default() };
    let (_engine, mut s) = open_with(&clock, &config, ExotelDialect::new());
    s.push_text(&start_at(24_000)).unwrap();
    let caller = ramp(4800 * 2, 5);
    for (i, chunk) in caller.chunks(4800).enumerate() {
        s.push_text(&media_message(i as u64 + 2, &le_bytes(chunk))).unwrap();
        assert_eq!(errors(&events(&mut s)), [], "chunk {i}");
    }
    assert_eq!(read_all(&mut s), caller);
    s.push_text(&media_message(9, &le_bytes(&ramp(4801, 6)))).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::PayloadTooLarge]);
}

#[test]
fn an_unsupported_codec_refuses_the_start() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_with(&clock, &exotel_config(8000), ExotelDialect::new());
    s.push_text(&START.replace("audio/x-raw", "audio/opus")).unwrap();
    s.push_text(MEDIA).unwrap();
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::UnsupportedFormat, ProtocolError::MediaBeforeStart]);
    // A foreign stream's stop never ends a started call.
    s.push_text(START).unwrap();
    s.push_text(&STOP.replace(STREAM_SID, OTHER_SID)).unwrap();
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::ForeignStream]);
    assert!(!evs.contains(&Event::Stopped));
}

/// A small outbound buffer still makes whole chunks: the queue holds a chunk and a play record
/// beside it. (With room for a 400 ms µ-law chunk and no more, a record of 256 ms waited for a
/// chunk to leave, which waited for the record: every chunk went out 256 ms of audio and 144 ms
/// of silence.)
#[test]
fn a_small_outbound_buffer_still_sends_whole_chunks_of_audio() {
    let clock = ManualClock::new();
    let config = SessionConfig { outbound_buffer_ms: 260, ..exotel_config(8000) };
    let (_engine, mut s) = open_with(&clock, &config, ExotelDialect::new());
    s.push_text(&start_in(AudioEncoding::Mulaw, 8000)).unwrap();
    let reply = vec![3000i16; 16_000]; // 2 s: five 400 ms chunks
    let mut taken = 0;
    for _ in 0..40 {
        if taken < reply.len() {
            taken += s.play(&reply[taken..], 8000).unwrap_or(0);
        }
        outbound(&mut s);
        clock.advance(Duration::from_millis(100));
        s.read_audio(&mut [0; 16]);
    }
    assert_eq!(taken, reply.len());
    let stats = s.stats();
    assert_eq!((stats.frames_out, stats.frames_padded), (5, 0), "{stats:?}");
}
