//! Nothing lost when the network stalls: bursts of carrier messages meet backpressure (`Full`),
//! not drops, while the host reads; a host that stops reading still gets its events.
//!
//! Expectations are independent of the engine: caller audio is compared with the µ-law decode of
//! what was sent (an ITU-T formula decoder at 8 kHz; at 16 kHz, the same audio resampled offline
//! in one piece), and events with the messages that should raise them.

use crate::common::*;
use std::time::{Duration, Instant};
use trunkline::resample::StreamResampler;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig, SessionError};

/// Deterministic, varied µ-law frames (a different byte pattern in every frame, so a lost,
/// repeated or reordered frame changes the content).
fn frames(n: usize) -> Vec<[u8; 160]> {
    let mut x = 0x2545_F491_u32;
    (0..n)
        .map(|_| {
            let mut f = [0u8; 160];
            for b in &mut f {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = (x >> 24) as u8;
            }
            f
        })
        .collect()
}

/// What the agent should read: the decoded frames, resampled to `rate` in one piece.
fn expected(frames: &[[u8; 160]], rate: u32) -> Vec<i16> {
    let pcm: Vec<i16> = frames.iter().flatten().map(|&b| reference_ulaw_decode(b)).collect();
    if rate == 8_000 {
        return pcm;
    }
    let mut r = StreamResampler::new(8_000, rate).unwrap();
    let mut out = vec![0i16; r.max_output_len(pcm.len())];
    let n = r.process(&pcm, &mut out).unwrap();
    out.truncate(n);
    out
}

fn threaded() -> Engine {
    Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap()
}

/// A carrier whose frames, one every 20 ms, are held back during each stall `(from_ms, for_ms)`
/// and then arrive at once, as TCP delivers them after a retransmission.
fn arrival_ms(i: usize, stalls: &[(u64, u64)]) -> u64 {
    let sent = i as u64 * 20;
    stalls.iter().find(|&&(from, len)| sent >= from && sent < from + len).map_or(sent, |&(f, l)| f + l)
}

struct Outcome {
    audio: Vec<i16>,
    refused: u64,
    stats: trunkline::SessionStats,
}

/// Runs a real-time call with `stalls` through `session`: every 20 ms the host pushes what has
/// arrived (stopping at `Full` until the next turn), reads caller audio once and polls events.
fn stalled_call(
    engine: &Engine,
    session: &mut Session,
    frames: &[[u8; 160]],
    stalls: &[(u64, u64)],
) -> Outcome {
    session.push_text(&start()).unwrap();
    let messages: Vec<String> =
        frames.iter().enumerate().map(|(i, f)| media(i as u64 + 2, i as u64 + 1, i as u64 * 20, f)).collect();
    let t0 = Instant::now();
    let mut next = 0;
    let mut refused = 0u64;
    let mut audio = vec![];
    let mut buf = [0i16; 8192];
    let want = expected(frames, session.agent_rate()).len();
    for turn in 0u64.. {
        let due = t0 + Duration::from_millis(turn * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let now_ms = t0.elapsed().as_millis() as u64;
        while next < messages.len() && arrival_ms(next, stalls) <= now_ms {
            match session.push_text(&messages[next]) {
                Ok(()) => next += 1,
                Err(SessionError::Full) => {
                    refused += 1;
                    break;
                }
                Err(e) => panic!("push: {e}"),
            }
        }
        let n = session.read_audio(&mut buf);
        audio.extend_from_slice(&buf[..n]);
        while session.poll_event().is_some() {}
        if next == messages.len() && audio.len() >= want {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the call never completed");
    }
    engine.wait(Some(Duration::ZERO));
    Outcome { audio, refused, stats: session.stats() }
}

#[test]
fn stalls_of_half_a_second_to_two_seconds_lose_no_caller_audio() {
    let engine = threaded();
    // Default settings: the agent reads 16 kHz.
    let mut session = engine.open_session(&SessionConfig::default()).unwrap();
    // 8 s of audio; stalls of 0.5, 1 and 2 s (the last one 100 messages arriving at once).
    let f = frames(400);
    let stalls = [(1_000, 500), (2_500, 1_000), (5_000, 2_000)];
    let out = stalled_call(&engine, &mut session, &f, &stalls);
    let want = expected(&f, 16_000);
    println!("stalled call: {} refusals seen by the host; {:?}", out.refused, out.stats);
    assert_eq!(out.stats.agent_samples_dropped, 0, "{:?}", out.stats);
    assert_eq!(out.audio.len(), want.len());
    assert!(out.audio == want, "caller audio differs from what was sent");
    assert_eq!(out.stats.media_frames_in, f.len() as u64);
    // The 2 s burst does not fit the inbound ring: the engine said `Full`, and counted it.
    assert!(out.refused > 0 && out.stats.messages_refused_full == out.refused, "{:?}", out.stats);
    assert_eq!(out.stats.events_dropped, 0);
}

/// Replays `ulaw` as fast as `push` accepts it, with a DTMF after every tenth frame, reading
/// audio and polling events after each push.
fn replay(engine: &Engine, config: &SessionConfig, ulaw: &[u8]) {
    let mut s = engine.open_session(config).unwrap();
    let f: Vec<[u8; 160]> = ulaw.chunks_exact(160).map(|c| c.try_into().unwrap()).collect();
    let mut messages = vec![start()];
    let mut digits = vec![];
    for (i, frame) in f.iter().enumerate() {
        messages.push(media(2 * i as u64 + 2, i as u64 + 1, i as u64 * 20, frame));
        if i % 10 == 9 {
            let d = char::from(b'0' + (i / 10 % 10) as u8);
            messages.push(dtmf(2 * i as u64 + 3, d));
            digits.push(d);
        }
    }
    let mut audio = vec![];
    let mut got_digits = vec![];
    let mut buf = [0i16; 4096];
    let mut take = |s: &mut Session, audio: &mut Vec<i16>, got: &mut Vec<char>| {
        let n = s.read_audio(&mut buf);
        audio.extend_from_slice(&buf[..n]);
        while let Some(e) = s.poll_event() {
            if let Event::Dtmf { digit, .. } = e {
                got.push(digit);
            }
        }
    };
    for m in &messages {
        loop {
            match s.push_text(m) {
                Ok(()) => break,
                Err(SessionError::Full) => engine.wait(Some(Duration::from_millis(1))),
                Err(e) => panic!("push: {e}"),
            };
            take(&mut s, &mut audio, &mut got_digits);
        }
        take(&mut s, &mut audio, &mut got_digits);
    }
    let want = expected(&f, config.agent_rate);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (audio.len() < want.len() || got_digits.len() < digits.len()) && Instant::now() < deadline {
        engine.wait(Some(Duration::from_millis(5)));
        take(&mut s, &mut audio, &mut got_digits);
    }
    let st = s.stats();
    println!("replay at {} Hz, {} workers: {st:?}", config.agent_rate, engine.workers());
    assert_eq!(st.agent_samples_dropped, 0, "{st:?}");
    assert_eq!(st.events_dropped, 0, "{st:?}");
    assert_eq!(audio.len(), want.len());
    assert!(audio == want, "caller audio differs from what was sent");
    assert_eq!(got_digits, digits);
}

/// The committed speech recording, and the same with loud noise mixed in (many speech events).
fn recordings() -> [Vec<u8>; 2] {
    let (quiet, _) = speech();
    let mut x = 12_345u32;
    let noisy = quiet
        .iter()
        .map(|&b| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = ((x >> 16) as i32 % 4_000) - 2_000;
            trunkline::codec::linear_to_ulaw(
                (i32::from(reference_ulaw_decode(b)) + noise).clamp(-32_768, 32_767) as i16,
            )
        })
        .collect();
    [quiet, noisy]
}

#[test]
fn a_replay_pushed_as_fast_as_accepted_loses_no_audio_nor_events() {
    let engine = threaded();
    for ulaw in recordings() {
        for rate in [8_000, 16_000] {
            replay(&engine, &SessionConfig { agent_rate: rate, ..Default::default() }, &ulaw);
        }
    }
}

#[test]
fn a_replay_inline_loses_no_audio_nor_events() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    for ulaw in recordings() {
        replay(&engine, &SessionConfig { agent_rate: 8_000, ..Default::default() }, &ulaw);
    }
}

#[test]
fn a_host_that_stops_reading_audio_still_gets_its_events_within_the_hold_time() {
    let engine = threaded();
    let config = SessionConfig::default();
    let hold = Duration::from_millis(u64::from(config.read_hold_ms));
    let mut s = engine.open_session(&config).unwrap();
    s.push_text(&start()).unwrap();
    let f = frames(200);
    let t0 = Instant::now();
    let mut sent_at = vec![];
    let mut delays = vec![];
    let mut buf = [0i16; 8192];
    let mut read = 0u64;
    let mut seen_stop = None;
    let mut pushed_stop = None;
    for turn in 0u64.. {
        let due = t0 + Duration::from_millis(turn * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let i = turn as usize;
        if i < f.len() {
            // Real time: one frame per turn (a `Full` here would be a failure of this test).
            s.push_text(&media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &f[i])).unwrap();
            if i % 10 == 5 {
                s.push_text(&dtmf(10_000 + i as u64, '7')).unwrap();
                sent_at.push(Instant::now());
            }
        } else if pushed_stop.is_none() {
            s.push_text(&stop(99_999)).unwrap();
            pushed_stop = Some(Instant::now());
        }
        // The host reads caller audio for the first second, then stops (its STT died); it
        // keeps polling events.
        if turn < 50 {
            read += s.read_audio(&mut buf) as u64;
        }
        while let Some(e) = s.poll_event() {
            match e {
                Event::Dtmf { .. } => delays.push(sent_at[delays.len()].elapsed()),
                Event::Stopped => seen_stop = Some(pushed_stop.unwrap().elapsed()),
                _ => {}
            }
        }
        if seen_stop.is_some() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the stop event never came");
    }
    let st = s.stats();
    let worst = delays.iter().max().unwrap();
    println!("events-only host: DTMF delay max {worst:?}, stop after {:?}; {st:?}", seen_stop.unwrap());
    assert_eq!(delays.len(), sent_at.len(), "every DTMF arrived");
    // Bounded by the hold time (plus the worker's tick and this loop's 20 ms turn).
    let bound = hold + Duration::from_millis(100);
    assert!(*worst <= bound, "DTMF delayed {worst:?}");
    assert!(seen_stop.unwrap() <= bound);
    // Audio it did not read was dropped and counted: read + waiting + dropped = the stream.
    assert!(st.agent_samples_dropped > 0);
    let waiting = s.audio_available() as u64;
    assert_eq!(read + waiting + st.agent_samples_dropped, f.len() as u64 * 320);
    assert_eq!(st.agent_samples_out, read + waiting);
    assert_eq!(st.events_dropped, 0);
}

/// The carrier's connection closes while its last messages still wait for the host to read:
/// the stream ends after them, with nothing lost, though the inbound ring had no room to say
/// so (it was refused with `Full` before, and the host never got `Stopped`).
#[test]
fn a_connection_that_closes_behind_a_full_ring_ends_the_stream_after_its_messages() {
    let engine = threaded();
    let mut s = engine.open_session(&SessionConfig { agent_rate: 8_000, ..Default::default() }).unwrap();
    s.push_text(&start()).unwrap();
    let mut buf = [0i16; 8192];
    // The host reads, then looks away while a burst arrives: the worker holds the messages it
    // has no room for, and the ring fills.
    s.read_audio(&mut buf);
    let f = frames(600);
    let mut pushed = 0;
    for (i, frame) in f.iter().enumerate() {
        let message = media(i as u64 + 2, i as u64 + 1, i as u64 * 20, frame);
        match s.push_text(&message) {
            Ok(()) => pushed += 1,
            Err(SessionError::Full) => break,
            Err(e) => panic!("push: {e}"),
        }
    }
    assert!(pushed < f.len(), "the burst fitted the ring");
    // Then empty messages (a carrier's keep-alives, say) to the last byte: no room is left for
    // the ring's own record of the close.
    let mut empties = 0;
    while s.push_text("").is_ok() {
        empties += 1;
    }
    s.end_stream().unwrap();

    let mut audio = vec![];
    let mut events = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.contains(&Event::Stopped) {
        assert!(Instant::now() < deadline, "no Stopped: {events:?}");
        engine.wait(Some(Duration::from_millis(5)));
        let n = s.read_audio(&mut buf);
        audio.extend_from_slice(&buf[..n]);
        events.extend(std::iter::from_fn(|| s.poll_event()));
    }
    let n = s.read_audio(&mut buf);
    audio.extend_from_slice(&buf[..n]);
    let st = s.stats();
    assert_eq!(st.agent_samples_dropped, 0, "{st:?}");
    assert!(audio == expected(&f[..pushed], 8_000), "caller audio differs from what was pushed");
    assert_eq!(events.iter().filter(|e| **e == Event::Stopped).count(), 1, "{events:?}");
    assert_eq!(st.messages_in, 1 + pushed as u64 + empties, "{st:?}");
}

/// A detached carrier side dropped without a word (a connection task that ended early, or
/// panicked) still ends the stream: no more carrier messages can come.
#[test]
fn a_carrier_side_dropped_without_ending_the_stream_ends_it() {
    let engine = threaded();
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    let mut port = s.detach_carrier(std::sync::Arc::new(trunkline::runtime::Wakeup::new().unwrap())).unwrap();
    port.push(start().as_bytes(), trunkline::MessageKind::Text).unwrap();
    drop(port);
    let mut events = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.contains(&Event::Stopped) {
        assert!(Instant::now() < deadline, "no Stopped: {events:?}");
        engine.wait(Some(Duration::from_millis(5)));
        events.extend(std::iter::from_fn(|| s.poll_event()));
    }
    assert!(matches!(events[0], Event::Started(_)), "{events:?}");
}

/// A byte-stream carrier (Asterisk AudioSocket) read in large chunks, as a socket gives them after
/// a stall: each pushed chunk holds many messages (19 frames in 6 KiB here). While the host reads
/// a frame's worth at a time, the worker waits for room for a whole chunk's audio, not for one
/// message's: nothing is dropped.
#[test]
fn a_byte_stream_read_in_large_chunks_loses_no_audio_while_the_host_reads() {
    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        out
    }
    let engine = threaded();
    let config = SessionConfig { dialect: "audiosocket".into(), agent_rate: 8_000, ..Default::default() };
    let mut s = engine.open_session(&config).unwrap();
    let audio: Vec<i16> = (0..8_000 * 20).map(|i| ((i * 37) % 20_000 - 10_000) as i16).collect();
    let mut stream = tlv(0x01, &[0x11; 16]);
    for frame in audio.chunks(160) {
        let bytes: Vec<u8> = frame.iter().flat_map(|v| v.to_le_bytes()).collect();
        stream.extend(tlv(0x10, &bytes));
    }
    let mut got = vec![];
    let mut pcm = [0i16; 160];
    let mut read = |s: &mut Session, got: &mut Vec<i16>| {
        let n = s.read_audio(&mut pcm);
        got.extend_from_slice(&pcm[..n]);
    };
    for chunk in stream.chunks(6_144) {
        loop {
            match s.push(chunk, trunkline::MessageKind::Binary) {
                Ok(()) => break,
                Err(SessionError::Full) => {
                    read(&mut s, &mut got);
                    engine.wait(Some(Duration::from_millis(1)));
                }
                Err(e) => panic!("push: {e}"),
            }
        }
        read(&mut s, &mut got);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < audio.len() && Instant::now() < deadline {
        engine.wait(Some(Duration::from_millis(2)));
        read(&mut s, &mut got);
    }
    let st = s.stats();
    assert_eq!(st.agent_samples_dropped, 0, "{st:?}");
    assert!(got == audio, "{} of {} samples, or different", got.len(), audio.len());
}

/// An Opus carrier (Telnyx) sending 120 ms packets (Opus's longest) of a few dozen bytes each, in a burst after a
/// stall: each message decodes to far more samples than it has bytes. While the host reads a
/// frame's worth at a time, the worker waits for room for what a packet can decode to: nothing is
/// dropped.
#[test]
fn opus_packets_that_decode_to_more_samples_than_bytes_lose_no_audio_while_the_host_reads() {
    use audiopus::coder::Encoder;
    use audiopus::{Application, Bitrate, Channels, SampleRate};
    use base64::Engine as _;
    let engine = threaded();
    let config =
        SessionConfig { dialect: "telnyx;codec=OPUS".into(), agent_rate: 16_000, ..Default::default() };
    let mut s = engine.open_session(&config).unwrap();
    let start = serde_json::json!({"event": "start", "sequence_number": "1", "stream_id": "s1",
        "start": {"call_control_id": "v3:call", "media_format": {"encoding": "OPUS", "sample_rate": 16000, "channels": 1}}});
    s.push_text(&start.to_string()).unwrap();
    let mut encoder = Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip).unwrap();
    encoder.set_bitrate(Bitrate::BitsPerSecond(8_000)).unwrap();
    let packets = 50; // 6 s of 120 ms packets
    let tone: Vec<i16> = (0..1_920 * packets)
        .map(|i| (6_000.0 * (i as f64 * 2.0 * std::f64::consts::PI / 40.0).sin()) as i16)
        .collect();
    let messages: Vec<String> = tone
        .chunks(1_920)
        .enumerate()
        .map(|(k, frame)| {
            let mut out = vec![0u8; 1500];
            let n = encoder.encode(frame, &mut out).unwrap();
            assert!(n < 200, "a 120 ms packet of {n} bytes");
            let payload = base64::engine::general_purpose::STANDARD.encode(&out[..n]);
            serde_json::json!({"event": "media", "sequence_number": (k + 2).to_string(), "stream_id": "s1",
                "media": {"track": "inbound", "chunk": (k + 1).to_string(), "timestamp": (k * 120).to_string(), "payload": payload}})
            .to_string()
        })
        .collect();
    let mut got = 0usize;
    let mut pcm = [0i16; 320];
    for message in &messages {
        loop {
            match s.push_text(message) {
                Ok(()) => break,
                Err(SessionError::Full) => {
                    got += s.read_audio(&mut pcm);
                    engine.wait(Some(Duration::from_millis(1)));
                }
                Err(e) => panic!("push: {e}"),
            }
        }
        got += s.read_audio(&mut pcm);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < tone.len() && Instant::now() < deadline {
        engine.wait(Some(Duration::from_millis(2)));
        got += s.read_audio(&mut pcm);
    }
    let st = s.stats();
    assert_eq!(st.agent_samples_dropped, 0, "{st:?}");
    assert_eq!(got, tone.len());
}

#[test]
fn the_first_words_after_a_second_the_carrier_lost_reach_the_host() {
    // Ten frames, then a second the carrier lost: the next frame is stamped 1200 ms. The second
    // of silence filling the gap is more than the host's audio ring holds (500 ms): the silence
    // that does not fit is left out and counted, and the frame after the gap is read whole.
    for workers in [0, 1] {
        let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
        let config = SessionConfig { agent_rate: 8_000, ..Default::default() };
        let mut s = engine.open_session(&config).unwrap();
        s.push_text(&start()).unwrap();
        let f = frames(11);
        let mut buf = vec![0i16; 1 << 16];
        let mut audio = vec![];
        // Reads until the host has `samples` of the stream, read or dropped.
        let mut read = |s: &mut Session, audio: &mut Vec<i16>, samples: u64| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while audio.len() as u64 + s.stats().agent_samples_dropped < samples {
                assert!(
                    Instant::now() < deadline,
                    "workers {workers}: {} read, {:?}",
                    audio.len(),
                    s.stats()
                );
                let n = s.read_audio(&mut buf);
                audio.extend_from_slice(&buf[..n]);
                if n == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        for (i, frame) in f[..10].iter().enumerate() {
            s.push_text(&media(i as u64 + 2, i as u64 + 1, i as u64 * 20, frame)).unwrap();
        }
        read(&mut s, &mut audio, 1_600);
        assert_eq!(audio, expected(&f[..10], 8_000), "workers {workers}: the frames before the gap");
        s.push_text(&media(12, 11, 1_200, &f[10])).unwrap();
        read(&mut s, &mut audio, 1_220 * 8);
        let stats = s.stats();
        assert_eq!(
            &audio[audio.len() - 160..],
            &expected(&f[10..], 8_000)[..],
            "workers {workers}: {stats:?}"
        );
        // The host's timeline: what it read and what was dropped make the stream.
        assert_eq!(
            audio.len() as u64 + stats.agent_samples_dropped,
            1_220 * 8,
            "workers {workers}: {stats:?}"
        );
        assert!(stats.agent_samples_dropped > 0, "workers {workers}: {stats:?}");
    }
}

/// A message over the size limit is one protocol error, and its record in the inbound ring is a
/// header alone: a host pushing a burst of them between two polls got far more events than its
/// queue holds, and the oldest (a barge-in, a key press) were dropped while it was polling. They
/// now wait for room as any message does.
#[test]
fn a_burst_of_oversized_messages_waits_for_event_room_while_the_host_polls() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let config = SessionConfig { event_capacity: 16, ..Default::default() };
    let mut s = engine.open_session(&config).unwrap();
    // The host polls its events: it is reading them.
    assert!(s.poll_event().is_none());
    let oversized = vec![b' '; config.max_message_bytes + 1];
    for _ in 0..40 {
        s.push_text(std::str::from_utf8(&oversized).unwrap()).unwrap();
    }
    let mut too_large = 0;
    while let Some(event) = s.poll_event() {
        assert_eq!(
            event,
            Event::ProtocolError { error: trunkline::protocol::ProtocolError::MessageTooLarge }
        );
        too_large += 1;
    }
    assert_eq!((too_large, s.stats().events_dropped), (40, 0));
}
