//! Hostile and broken carrier input, case by case (docs/reliability.md: "Hostile input"). Every test runs a
//! call whose good audio frames carry known content (agent rate 8 kHz, so the PCM the host reads
//! is the decoded µ-law itself) with the bad input interleaved, and checks the same four things:
//! the session survives, the bad input is dropped and counted, the host gets the `protocol_error`
//! it should (or, for network disorder, the counter it should), and none of the good audio is
//! lost or altered. `session_behaviour.rs` covers the simpler single-message cases.

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use trunkline::codec::ulaw_to_linear;
use trunkline::protocol::ProtocolError;
use trunkline::{Engine, EngineConfig, Event, MessageKind, Session, SessionConfig, SessionStats};

/// A call in inline mode (deterministic) at an 8 kHz agent rate.
struct Call {
    _engine: Engine,
    s: Session,
    /// The PCM the host should read, in order.
    expected: Vec<i16>,
    /// Everything the host has read.
    read: Vec<i16>,
    events: Vec<Event>,
    next_seq: u64,
    next_ts: u64,
}

/// 20 ms of µ-law whose every byte encodes frame `i` (never 0x7F/0xFF, so no two frames match
/// and none is silence).
fn frame(i: u64) -> [u8; 160] {
    let code = (i % 120) as u8 + 1;
    let mut f = [code; 160];
    f[0] = code.wrapping_add(3) % 120 + 1; // and not constant within the frame
    f
}

fn decoded(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| ulaw_to_linear(b)).collect()
}

impl Call {
    fn new(config: SessionConfig) -> Self {
        let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
        let mut s = engine.open_session(&SessionConfig { agent_rate: 8_000, ..config }).unwrap();
        s.push_text(&connected()).unwrap();
        s.push_text(&start()).unwrap();
        let mut call = Self {
            _engine: engine,
            s,
            expected: vec![],
            read: vec![],
            events: vec![],
            next_seq: 2,
            next_ts: 0,
        };
        let evs = call.drain_events();
        assert!(matches!(evs[..], [Event::Connected, Event::Started(_)]), "{evs:?}");
        call
    }

    fn started() -> Self {
        Self::new(SessionConfig::default())
    }

    /// Pushes the next good 20 ms frame, in order.
    fn good(&mut self) {
        let i = self.next_seq;
        let f = frame(i);
        self.s.push_text(&media(i, i, self.next_ts, &f)).unwrap();
        self.expected.extend(decoded(&f));
        self.next_seq += 1;
        self.next_ts += 20;
    }

    fn push(&mut self, message: &[u8], kind: MessageKind) {
        self.s.push(message, kind).expect("the session takes every message");
    }

    fn text(&mut self, message: &str) {
        self.push(message.as_bytes(), MessageKind::Text);
    }

    fn drain_events(&mut self) -> Vec<Event> {
        let evs: Vec<_> = std::iter::from_fn(|| self.s.poll_event()).collect();
        self.events.extend(evs.iter().cloned());
        evs
    }

    /// The protocol errors raised since the last call.
    fn errors(&mut self) -> Vec<ProtocolError> {
        self.drain_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::ProtocolError { error } => Some(error),
                _ => None,
            })
            .collect()
    }

    /// Sends `bad` between two good frames and checks it raised exactly `expected`.
    fn hostile(&mut self, bad: &[u8], kind: MessageKind, expected: ProtocolError) {
        self.good();
        self.push(bad, kind);
        self.good();
        self.read_all();
        let label = String::from_utf8_lossy(&bad[..bad.len().min(120)]).into_owned();
        assert_eq!(self.errors(), vec![expected], "{label}");
    }

    fn read_all(&mut self) {
        let mut buf = [0i16; 4096];
        loop {
            let n = self.s.read_audio(&mut buf);
            if n == 0 {
                break;
            }
            self.read.extend_from_slice(&buf[..n]);
        }
    }

    /// Ends the call and checks that every good frame reached the host unaltered.
    fn finish(mut self) -> (SessionStats, Vec<Event>) {
        self.text(&stop(99_999));
        self.read_all();
        self.drain_events();
        assert_eq!(self.events.last(), Some(&Event::Stopped), "the call ran to its end");
        assert_eq!(self.read.len(), self.expected.len(), "good audio lost or added");
        assert!(self.read == self.expected, "good audio altered");
        assert_eq!(self.s.status(), Ok(()), "the session survived");
        (self.s.stats(), self.events)
    }
}

fn error_count(events: &[Event]) -> u64 {
    events.iter().filter(|e| matches!(e, Event::ProtocolError { .. })).count() as u64
}

#[test]
fn every_truncation_of_every_message_kind_is_malformed_json() {
    let mut call = Call::started();
    let messages =
        [media(900, 900, 0, &[0xFF; 160]), dtmf(901, '5'), mark_echo(902, "m"), stop(903), start()];
    let mut n = 0;
    for m in &messages {
        for cut in [1, 2, m.len() / 3, m.len() / 2, m.len() - 2, m.len() - 1] {
            call.hostile(&m.as_bytes()[..cut], MessageKind::Text, ProtocolError::MalformedJson);
            n += 1;
        }
    }
    // Also: a cut inside a multi-byte UTF-8 character (not UTF-8 at all), trailing garbage, an
    // empty message, a bare value, and nesting past serde_json's depth limit.
    let utf8_cut = &"{\"event\":\"é".as_bytes()[..11];
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_field = format!(r#"{{"event":"stop","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    let others: [&[u8]; 7] = [
        utf8_cut,
        b"{\"event\":\"stop\"} trailing",
        b"",
        b"42",
        b"\xff\xfe{}",
        deep.as_bytes(),
        deep_field.as_bytes(),
    ];
    for bad in others {
        call.hostile(bad, MessageKind::Text, ProtocolError::MalformedJson);
        n += 1;
    }
    let (stats, events) = call.finish();
    assert_eq!(stats.protocol_errors, n);
    assert_eq!(error_count(&events), n);
}

#[test]
fn invalid_base64_payloads_are_dropped() {
    let mut call = Call::started();
    let cases = [
        "@@@@",        // not in the alphabet
        "AAAAA",       // a length no base64 has (one symbol left over)
        "AA=A",        // padding inside
        "Zm9=",        // non-zero trailing bits (not canonical)
        "Zm9v Zm9v",   // whitespace
        "Zm9v\\nZm9v", // an escaped newline
        "-_-_",        // the URL-safe alphabet
        "Zm9vYg===",   // too much padding
    ];
    for payload in cases {
        let m = format!(
            r#"{{"event":"media","sequenceNumber":"5000","media":{{"track":"inbound","timestamp":"0","payload":"{payload}"}}}}"#
        );
        call.hostile(m.as_bytes(), MessageKind::Text, ProtocolError::InvalidBase64);
    }
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, cases.len() as u64);
}

#[test]
fn huge_payloads_and_huge_messages_are_dropped_without_holding_memory() {
    let config = SessionConfig {
        max_payload_bytes: 4096,
        max_message_bytes: 16 * 1024,
        // Two maximal messages (see the settings: a message never wraps around the ring's end).
        inbound_ring_bytes: 2 * (16 * 1024 + 13),
        // A 4096-sample payload at 8 kHz is more than the default 500 ms of caller PCM.
        agent_ring_ms: 1000,
        ..Default::default()
    };
    let mut call = Call::new(config);
    // A payload one byte over the limit, one far over it (still under the message limit), a
    // message one byte over the message limit, and a 64 MiB message.
    let over_by_one = media(5000, 1, 0, &[0x55; 4097]);
    let far_over = format!(
        r#"{{"event":"media","media":{{"timestamp":"0","payload":"{}"}}}}"#,
        "A".repeat(16 * 1024 - 60)
    );
    assert!(far_over.len() <= 16 * 1024);
    let message_over = format!(r#"{{"event":"stop","pad":"{}"}}"#, "x".repeat(16 * 1024 - 24));
    assert_eq!(message_over.len(), 16 * 1024 + 1);
    let huge = vec![b'{'; 64 << 20];
    call.hostile(over_by_one.as_bytes(), MessageKind::Text, ProtocolError::PayloadTooLarge);
    call.hostile(far_over.as_bytes(), MessageKind::Text, ProtocolError::PayloadTooLarge);
    call.hostile(message_over.as_bytes(), MessageKind::Text, ProtocolError::MessageTooLarge);
    call.hostile(&huge, MessageKind::Text, ProtocolError::MessageTooLarge);
    call.hostile(&huge, MessageKind::Binary, ProtocolError::MessageTooLarge);
    // The largest legal payload still plays in full.
    let max = frame(7).repeat(4096 / 160);
    call.s.push_text(&media(call.next_seq, 0, call.next_ts, &max)).unwrap();
    call.expected.extend(decoded(&max));
    call.next_seq += 1;
    call.next_ts += max.len() as u64 / 8;
    call.good();
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, 5);
}

#[test]
fn wrong_field_types_name_the_field() {
    let mut call = Call::started();
    let cases: &[(&str, &str)] = &[
        (r#"{"event":7}"#, "event"),
        (r#"{"event":["media"]}"#, "event"),
        (r#"{"event":"dtmf","sequenceNumber":{"n":1},"dtmf":{"digit":"1"}}"#, "sequenceNumber"),
        (r#"{"event":"dtmf","sequenceNumber":"-1","dtmf":{"digit":"1"}}"#, "sequenceNumber"),
        (r#"{"event":"dtmf","sequenceNumber":1.5,"dtmf":{"digit":"1"}}"#, "sequenceNumber"),
        (r#"{"event":"dtmf","streamSid":42,"dtmf":{"digit":"1"}}"#, "streamSid"),
        (r#"{"event":"media","media":"AAAA"}"#, "media"),
        (r#"{"event":"media","media":{"timestamp":"ten","payload":"AAAA"}}"#, "media.timestamp"),
        (r#"{"event":"media","media":{"timestamp":true,"payload":"AAAA"}}"#, "media.timestamp"),
        (r#"{"event":"media","media":{"timestamp":"0","chunk":[],"payload":"AAAA"}}"#, "media.chunk"),
        (r#"{"event":"media","media":{"timestamp":"0","track":"both","payload":"AAAA"}}"#, "media.track"),
        (r#"{"event":"media","media":{"timestamp":"0","payload":1234}}"#, "media.payload"),
        (r#"{"event":"dtmf","dtmf":{"digit":5}}"#, "dtmf.digit"),
        (r#"{"event":"dtmf","dtmf":{"digit":"55"}}"#, "dtmf.digit"),
        (r#"{"event":"mark","mark":{"name":{"a":1}}}"#, "mark.name"),
        (r#"{"event":"mark","mark":[]}"#, "mark"),
    ];
    for (m, field) in cases {
        call.hostile(m.as_bytes(), MessageKind::Text, ProtocolError::WrongType(field));
    }
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, cases.len() as u64);
    assert_eq!(stats.dtmf_digits, 0);
}

#[test]
fn missing_fields_name_the_field() {
    let mut call = Call::started();
    let cases: &[(&str, &str)] = &[
        (r#"{"streamSid":"MZ1","media":{"timestamp":"0","payload":"AAAA"}}"#, "event"),
        (r#"{"event":null}"#, "event"),
        (r#"{"event":"media"}"#, "media"),
        (r#"{"event":"media","media":{"payload":"AAAA"}}"#, "media.timestamp"),
        (r#"{"event":"media","media":{"timestamp":"0"}}"#, "media.payload"),
        (r#"{"event":"media","media":{"timestamp":"0","payload":null}}"#, "media.payload"),
        (r#"{"event":"dtmf"}"#, "dtmf"),
        (r#"{"event":"dtmf","dtmf":{}}"#, "dtmf.digit"),
        (r#"{"event":"mark"}"#, "mark"),
        (r#"{"event":"mark","mark":{}}"#, "mark.name"),
    ];
    for (m, field) in cases {
        call.hostile(m.as_bytes(), MessageKind::Text, ProtocolError::MissingField(field));
    }
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, cases.len() as u64);
}

#[test]
fn a_start_without_a_stream_sid_or_with_an_unsupported_format_is_refused() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(r#"{"event":"start","start":{"callSid":"CA1"}}"#).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(evs, [Event::ProtocolError { error: ProtocolError::MissingField("start.streamSid") }]);
    // The stream has not started: media is still "before start", and a proper start works.
    s.push_text(&media(2, 1, 0, &[0xFF; 160])).unwrap();
    s.push_text(&start()).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(evs[0], Event::ProtocolError { error: ProtocolError::MediaBeforeStart });
    assert!(matches!(evs[1], Event::Started(_)));

    // An encoding no carrier dialect knows refuses the start itself: the stream never starts.
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&start().replace("audio/x-mulaw", "audio/opus")).unwrap();
    s.push_text(&media(2, 1, 0, &[0xFF; 160])).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(
        evs,
        [
            Event::ProtocolError { error: ProtocolError::UnsupportedFormat },
            Event::ProtocolError { error: ProtocolError::MediaBeforeStart }
        ]
    );
    // A known encoding at a rate the engine does not take starts (the host learns who called)
    // but each of its media messages is refused.
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&start().replace("\"sampleRate\":8000", "\"sampleRate\":11025")).unwrap();
    s.push_text(&media(2, 1, 0, &[0xFF; 160])).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert_eq!(evs[1], Event::ProtocolError { error: ProtocolError::UnsupportedFormat });
    assert_eq!(evs[2], Event::ProtocolError { error: ProtocolError::UnsupportedFormat });
    assert_eq!(s.stats().inbound_samples, 0);
}

#[test]
fn stream_messages_before_start_and_a_second_start_are_refused() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&SessionConfig { agent_rate: 8_000, ..Default::default() }).unwrap();
    s.push_text(&media(2, 1, 0, &frame(1))).unwrap();
    s.push_text(&dtmf(3, '1')).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    let before = Event::ProtocolError { error: ProtocolError::MediaBeforeStart };
    assert_eq!(evs, [before.clone(), before]);
    drop(s);

    let mut call = Call::started();
    let other_stream = start().replace(STREAM_SID, "MZ-another-stream");
    call.hostile(start().as_bytes(), MessageKind::Text, ProtocolError::DuplicateStart);
    call.hostile(other_stream.as_bytes(), MessageKind::Text, ProtocolError::DuplicateStart);
    // Outbound messages still name the first stream.
    call.s.play(&[1000; 1600], 8_000).unwrap();
    let mut buf = Vec::new();
    call.s.next_outbound(&mut buf).unwrap();
    assert!(matches!(parse_outbound(&buf), Outbound::Media(_)), "outbound names {STREAM_SID}");
    let (stats, events) = call.finish();
    assert_eq!(stats.protocol_errors, 2);
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Started(_))).count(), 1);
}

#[test]
fn unknown_events_and_binary_frames_are_dropped() {
    let mut call = Call::started();
    for event in ["transcription", "Media", "MEDIA", " media", "", "clear", "playedStream", "\u{0}"] {
        let m =
            serde_json::json!({"event": event, "media": {"timestamp": "0", "payload": "AAAA"}}).to_string();
        call.hostile(m.as_bytes(), MessageKind::Text, ProtocolError::UnknownEvent);
    }
    // Binary frames, including a valid Twilio message sent as binary and a Vonage-style L16 frame.
    let as_binary = media(5000, 1, 0, &[0xFF; 160]);
    for bytes in [as_binary.as_bytes(), &[0u8; 640][..], b""] {
        call.hostile(bytes, MessageKind::Binary, ProtocolError::UnexpectedFrameKind(MessageKind::Binary));
    }
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, 11);
}

#[test]
fn duplicate_reordered_and_missing_sequence_numbers() {
    let mut call = Call::started();
    call.good();
    call.good();
    // A duplicate (same sequence number, other content) is dropped: the first copy counts.
    let dup_seq = call.next_seq - 1;
    call.text(&media(dup_seq, 0, call.next_ts - 20, &[0x10; 160]));
    // Frames 2 and 1 swapped (both held back within the reorder window, then put in order).
    let (seq, ts) = (call.next_seq, call.next_ts);
    let (a, b) = (frame(seq), frame(seq + 1));
    call.text(&media(seq + 1, 0, ts + 20, &b));
    call.text(&media(seq, 0, ts, &a));
    call.expected.extend(decoded(&a));
    call.expected.extend(decoded(&b));
    call.next_seq += 2;
    call.next_ts += 40;
    // A lost frame: after the window it is filled with silence, and its late arrival is dropped.
    let (lost_seq, lost_ts) = (call.next_seq, call.next_ts);
    call.next_seq += 1;
    call.next_ts += 20;
    call.expected.extend([0i16; 160]);
    for _ in 0..5 {
        call.good(); // 100 ms of audio after the gap: more than the 60 ms window
    }
    call.text(&media(lost_seq, 0, lost_ts, &frame(lost_seq)));
    // A gap in the sequence numbers alone (timestamps contiguous) loses nothing, and numbering
    // that then restarts from 1 (more than 1000 back: a carrier restarting it) is not taken for
    // duplicates.
    call.next_seq = 5000;
    call.good();
    call.next_seq = 1;
    for _ in 0..3 {
        call.good();
    }
    // Messages with no sequence number at all are placed by timestamp.
    let f = frame(777);
    call.text(&format!(
        r#"{{"event":"media","media":{{"timestamp":"{}","payload":"{}"}}}}"#,
        call.next_ts,
        STANDARD.encode(f)
    ));
    call.expected.extend(decoded(&f));
    call.next_ts += 20;
    call.good();
    let (stats, events) = call.finish();
    assert_eq!(error_count(&events), 0, "network disorder is not a protocol error");
    assert_eq!(stats.frames_duplicate, 1);
    assert_eq!(stats.frames_reordered, 1);
    assert_eq!(stats.gap_fill_samples, 160);
    assert_eq!(stats.frames_late, 1);
}

#[test]
fn timestamps_that_jump_backwards_or_hours_forwards() {
    let mut call = Call::started();
    for _ in 0..10 {
        call.good();
    }
    // A small step back (overlapping audio already delivered) is late and dropped.
    let back = call.next_ts - 100;
    call.text(&media(call.next_seq, 0, back, &[0x10; 160]));
    call.next_seq += 1;
    assert_eq!(call.errors(), vec![], "a late frame is not a protocol error");
    // Two hours forward: reported, and the stream re-anchored there (no two hours of silence);
    // the frame itself is kept.
    call.next_ts += 2 * 3_600_000;
    call.good();
    assert_eq!(call.errors(), vec![ProtocolError::TimestampJump]);
    call.good();
    // An hour back: the same.
    call.next_ts -= 3_600_000;
    call.good();
    assert_eq!(call.errors(), vec![ProtocolError::TimestampJump]);
    call.good();
    // Beyond any possible stream (more than 2^40 ms): dropped.
    call.hostile(
        media(9000, 0, u64::MAX, &[0x10; 160]).as_bytes(),
        MessageKind::Text,
        ProtocolError::TimestampJump,
    );
    call.hostile(
        media(9001, 0, (1 << 40) + 1, &[0x10; 160]).as_bytes(),
        MessageKind::Text,
        ProtocolError::TimestampJump,
    );
    let (stats, _) = call.finish();
    assert_eq!(stats.frames_late, 1);
    assert_eq!(stats.timestamp_jumps, 2);
    assert_eq!(stats.protocol_errors, 4);
    assert_eq!(stats.gap_fill_samples, 0, "no silence invented for the jumps");
}

#[test]
fn empty_payloads_are_refused() {
    let mut call = Call::started();
    for payload in ["", ""] {
        let m = format!(
            r#"{{"event":"media","sequenceNumber":"5000","media":{{"timestamp":"2000","payload":"{payload}"}}}}"#
        );
        call.hostile(m.as_bytes(), MessageKind::Text, ProtocolError::WrongType("media.payload"));
    }
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, 2);
    assert_eq!(stats.gap_fill_samples, 0, "an empty frame ahead of the stream invents no silence");
}

#[test]
fn odd_length_l16_payloads_are_refused() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&SessionConfig { agent_rate: 8_000, ..Default::default() }).unwrap();
    s.push_text(&start().replace("audio/x-mulaw", "audio/x-l16")).unwrap();
    let pcm: Vec<u8> = (0..160i16).flat_map(|i| (i * 100).to_le_bytes()).collect();
    s.push_text(&media(2, 1, 0, &pcm[..160])).unwrap(); // 80 samples
    s.push_text(&media(3, 2, 10, &pcm[..161])).unwrap(); // 80.5 samples
    s.push_text(&media(4, 3, 10, &pcm[..1])).unwrap();
    s.push_text(&media(5, 4, 10, &pcm[160..320])).unwrap();
    let errors: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            Event::ProtocolError { error } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(errors, [ProtocolError::OddPayloadLength, ProtocolError::OddPayloadLength]);
    let mut out = [0i16; 1024];
    let n = s.read_audio(&mut out);
    let want: Vec<i16> = (0..160i16).map(|i| i * 100).collect();
    assert_eq!(&out[..n], &want[..], "the whole-sample frames are intact");
}

/// Plays a little agent audio and a mark named `name`, and takes the outbound messages: the mark
/// went out (and waits for its echo).
fn send_one_mark(call: &mut Call, name: &str) {
    call.s.play(&[1000; 800], 8_000).unwrap();
    call.s.mark(name).unwrap();
    let mut buf = Vec::new();
    let mut marks = vec![];
    while call.s.next_outbound(&mut buf).is_some() {
        if let Outbound::Mark(sent) = parse_outbound(&buf) {
            marks.push(sent);
        }
    }
    assert_eq!(marks, [name]);
}

#[test]
fn mark_echoes_for_marks_never_sent_or_already_echoed() {
    let mut call = Call::new(SessionConfig { sync_mark_interval_ms: 0, ..Default::default() });
    send_one_mark(&mut call, "real");
    call.hostile(mark_echo(5000, "never-sent").as_bytes(), MessageKind::Text, ProtocolError::UnknownMark);
    call.hostile(mark_echo(5001, "").as_bytes(), MessageKind::Text, ProtocolError::UnknownMark);
    call.hostile(
        mark_echo(5002, &"x".repeat(4000)).as_bytes(),
        MessageKind::Text,
        ProtocolError::UnknownMark,
    );
    // The real echo is honoured once; a replay of it is unknown.
    call.text(&mark_echo(5003, "real"));
    let evs = call.drain_events();
    assert!(matches!(&evs[..], [Event::MarkPlayed { name, .. }] if name == "real"), "{evs:?}");
    call.hostile(mark_echo(5004, "real").as_bytes(), MessageKind::Text, ProtocolError::UnknownMark);
    // Nor are echoes of the engine's hidden sync marks that it never sent.
    call.hostile(
        mark_echo(5005, "trunkline-sync-0").as_bytes(),
        MessageKind::Text,
        ProtocolError::UnknownMark,
    );
    call.hostile(
        mark_echo(5006, "trunkline-sync-77").as_bytes(),
        MessageKind::Text,
        ProtocolError::UnknownMark,
    );
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, 6);
    assert_eq!(stats.marks_played, 1);
}

/// Differs from `STREAM_SID` in its last character only.
const OTHER_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f1";

/// `message` as sent on another stream.
fn foreign(message: &str) -> String {
    assert!(message.contains(STREAM_SID));
    message.replace(STREAM_SID, OTHER_SID)
}

/// `message` with no `streamSid` at all.
fn without_sid(message: &str) -> String {
    let m = message
        .replace(&format!(r#","streamSid":"{STREAM_SID}""#), "")
        .replace(&format!(r#""streamSid":"{STREAM_SID}","#), "");
    assert!(!m.contains("streamSid"), "{m}");
    m
}

#[test]
fn messages_for_another_stream_are_dropped_unapplied() {
    // Before `start` the stream is unknown: such messages are refused as before, for that reason.
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&foreign(&media(2, 1, 0, &frame(2)))).unwrap();
    s.push_text(&foreign(&dtmf(3, '1'))).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    let before = Event::ProtocolError { error: ProtocolError::MediaBeforeStart };
    assert_eq!(evs, [before.clone(), before]);
    drop(s);

    let mut call = Call::new(SessionConfig { sync_mark_interval_ms: 0, ..Default::default() });
    // A mark sent and not yet echoed: a foreign echo of it would resolve it if it were applied.
    send_one_mark(&mut call, "real");
    // Foreign media claiming the sequence number and timestamp of the next good frame, with other
    // content: applied, it would be heard instead of that frame (which would then be a duplicate).
    let (seq, ts) = (call.next_seq + 1, call.next_ts + 20);
    let foreign_media = foreign(&media(seq, 0, ts, &[0x10; 160]));
    call.hostile(foreign_media.as_bytes(), MessageKind::Text, ProtocolError::ForeignStream);
    // Refused whatever its body holds (the stream is checked first).
    let bad_body = format!(r#"{{"event":"media","streamSid":"{OTHER_SID}","media":{{"payload":"!!"}}}}"#);
    call.hostile(bad_body.as_bytes(), MessageKind::Text, ProtocolError::ForeignStream);
    call.hostile(foreign(&dtmf(5000, '7')).as_bytes(), MessageKind::Text, ProtocolError::ForeignStream);
    call.hostile(
        foreign(&mark_echo(5001, "real")).as_bytes(),
        MessageKind::Text,
        ProtocolError::ForeignStream,
    );
    // A foreign stop does not end the call: the good frame `hostile` sends after it still plays.
    call.hostile(foreign(&stop(5002)).as_bytes(), MessageKind::Text, ProtocolError::ForeignStream);
    call.good();
    call.read_all();
    let evs = call.drain_events();
    assert!(evs.is_empty(), "nothing came of the foreign messages: {evs:?}");
    assert_eq!(call.s.stats().marks_played, 0);
    // The genuine echo resolves the mark (the foreign one did not).
    call.text(&mark_echo(5003, "real"));
    let evs = call.drain_events();
    assert!(matches!(&evs[..], [Event::MarkPlayed { name, .. }] if name == "real"), "{evs:?}");
    // Messages naming no stream are this stream's, as before.
    let f = frame(call.next_seq);
    call.text(&without_sid(&media(call.next_seq, 0, call.next_ts, &f)));
    call.expected.extend(decoded(&f));
    call.next_seq += 1;
    call.next_ts += 20;
    call.text(&without_sid(&dtmf(5004, '9')));
    call.good();
    call.read_all();
    let evs = call.drain_events();
    assert!(matches!(evs[..], [Event::Dtmf { digit: '9', .. }]), "{evs:?}");
    // `finish` ends the call with a genuine stop and checks every good sample, and only those,
    // reached the host: the foreign media's content is nowhere in it.
    let frames = call.next_seq - 2;
    let (stats, events) = call.finish();
    assert_eq!(stats.protocol_errors, 5);
    assert_eq!(error_count(&events), 5);
    assert_eq!(stats.media_frames_in, frames);
    assert_eq!(stats.frames_duplicate, 0);
    assert_eq!(stats.dtmf_digits, 1);
    assert_eq!(stats.marks_played, 1);
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Stopped)).count(), 1);
}

#[test]
fn messages_after_stop_are_refused() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&SessionConfig { agent_rate: 8_000, ..Default::default() }).unwrap();
    s.push_text(&start()).unwrap();
    s.push_text(&media(2, 1, 0, &frame(2))).unwrap();
    s.push_text(&stop(3)).unwrap();
    for m in [media(4, 2, 20, &frame(4)), dtmf(5, '1'), mark_echo(6, "x"), start(), stop(7), connected()] {
        s.push_text(&m).unwrap();
    }
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    let after_stop = Event::ProtocolError { error: ProtocolError::AfterStop };
    assert!(matches!(evs[0], Event::Started(_)));
    assert_eq!(evs[1], Event::Stopped);
    assert_eq!(evs[2..], vec![after_stop; 6]);
    let mut out = [0i16; 1024];
    assert_eq!(s.read_audio(&mut out), 160, "the audio before stop is all there, nothing after it");
    assert_eq!(&out[..160], &decoded(&frame(2))[..]);
    // Bad input after stop is still reported as what it is.
    s.push_text("{").unwrap();
    assert_eq!(s.poll_event(), Some(Event::ProtocolError { error: ProtocolError::MalformedJson }));
}

#[test]
fn a_flood_of_bad_messages_does_not_disturb_the_good_ones() {
    // Thousands of mixed bad messages between the frames of a 10 s call.
    let mut call = Call::new(SessionConfig { event_capacity: 64, ..Default::default() });
    let bad: Vec<(Vec<u8>, MessageKind)> = vec![
        (b"{".to_vec(), MessageKind::Text),
        (b"\x00\x01".to_vec(), MessageKind::Binary),
        (br#"{"event":"media","media":{"timestamp":"0","payload":"!!"}}"#.to_vec(), MessageKind::Text),
        (mark_echo(1, "nope").into_bytes(), MessageKind::Text),
        (start().into_bytes(), MessageKind::Text),
        (br#"{"event":"nope"}"#.to_vec(), MessageKind::Text),
    ];
    let mut sent = 0u64;
    for i in 0..500 {
        call.good();
        for (m, kind) in bad.iter().cycle().skip(i).take(7) {
            call.push(m, *kind);
            sent += 1;
        }
        call.read_all();
        let _ = call.drain_events();
    }
    let (stats, _) = call.finish();
    assert_eq!(stats.protocol_errors, sent);
    assert_eq!(stats.media_frames_in, 500);
}
