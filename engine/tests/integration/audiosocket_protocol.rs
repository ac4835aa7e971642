//! The Asterisk AudioSocket dialect against the protocol's documented messages, then whole calls
//! through a session: a TCP byte stream cut anywhere, one byte at a time included.
//!
//! The byte fixtures are the examples of the AudioSocket protocol description (Asterisk's
//! AudioSocket channel documentation): the UUID message, a 20 ms audio message at 8 kHz, the key
//! press '5' and the hang-up. Audio is built here from sample values encoded by hand as
//! little-endian; expectations never come from the dialect. Allocations are counted per thread
//! (the test binary's allocator: `thread_allocations`).

use std::time::Duration;

use trunkline::protocol::audiosocket::AudioSocketDialect;
use trunkline::protocol::{
    AudioEncoding, ClearKind, Confirmation, Dialect, Framing, Inbound, MediaFormat, MediaFrame, MessageKind,
    PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, Event, Session, SessionConfig};

use crate::thread_allocations::allocations_in;

use crate::dialect_session::{events, open_with, read_all_into};
use crate::wire::{l16, ramp};

// ---------------------------------------------------------------------------------------------
// The protocol description's examples

/// `UUID (Asterisk → app): 01 00 10 40 32 5e c2 5e fd 4b d3 80 5f 53 57 6e 58 1d 13`
const UUID_MESSAGE: [u8; 19] = [
    0x01, 0x00, 0x10, 0x40, 0x32, 0x5e, 0xc2, 0x5e, 0xfd, 0x4b, 0xd3, 0x80, 0x5f, 0x53, 0x57, 0x6e, 0x58,
    0x1d, 0x13,
];
/// The same UUID in its canonical text form.
const UUID_TEXT: &str = "40325ec2-5efd-4bd3-805f-53576e581d13";
/// `Audio 20 ms @8k: 10 01 40 <320 bytes slin LE>`: the header.
const AUDIO_8K_HEADER: [u8; 3] = [0x10, 0x01, 0x40];
/// `DTMF '5': 03 00 01 35`
const DTMF_5: [u8; 4] = [0x03, 0x00, 0x01, 0x35];
/// `Hang-up: 00 00 00`
const HANGUP: [u8; 3] = [0x00, 0x00, 0x00];

// ---------------------------------------------------------------------------------------------
// Helpers

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn parse<'a>(
    dialect: &mut AudioSocketDialect,
    message: &'a [u8],
) -> (Result<Inbound<'a>, ProtocolError>, Vec<u8>) {
    let mut payload = PayloadBuffer::with_limit(2048);
    let result = dialect.parse(message, MessageKind::Binary, &mut payload);
    (result, payload.as_slice().to_vec())
}

fn start(rate: u32) -> Inbound<'static> {
    Inbound::Start(Box::new(StreamStart {
        sequence: None,
        account_id: String::new(),
        stream_id: UUID_TEXT.to_owned(),
        call_id: UUID_TEXT.to_owned(),
        tracks: vec![Track::Inbound],
        custom_parameters: Vec::new(),
        media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 },
    }))
}

const MEDIA: Inbound<'static> =
    Inbound::Media(MediaFrame { sequence: None, chunk: None, timestamp_ms: 0, track: Track::Inbound });

/// A dialect that has seen the UUID.
fn connected() -> AudioSocketDialect {
    let mut dialect = AudioSocketDialect::new();
    assert_eq!(parse(&mut dialect, &UUID_MESSAGE).0, Ok(Inbound::Connected));
    dialect
}

// ---------------------------------------------------------------------------------------------
// Parsing and writing

#[test]
fn capabilities_are_a_paced_byte_stream_with_nothing_confirmed_and_no_clear() {
    let caps = AudioSocketDialect::new().capabilities();
    assert_eq!(caps.framing, Framing::Stream { header_len: 3 });
    assert!(!caps.timestamps);
    assert_eq!(caps.frame_ms, 20);
    assert_eq!(caps.max_lead_ms, Some(40));
    assert_eq!(caps.confirmation, Confirmation::None);
    assert_eq!(caps.clear, ClearKind::None);
}

#[test]
fn the_header_announces_the_message_length_big_endian() {
    let dialect = AudioSocketDialect::new();
    assert_eq!(dialect.stream_message_len(&UUID_MESSAGE[..3]), 19);
    assert_eq!(dialect.stream_message_len(&AUDIO_8K_HEADER), 323);
    assert_eq!(dialect.stream_message_len(&DTMF_5[..3]), 4);
    assert_eq!(dialect.stream_message_len(&HANGUP), 3);
    assert_eq!(dialect.stream_message_len(&[0x10, 0xff, 0xff]), 3 + 65_535);
}

#[test]
fn the_documented_messages() {
    let mut dialect = connected();
    // The first audio message starts the stream at its rate; its audio comes with the next one.
    let first = l16(&ramp(160, 0));
    let second = l16(&ramp(160, 160));
    let message = [&AUDIO_8K_HEADER[..], &first].concat();
    assert_eq!(parse(&mut dialect, &message), (Ok(start(8_000)), vec![]));
    let message = [&AUDIO_8K_HEADER[..], &second].concat();
    assert_eq!(parse(&mut dialect, &message), (Ok(MEDIA), [first, second.clone()].concat()));
    let message = [&AUDIO_8K_HEADER[..], &second].concat();
    assert_eq!(parse(&mut dialect, &message), (Ok(MEDIA), second));
    assert_eq!(
        parse(&mut dialect, &DTMF_5),
        (Ok(Inbound::Dtmf { sequence: None, digit: b'5', duration_ms: None }), vec![])
    );
    assert_eq!(parse(&mut dialect, &HANGUP), (Ok(Inbound::Stop { sequence: None }), vec![]));
}

#[test]
fn every_audio_type_has_its_rate_and_the_reply_mirrors_the_ones_the_engine_writes() {
    // Type → rate (the current table), and the type agent audio is written as.
    let table = [
        (0x10, 8_000, 0x10, 8_000),
        (0x11, 12_000, 0x10, 8_000),
        (0x12, 16_000, 0x12, 16_000),
        (0x13, 24_000, 0x13, 24_000),
        (0x14, 32_000, 0x10, 8_000),
        (0x15, 44_100, 0x10, 8_000),
        (0x16, 48_000, 0x16, 48_000),
        (0x17, 96_000, 0x10, 8_000),
        (0x18, 192_000, 0x10, 8_000),
    ];
    for (kind, rate, reply_kind, reply_rate) in table {
        let mut dialect = connected();
        let message = tlv(kind, &[1, 2, 3, 4]);
        let (result, _) = parse(&mut dialect, &message);
        let Ok(Inbound::Start(start)) = result else { panic!("{kind:#x}: {result:?}") };
        assert_eq!(
            start.media_format,
            MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 }
        );
        assert_eq!(
            dialect.on_start(&start),
            Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: reply_rate, channels: 1 }),
            "{kind:#x}"
        );
        let mut out = Vec::new();
        let audio = vec![7u8; (reply_rate / 50 * 2) as usize];
        assert_eq!(dialect.write_media(&audio, &mut out), MessageKind::Binary);
        assert_eq!(out, tlv(reply_kind, &audio), "{kind:#x}");
    }
}

#[test]
fn write_media_is_one_audio_message_of_the_frame() {
    let dialect = AudioSocketDialect::new();
    let frame = l16(&ramp(160, 3));
    let mut out = vec![1, 2, 3];
    assert_eq!(dialect.write_media(&frame, &mut out), MessageKind::Binary);
    assert_eq!(out[..3], AUDIO_8K_HEADER, "before the start: 8 kHz, as the example");
    assert_eq!(out[3..], frame[..]);
    for len in [0, 320, 640, 1920, 65_535] {
        assert_eq!(dialect.max_media_message_len(len), len + 3);
    }
}

#[test]
fn errors_by_message() {
    let cases: Vec<(&str, Vec<Vec<u8>>, ProtocolError)> = vec![
        ("audio before the UUID", vec![tlv(0x10, &[0; 320])], ProtocolError::MediaBeforeStart),
        ("a second UUID", vec![UUID_MESSAGE.to_vec(), UUID_MESSAGE.to_vec()], ProtocolError::DuplicateStart),
        ("a short UUID", vec![tlv(0x01, &[1; 15])], ProtocolError::WrongType("uuid")),
        ("a long UUID", vec![tlv(0x01, &[1; 17])], ProtocolError::WrongType("uuid")),
        ("empty audio", vec![UUID_MESSAGE.to_vec(), tlv(0x10, &[])], ProtocolError::MissingField("audio")),
        ("odd audio", vec![UUID_MESSAGE.to_vec(), tlv(0x10, &[0; 321])], ProtocolError::OddPayloadLength),
        (
            "audio over the limit",
            vec![UUID_MESSAGE.to_vec(), tlv(0x10, &[0; 320]), tlv(0x10, &[0; 2050])],
            ProtocolError::PayloadTooLarge,
        ),
        (
            "a change of rate",
            vec![UUID_MESSAGE.to_vec(), tlv(0x10, &[0; 320]), tlv(0x12, &[0; 640])],
            ProtocolError::UnsupportedFormat,
        ),
        (
            "an empty key press",
            vec![UUID_MESSAGE.to_vec(), tlv(0x03, &[])],
            ProtocolError::MissingField("dtmf"),
        ),
        ("two keys", vec![tlv(0x03, b"55")], ProtocolError::WrongType("dtmf")),
        ("not a key", vec![tlv(0x03, b"e")], ProtocolError::WrongType("dtmf")),
        (
            "a frame-forwarding error",
            vec![tlv(0xff, &[0x02])],
            ProtocolError::CarrierReported("error.frame_forwarding"),
        ),
        ("a memory error", vec![tlv(0xff, &[0x04])], ProtocolError::CarrierReported("error.memory")),
        ("an error without a code", vec![tlv(0xff, &[])], ProtocolError::CarrierReported("error")),
        ("an unknown error code", vec![tlv(0xff, &[0x80])], ProtocolError::CarrierReported("error")),
        ("type 0x02", vec![tlv(0x02, &[1, 0, 0, 0, 0, 0])], ProtocolError::UnknownEvent),
        ("type 0x19", vec![tlv(0x19, &[0; 4])], ProtocolError::UnknownEvent),
        ("type 0x0f", vec![tlv(0x0f, &[])], ProtocolError::UnknownEvent),
        ("too short", vec![vec![0x10, 0x00]], ProtocolError::WrongType("length")),
        ("shorter than announced", vec![vec![0x03, 0x00, 0x02, 0x35]], ProtocolError::WrongType("length")),
        ("longer than announced", vec![vec![0x00, 0x00, 0x00, 0x00]], ProtocolError::WrongType("length")),
    ];
    for (what, messages, error) in cases {
        let mut dialect = AudioSocketDialect::new();
        let (last, before) = messages.split_last().unwrap();
        for m in before {
            assert!(parse(&mut dialect, m).0.is_ok(), "{what}");
        }
        assert_eq!(parse(&mut dialect, last), (Err(error), vec![]), "{what}");
    }
    // Every digit.
    let mut dialect = connected();
    for d in *b"0123456789*#ABCD" {
        assert_eq!(
            parse(&mut dialect, &tlv(0x03, &[d])).0,
            Ok(Inbound::Dtmf { sequence: None, digit: d, duration_ms: None })
        );
    }
    // The caller hanging up, as an error code (alone or with others).
    for code in [0x01, 0x03, 0x07] {
        assert_eq!(parse(&mut dialect, &tlv(0xff, &[code])).0, Ok(Inbound::Stop { sequence: None }));
    }
    // A text frame.
    let mut payload = PayloadBuffer::with_limit(64);
    assert_eq!(
        AudioSocketDialect::new().parse(&HANGUP, MessageKind::Text, &mut payload),
        Err(ProtocolError::UnexpectedFrameKind(MessageKind::Text))
    );
}

#[test]
fn audio_parses_without_allocating_once_the_stream_has_started() {
    let mut dialect = connected();
    let message = tlv(0x10, &l16(&ramp(160, 9)));
    let mut payload = PayloadBuffer::with_limit(2048);
    assert!(matches!(dialect.parse(&message, MessageKind::Binary, &mut payload), Ok(Inbound::Start(_))));
    for _ in 0..3 {
        let (n, result) =
            allocations_in(|| dialect.parse(&message, MessageKind::Binary, &mut payload).is_ok());
        assert!(result);
        assert_eq!(n, 0);
    }
    let (n, result) = allocations_in(|| dialect.parse(&DTMF_5, MessageKind::Binary, &mut payload).is_ok());
    assert!(result);
    assert_eq!(n, 0);
}

#[test]
fn the_quick_look_sees_the_uuid_the_first_audio_the_hang_up_and_errors() {
    let mut dialect = AudioSocketDialect::new();
    let audio = tlv(0x10, &[0; 320]);
    assert!(dialect.may_start_or_stop(&UUID_MESSAGE, MessageKind::Binary));
    assert!(dialect.may_start_or_stop(&audio, MessageKind::Binary));
    assert!(dialect.may_start_or_stop(&HANGUP, MessageKind::Binary));
    assert!(dialect.may_start_or_stop(&tlv(0xff, &[1]), MessageKind::Binary));
    assert!(!dialect.may_start_or_stop(&DTMF_5, MessageKind::Binary));
    assert_eq!(parse(&mut dialect, &UUID_MESSAGE).0, Ok(Inbound::Connected));
    assert!(matches!(parse(&mut dialect, &audio).0, Ok(Inbound::Start(_))));
    assert!(!dialect.may_start_or_stop(&audio, MessageKind::Binary), "the stream has started");
    assert!(dialect.may_start_or_stop(&HANGUP, MessageKind::Binary));
}

// ---------------------------------------------------------------------------------------------
// Whole calls through a session (inline engine on a manual clock)

fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    open_with(clock, config, AudioSocketDialect::new())
}

fn outbound(s: &mut Session) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| {
        let kind = s.next_outbound(&mut buf)?;
        assert_eq!(kind, MessageKind::Binary);
        Some(buf.clone())
    })
    .collect()
}

/// An 8 kHz call whose stream has started (the UUID, then a frame of silence), the agent
/// playing at 8 kHz.
fn started_call(clock: &ManualClock) -> (Engine, Session) {
    let config = SessionConfig { play_rate: 8_000, ..Default::default() };
    let (engine, mut s) = open(clock, &config);
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &[0; 320]), MessageKind::Binary).unwrap();
    (engine, s)
}

/// 20 ms of the call: the messages the engine sends now and the events it has, then the clock
/// moves on and the host reads its audio (which runs the inline engine).
fn step(clock: &ManualClock, s: &mut Session) -> (Vec<Vec<u8>>, Vec<Event>) {
    let sent = outbound(s);
    let evs = events(s);
    clock.advance(Duration::from_millis(20));
    s.read_audio(&mut [0; 16]);
    (sent, evs)
}

/// A short call as Asterisk sends it: the UUID, three 20 ms frames at 8 kHz, the key '5', two
/// more frames, the hang-up. Returns the bytes and the caller's samples.
fn short_call() -> (Vec<u8>, Vec<i16>) {
    let audio = ramp(5 * 160, 0);
    let mut stream = UUID_MESSAGE.to_vec();
    for (i, frame) in audio.chunks(160).enumerate() {
        if i == 3 {
            stream.extend_from_slice(&DTMF_5);
        }
        stream.extend_from_slice(&AUDIO_8K_HEADER);
        stream.extend(l16(frame));
    }
    stream.extend_from_slice(&HANGUP);
    (stream, audio)
}

fn expected_call_events(evs: &[Event]) {
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert_eq!(evs[0], Event::Connected);
    let Event::Started(start) = &evs[1] else { panic!("{evs:?}") };
    assert_eq!((start.call_id.as_str(), start.stream_id.as_str()), (UUID_TEXT, UUID_TEXT));
    assert_eq!(
        start.media_format,
        MediaFormat { encoding: AudioEncoding::L16, sample_rate: 8_000, channels: 1 }
    );
    assert!(start.custom_parameters.is_empty());
    // Three frames had arrived: 60 ms of stream time.
    assert_eq!(evs[2], Event::Dtmf { digit: '5', stream_ms: 60, duration_ms: None });
    assert_eq!(evs[3], Event::Stopped);
}

#[test]
fn the_byte_stream_cut_at_every_boundary_delivers_the_same_call() {
    let (stream, audio) = short_call();
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 8_000, ..Default::default() };
    for cut in 0..=stream.len() {
        let (_engine, mut s) = open(&clock, &config);
        let mut received = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            s.push(piece, MessageKind::Binary).unwrap();
            read_all_into(&mut s, &mut received);
        }
        assert_eq!(received, audio, "cut at {cut}");
        expected_call_events(&events(&mut s));
        let stats = s.stats();
        assert_eq!(
            (stats.messages_in, stats.media_frames_in, stats.protocol_errors),
            (8, 4, 0),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_byte_stream_one_byte_at_a_time_delivers_the_same_call() {
    let (stream, audio) = short_call();
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8_000, ..Default::default() });
    let mut received = Vec::new();
    for byte in &stream {
        s.push(std::slice::from_ref(byte), MessageKind::Binary).unwrap();
        read_all_into(&mut s, &mut received);
    }
    // The 8 kHz samples themselves, in order, none lost (the first frame rode with the second).
    assert_eq!(received, audio);
    expected_call_events(&events(&mut s));
}

#[test]
fn a_bare_eof_ends_the_call() {
    let (stream, _) = short_call();
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8_000, ..Default::default() });
    s.push(&stream[..stream.len() - HANGUP.len()], MessageKind::Binary).unwrap();
    s.end_stream().unwrap();
    expected_call_events(&events(&mut s));
}

#[test]
fn a_length_past_the_end_never_completes_and_the_eof_ends_the_call() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8_000, ..Default::default() });
    let first = ramp(160, 1);
    let second = ramp(160, 2);
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &l16(&first)), MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &l16(&second)), MessageKind::Binary).unwrap();
    // A message announcing 320 bytes, cut off after 100: it never completes.
    s.push(&[&AUDIO_8K_HEADER[..], &[0x55; 100]].concat(), MessageKind::Binary).unwrap();
    let mut received = Vec::new();
    read_all_into(&mut s, &mut received);
    assert_eq!(received, [first, second].concat());
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[..], [Event::Connected, Event::Started(_), Event::Stopped]), "{evs:?}");
    read_all_into(&mut s, &mut received);
    assert_eq!(received.len(), 320, "the partial message was never parsed");
    assert_eq!(s.stats().messages_in, 3);
}

#[test]
fn a_message_over_the_size_limit_is_skipped_in_step() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8_000, ..Default::default() });
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    // 60 000 bytes of audio: over the message limit (7683 B, a 20 ms message at 192 kHz), arriving
    // in pieces.
    let huge = tlv(0x10, &vec![0u8; 60_000]);
    for piece in huge.chunks(4_000) {
        s.push(piece, MessageKind::Binary).unwrap();
    }
    let frame = ramp(160, 5);
    s.push(&tlv(0x10, &l16(&frame)), MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &l16(&frame)), MessageKind::Binary).unwrap();
    s.push(&DTMF_5, MessageKind::Binary).unwrap();
    let evs = events(&mut s);
    let errors: Vec<_> = evs.iter().filter(|e| matches!(e, Event::ProtocolError { .. })).collect();
    assert_eq!(errors, [&Event::ProtocolError { error: ProtocolError::MessageTooLarge }]);
    assert!(evs.contains(&Event::Dtmf { digit: '5', stream_ms: 40, duration_ms: None }), "{evs:?}");
}

#[test]
fn the_hang_up_error_code_ends_the_call_and_other_errors_do_not() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8_000, ..Default::default() });
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &[0; 320]), MessageKind::Binary).unwrap();
    s.push(&tlv(0xff, &[0x02]), MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &[0; 320]), MessageKind::Binary).unwrap();
    s.push(&tlv(0xff, &[0x01]), MessageKind::Binary).unwrap();
    let evs = events(&mut s);
    assert_eq!(
        evs[2..],
        [
            Event::ProtocolError { error: ProtocolError::CarrierReported("error.frame_forwarding") },
            Event::Stopped
        ],
        "{evs:?}"
    );
    assert_eq!(s.stats().media_frames_in, 1);
}

#[test]
fn agent_audio_goes_out_in_20_ms_messages_never_more_than_40_ms_ahead_and_marks_play_by_the_clock() {
    let clock = ManualClock::new();
    // The session asks for a 200 ms lead: Asterisk plays what it gets at once, so 40 ms it is.
    let config = SessionConfig { play_rate: 8_000, agent_rate: 8_000, lead_ms: 200, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &[0; 320]), MessageKind::Binary).unwrap();
    assert!(outbound(&mut s).is_empty(), "no handshake");
    // 210 ms of agent audio, then a mark.
    let reply = ramp(1_680, 7);
    assert_eq!(s.play(&reply, 8_000).unwrap(), reply.len());
    s.mark("end-of-reply").unwrap();

    let mut sent = Vec::new();
    let mut played_at = None;
    for step in 0..30u64 {
        for message in outbound(&mut s) {
            assert_eq!(message[..3], AUDIO_8K_HEADER, "only 20 ms audio messages: no marks, no clear");
            assert_eq!(message.len(), 323);
            sent.extend_from_slice(&message[3..]);
        }
        let now_ms = step * 20;
        assert!(
            sent.len() / 320 <= (now_ms / 20 + 2) as usize,
            "at {now_ms} ms: {} frames",
            sent.len() / 320
        );
        for e in events(&mut s) {
            match e {
                Event::MarkPlayed { name, played_ms } => {
                    assert_eq!(name, "end-of-reply");
                    // 210 ms of reply (the 10 ms of padding after it is no agent audio).
                    assert_eq!(played_ms, 210);
                    played_at = Some(now_ms);
                }
                Event::Connected | Event::Started(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    assert_eq!(sent.len(), 11 * 320);
    assert_eq!(&sent[..reply.len() * 2], l16(&reply).as_slice());
    assert!(sent[reply.len() * 2..].iter().all(|&b| b == 0));
    // Reported once the engine's clock has played it (eleven frames from 0 ms end at 220 ms).
    let played_at = played_at.expect("the mark is reported played");
    assert!((220..=240).contains(&played_at), "reported at {played_at} ms");
}

#[test]
fn an_interrupt_sends_nothing_and_what_asterisk_holds_still_plays() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_call(&clock);
    s.play(&vec![1000i16; 320], 8_000).unwrap(); // 40 ms
    s.mark("sent").unwrap();
    s.play(&vec![1000i16; 8_000], 8_000).unwrap(); // one second
    s.mark("never-sent").unwrap();
    assert_eq!(outbound(&mut s).len(), 2, "the two frames allowed ahead");
    clock.advance(Duration::from_millis(20));
    s.interrupt().unwrap();
    assert!(outbound(&mut s).is_empty(), "there is no clear to send");
    let evs = events(&mut s);
    assert_eq!(
        evs[2..],
        [Event::Interrupted { played_ms: 20 }, Event::MarkCleared { name: "never-sent".into() }],
        "{evs:?}"
    );
    clock.advance(Duration::from_millis(20));
    s.read_audio(&mut [0; 16]);
    assert_eq!(events(&mut s), [Event::MarkPlayed { name: "sent".into(), played_ms: 40 }]);
    assert_eq!(s.stats().clears_sent, 0);
}

#[test]
fn a_16_khz_call_reaches_a_16_khz_agent_untouched_and_is_answered_in_its_own_type() {
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 16_000, play_rate: 16_000, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    let audio = ramp(10 * 320, 11);
    let mut stream = UUID_MESSAGE.to_vec();
    for frame in audio.chunks(320) {
        stream.extend(tlv(0x12, &l16(frame)));
    }
    let mut received = Vec::new();
    for piece in stream.chunks(97) {
        s.push(piece, MessageKind::Binary).unwrap();
        read_all_into(&mut s, &mut received);
    }
    assert_eq!(received, audio);
    let evs = events(&mut s);
    let Event::Started(start) = &evs[1] else { panic!("{evs:?}") };
    assert_eq!(start.media_format.sample_rate, 16_000);
    let reply = ramp(320, 13);
    s.play(&reply, 16_000).unwrap();
    assert_eq!(outbound(&mut s), [tlv(0x12, &l16(&reply))]);
}

#[test]
fn a_rate_the_engine_does_not_convert_starts_the_call_refuses_its_audio_and_answers_at_8_khz() {
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 16_000, play_rate: 8_000, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    for _ in 0..3 {
        s.push(&tlv(0x11, &[0; 480]), MessageKind::Binary).unwrap();
    }
    let evs = events(&mut s);
    let Event::Started(start) = &evs[1] else { panic!("{evs:?}") };
    assert_eq!(start.media_format.sample_rate, 12_000);
    assert!(
        evs[2..].iter().all(|e| *e == Event::ProtocolError { error: ProtocolError::UnsupportedFormat }),
        "{evs:?}"
    );
    let reply = ramp(160, 17);
    s.play(&reply, 8_000).unwrap();
    assert_eq!(outbound(&mut s), [tlv(0x10, &l16(&reply))]);
}

/// At 48 kHz the first message (held until the second) and the second came to 3840 bytes, over
/// the default 2 KiB of payload: the call's first 20 ms were dropped, unreported.
#[test]
fn a_48_khz_call_reaches_a_48_khz_agent_from_its_first_sample() {
    let clock = ManualClock::new();
    let config = SessionConfig { agent_rate: 48_000, play_rate: 48_000, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    let audio = ramp(5 * 960, 19);
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    let mut received = Vec::new();
    for frame in audio.chunks(960) {
        s.push(&tlv(0x16, &l16(frame)), MessageKind::Binary).unwrap();
        read_all_into(&mut s, &mut received);
    }
    let evs = events(&mut s);
    assert!(matches!(&evs[1], Event::Started(start) if start.media_format.sample_rate == 48_000), "{evs:?}");
    assert_eq!(evs.len(), 2, "no error: {evs:?}");
    assert_eq!(received.len(), audio.len(), "every sample");
    assert!(received == audio, "in order, untouched");
}

/// A 20 ms message at 96 or 192 kHz (3840 or 7680 bytes of audio) was over the default message
/// or payload limit: the stream never started and the host never learnt of the call.
#[test]
fn calls_at_96_and_192_khz_start_though_their_audio_is_refused() {
    for (kind, rate) in [(0x17, 96_000), (0x18, 192_000)] {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, &SessionConfig::default());
        s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
        let frame = vec![0; rate as usize / 50 * 2];
        for _ in 0..3 {
            s.push(&tlv(kind, &frame), MessageKind::Binary).unwrap();
        }
        let evs = events(&mut s);
        let Some(Event::Started(start)) = evs.get(1) else { panic!("{rate}: {evs:?}") };
        assert_eq!(start.media_format.sample_rate, rate);
        let refused = [ProtocolError::UnsupportedFormat, ProtocolError::PayloadTooLarge];
        assert!(
            evs[2..].iter().all(|e| matches!(e, Event::ProtocolError { error } if refused.contains(error))),
            "{rate}: {evs:?}"
        );
        assert_eq!(evs.len(), 5, "{rate}: the start's format, then the two messages after it: {evs:?}");
    }
}

#[test]
fn a_change_of_rate_mid_call_is_refused_and_the_call_goes_on() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: 8_000, ..Default::default() });
    let (a, b) = (ramp(160, 1), ramp(160, 2));
    s.push(&UUID_MESSAGE, MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &l16(&a)), MessageKind::Binary).unwrap();
    s.push(&tlv(0x12, &[0; 640]), MessageKind::Binary).unwrap();
    s.push(&tlv(0x10, &l16(&b)), MessageKind::Binary).unwrap();
    let mut received = Vec::new();
    read_all_into(&mut s, &mut received);
    assert_eq!(received, [a, b].concat());
    let evs = events(&mut s);
    assert_eq!(evs[2..], [Event::ProtocolError { error: ProtocolError::UnsupportedFormat }], "{evs:?}");
}

/// With no clear, an interrupt still ends the utterance: the next reply's positions count from
/// its own start, once Asterisk has played what it held of the one cut off.
#[test]
fn a_reply_after_an_interrupt_counts_its_positions_from_its_own_start() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_call(&clock);
    s.play(&vec![1000i16; 24_000], 8_000).unwrap(); // three seconds
    for _ in 0..50 {
        step(&clock, &mut s);
    }
    s.interrupt().unwrap();
    s.play(&vec![1000i16; 1_600], 8_000).unwrap(); // 200 ms
    s.mark("next").unwrap();
    events(&mut s);
    let mut played = Vec::new();
    for _ in 0..30 {
        played.extend(step(&clock, &mut s).1);
    }
    assert_eq!(played, [Event::MarkPlayed { name: "next".into(), played_ms: 200 }]);
}

/// Asterisk is sent no marks (they play by the engine's clock): a mark inside a frame's worth of
/// audio does not cut the frame, so the caller hears no silence at it, and it plays where it sits.
#[test]
fn a_mark_inside_a_frame_puts_no_silence_in_the_reply_and_plays_where_it_sits() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_call(&clock);
    events(&mut s);
    // 105 ms, a mark, then 195 ms: 300 ms, fifteen whole frames.
    let reply = ramp(2_400, 11);
    s.play(&reply[..840], 8_000).unwrap();
    s.mark("inside").unwrap();
    s.play(&reply[840..], 8_000).unwrap();
    let mut sent = Vec::new();
    let mut played = Vec::new();
    for at_ms in (0..30u64).map(|i| i * 20) {
        let (messages, evs) = step(&clock, &mut s);
        messages.iter().for_each(|m| sent.extend_from_slice(&m[3..]));
        played.extend(evs.into_iter().map(|e| (e, at_ms)));
    }
    assert_eq!(sent, l16(&reply), "the reply, whole and without silence");
    let [(Event::MarkPlayed { name, played_ms }, at_ms)] = &played[..] else { panic!("{played:?}") };
    assert_eq!((name.as_str(), *played_ms), ("inside", 105));
    // Reported once the clock has played it (105 ms; the 20 ms steps see it at 120).
    assert!((105..=140).contains(at_ms), "reported at {at_ms} ms");
    // In 5 ms steps: at 105 ms, where it sits, not at 120 when its frame ends.
    let clock = ManualClock::new();
    let (_engine, mut s) = started_call(&clock);
    events(&mut s);
    s.play(&reply[..840], 8_000).unwrap();
    s.mark("inside").unwrap();
    s.play(&reply[840..], 8_000).unwrap();
    let mut reported = None;
    for at_ms in (0..120u64).map(|i| i * 5) {
        outbound(&mut s);
        if events(&mut s).iter().any(|e| matches!(e, Event::MarkPlayed { .. })) {
            reported.get_or_insert(at_ms);
        }
        clock.advance(Duration::from_millis(5));
        s.read_audio(&mut [0; 16]);
    }
    assert!(reported.is_some_and(|at| (105..120).contains(&at)), "reported at {reported:?} ms");
}
