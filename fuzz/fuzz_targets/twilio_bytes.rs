//! The Twilio dialect parser on arbitrary bytes, checked against serde_json's own reading of them.
//!
//! First byte: bit 0 picks the frame kind (binary when set), the rest picks the payload limit.
//! Invariants: no panic; a binary frame is always `UnexpectedFrameKind`; anything serde_json
//! cannot parse as JSON is `MalformedJson`; an accepted message names the event serde_json sees;
//! an accepted `media` payload is exactly the base64 decoding of `media.payload`, within the limit;
//! after an error the payload buffer is empty.
#![no_main]

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trunkline::protocol::{Dialect, Inbound, MessageKind, PayloadBuffer, ProtocolError, TwilioDialect};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let limit = [1, 3, 160, 161, 16 * 1024][usize::from(control >> 1) % 5];
    let mut payload = PayloadBuffer::with_limit(limit);
    let mut dialect = TwilioDialect::new();
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
    let expected = match parsed {
        Inbound::Connected => "connected",
        Inbound::Notice => panic!("Twilio sends no notice the dialect accepts"),
        Inbound::Start(start) => {
            let sid = value["start"]["streamSid"].as_str().or(value["streamSid"].as_str());
            assert_eq!(sid, Some(start.stream_id.as_str()));
            assert!(start.media_format.sample_rate > 0 && start.media_format.channels > 0);
            "start"
        }
        Inbound::Media(frame) => {
            let b64 = value["media"]["payload"].as_str().expect("media.payload is a string");
            let decoded = LENIENT.decode(b64).expect("an accepted payload is valid base64");
            assert_eq!(payload.as_slice(), &decoded[..]);
            assert!(decoded.len() <= limit);
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
