//! The Exotel dialect parser on arbitrary bytes, checked against serde_json's own reading of them,
//! and its writers on whatever stream an accepted `start` names.
//!
//! First byte: bit 0 picks the frame kind (binary when set), the rest picks the payload limit.
//! Invariants: no panic; a binary frame is always `UnexpectedFrameKind`; anything serde_json cannot
//! parse as JSON is `MalformedJson`; an accepted message names an event serde_json sees and that
//! maps to what was returned; an accepted `media` payload is exactly the base64 decoding of
//! `media.payload`, within the limit, and the first media of a stream is at time 0; the payload
//! buffer is empty after an error and after anything but `media`; the quick look never misses an
//! accepted `start` or `stop`; an accepted `start` yields writers whose output is JSON carrying its
//! stream id under one of Exotel's two spellings, numbering chunks from 1; and after a `start`, no
//! message naming another stream is accepted.
#![no_main]

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trunkline::protocol::exotel::ExotelDialect;
use trunkline::protocol::{
    AudioEncoding, Dialect, Inbound, MediaFormat, MessageKind, PayloadBuffer, ProtocolError, StreamStart,
    Track,
};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const STARTED_SID: &str = "MZxxxxxxxxxxxxxxxxxxxxxxxx";

/// The stream id a message names, in either spelling.
fn named_sid(value: &Value) -> Vec<&str> {
    ["stream_sid", "streamSid"].iter().filter_map(|key| value[*key].as_str()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let limit = [1, 3, 320, 1600, 3200, 9600][usize::from(control >> 1) % 6];
    let mut payload = PayloadBuffer::with_limit(limit);
    let mut dialect = ExotelDialect::new();
    let result = dialect.parse(message, kind, &mut payload);
    if kind == MessageKind::Binary {
        assert_eq!(result, Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary)));
        return;
    }
    let value = serde_json::from_slice::<Value>(message);
    let parsed = match &result {
        Err(_) => {
            assert!(payload.as_slice().is_empty(), "the payload buffer is cleared on error");
            if value.is_err() {
                assert_eq!(result, Err(ProtocolError::MalformedJson), "serde_json rejects it too");
            }
            check_started(message, limit);
            return;
        }
        Ok(parsed) => parsed,
    };
    let value = value.expect("an accepted message is JSON");
    let event = value["event"].as_str().expect("an accepted message has a string event");
    let expected: &[&str] = match parsed {
        Inbound::Connected => &["connected"],
        Inbound::Notice => &["clear"],
        Inbound::Start(start) => {
            let mut named: Vec<&str> = named_sid(&value["start"]);
            named.extend(named_sid(&value));
            match named.first() {
                Some(sid) => assert!(named.iter().all(|n| n == sid) && *sid == start.stream_id),
                None => assert!(start.stream_id.is_empty()),
            }
            let format = start.media_format;
            assert!(format.sample_rate > 0 && format.channels == 1);
            assert!(matches!(format.encoding, AudioEncoding::Mulaw | AudioEncoding::L16));
            assert!(dialect.may_start_or_stop(message, MessageKind::Text));
            check_writers(start, message);
            &["start"]
        }
        Inbound::Media(frame) => {
            let b64 = value["media"]["payload"].as_str().expect("media.payload is a string");
            let decoded = LENIENT.decode(b64).expect("an accepted payload is valid base64");
            assert_eq!(payload.as_slice(), &decoded[..]);
            assert!(decoded.len() <= limit);
            assert_eq!(frame.timestamp_ms, 0, "a stream's first media is its time zero");
            &["media"]
        }
        Inbound::Dtmf { digit, .. } => {
            assert_eq!(value["dtmf"]["digit"].as_str().map(str::as_bytes), Some(&[*digit][..]));
            &["dtmf"]
        }
        Inbound::Mark { name, .. } => {
            assert_eq!(value["mark"]["name"].as_str(), Some(name.as_ref()));
            &["mark"]
        }
        Inbound::Stop { .. } => {
            assert!(dialect.may_start_or_stop(message, MessageKind::Text));
            &["stop"]
        }
    };
    assert!(expected.contains(&event), "{event} for {parsed:?}");
    if !matches!(parsed, Inbound::Media(_)) {
        assert!(payload.as_slice().is_empty());
    }
    check_started(message, limit);
});

/// The same message after a `start` named [`STARTED_SID`]: a message naming another stream is
/// never accepted (but `connected` and `start`, the session's to judge).
fn check_started(message: &[u8], limit: usize) {
    let mut dialect = ExotelDialect::new();
    let start = StreamStart {
        sequence: None,
        account_id: String::new(),
        stream_id: STARTED_SID.into(),
        call_id: String::new(),
        tracks: vec![Track::Inbound],
        custom_parameters: Vec::new(),
        media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: 8000, channels: 1 },
    };
    dialect.on_start(&start).expect("Exotel takes L16 8k back");
    let mut payload = PayloadBuffer::with_limit(limit);
    let Ok(parsed) = dialect.parse(message, MessageKind::Text, &mut payload) else { return };
    if matches!(parsed, Inbound::Start(_) | Inbound::Connected) {
        return;
    }
    let value: Value = serde_json::from_slice(message).expect("an accepted message is JSON");
    for sid in named_sid(&value) {
        assert_eq!(sid, STARTED_SID, "a message for another stream was accepted");
    }
}

/// Writers for the stream `start` names: JSON, its id, numbered chunks, the audio round-trips.
fn check_writers(start: &StreamStart, message: &[u8]) {
    let mut dialect = ExotelDialect::new();
    let format = dialect.on_start(start).expect("a parsed start is one Exotel takes back");
    assert_eq!(format, start.media_format);
    let audio = &message[..message.len().min(700)];
    let mut out = Vec::new();
    for chunk in 1..=2 {
        dialect.write_media(audio, &mut out);
        assert!(out.len() <= dialect.max_media_message_len(audio.len()));
        let media: Value = serde_json::from_slice(&out).expect("media is JSON");
        assert_eq!(named_sid(&media), [start.stream_id.as_str()]);
        assert_eq!(media["media"]["chunk"].as_str(), Some(chunk.to_string().as_str()));
        let b64 = media["media"]["payload"].as_str().expect("a payload");
        assert_eq!(LENIENT.decode(b64).expect("base64"), audio);
    }
    let name = String::from_utf8_lossy(&message[..message.len().min(40)]);
    dialect.write_mark(&name, &mut out);
    let mark: Value = serde_json::from_slice(&out).expect("mark is JSON");
    assert_eq!(named_sid(&mark), [start.stream_id.as_str()]);
    assert_eq!(mark["mark"]["name"].as_str(), Some(&*name));
    dialect.write_clear(&mut out);
    let clear: Value = serde_json::from_slice(&out).expect("clear is JSON");
    assert_eq!(named_sid(&clear), [start.stream_id.as_str()]);
}
