//! The SignalWire dialect on arbitrary bytes, against the Twilio dialect it must read exactly as.
//!
//! First byte: bit 0 picks the frame kind (binary when set), the rest picks the payload limit.
//! Invariants: no panic; SignalWire's parse gives the same result and the same payload bytes as
//! Twilio's on every input; a `start` it accepts gives back its own format, mono, from `on_start`
//! (where Twilio gives 8 kHz µ-law); after that start both dialects still agree, including on
//! messages for other streams; the writers produce Twilio's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline::protocol::twilio::SignalWireDialect;
use trunkline::protocol::{
    AudioEncoding, Dialect, Inbound, MediaFormat, MessageKind, PayloadBuffer, TwilioDialect,
};

fuzz_target!(|data: &[u8]| {
    let Some((&control, message)) = data.split_first() else { return };
    let kind = if control & 1 == 1 { MessageKind::Binary } else { MessageKind::Text };
    let limit = [0, 1, 3, 160, 161, 960, 16 * 1024][usize::from(control >> 1) % 7];
    let mut signalwire = SignalWireDialect::new();
    let mut twilio = TwilioDialect::new();
    let (mut sw_payload, mut tw_payload) =
        (PayloadBuffer::with_limit(limit), PayloadBuffer::with_limit(limit));

    let sw = signalwire.parse(message, kind, &mut sw_payload);
    let tw = twilio.parse(message, kind, &mut tw_payload);
    assert_eq!(sw, tw);
    assert_eq!(sw_payload.as_slice(), tw_payload.as_slice());
    assert_eq!(signalwire.may_start_or_stop(message, kind), twilio.may_start_or_stop(message, kind));

    if let Ok(Inbound::Start(start)) = &sw {
        let back = signalwire.on_start(start).expect("SignalWire takes any start");
        assert_eq!(back, MediaFormat { channels: 1, ..start.media_format });
        let twilio_back = twilio.on_start(start).expect("Twilio takes any start");
        assert_eq!(
            twilio_back,
            MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 }
        );
        // Once started, both refuse (or take) the same messages: parse the input again.
        let sw = signalwire.parse(message, kind, &mut sw_payload);
        let tw = twilio.parse(message, kind, &mut tw_payload);
        assert_eq!(sw, tw);
        assert_eq!(sw_payload.as_slice(), tw_payload.as_slice());
    }

    let (mut sw_out, mut tw_out) = (Vec::new(), Vec::new());
    assert_eq!(signalwire.write_media(message, &mut sw_out), twilio.write_media(message, &mut tw_out));
    assert_eq!(sw_out, tw_out);
    assert_eq!(signalwire.max_media_message_len(message.len()), twilio.max_media_message_len(message.len()));
    let name = String::from_utf8_lossy(message);
    assert_eq!(signalwire.write_mark(&name, &mut sw_out), twilio.write_mark(&name, &mut tw_out));
    assert_eq!(sw_out, tw_out);
    assert_eq!(signalwire.write_clear(&mut sw_out), twilio.write_clear(&mut tw_out));
    assert_eq!(sw_out, tw_out);
});
