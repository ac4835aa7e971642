//! The Telnyx dialect on arbitrary bytes, checked against serde_json's own reading of them, and
//! its writers on arbitrary audio.
//!
//! First byte: bit 0 picks the frame kind (binary when set); bits 1-3 the payload limit; bit 4
//! whether a `start` has been taken first, and bits 5-6 that stream's format (and the audio sent
//! back): PCMU, L16, G.722 or Opus. An accepted G.722 or Opus payload is then decoded by the
//! engine's own decoders (G.722: two samples a byte; Opus: a packet, or a refusal, never a panic).
//! Invariants: no panic; a binary frame is always `UnexpectedFrameKind`; anything serde_json
//! cannot parse as JSON is `MalformedJson`; after an error the payload buffer is empty; an
//! accepted message names the event serde_json sees; an accepted `media` payload is exactly the
//! base64 decoding of `media.payload` (byte-swapped per sample on an L16 stream), within the limit;
//! after `start`, an accepted stream message names no other stream; a `start` names the stream
//! serde_json sees and a format the engine knows. Written `media` is exactly
//! `max_media_message_len` long and carries the audio (big-endian for L16); a written mark gives
//! its name back.
#![no_main]

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trunkline::codec::G722Decoder;
use trunkline::codec::opus::OpusDecoder;
use trunkline::protocol::telnyx::TelnyxDialect;
use trunkline::protocol::{
    AudioEncoding, Dialect, Inbound, MediaFormat, MessageKind, PayloadBuffer, ProtocolError, StreamStart,
    Track,
};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const STREAM_ID: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";

fn swapped(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for pair in out.chunks_exact_mut(2) {
        pair.swap(0, 1);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let limit = [0, 1, 3, 160, 161, 640, 1920, 16 * 1024][usize::from(control >> 1) & 7];
    let started = control & 0x10 != 0;
    let (encoding, sample_rate) = [
        (AudioEncoding::Mulaw, 8000),
        (AudioEncoding::L16, 16_000),
        (AudioEncoding::G722, 16_000),
        (AudioEncoding::Opus, 16_000),
    ][usize::from(control >> 5) & 3];
    let l16 = encoding == AudioEncoding::L16;
    let format = MediaFormat { encoding, sample_rate, channels: 1 };
    let mut dialect = TelnyxDialect::with_outbound_format(format);
    if started {
        let start = StreamStart {
            sequence: Some(1),
            account_id: String::new(),
            stream_id: STREAM_ID.to_owned(),
            call_id: String::new(),
            tracks: vec![Track::Inbound],
            custom_parameters: Vec::new(),
            media_format: format,
        };
        assert_eq!(dialect.on_start(&start), Ok(format));
    }

    // The writers, on the message bytes as audio.
    let mut out = Vec::new();
    assert_eq!(dialect.write_media(message, &mut out), MessageKind::Text);
    assert_eq!(out.len(), dialect.max_media_message_len(message.len()));
    let written: Value = serde_json::from_slice(&out).expect("written media is JSON");
    let sent = STANDARD.decode(written["media"]["payload"].as_str().expect("a payload")).expect("base64");
    assert_eq!(sent, if l16 { swapped(message) } else { message.to_vec() });
    let name = String::from_utf8_lossy(message);
    dialect.write_mark(&name, &mut out);
    let written: Value = serde_json::from_slice(&out).expect("written mark is JSON");
    assert_eq!(written["mark"]["name"].as_str(), Some(name.as_ref()));

    // The parser.
    let mut payload = PayloadBuffer::with_limit(limit);
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
            return;
        }
        Ok(parsed) => parsed,
    };
    let value = value.expect("an accepted message is JSON");
    let event = value["event"].as_str().expect("an accepted message has a string event");
    let stream_id = value["stream_id"].as_str();
    if started && !matches!(parsed, Inbound::Start(_) | Inbound::Connected) {
        assert!(stream_id.is_none_or(|id| id == STREAM_ID), "a foreign stream's message was accepted");
    }
    let expected = match parsed {
        Inbound::Connected => "connected",
        Inbound::Notice => panic!("Telnyx sends no notice the dialect accepts"),
        Inbound::Start(start) => {
            let id = stream_id.or(value["start"]["stream_id"].as_str());
            assert_eq!(id, Some(start.stream_id.as_str()));
            let encoding = value["start"]["media_format"]["encoding"].as_str().unwrap_or("PCMU");
            assert!(
                ["PCMU", "PCMA", "L16", "G722", "OPUS"].iter().any(|e| e.eq_ignore_ascii_case(encoding)),
                "{encoding}"
            );
            assert!(start.media_format.sample_rate > 0 && start.media_format.channels > 0);
            if start.media_format.encoding == AudioEncoding::G722 {
                assert_eq!(start.media_format.sample_rate, 16_000, "G.722 is 16 kHz audio");
            }
            "start"
        }
        Inbound::Media(frame) => {
            let b64 = value["media"]["payload"].as_str().expect("media.payload is a string");
            let decoded = LENIENT.decode(b64).expect("an accepted payload is valid base64");
            assert!(decoded.len() <= limit);
            if started && l16 {
                assert_eq!(decoded.len() % 2, 0, "L16 is whole samples");
                assert_eq!(payload.as_slice(), &swapped(&decoded)[..]);
            } else {
                assert_eq!(payload.as_slice(), &decoded[..]);
            }
            if started {
                decode_coded(encoding, payload.as_slice());
            }
            let ts = &value["media"]["timestamp"];
            let ts = ts.as_u64().or_else(|| ts.as_str().and_then(|s| s.parse().ok()));
            assert_eq!(ts, Some(frame.timestamp_ms));
            "media"
        }
        Inbound::Dtmf { digit, .. } => {
            assert_eq!(value["dtmf"]["digit"].as_str().map(str::as_bytes), Some(&[*digit][..]));
            "dtmf"
        }
        Inbound::Mark { name, .. } => {
            assert_eq!(value["mark"]["name"].as_str(), Some(name.as_ref()));
            "mark"
        }
        Inbound::Stop { .. } => "stop",
    };
    assert_eq!(event, expected);
    if !matches!(parsed, Inbound::Media(_)) {
        assert!(payload.as_slice().is_empty());
    }
});

/// The engine's decoders on an accepted payload of a G.722 or Opus stream.
fn decode_coded(encoding: AudioEncoding, payload: &[u8]) {
    match encoding {
        AudioEncoding::G722 => {
            let mut pcm = vec![0i16; 2 * payload.len()];
            assert_eq!(G722Decoder::new().decode(payload, &mut pcm), 2 * payload.len());
        }
        AudioEncoding::Opus => {
            let mut decoder = OpusDecoder::new(16_000).expect("a decoder");
            let mut pcm = vec![0i16; decoder.max_samples()];
            if let Ok(n) = decoder.decode(payload, &mut pcm) {
                assert!(n <= pcm.len());
            }
        }
        _ => {}
    }
}
