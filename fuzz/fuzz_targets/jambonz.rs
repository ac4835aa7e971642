//! The jambonz dialect parser on arbitrary bytes, checked against serde_json's own reading of them.
//!
//! First byte: bit 0 picks the frame kind (binary when set), bit 1 whether the metadata has been
//! accepted first, the rest picks the payload limit. Invariants: no panic; a binary frame is taken
//! exactly when it is non-empty, of even length and within the limit, and its payload is then the
//! frame itself; anything serde_json cannot parse as JSON is `MalformedJson`; an accepted text
//! message is the metadata before the start (its rate and call id as serde_json reads them) and a
//! mark echo or key press after it (the name or digit it holds); after an error, and after any
//! text message, the payload buffer is empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trunkline::protocol::jambonz::JambonzDialect;
use trunkline::protocol::{Dialect, Inbound, MessageKind, PayloadBuffer, ProtocolError};

const METADATA: &[u8] = br#"{"sampleRate":16000,"mixType":"mono","callSid":"c"}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let started = control & 2 == 2;
    let limit = [1, 2, 320, 640, 2048][usize::from(control >> 2) % 5];
    let mut payload = PayloadBuffer::with_limit(limit);
    let mut dialect = JambonzDialect::new();
    if started {
        let Ok(Inbound::Start(start)) = dialect.parse(METADATA, MessageKind::Text, &mut payload) else {
            panic!("the fixed metadata parses")
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
    match parsed {
        Inbound::Start(start) => {
            assert!(!started, "only the metadata starts the stream");
            let rate = &value["sampleRate"];
            let rate = rate.as_u64().or_else(|| rate.as_str().and_then(|s| s.parse().ok()));
            assert_eq!(rate, Some(u64::from(start.media_format.sample_rate)));
            assert_eq!(start.call_id, value["callSid"].as_str().unwrap_or(""));
            // serde_json keeps one of repeated names; the dialect keeps them all, in order.
            assert!(start.custom_parameters.len() >= value.as_object().unwrap().len());
        }
        Inbound::Mark { name, .. } => {
            assert!(started);
            assert_eq!(value["type"], "mark");
            let wire = value["data"]["name"].as_str().expect("a string name");
            if !wire.contains('%') {
                assert_eq!(wire, name.as_ref());
            }
        }
        Inbound::Dtmf { digit, .. } => {
            assert!(started);
            assert_eq!(value["event"], "dtmf");
            assert_eq!(value["dtmf"].as_str().map(str::as_bytes), Some(&[digit][..]));
        }
        other => panic!("jambonz sends no {other:?} as text"),
    }
});
