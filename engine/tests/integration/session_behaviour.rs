//! Session behaviour in inline mode on a manual clock (deterministic: the host's calls do the
//! work, and time moves only when a test advances it).

use crate::common::*;
use trunkline::protocol::ProtocolError;
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, Event, MessageKind, Session, SessionConfig, SessionError};

fn inline_engine() -> Engine {
    Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, ManualClock::new())
        .unwrap()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn audio(s: &mut Session) -> usize {
    let mut buf = vec![0i16; 4096];
    let mut n = 0;
    loop {
        let k = s.read_audio(&mut buf);
        if k == 0 {
            return n;
        }
        n += k;
    }
}

fn outbound(s: &mut Session) -> Vec<Outbound> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| s.next_outbound(&mut buf).map(|_| parse_outbound(&buf))).collect()
}

fn errors(evs: &[Event]) -> Vec<ProtocolError> {
    evs.iter()
        .filter_map(|e| match e {
            Event::ProtocolError { error } => Some(*error),
            _ => None,
        })
        .collect()
}

#[test]
fn bad_input_is_dropped_counted_and_reported_and_the_call_goes_on() {
    let engine = inline_engine();
    let config = SessionConfig { max_payload_bytes: 1024, ..Default::default() };
    let mut s = engine.open_session(&config).unwrap();
    let silence = [0xFFu8; 160];

    // Media before start.
    s.push_text(&media(2, 1, 0, &silence)).unwrap();
    assert_eq!(errors(&events(&mut s)), vec![ProtocolError::MediaBeforeStart]);

    s.push_text(&start()).unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[..], [Event::Started(_)]), "{evs:?}");

    let too_big_payload = media(3, 2, 20, &[0xFF; 2000]);
    let huge_message =
        format!("{{\"event\":\"media\",\"pad\":\"{}\"}}", "x".repeat(config.max_message_bytes));
    let cases: Vec<(Vec<u8>, MessageKind, ProtocolError)> = vec![
        (b"{\"event\":\"media\",".to_vec(), MessageKind::Text, ProtocolError::MalformedJson),
        (b"not json at all".to_vec(), MessageKind::Text, ProtocolError::MalformedJson),
        (
            br#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"@@@@"}}"#.to_vec(),
            MessageKind::Text,
            ProtocolError::InvalidBase64,
        ),
        (too_big_payload.into_bytes(), MessageKind::Text, ProtocolError::PayloadTooLarge),
        (huge_message.into_bytes(), MessageKind::Text, ProtocolError::MessageTooLarge),
        (br#"{"event":"transcription","data":{}}"#.to_vec(), MessageKind::Text, ProtocolError::UnknownEvent),
        (start().into_bytes(), MessageKind::Text, ProtocolError::DuplicateStart),
        (
            br#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2","timestamp":{"ms":20},"payload":""}}"#.to_vec(),
            MessageKind::Text,
            ProtocolError::WrongType("media.timestamp"),
        ),
        (br#"{"event":"media","sequenceNumber":"3"}"#.to_vec(), MessageKind::Text, ProtocolError::MissingField("media")),
        (vec![0, 1, 2, 3], MessageKind::Binary, ProtocolError::UnexpectedFrameKind(MessageKind::Binary)),
        (mark_echo(9, "never-sent").into_bytes(), MessageKind::Text, ProtocolError::UnknownMark),
    ];
    let n_cases = cases.len() as u64;
    for (i, (msg, kind, expected)) in cases.into_iter().enumerate() {
        // A good frame before each bad message: none of the good audio may be lost.
        s.push_text(&media(100 + i as u64, i as u64 + 1, i as u64 * 20, &silence)).unwrap();
        s.push(&msg, kind).unwrap();
        let got = errors(&events(&mut s));
        assert_eq!(got, vec![expected], "case {i}");
    }
    assert_eq!(audio(&mut s), n_cases as usize * 320, "every good frame was delivered");
    let stats = s.stats();
    assert_eq!(stats.protocol_errors, n_cases + 1);
    assert_eq!(stats.media_frames_in, n_cases);

    // After stop, more media is refused the same way.
    s.push_text(&stop(500)).unwrap();
    assert!(events(&mut s).contains(&Event::Stopped));
    s.push_text(&media(501, 99, 5000, &silence)).unwrap();
    assert_eq!(errors(&events(&mut s)), vec![ProtocolError::AfterStop]);
}

#[test]
fn interrupt_drops_queued_audio_reports_marks_and_keeps_later_audio() {
    let engine = inline_engine();
    let mut s = engine.open_session(&SessionConfig { lead_ms: 40, ..Default::default() }).unwrap();
    s.push_text(&start()).unwrap();
    events(&mut s);

    // 1 s of agent audio and a mark: with a 40 ms lead only 2 frames go out at once.
    assert_eq!(s.play(&vec![3000i16; 8000], 8000), Ok(8000));
    s.mark("first").unwrap();
    let sent = outbound(&mut s);
    assert_eq!(sent.iter().filter(|m| matches!(m, Outbound::Media(_))).count(), 2, "{sent:?}");

    s.interrupt().unwrap();
    assert_eq!(s.play(&vec![-3000i16; 1600], 8000), Ok(1600));
    s.mark("second").unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Interrupted { played_ms } if played_ms <= 40), "{evs:?}");
    assert_eq!(evs[1], Event::MarkCleared { name: "first".into() });
    let after = outbound(&mut s);
    assert_eq!(after[0], Outbound::Clear);
    // The audio played after the interrupt goes out (its first frames, within the lead).
    let Outbound::Media(frame) = &after[1] else { panic!("{after:?}") };
    assert!(frame.iter().all(|&c| reference_ulaw_decode(c) < -2000), "post-interrupt audio is the new audio");
    let stats = s.stats();
    assert_eq!(stats.interrupts, 1);
    assert_eq!(stats.flushed_samples, 8000 - 320);
}

#[test]
fn host_errors_are_defined() {
    let engine = inline_engine();
    let mut s = engine.open_session(&SessionConfig { max_pending_marks: 2, ..Default::default() }).unwrap();
    assert!(matches!(s.play(&[0; 10], 11_025), Err(SessionError::InvalidArgument(_))));
    assert!(matches!(s.mark("trunkline-sync-1"), Err(SessionError::InvalidArgument(_))));
    assert!(matches!(s.mark(&"x".repeat(1000)), Err(SessionError::InvalidArgument(_))));
    s.mark("a").unwrap();
    s.mark("b").unwrap();
    assert_eq!(s.mark("c"), Err(SessionError::Full));
    // The play ring fills: `play` takes what fits and says how much.
    let big = vec![0i16; 1_000_000];
    let taken = s.play(&big, 48_000).unwrap();
    assert!(taken > 0 && taken < big.len());
    s.close();
    assert_eq!(s.push_text(&start()), Err(SessionError::Closed));
    assert_eq!(s.play(&[0; 10], 8000), Err(SessionError::Closed));
    assert_eq!(engine.open_sessions(), 0);

    assert!(engine.open_session(&SessionConfig { agent_rate: 11_025, ..Default::default() }).is_err());
    // The least outbound buffer is the documented 260 ms (258 and 259 were taken).
    for (ms, opens) in [(258, false), (259, false), (260, true)] {
        let config = SessionConfig { outbound_buffer_ms: ms, ..Default::default() };
        assert_eq!(engine.open_session(&config).is_ok(), opens, "outbound_buffer_ms {ms}");
    }
    let limited =
        Engine::new(EngineConfig { workers: Some(0), max_sessions: 1, ..Default::default() }).unwrap();
    let _one = limited.open_session(&SessionConfig::default()).unwrap();
    assert!(matches!(
        limited.open_session(&SessionConfig::default()),
        Err(trunkline::EngineError::TooManySessions(1))
    ));
}

#[test]
fn a_host_that_does_not_read_loses_only_counted_audio_and_events() {
    let engine = inline_engine();
    let config = SessionConfig { agent_ring_ms: 100, event_capacity: 4, ..Default::default() };
    // With the default hold, a host counts as reading for `read_hold_ms` after the session opened:
    // the carrier's messages wait for it (`Full`) rather than being dropped.
    let mut held = engine.open_session(&config).unwrap();
    held.push_text(&start()).unwrap();
    let refused = (0..50u64).find(|&i| held.push_text(&media(i + 2, i + 1, i * 20, &[0xFF; 160])).is_err());
    assert!(refused.is_some(), "a burst into a session whose host may still read is held back");
    assert_eq!(held.stats().agent_samples_dropped, 0);
    // A host that does not read at all: with no hold (as once `read_hold_ms` has passed), the
    // newest audio and the oldest events are dropped, and counted.
    let config = SessionConfig { read_hold_ms: 0, ..config };
    let mut s = engine.open_session(&config).unwrap();
    s.push_text(&start()).unwrap();
    for i in 0..50u64 {
        s.push_text(&media(i + 2, i + 1, i * 20, &[0xFF; 160])).unwrap();
        s.push_text(&dtmf(1000 + i, '1')).unwrap();
    }
    let stats = s.stats();
    // 1 s of audio at 16 kHz into a 100 ms ring; 51 events into a queue of 4.
    assert_eq!(stats.agent_samples_out + stats.agent_samples_dropped, 16_000);
    assert_eq!(stats.agent_samples_out, 1600);
    assert_eq!(stats.events_dropped, 51 - 4);
    // The newest events are the ones kept.
    let evs = events(&mut s);
    assert_eq!(evs.len(), 4);
    assert!(evs.iter().all(|e| matches!(e, Event::Dtmf { digit: '1', .. })));
}

#[test]
fn audio_queued_before_the_host_saw_a_barge_in_is_dropped_and_later_audio_plays() {
    let (caller, labels) = speech();
    let engine = inline_engine();
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&start()).unwrap();
    events(&mut s);
    // A long answer: its queue keeps the agent active while the caller's speech arrives (inline
    // mode, faster than real time).
    assert_eq!(s.play(&vec![2000i16; 16_000], 8_000), Ok(16_000));
    let until = (labels[0].0 + 600) / 20;
    let mut pcm = [0i16; 1024];
    for i in 0..until {
        s.push_text(&media(i + 2, i + 1, i * 20, &caller[(i * 160) as usize..((i + 1) * 160) as usize]))
            .unwrap();
        while s.next_outbound(&mut Vec::new()).is_some() {}
        // The host reads caller audio (its speech-to-text); it has not polled events yet.
        while s.read_audio(&mut pcm) > 0 {}
    }
    assert_eq!(s.stats().barge_ins, 1);
    let flushed = s.stats().flushed_samples;

    // The host's TTS is still streaming the old answer: it has not polled the BargeIn yet.
    assert_eq!(s.play(&vec![2000i16; 1600], 8_000), Ok(1600));
    s.mark("old-answer").unwrap();
    assert_eq!(s.stats().flushed_samples, flushed + 1600, "stale audio dropped");
    let evs = events(&mut s);
    assert!(evs.iter().any(|e| matches!(e, Event::BargeIn { .. })), "{evs:?}");
    assert!(evs.contains(&Event::MarkCleared { name: "old-answer".into() }), "{evs:?}");

    // Having seen it, the host's new audio plays.
    let before = s.stats().frames_out;
    assert_eq!(s.play(&vec![-2000i16; 1600], 8_000), Ok(1600));
    assert!(s.stats().frames_out > before, "new audio goes out");
    assert_eq!(s.stats().flushed_samples, flushed + 1600);
}

#[test]
fn after_stop_played_audio_and_marks_are_reported_not_kept() {
    let engine = inline_engine();
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&start()).unwrap();
    s.push_text(&stop(3)).unwrap();
    events(&mut s);
    assert_eq!(s.play(&[100; 800], 8_000), Ok(800));
    s.mark("late").unwrap();
    assert_eq!(events(&mut s), vec![Event::MarkCleared { name: "late".into() }]);
    let st = s.stats();
    assert_eq!(st.flushed_samples, 800);
    assert_eq!(st.frames_out, 0);
    // Marks resolved this way do not count against the limit.
    for i in 0..200 {
        s.mark(&format!("m{i}")).unwrap();
    }
}

#[test]
fn a_session_chooses_its_dialect_by_name() {
    let engine = inline_engine();
    assert_eq!(
        trunkline::protocol::DIALECTS,
        ["twilio", "telnyx", "plivo", "vonage", "exotel", "signalwire", "audiosocket", "jambonz"]
    );
    for name in trunkline::protocol::DIALECTS {
        let config = SessionConfig { dialect: (*name).to_owned(), ..Default::default() };
        let mut s = engine.open_session(&config).unwrap();
        s.push_text(&start()).unwrap();
        // A Twilio `start` starts the Twilio-compatible dialects' streams (Exotel reads both
        // spellings of its ids); the others, speaking
        // their own carriers, refuse it as a protocol error (each has its own tests).
        let started = matches!(events(&mut s).as_slice(), [Event::Started(_)]);
        assert_eq!(started, matches!(*name, "twilio" | "signalwire" | "exotel"), "{name}");
    }
    let unknown = SessionConfig { dialect: "carrier-pigeon".into(), ..Default::default() };
    match engine.open_session(&unknown) {
        Err(trunkline::EngineError::Dialect(trunkline::protocol::DialectError::Unknown(name))) => {
            assert_eq!(name, "carrier-pigeon")
        }
        other => panic!("expected an unknown dialect, got {:?}", other.map(|_| ())),
    }
    let bad_option = SessionConfig { dialect: "telnyx;codec=G729".into(), ..Default::default() };
    match engine.open_session(&bad_option) {
        Err(e @ trunkline::EngineError::Dialect(trunkline::protocol::DialectError::Option { .. })) => {
            assert!(e.to_string().contains("codec=G729"), "{e}")
        }
        other => panic!("expected a refused option, got {:?}", other.map(|_| ())),
    }
    let with_options = SessionConfig { dialect: "telnyx;codec=L16;rate=16000".into(), ..Default::default() };
    drop(engine.open_session(&with_options).expect("a dialect with options it takes"));
    assert_eq!(engine.open_sessions(), 0, "a refused session holds no slot");
}

#[test]
fn on_a_manual_clock_pacing_follows_the_time_set_not_the_time_taken() {
    let clock = ManualClock::new();
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .unwrap();
    let mut s = engine.open_session(&SessionConfig { lead_ms: 100, ..Default::default() }).unwrap();
    s.push_text(&start()).unwrap();
    assert_eq!(s.play(&vec![1000i16; 8000], 8000), Ok(8000)); // 1 s
    let media = |s: &mut Session| outbound(s).iter().filter(|m| matches!(m, Outbound::Media(_))).count();
    // The lead: 100 ms of audio (5 frames) goes out at once, then nothing until time moves.
    assert_eq!(media(&mut s), 5);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(media(&mut s), 0, "wall time does not move a manual clock");
    // Each 20 ms set on the clock releases exactly one frame.
    for _ in 0..10 {
        clock.advance(std::time::Duration::from_millis(20));
        assert_eq!(media(&mut s), 1);
    }
    // 60 ms at once: three frames. Had the carrier run dry (more than the lead at once), only
    // a lead's worth would go out from the new time.
    clock.advance(std::time::Duration::from_millis(60));
    assert_eq!(media(&mut s), 3);
    clock.advance(std::time::Duration::from_millis(400));
    assert_eq!(media(&mut s), 5);
    // A threaded engine cannot run on a manual clock: its workers sleep in wall time.
    assert!(
        Engine::with_manual_clock(EngineConfig { workers: Some(1), ..Default::default() }, clock).is_err()
    );
}

/// A session opened already started (its host's framework read the carrier's `start`) behaves
/// exactly as one that parsed that `start`: the same events, caller audio and outbound messages
/// byte for byte (the stream id it echoes included); a `start` pushed again is a duplicate; a
/// format it cannot take refuses the open.
#[test]
fn a_session_opened_started_is_the_session_that_parsed_the_start() {
    use trunkline::protocol::{AudioEncoding, MediaFormat, StreamStart, Track};
    let engine = inline_engine();
    let config = SessionConfig::default();
    let start_params = StreamStart {
        sequence: None,
        account_id: "AC0123456789abcdef0123456789abcdef".into(),
        stream_id: STREAM_SID.into(),
        call_id: CALL_SID.into(),
        tracks: vec![Track::Inbound],
        custom_parameters: vec![("caller".into(), "+15550100".into()), ("lang".into(), "en".into())],
        media_format: MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 },
    };
    let mut parsed = engine.open_session(&config).unwrap();
    parsed.push_text(&start()).unwrap();
    let mut given = engine.open_session_started(&config, start_params.clone()).unwrap();

    let (audio_in, _) = speech();
    let reply: Vec<i16> = (0..4000).map(|i| ((i * 37 % 2000) as i16 - 1000) * 8).collect();
    let mut outs: [Vec<Vec<u8>>; 2] = Default::default();
    let mut heard: [Vec<i16>; 2] = Default::default();
    let mut evs: [Vec<Event>; 2] = Default::default();
    for (i, s) in [&mut parsed, &mut given].into_iter().enumerate() {
        let mut buf = vec![0i16; 4096];
        let mut msg = Vec::new();
        for (k, frame) in audio_in.chunks(160).take(100).enumerate() {
            s.push_text(&media(k as u64 + 2, k as u64 + 1, k as u64 * 20, frame)).unwrap();
            if k == 10 {
                s.play(&reply, 8000).unwrap();
                s.mark("end").unwrap();
            }
            loop {
                let n = s.read_audio(&mut buf);
                if n == 0 {
                    break;
                }
                heard[i].extend_from_slice(&buf[..n]);
            }
            while s.next_outbound(&mut msg).is_some() {
                outs[i].push(msg.clone());
            }
            evs[i].extend(events(s));
        }
    }
    assert!(matches!(&evs[1][0], Event::Started(st) if **st == start_params), "{:?}", evs[1].first());
    // The parsed `start` also carried its sequence number; otherwise the same.
    assert_eq!(evs[0].len(), evs[1].len());
    assert_eq!(evs[0][1..], evs[1][1..]);
    assert_eq!(heard[0], heard[1]);
    assert!(!outs[1].is_empty());
    assert_eq!(outs[0], outs[1], "the same messages to the carrier");
    assert!(String::from_utf8_lossy(&outs[1][0]).contains(STREAM_SID));

    given.push_text(&start()).unwrap();
    assert_eq!(errors(&events(&mut given)), vec![ProtocolError::DuplicateStart]);

    let odd = StreamStart {
        media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: 44_100, channels: 1 },
        ..start_params
    };
    assert!(matches!(engine.open_session_started(&config, odd), Err(trunkline::EngineError::Start(_))));
    drop((parsed, given));
}
