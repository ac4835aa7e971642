//! The Twilio Media Streams dialect against Twilio's documented messages (docs/dialects.md).
//!
//! Expectations are independent of the code under test: payloads are checked against byte patterns
//! the fixtures were generated from (with Python's `base64`), against RFC 4648 vectors and against a
//! small reference base64 encoder written here; written messages are re-parsed with
//! `serde_json::Value`. Allocations are counted per thread (the
//! test binary's allocator: `thread_allocations`).

use std::borrow::Cow;

use serde_json::json;
use trunkline::protocol::{
    AudioEncoding, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat, MediaFrame,
    MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track, TwilioDialect,
};

use crate::thread_allocations::allocations_in;

use crate::dialect_session::fixture_pattern;
use crate::wire::{json_of, reference_base64};

// ---------------------------------------------------------------------------------------------
// Helpers

const ACCOUNT_SID: &str = "ACa4c123b1612dd272d1371c17149d4395";
const CALL_SID: &str = "CA36b3216fdaeeb975729fae923d5a4fd1";
const STREAM_SID: &str = "MZ2aabfe228f219e9cb0eb53f16947ccf2";

fn parse_with_limit(message: &[u8], limit: usize) -> (Result<Inbound<'_>, ProtocolError>, Vec<u8>) {
    let mut dialect = TwilioDialect::new();
    let mut payload = PayloadBuffer::with_limit(limit);
    let result = dialect.parse(message, MessageKind::Text, &mut payload);
    (result, payload.as_slice().to_vec())
}

fn parse(message: &str) -> Result<Inbound<'_>, ProtocolError> {
    parse_with_limit(message.as_bytes(), 4096).0
}

fn media_message(payload_b64: &str) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"{payload_b64}"}},"streamSid":"{STREAM_SID}"}}"#
    )
}

fn started_dialect(stream_sid: &str) -> TwilioDialect {
    let mut dialect = TwilioDialect::new();
    dialect
        .on_start(&StreamStart {
            sequence: Some(1),
            account_id: ACCOUNT_SID.into(),
            stream_id: stream_sid.into(),
            call_id: CALL_SID.into(),
            tracks: vec![Track::Inbound],
            custom_parameters: Vec::new(),
            media_format: MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 },
        })
        .expect("Twilio takes any start");
    dialect
}

// ---------------------------------------------------------------------------------------------
// Real-shaped messages

#[test]
fn the_reference_encoder_matches_rfc_4648() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in vectors {
        assert_eq!(reference_base64(plain.as_bytes()), encoded);
    }
}

#[test]
fn connected_fixture() {
    assert_eq!(parse(include_str!("../fixtures/twilio_connected.json")), Ok(Inbound::Connected));
}

#[test]
fn start_fixture() {
    let expected = StreamStart {
        sequence: Some(1),
        account_id: ACCOUNT_SID.into(),
        stream_id: STREAM_SID.into(),
        call_id: CALL_SID.into(),
        tracks: vec![Track::Inbound],
        // Document order, which is not alphabetical.
        custom_parameters: vec![
            ("LastName".into(), "Doe".into()),
            ("FirstName".into(), "Jane".into()),
            ("RemoteParty".into(), "Bob".into()),
            ("callerId".into(), "+15551234567".into()),
        ],
        media_format: MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 },
    };
    assert_eq!(parse(include_str!("../fixtures/twilio_start.json")), Ok(Inbound::Start(Box::new(expected))));
}

#[test]
fn media_fixture() {
    let (result, payload) = parse_with_limit(include_bytes!("../fixtures/twilio_media.json"), 160);
    assert_eq!(
        result,
        Ok(Inbound::Media(MediaFrame {
            sequence: Some(3),
            chunk: Some(2),
            timestamp_ms: 21,
            track: Track::Inbound,
        }))
    );
    assert_eq!(payload, fixture_pattern(2, 160));
}

#[test]
fn mark_dtmf_and_stop_fixtures() {
    assert_eq!(
        parse(include_str!("../fixtures/twilio_mark.json")),
        Ok(Inbound::Mark { sequence: Some(8), name: Cow::Borrowed("utterance-1"), said: MarkSaid::Nothing })
    );
    assert_eq!(
        parse(include_str!("../fixtures/twilio_dtmf.json")),
        Ok(Inbound::Dtmf { sequence: Some(9), digit: b'5', duration_ms: None })
    );
    assert_eq!(parse(include_str!("../fixtures/twilio_stop.json")), Ok(Inbound::Stop { sequence: Some(10) }));
}

#[test]
fn a_whole_call_parses_in_order_through_one_dialect() {
    let mut dialect: Box<dyn Dialect> = Box::new(TwilioDialect::new());
    let mut payload = PayloadBuffer::with_limit(320);
    let mut kinds = Vec::new();
    for line in include_str!("../fixtures/twilio_call.jsonl").lines() {
        let parsed = dialect.parse(line.as_bytes(), MessageKind::Text, &mut payload).unwrap();
        // The quick look the offload server uses: never misses a start or a stop, and does not
        // send it the media messages of the call.
        let lifecycle = matches!(parsed, Inbound::Start(_) | Inbound::Stop { .. });
        let quick = dialect.may_start_or_stop(line.as_bytes(), MessageKind::Text);
        assert!(quick || !lifecycle, "{line}");
        assert!(!quick || !matches!(parsed, Inbound::Media(_)), "{line}");
        match &parsed {
            Inbound::Connected => kinds.push("connected"),
            Inbound::Notice => kinds.push("notice"),
            Inbound::Start(start) => {
                assert_eq!(start.stream_id, STREAM_SID);
                // Whatever the caller's format, Twilio takes 8 kHz µ-law back.
                let out = dialect.on_start(start).unwrap();
                assert_eq!(
                    out,
                    MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 }
                );
                kinds.push("start");
            }
            Inbound::Media(frame) => {
                let chunk = frame.chunk.unwrap();
                assert_eq!(frame.sequence, Some(chunk + 1));
                assert_eq!(frame.timestamp_ms, 1 + 20 * (chunk - 1));
                assert_eq!(payload.as_slice(), fixture_pattern(chunk, 160));
                kinds.push("media");
            }
            Inbound::Mark { name, .. } => {
                assert_eq!(name, "utterance-1");
                kinds.push("mark");
            }
            Inbound::Dtmf { digit, .. } => {
                assert_eq!(*digit, b'5');
                kinds.push("dtmf");
            }
            Inbound::Stop { sequence } => {
                assert_eq!(*sequence, Some(9));
                kinds.push("stop");
            }
        }
    }
    let expected = ["connected", "start", "media", "media", "media", "media", "media"];
    assert_eq!(kinds[..7], expected);
    assert_eq!(kinds[7..], ["mark", "dtmf", "stop"]);
    let mut out = Vec::new();
    dialect.write_clear(&mut out);
    assert_eq!(json_of(&out), json!({"event": "clear", "streamSid": STREAM_SID}));
}

#[test]
fn payloads_decode_to_the_bytes_encoded_independently() {
    for len in [0, 1, 2, 3, 159, 160, 161, 320, 1000] {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let padded = reference_base64(&bytes);
        let unpadded = padded.trim_end_matches('=');
        for text in [padded.as_str(), unpadded] {
            let message = media_message(text);
            let (result, payload) = parse_with_limit(message.as_bytes(), 1000);
            assert!(matches!(result, Ok(Inbound::Media(_))), "{len}: {result:?}");
            assert_eq!(payload, bytes, "{len} bytes from {text:?}");
        }
    }
    // Partial padding is as acceptable as none.
    for (plain, encoded) in [("f", "Zg=="), ("f", "Zg="), ("foob", "Zm9vYg="), ("foobar", "Zm9vYmFy")] {
        let message = media_message(encoded);
        assert_eq!(parse_with_limit(message.as_bytes(), 8).1, plain.as_bytes());
    }
}

#[test]
fn json_escaped_slashes_in_the_payload_are_unescaped() {
    // `\/` is a legal JSON escape some encoders use for every `/`, and base64 has slashes.
    let bytes = [0xff_u8; 6];
    assert_eq!(reference_base64(&bytes), "////////");
    let message = media_message(r"\/\/\/\/\/\/\/\/");
    assert_eq!(parse_with_limit(message.as_bytes(), 6).1, bytes);
}

#[test]
fn numbers_may_be_strings_or_bare_integers() {
    let message = r#"{"event":"media","sequenceNumber":7,"media":{"chunk":2,"timestamp":40,"payload":""}}"#;
    assert_eq!(
        parse(message),
        Ok(Inbound::Media(MediaFrame {
            sequence: Some(7),
            chunk: Some(2),
            timestamp_ms: 40,
            track: Track::Inbound,
        }))
    );
    let message = r#"{"event":"media","media":{"timestamp":"18446744073709551615","payload":""}}"#;
    assert!(matches!(
        parse(message),
        Ok(Inbound::Media(MediaFrame { timestamp_ms: u64::MAX, sequence: None, chunk: None, .. }))
    ));
}

#[test]
fn tracks_and_their_spellings() {
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
    let message = r#"{"event":"start","start":{"streamSid":"MZ1","tracks":["inbound_track","outbound"]}}"#;
    let Ok(Inbound::Start(start)) = parse(message) else { panic!("start") };
    assert_eq!(start.tracks, [Track::Inbound, Track::Outbound]);
}

#[test]
fn every_dtmf_digit() {
    for digit in b"0123456789*#ABCD" {
        let message = format!(
            r#"{{"event":"dtmf","sequenceNumber":"4","dtmf":{{"track":"inbound_track","digit":"{}"}}}}"#,
            *digit as char
        );
        assert_eq!(
            parse(&message),
            Ok(Inbound::Dtmf { sequence: Some(4), digit: *digit, duration_ms: None })
        );
    }
}

#[test]
fn media_formats() {
    let start =
        |format: &str| format!(r#"{{"event":"start","streamSid":"MZ1","start":{{"mediaFormat":{format}}}}}"#);
    let format_of = |message: &str| match parse(message) {
        Ok(Inbound::Start(start)) => Ok(start.media_format),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    let cases = [
        (r#"{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}"#, AudioEncoding::Mulaw, 8000, 1),
        (r#"{"encoding":"audio/x-alaw","sampleRate":"8000","channels":"1"}"#, AudioEncoding::Alaw, 8000, 1),
        (r#"{"encoding":"audio/x-l16","sampleRate":16000,"channels":2}"#, AudioEncoding::L16, 16000, 2),
        (r#"{"encoding":"audio/L16","sampleRate":"24000"}"#, AudioEncoding::L16, 24000, 1),
        (r#"{"encoding":"AUDIO/X-MULAW","sampleRate":8000}"#, AudioEncoding::Mulaw, 8000, 1),
    ];
    for (format, encoding, sample_rate, channels) in cases {
        assert_eq!(
            format_of(&start(format)),
            Ok(MediaFormat { encoding, sample_rate, channels }),
            "{format}"
        );
    }
    // Absent: what Twilio always streams.
    assert_eq!(
        format_of(r#"{"event":"start","start":{"streamSid":"MZ1"}}"#),
        Ok(MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 })
    );
    for encoding in ["audio/opus", "audio/x-mulaw;rate=8000", "", "audio/pcmu"] {
        let format = format!(r#"{{"encoding":"{encoding}","sampleRate":8000,"channels":1}}"#);
        assert_eq!(format_of(&start(&format)), Err(ProtocolError::UnsupportedFormat), "{encoding}");
    }
}

#[test]
fn custom_parameters_keep_order_and_render_scalars_as_json_text() {
    let message = r#"{"event":"start","start":{"streamSid":"MZ1","customParameters":{
        "z":"last letter","a":"first letter","n":42,"neg":-7,"x":1.50,"yes":true,"no":false,
        "q\"uote":"caf\u00e9 \"ok\"","z":"again"}}}"#;
    let Ok(Inbound::Start(start)) = parse(message) else { panic!("start") };
    let expected: Vec<(String, String)> = [
        ("z", "last letter"),
        ("a", "first letter"),
        ("n", "42"),
        ("neg", "-7"),
        ("x", "1.5"),
        ("yes", "true"),
        ("no", "false"),
        ("q\"uote", "café \"ok\""),
        ("z", "again"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(start.custom_parameters, expected);
}

#[test]
fn start_stream_sid_falls_back_to_the_top_level_one() {
    let message = format!(
        r#"{{"event":"start","sequenceNumber":"1","streamSid":"{STREAM_SID}","start":{{"callSid":"{CALL_SID}"}}}}"#
    );
    let Ok(Inbound::Start(start)) = parse(&message) else { panic!("start") };
    assert_eq!(start.stream_id, STREAM_SID);
    assert_eq!(start.call_id, CALL_SID);
    assert_eq!(start.account_id, "");
    assert_eq!(start.tracks, [Track::Inbound]);
    assert!(start.custom_parameters.is_empty());

    let message = r#"{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ2"}}"#;
    assert_eq!(parse(message), Err(ProtocolError::WrongType("streamSid")));
}

#[test]
fn mark_names_are_borrowed_unless_escaped() {
    let message = r#"{"event":"mark","mark":{"name":"tts-42 ✓"}}"#;
    match parse(message) {
        Ok(Inbound::Mark { sequence: None, name: Cow::Borrowed(name), said: MarkSaid::Nothing }) => {
            assert_eq!(name, "tts-42 ✓")
        }
        other => panic!("{other:?}"),
    }
    let message = r#"{"event":"mark","mark":{"name":"say \"hi\"\\\n\u00e9"}}"#;
    assert_eq!(
        parse(message),
        Ok(Inbound::Mark {
            sequence: None,
            name: Cow::Owned("say \"hi\"\\\né".into()),
            said: MarkSaid::Nothing
        })
    );
    let message = r#"{"event":"mark","mark":{"name":""}}"#;
    assert_eq!(
        parse(message),
        Ok(Inbound::Mark { sequence: None, name: Cow::Borrowed(""), said: MarkSaid::Nothing })
    );
}

#[test]
fn unknown_fields_of_any_type_are_ignored() {
    let message = r#"{"future":{"deep":[1,{"x":null}],"s":"\u0000"},"event":"media","n":-1.5e3,
        "media":{"payload":"Zm9v","timestamp":"3","extra":[true,false,null],"track":"inbound"},
        "start":"not looked at for media","dtmf":7,"mark":[],"stop":{},"streamSid":"MZ1"}"#;
    let (result, payload) = parse_with_limit(message.as_bytes(), 3);
    assert!(matches!(result, Ok(Inbound::Media(MediaFrame { timestamp_ms: 3, .. }))), "{result:?}");
    assert_eq!(payload, b"foo");
}

#[test]
fn a_body_before_the_event_still_counts() {
    let message = r#"{"media":{"payload":"Zm9v","timestamp":"3"},"event":"media"}"#;
    assert_eq!(parse_with_limit(message.as_bytes(), 3).1, b"foo");
    let message = r#"{"mark":{"name":"m"},"media":{"timestamp":{}},"event":"mark"}"#;
    assert_eq!(
        parse(message),
        Ok(Inbound::Mark { sequence: None, name: "m".into(), said: MarkSaid::Nothing })
    );
}

#[test]
fn null_counts_as_absent() {
    let message = r#"{"event":"media","sequenceNumber":null,"media":{"chunk":null,"track":null,"timestamp":"1","payload":""}}"#;
    assert!(matches!(
        parse(message),
        Ok(Inbound::Media(MediaFrame { sequence: None, chunk: None, track: Track::Inbound, .. }))
    ));
    let message = r#"{"event":"media","media":{"timestamp":null,"payload":""}}"#;
    assert_eq!(parse(message), Err(ProtocolError::MissingField("media.timestamp")));
    assert_eq!(parse(r#"{"event":null}"#), Err(ProtocolError::MissingField("event")));
}

#[test]
fn the_payload_buffer_only_holds_the_last_valid_media_payload() {
    let mut dialect = TwilioDialect::new();
    let mut payload = PayloadBuffer::with_limit(8);
    let media = media_message("Zm9v");
    dialect.parse(media.as_bytes(), MessageKind::Text, &mut payload).unwrap();
    assert_eq!(payload.as_slice(), b"foo");
    let mark = br#"{"event":"mark","mark":{"name":"m"}}"#;
    dialect.parse(mark, MessageKind::Text, &mut payload).unwrap();
    assert!(payload.as_slice().is_empty());
    dialect.parse(media.as_bytes(), MessageKind::Text, &mut payload).unwrap();
    let bad = media_message("Zm9v!!!!");
    assert_eq!(
        dialect.parse(bad.as_bytes(), MessageKind::Text, &mut payload),
        Err(ProtocolError::InvalidBase64)
    );
    assert!(payload.as_slice().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn binary_frames_are_rejected() {
    let mut dialect = TwilioDialect::new();
    let mut payload = PayloadBuffer::with_limit(160);
    let media = media_message("Zm9v");
    assert_eq!(
        dialect.parse(media.as_bytes(), MessageKind::Binary, &mut payload),
        Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary))
    );
}

#[test]
fn malformed_messages() {
    let media = media_message("Zm9v");
    let truncated = &media.as_bytes()[..media.len() - 1];
    let cases: [&[u8]; 15] = [
        b"",
        b"   ",
        b"{",
        truncated,
        &media.as_bytes()[..20],
        b"{event:\"media\"}",
        br#"{"event":"media",}"#,
        br#"{"event":"connected"} {"event":"connected"}"#,
        br#"{"event":"connected"}x"#,
        br#"["event","connected"]"#,
        br#""connected""#,
        b"null",
        b"{\"event\":\"mark\",\"mark\":{\"name\":\"\xff\"}}",
        b"{\"event\":\"connected\",\"other\":\"\xc3\"}",
        br#"{"event":"connected","event":"connected"}"#,
    ];
    for message in cases {
        assert_eq!(
            parse_with_limit(message, 160).0,
            Err(ProtocolError::MalformedJson),
            "{}",
            String::from_utf8_lossy(message)
        );
    }
    let duplicate_body = r#"{"event":"media","media":{"timestamp":"1","timestamp":"2","payload":""}}"#;
    assert_eq!(parse(duplicate_body), Err(ProtocolError::MalformedJson));
    let deep = format!(r#"{{"event":"connected","x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    assert_eq!(parse(&deep), Err(ProtocolError::MalformedJson));
}

#[test]
fn unknown_events() {
    for event in ["clear", "Media", "", "playAudio", "media "] {
        let message = format!(r#"{{"event":"{event}","streamSid":"MZ1"}}"#);
        assert_eq!(parse(&message), Err(ProtocolError::UnknownEvent), "{event:?}");
    }
}

#[test]
fn missing_fields() {
    let cases = [
        (r#"{}"#, "event"),
        (r#"{"streamSid":"MZ1","media":{"timestamp":"1","payload":""}}"#, "event"),
        (r#"{"event":"media"}"#, "media"),
        (r#"{"event":"media","media":{"timestamp":"1"}}"#, "media.payload"),
        (r#"{"event":"media","media":{"payload":""}}"#, "media.timestamp"),
        (r#"{"event":"dtmf"}"#, "dtmf"),
        (r#"{"event":"dtmf","dtmf":{"track":"inbound_track"}}"#, "dtmf.digit"),
        (r#"{"event":"mark"}"#, "mark"),
        (r#"{"event":"mark","mark":{}}"#, "mark.name"),
        (r#"{"event":"start"}"#, "start"),
        (r#"{"event":"start","start":{"callSid":"CA1"}}"#, "start.streamSid"),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"sampleRate":8000}}}"#,
            "start.mediaFormat.encoding",
        ),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw"}}}"#,
            "start.mediaFormat.sampleRate",
        ),
    ];
    for (message, field) in cases {
        assert_eq!(parse(message), Err(ProtocolError::MissingField(field)), "{message}");
    }
    // Optional everywhere: `connected`/`stop` bodies, sequence numbers, stream SIDs.
    assert_eq!(parse(r#"{"event":"connected"}"#), Ok(Inbound::Connected));
    assert_eq!(parse(r#"{"event":"stop"}"#), Ok(Inbound::Stop { sequence: None }));
}

/// Values that are not a number: the field must be reported as the wrong type.
const NOT_NUMBERS: [&str; 16] = [
    "{}",
    "[]",
    "[1]",
    "true",
    "-1",
    r#""-1""#,
    r#""abc""#,
    r#""12a""#,
    "1.5",
    r#""1.5""#,
    "1e3",
    r#""""#,
    r#""+1""#,
    r#"" 1""#,
    r#""18446744073709551616""#,
    "18446744073709551616",
];

#[test]
fn wrong_types_for_number_fields() {
    let templates = [
        (r#"{"event":"media","sequenceNumber":@,"media":{"timestamp":"1","payload":""}}"#, "sequenceNumber"),
        (r#"{"event":"stop","sequenceNumber":@}"#, "sequenceNumber"),
        (r#"{"event":"media","media":{"timestamp":@,"payload":""}}"#, "media.timestamp"),
        (r#"{"event":"media","media":{"chunk":@,"timestamp":"1","payload":""}}"#, "media.chunk"),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":@}}}"#,
            "start.mediaFormat.sampleRate",
        ),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":@}}}"#,
            "start.mediaFormat.channels",
        ),
    ];
    for (template, field) in templates {
        for value in NOT_NUMBERS {
            let message = template.replace('@', value);
            assert_eq!(parse(&message), Err(ProtocolError::WrongType(field)), "{message}");
        }
    }
    // In range for u64 but not for the field.
    for (format, field) in [
        (r#"{"encoding":"audio/x-mulaw","sampleRate":0}"#, "start.mediaFormat.sampleRate"),
        (r#"{"encoding":"audio/x-mulaw","sampleRate":"4294967296"}"#, "start.mediaFormat.sampleRate"),
        (r#"{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":0}"#, "start.mediaFormat.channels"),
        (r#"{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":65536}"#, "start.mediaFormat.channels"),
    ] {
        let message = format!(r#"{{"event":"start","start":{{"streamSid":"MZ1","mediaFormat":{format}}}}}"#);
        assert_eq!(parse(&message), Err(ProtocolError::WrongType(field)), "{message}");
    }
}

#[test]
fn wrong_types_for_other_fields() {
    let cases = [
        (r#"{"event":5}"#, "event"),
        (r#"{"event":["media"]}"#, "event"),
        (r#"{"event":{"name":"media"}}"#, "event"),
        (r#"{"event":"stop","streamSid":42}"#, "streamSid"),
        (r#"{"event":"media","media":"Zm9v"}"#, "media"),
        (r#"{"event":"media","media":[]}"#, "media"),
        (r#"{"event":"media","media":{"timestamp":"1","payload":42}}"#, "media.payload"),
        (r#"{"event":"media","media":{"timestamp":"1","payload":["Zm9v"]}}"#, "media.payload"),
        (r#"{"event":"media","media":{"track":"both","timestamp":"1","payload":""}}"#, "media.track"),
        (r#"{"event":"media","media":{"track":1,"timestamp":"1","payload":""}}"#, "media.track"),
        (r#"{"event":"dtmf","dtmf":true}"#, "dtmf"),
        (r#"{"event":"dtmf","dtmf":{"digit":5}}"#, "dtmf.digit"),
        (r#"{"event":"dtmf","dtmf":{"digit":""}}"#, "dtmf.digit"),
        (r#"{"event":"dtmf","dtmf":{"digit":"55"}}"#, "dtmf.digit"),
        (r#"{"event":"dtmf","dtmf":{"digit":"E"}}"#, "dtmf.digit"),
        (r#"{"event":"dtmf","dtmf":{"digit":"a"}}"#, "dtmf.digit"),
        (r#"{"event":"dtmf","dtmf":{"digit":"٣"}}"#, "dtmf.digit"),
        (r#"{"event":"mark","mark":"m"}"#, "mark"),
        (r#"{"event":"mark","mark":{"name":7}}"#, "mark.name"),
        (r#"{"event":"start","start":"MZ1"}"#, "start"),
        (r#"{"event":"start","start":{"streamSid":1}}"#, "start.streamSid"),
        (r#"{"event":"start","start":{"streamSid":"MZ1","callSid":{}}}"#, "start.callSid"),
        (r#"{"event":"start","start":{"streamSid":"MZ1","accountSid":false}}"#, "start.accountSid"),
        (r#"{"event":"start","start":{"streamSid":"MZ1","tracks":"inbound"}}"#, "start.tracks"),
        (r#"{"event":"start","start":{"streamSid":"MZ1","tracks":["inbound","both"]}}"#, "start.tracks"),
        (r#"{"event":"start","start":{"streamSid":"MZ1","tracks":[1]}}"#, "start.tracks"),
        (r#"{"event":"start","start":{"streamSid":"MZ1","customParameters":[]}}"#, "start.customParameters"),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","customParameters":{"a":null}}}"#,
            "start.customParameters",
        ),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","customParameters":{"a":{"b":"c"}}}}"#,
            "start.customParameters",
        ),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","customParameters":{"a":["b"]}}}"#,
            "start.customParameters",
        ),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":"audio/x-mulaw"}}"#,
            "start.mediaFormat",
        ),
        (
            r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":0,"sampleRate":8000}}}"#,
            "start.mediaFormat.encoding",
        ),
    ];
    for (message, field) in cases {
        assert_eq!(parse(message), Err(ProtocolError::WrongType(field)), "{message}");
    }
}

#[test]
fn invalid_base64() {
    for text in [
        "Zm9v!!!!",
        "Zm9vY",
        "Z",
        "Zm9v=Zm9v",
        "Zg==Zg==",
        "Zm8==",
        "Zh==",
        "Zm9 v",
        "Zm9v\\n",
        "Zm-_",
        "====",
    ] {
        let message = media_message(text);
        let (result, payload) = parse_with_limit(message.as_bytes(), 160);
        assert_eq!(result, Err(ProtocolError::InvalidBase64), "{text:?}");
        assert!(payload.is_empty());
    }
}

#[test]
fn payloads_over_the_limit() {
    let limit = 160;
    for len in [limit - 1, limit] {
        let bytes = vec![0x7f; len];
        for text in [reference_base64(&bytes), reference_base64(&bytes).trim_end_matches('=').into()] {
            let message = media_message(&text);
            assert_eq!(parse_with_limit(message.as_bytes(), limit).1, bytes, "{len}");
        }
    }
    for len in [limit + 1, limit + 2, limit + 3, 10 * limit] {
        let text = reference_base64(&vec![0x7f; len]);
        for text in [text.as_str(), text.trim_end_matches('=')] {
            let message = media_message(text);
            let mut dialect = TwilioDialect::new();
            let mut payload = PayloadBuffer::with_limit(limit);
            let capacity = payload.raw_mut().capacity();
            assert_eq!(
                dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload),
                Err(ProtocolError::PayloadTooLarge),
                "{len}"
            );
            assert_eq!(payload.raw_mut().capacity(), capacity);
        }
    }
    // Over the limit is decided from the length alone, before looking at the symbols.
    let message = media_message(&"!".repeat(400));
    assert_eq!(parse_with_limit(message.as_bytes(), limit).0, Err(ProtocolError::PayloadTooLarge));
}

// ---------------------------------------------------------------------------------------------
// Writers

#[test]
fn write_media_is_exactly_twilios_shape() {
    let dialect = started_dialect(STREAM_SID);
    let mulaw = fixture_pattern(4, 160);
    let mut out = b"stale".to_vec();
    dialect.write_media(&mulaw, &mut out);
    let expected = format!(
        r#"{{"event":"media","streamSid":"{STREAM_SID}","media":{{"payload":"{}"}}}}"#,
        reference_base64(&mulaw)
    );
    assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
    assert_eq!(
        json_of(&out),
        json!({"event": "media", "streamSid": STREAM_SID, "media": {"payload": reference_base64(&mulaw)}})
    );
    // And Twilio-side parsing of it as an inbound message would give the audio back.
    let echoed = String::from_utf8(out).unwrap().replace(r#""payload""#, r#""timestamp":"0","payload""#);
    assert_eq!(parse_with_limit(echoed.as_bytes(), 160).1, mulaw);
}

#[test]
fn write_media_round_trips_every_length_and_stays_within_the_bound() {
    for sid in ["", STREAM_SID, "MZ\"odd\\sid\u{1}é"] {
        let dialect = started_dialect(sid);
        let mut out = Vec::new();
        for len in 0..=700 {
            let mulaw: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            dialect.write_media(&mulaw, &mut out);
            let bound = dialect.max_media_message_len(len);
            assert!(out.len() <= bound, "{len}: {} > {bound}", out.len());
            let value = json_of(&out);
            assert_eq!(value["streamSid"], sid);
            assert_eq!(value["media"]["payload"], reference_base64(&mulaw));
        }
    }
    assert_eq!(TwilioDialect::new().max_media_message_len(usize::MAX), usize::MAX);
}

#[test]
fn write_mark_and_clear_are_exactly_twilios_shape() {
    let dialect = started_dialect(STREAM_SID);
    let mut out = Vec::new();
    assert_eq!(dialect.write_mark("utterance-1", &mut out), MessageKind::Text);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!(r#"{{"event":"mark","streamSid":"{STREAM_SID}","mark":{{"name":"utterance-1"}}}}"#)
    );
    assert_eq!(
        json_of(&out),
        json!({"event": "mark", "streamSid": STREAM_SID, "mark": {"name": "utterance-1"}})
    );
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        format!(r#"{{"event":"clear","streamSid":"{STREAM_SID}"}}"#)
    );
    // Twilio's own rules: JSON text, timestamps, 20 ms frames, marks echoed also on clear.
    let caps = dialect.capabilities();
    assert_eq!(caps.framing, Framing::Messages);
    assert!(caps.timestamps);
    assert_eq!(caps.frame_ms, 20);
    assert_eq!(caps.confirmation, Confirmation::Echo { on_clear: true });
    assert_eq!(caps.clear, ClearKind::Message);
}

#[test]
fn mark_names_round_trip_through_escaping() {
    let controls: String = (0u8..0x20).map(char::from).collect();
    let names = [
        String::new(),
        r#"say "hi""#.into(),
        r"C:\path\to\x".into(),
        r#"\"\\""#.into(),
        "héllo → 世界 😀".into(),
        controls,
        "\u{7f}\u{2028}\u{2029}".into(),
        "</script>".into(),
    ];
    for sid in [STREAM_SID, "tricky\"\\\n"] {
        let mut dialect = started_dialect(sid);
        let mut out = Vec::new();
        for name in &names {
            dialect.write_mark(name, &mut out);
            let value = json_of(&out);
            assert_eq!(value, json!({"event": "mark", "streamSid": sid, "mark": {"name": name}}));
            // The carrier echoes the mark back verbatim: our own parser must read the same name.
            let echo = String::from_utf8(out.clone()).unwrap();
            let mut payload = PayloadBuffer::with_limit(0);
            let parsed = dialect.parse(echo.as_bytes(), MessageKind::Text, &mut payload);
            assert!(matches!(parsed, Ok(Inbound::Mark { name: ref n, .. }) if n == name), "{name:?}");
        }
    }
}

#[test]
fn writers_before_start_use_an_empty_stream_sid() {
    let dialect = TwilioDialect::new();
    let mut out = Vec::new();
    dialect.write_clear(&mut out);
    assert_eq!(out, br#"{"event":"clear","streamSid":""}"#);
}

#[test]
fn on_start_replaces_the_stream_sid() {
    let mut dialect = started_dialect("MZ1");
    let Ok(Inbound::Start(start)) = parse(include_str!("../fixtures/twilio_start.json")) else {
        panic!("start")
    };
    dialect.on_start(&start).unwrap();
    let mut out = Vec::new();
    dialect.write_clear(&mut out);
    assert_eq!(json_of(&out), json!({"event": "clear", "streamSid": STREAM_SID}));
}

// ---------------------------------------------------------------------------------------------
// Stream identity

/// Differs from `STREAM_SID` in its last character only.
const OTHER_SID: &str = "MZ2aabfe228f219e9cb0eb53f16947ccf3";

/// A `media`, `mark`, `dtmf` and `stop` message, each naming stream `sid` (`None`: no `streamSid`).
fn stream_messages(sid: Option<&str>) -> [String; 4] {
    let sid = sid.map(|s| format!(r#","streamSid":"{s}""#)).unwrap_or_default();
    let payload = reference_base64(&fixture_pattern(1, 160));
    [
        format!(
            r#"{{"event":"media","sequenceNumber":"3","media":{{"track":"inbound","chunk":"1","timestamp":"20","payload":"{payload}"}}{sid}}}"#
        ),
        format!(r#"{{"event":"mark","sequenceNumber":"4"{sid},"mark":{{"name":"m1"}}}}"#),
        format!(
            r#"{{"event":"dtmf","sequenceNumber":"5"{sid},"dtmf":{{"track":"inbound_track","digit":"7"}}}}"#
        ),
        format!(r#"{{"event":"stop","sequenceNumber":"6"{sid},"stop":{{"callSid":"{CALL_SID}"}}}}"#),
    ]
}

/// What `stream_messages` parse to when accepted.
fn stream_inbound() -> [Inbound<'static>; 4] {
    [
        Inbound::Media(MediaFrame {
            sequence: Some(3),
            chunk: Some(1),
            timestamp_ms: 20,
            track: Track::Inbound,
        }),
        Inbound::Mark { sequence: Some(4), name: Cow::Borrowed("m1"), said: MarkSaid::Nothing },
        Inbound::Dtmf { sequence: Some(5), digit: b'7', duration_ms: None },
        Inbound::Stop { sequence: Some(6) },
    ]
}

#[test]
fn after_start_stream_messages_naming_another_stream_are_foreign() {
    let mut dialect = started_dialect(STREAM_SID);
    let mut payload = PayloadBuffer::with_limit(160);
    for message in stream_messages(Some(OTHER_SID)) {
        let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload);
        assert_eq!(parsed, Err(ProtocolError::ForeignStream), "{message}");
        assert!(payload.as_slice().is_empty(), "no payload kept from a foreign message");
    }
    // The stream's own messages, and those naming no stream, are accepted as before.
    for sid in [Some(STREAM_SID), None] {
        for (message, expected) in stream_messages(sid).iter().zip(stream_inbound()) {
            let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload);
            assert_eq!(parsed, Ok(expected), "{message}");
        }
    }
    // SIDs compare as strings, after JSON unescaping: an escaped spelling is the same stream, a
    // prefix, an extension or another case is not.
    let escaped = format!(r#"{{"event":"stop","streamSid":"\u004d{}"}}"#, &STREAM_SID[1..]);
    assert_eq!(
        dialect.parse(escaped.as_bytes(), MessageKind::Text, &mut payload),
        Ok(Inbound::Stop { sequence: None })
    );
    let lower = STREAM_SID.to_ascii_lowercase();
    for sid in ["", &STREAM_SID[..10], &format!("{STREAM_SID}0"), &lower] {
        let stop = format!(r#"{{"event":"stop","streamSid":"{sid}"}}"#);
        assert_eq!(
            dialect.parse(stop.as_bytes(), MessageKind::Text, &mut payload),
            Err(ProtocolError::ForeignStream),
            "{sid:?}"
        );
    }
}

#[test]
fn the_stream_check_comes_after_the_top_level_fields_and_before_the_body() {
    fn parse_started(message: &str) -> Result<Inbound<'_>, ProtocolError> {
        let mut payload = PayloadBuffer::with_limit(160);
        started_dialect(STREAM_SID).parse(message.as_bytes(), MessageKind::Text, &mut payload)
    }
    let parse = parse_started;
    // A foreign message is refused whatever its body holds (its payload is not even decoded).
    let bad_body = format!(r#"{{"event":"media","streamSid":"{OTHER_SID}","media":{{"payload":"!!"}}}}"#);
    assert_eq!(parse(&bad_body), Err(ProtocolError::ForeignStream));
    let no_body = format!(r#"{{"event":"dtmf","streamSid":"{OTHER_SID}"}}"#);
    assert_eq!(parse(&no_body), Err(ProtocolError::ForeignStream));
    // The top-level fields are checked first.
    let bad_sequence = format!(r#"{{"event":"stop","sequenceNumber":"x","streamSid":"{OTHER_SID}"}}"#);
    assert_eq!(parse(&bad_sequence), Err(ProtocolError::WrongType("sequenceNumber")));
    assert_eq!(parse(r#"{"event":"stop","streamSid":7}"#), Err(ProtocolError::WrongType("streamSid")));
    assert_eq!(parse(r#"{"event":"stop","streamSid":null}"#), Ok(Inbound::Stop { sequence: None }));
    // `connected` and `start` are not stream messages: a second `start` is the session's to refuse.
    let connected = format!(r#"{{"event":"connected","streamSid":"{OTHER_SID}"}}"#);
    assert_eq!(parse(&connected), Ok(Inbound::Connected));
    let start = format!(r#"{{"event":"start","streamSid":"{OTHER_SID}","start":{{}}}}"#);
    assert!(matches!(parse(&start), Ok(Inbound::Start(s)) if s.stream_id == OTHER_SID));
}

#[test]
fn before_start_any_stream_is_accepted_and_on_start_sets_the_one_checked() {
    let mut dialect = TwilioDialect::new();
    let mut payload = PayloadBuffer::with_limit(160);
    for (message, expected) in stream_messages(Some(OTHER_SID)).iter().zip(stream_inbound()) {
        let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload);
        assert_eq!(parsed, Ok(expected), "{message}");
    }
    // A later `on_start` replaces the stream: the first one's messages are then foreign.
    let mut dialect = started_dialect(OTHER_SID);
    dialect
        .on_start(&match parse(include_str!("../fixtures/twilio_start.json")) {
            Ok(Inbound::Start(start)) => *start,
            other => panic!("{other:?}"),
        })
        .unwrap();
    for message in stream_messages(Some(OTHER_SID)) {
        let parsed = dialect.parse(message.as_bytes(), MessageKind::Text, &mut payload);
        assert_eq!(parsed, Err(ProtocolError::ForeignStream), "{message}");
    }
    let own = &stream_messages(Some(STREAM_SID))[3];
    assert_eq!(
        dialect.parse(own.as_bytes(), MessageKind::Text, &mut payload),
        Ok(Inbound::Stop { sequence: Some(6) })
    );
}

// ---------------------------------------------------------------------------------------------
// Allocation

#[test]
fn parsing_media_allocates_nothing() {
    // Varied but realistic: lengths, padding, tracks, key order, numbers as strings and integers.
    let messages: Vec<String> = (0..1000u64)
        .map(|i| {
            let len = [160, 320, 80, 1, 2, 0, 800][i as usize % 7];
            let bytes = fixture_pattern(i, len);
            let mut text = reference_base64(&bytes);
            if i % 3 == 0 {
                text = text.trim_end_matches('=').into();
            }
            let track = ["inbound", "outbound", "inbound_track", "outbound_track"][i as usize % 4];
            match i % 3 {
                0 => format!(
                    r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"{track}","chunk":"{i}","timestamp":"{}","payload":"{text}"}},"streamSid":"{STREAM_SID}"}}"#,
                    i + 2,
                    i * 20
                ),
                1 => format!(
                    r#"{{"streamSid":"{STREAM_SID}","event":"media","sequenceNumber":{},"media":{{"payload":"{text}","timestamp":{},"chunk":{i},"track":"{track}","unknown":[1,2,{{"a":null}}]}}}}"#,
                    i + 2,
                    i * 20
                ),
                _ => format!(
                    "{{\n  \"event\": \"media\",\n  \"media\": {{ \"timestamp\": \"{}\", \"payload\": \"{text}\" }}\n}}",
                    i * 20
                ),
            }
        })
        .collect();
    // Started: the stream check on every message is part of what must not allocate.
    let mut dialect = started_dialect(STREAM_SID);
    let mut payload = PayloadBuffer::with_limit(800);
    let parse_all = |dialect: &mut TwilioDialect, payload: &mut PayloadBuffer| {
        let mut total = 0usize;
        for message in &messages {
            match dialect.parse(message.as_bytes(), MessageKind::Text, payload) {
                Ok(Inbound::Media(frame)) => total += payload.as_slice().len() + frame.timestamp_ms as usize,
                other => panic!("{other:?}"),
            }
        }
        total
    };
    let warm = parse_all(&mut dialect, &mut payload);
    let (allocations, total) = allocations_in(|| parse_all(&mut dialect, &mut payload));
    assert_eq!(total, warm);
    assert_eq!(allocations, 0, "allocations while parsing {} media messages", messages.len());

    // Sanity check that the counter counts.
    let (allocations, _) = allocations_in(|| parse(r#"{"event":"start","start":{"streamSid":"MZ1"}}"#));
    assert!(allocations > 0);
}

#[test]
fn writers_allocate_nothing_when_out_has_capacity() {
    let dialect = started_dialect(STREAM_SID);
    let mulaw = fixture_pattern(1, 160);
    let mut out = Vec::with_capacity(dialect.max_media_message_len(mulaw.len()));
    let (allocations, ()) = allocations_in(|| {
        for _ in 0..100 {
            dialect.write_media(&mulaw, &mut out);
            dialect.write_mark("barge-in \"mark\" \\ 7\n", &mut out);
            dialect.write_clear(&mut out);
        }
    });
    assert_eq!(allocations, 0);
    // Exactly the bound: the bound is tight, so sizing with it never reallocates.
    dialect.write_media(&mulaw, &mut out);
    assert_eq!(out.len(), dialect.max_media_message_len(mulaw.len()));
}
