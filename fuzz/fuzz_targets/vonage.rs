//! The Vonage dialect parser on arbitrary bytes, checked against serde_json's own reading of them.
//!
//! First byte: bit 0 picks the frame kind (binary when set), bit 1 whether the dialect has
//! accepted a start first, the rest picks the payload limit. Invariants: no panic; a binary frame
//! is taken exactly when it is non-empty, of even length and within the limit, and its payload is
//! then the frame itself; anything serde_json cannot parse as JSON is `MalformedJson`; an accepted
//! text message names the event serde_json sees and carries what it holds (the format, the digit,
//! the mark name); after an error, and after any text message, the payload buffer is empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trunkline::protocol::vonage::VonageDialect;
use trunkline::protocol::{AudioEncoding, Dialect, Inbound, MessageKind, PayloadBuffer, ProtocolError};

const CONNECTED: &[u8] = br#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let limit = [1, 2, 320, 640, 2048][usize::from(control >> 2) % 5];
    let mut payload = PayloadBuffer::with_limit(limit);
    let mut dialect = VonageDialect::new();
    if control & 2 == 2 {
        let Ok(Inbound::Start(start)) = dialect.parse(CONNECTED, MessageKind::Text, &mut payload) else {
            panic!("the fixed start parses")
        };
        dialect.on_start(&start).expect("16 kHz is written");
    }
    let result = dialect.parse(message, kind, &mut payload);
    if kind == MessageKind::Binary {
        let expected = if message.is_empty() {
            Err(ProtocolError::MissingField("audio"))
        } else if !message.len().is_multiple_of(2) {
            Err(ProtocolError::OddPayloadLength)
        } else if message.len() > limit {
            Err(ProtocolError::PayloadTooLarge)
        } else {
            Ok(())
        };
        assert_eq!(result.as_ref().map(|_| ()).map_err(|e| *e), expected);
        if expected.is_ok() {
            assert!(matches!(result, Ok(Inbound::Media(_))));
            assert_eq!(payload.as_slice(), message);
        } else {
            assert!(payload.as_slice().is_empty());
        }
        return;
    }
    assert!(payload.as_slice().is_empty(), "text carries no audio");
    let value = match serde_json::from_slice::<Value>(message) {
        Ok(value) => value,
        // The dialect skips the fields it does not read without a nesting limit; serde_json's
        // own tree stops at 128 levels.
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => return,
        Err(_) => {
            assert_eq!(result.err(), Some(ProtocolError::MalformedJson), "serde_json rejects it too");
            return;
        }
    };
    let Ok(parsed) = result else { return };
    let event = value["event"].as_str().expect("an accepted message has a string event");
    match parsed {
        Inbound::Start(start) => {
            assert_eq!(event, "websocket:connected");
            let content_type = value["content-type"].as_str().expect("a content type");
            assert!(content_type.trim_start().to_ascii_lowercase().starts_with("audio/l16"));
            assert_eq!(start.media_format.encoding, AudioEncoding::L16);
            assert!(start.media_format.sample_rate > 0 && start.media_format.channels > 0);
            assert_eq!(start.call_id, value["uuid"].as_str().unwrap_or(""));
            // serde_json keeps one of repeated names; the dialect keeps them all, in order.
            let headers = value.as_object().unwrap().keys().filter(|k| *k != "event" && *k != "content-type");
            assert!(start.custom_parameters.len() >= headers.count());
        }
        Inbound::Dtmf { digit, .. } => {
            assert_eq!(event, "websocket:dtmf");
            assert!(b"0123456789*#ABCD".contains(&digit));
            let sent = value["digit"].as_str().or(value["dtmf"]["digit"].as_str()).or(value["dtmf"].as_str());
            assert_eq!(sent.map(str::as_bytes), Some(&[digit][..]));
        }
        Inbound::Mark { name, .. } => {
            assert_eq!(event, "websocket:notify");
            assert_eq!(value["payload"]["mark"].as_str(), Some(name.as_ref()));
        }
        Inbound::Notice => assert_eq!(event, "websocket:cleared"),
        other => panic!("Vonage sends no {other:?} as text"),
    }
});
