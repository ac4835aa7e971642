//! The AudioSocket dialect on an arbitrary byte stream, cut into messages the way the engine cuts
//! it (by the dialect's own length), and on the raw bytes as one message.
//!
//! First byte: picks the payload limit. Invariants: no panic; a message whose length disagrees
//! with its header is `WrongType("length")`; the stream starts at most once, and only after the
//! UUID; every audio payload taken is of even length, within the limit, and ends with the
//! message's own audio; after an error, and after any message but audio, the payload buffer is
//! empty; agent audio is written as one message the header of which announces it exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline::protocol::audiosocket::AudioSocketDialect;
use trunkline::protocol::{Dialect, Inbound, MessageKind, PayloadBuffer, ProtocolError};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else { return };
    let limit = [1, 2, 320, 640, 2048][usize::from(control) % 5];
    let mut payload = PayloadBuffer::with_limit(limit);

    // The raw bytes as one message.
    let mut dialect = AudioSocketDialect::new();
    let whole = stream.len() >= 3 && dialect.stream_message_len(&stream[..3]) == stream.len();
    let result = dialect.parse(stream, MessageKind::Binary, &mut payload);
    if !whole {
        assert_eq!(result, Err(ProtocolError::WrongType("length")));
    }

    // The bytes as a stream.
    let mut dialect = AudioSocketDialect::new();
    let (mut rest, mut uuid_seen, mut starts) = (stream, false, 0);
    while rest.len() >= 3 {
        let len = dialect.stream_message_len(&rest[..3]);
        assert!(len >= 3);
        if rest.len() < len {
            break;
        }
        let (message, tail) = rest.split_at(len);
        rest = tail;
        let result = dialect.parse(message, MessageKind::Binary, &mut payload);
        match result {
            Ok(Inbound::Connected) => {
                assert_eq!(message[0], 0x01);
                assert!(!uuid_seen, "one UUID");
                uuid_seen = true;
            }
            Ok(Inbound::Start(start)) => {
                assert!(uuid_seen, "the stream starts after the UUID");
                starts += 1;
                assert_eq!(starts, 1, "once");
                assert!((0x10..=0x18).contains(&message[0]));
                assert_eq!(start.call_id.len(), 36);
                let format = dialect.on_start(&start).expect("every rate is answered");
                let mut out = Vec::new();
                let frame = vec![0u8; (format.sample_rate / 50 * 2) as usize];
                dialect.write_media(&frame, &mut out);
                assert_eq!(dialect.stream_message_len(&out[..3]), out.len());
                assert_eq!(out.len(), dialect.max_media_message_len(frame.len()));
                assert!(payload.as_slice().is_empty());
            }
            Ok(Inbound::Media(_)) => {
                assert_eq!(starts, 1);
                let audio = payload.as_slice();
                assert!(audio.len() <= limit && audio.len().is_multiple_of(2) && !audio.is_empty());
                assert!(audio.ends_with(&message[3..]));
            }
            Ok(Inbound::Dtmf { digit, .. }) => {
                assert_eq!(message, [0x03, 0x00, 0x01, digit]);
                assert!(payload.as_slice().is_empty());
            }
            Ok(Inbound::Stop { .. }) => {
                assert!(message[0] == 0x00 || (message[0] == 0xff && message[3] & 1 == 1));
                assert!(payload.as_slice().is_empty());
            }
            Ok(other) => panic!("AudioSocket sends no {other:?}"),
            Err(error) => {
                assert_ne!(error, ProtocolError::WrongType("length"), "whole messages have the right length");
                assert!(payload.as_slice().is_empty());
            }
        }
    }
});
