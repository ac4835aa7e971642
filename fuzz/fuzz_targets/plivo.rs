//! The Plivo dialect parser on arbitrary bytes, checked against serde_json's own reading of them,
//! and its writers on whatever stream an accepted `start` names.
//!
//! First byte: bit 0 picks the frame kind (binary when set), the rest picks the payload limit.
//! Invariants: no panic; a binary frame is always `UnexpectedFrameKind`; over 64 KiB is
//! `MessageTooLarge`; anything serde_json cannot parse as JSON is `MalformedJson`; an accepted
//! message names an event serde_json sees and that maps to what was returned; an accepted `media`
//! payload is exactly the base64 decoding of `media.payload`, within the limit, and the first media
//! of a stream is at time 0; the payload buffer is empty after an error and after anything but
//! `media`; the quick look never misses an accepted `start` or `stop`; an accepted `start` yields
//! writers whose output is JSON carrying its stream id and the audio; and after a `start`, no
//! message naming another stream is accepted.
#![no_main]

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trunkline::protocol::plivo::PlivoDialect;
use trunkline::protocol::{
    AudioEncoding, Dialect, Inbound, MediaFormat, MessageKind, PayloadBuffer, ProtocolError, StreamStart,
    Track,
};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const STARTED_ID: &str = "87654321-4321-4321-4321-cba987654321";

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let limit = [1, 3, 160, 161, 640, 16 * 1024][usize::from(control >> 1) % 6];
    let mut payload = PayloadBuffer::with_limit(limit);
    let mut dialect = PlivoDialect::new();
    let result = dialect.parse(message, kind, &mut payload);
    if kind == MessageKind::Binary {
        assert_eq!(result, Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary)));
        return;
    }
    if message.len() > 64 * 1024 {
        assert_eq!(result, Err(ProtocolError::MessageTooLarge));
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
        Inbound::Connected => panic!("Plivo sends no connected"),
        Inbound::Notice => &["clearedAudio", "error", "playFailed", "muteStream", "unmuteStream"],
        Inbound::Start(start) => {
            let id = value["start"]["streamId"].as_str().or(value["streamId"].as_str());
            assert_eq!(id, Some(start.stream_id.as_str()));
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
            assert_eq!(value["name"].as_str(), Some(name.as_ref()));
            &["playedStream", "played"]
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

/// The same message after a `start` named [`STARTED_ID`]: a message naming another stream is
/// never accepted (but a `start`, the session's to refuse).
fn check_started(message: &[u8], limit: usize) {
    let mut dialect = PlivoDialect::new();
    let start = StreamStart {
        sequence: None,
        account_id: String::new(),
        stream_id: STARTED_ID.into(),
        call_id: String::new(),
        tracks: vec![Track::Inbound],
        custom_parameters: Vec::new(),
        media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 },
    };
    dialect.on_start(&start).expect("Plivo takes L16 16k back");
    let mut payload = PayloadBuffer::with_limit(limit);
    let Ok(parsed) = dialect.parse(message, MessageKind::Text, &mut payload) else { return };
    if matches!(parsed, Inbound::Start(_)) {
        return;
    }
    let value: Value = serde_json::from_slice(message).expect("an accepted message is JSON");
    if let Some(id) = value["streamId"].as_str() {
        assert_eq!(id, STARTED_ID, "a message for another stream was accepted");
    }
}

/// Writers for the stream `start` names: JSON, its id, its format, the audio round-trips.
fn check_writers(start: &StreamStart, message: &[u8]) {
    let mut dialect = PlivoDialect::new();
    let format = dialect.on_start(start).expect("a parsed start is one Plivo takes back");
    assert_eq!(format, start.media_format);
    let audio = &message[..message.len().min(700)];
    let mut out = Vec::new();
    dialect.write_media(audio, &mut out);
    assert_eq!(out.len(), dialect.max_media_message_len(audio.len()));
    let media: Value = serde_json::from_slice(&out).expect("playAudio is JSON");
    assert_eq!(media["event"], "playAudio");
    assert_eq!(media["media"]["sampleRate"], format.sample_rate);
    let b64 = media["media"]["payload"].as_str().expect("a payload");
    assert_eq!(LENIENT.decode(b64).expect("base64"), audio);
    let name = String::from_utf8_lossy(&message[..message.len().min(40)]);
    dialect.write_mark(&name, &mut out);
    let mark: Value = serde_json::from_slice(&out).expect("checkpoint is JSON");
    assert_eq!(
        (mark["streamId"].as_str(), mark["name"].as_str()),
        (Some(start.stream_id.as_str()), Some(&*name))
    );
    dialect.write_clear(&mut out);
    let clear: Value = serde_json::from_slice(&out).expect("clearAudio is JSON");
    assert_eq!(clear["streamId"].as_str(), Some(start.stream_id.as_str()));
}
