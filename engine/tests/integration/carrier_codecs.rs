//! G.722 and Opus calls end to end: Telnyx (`G722`, `OPUS`) and SignalWire (G.722), both ways.
//!
//! Expectations are independent of the engine's codecs: the caller's G.722 is the reference
//! implementation's codes (`fixtures/g722/`, see `scripts/gen_g722_reference.py`) and must reach
//! a 16 kHz agent exactly as the reference decodes them; the caller's Opus is made by libopus
//! itself (`audiopus`, not the engine's wrapper) and the packets sent back are decoded by libopus,
//! each alone; the agent's audio is compared with what was played (SNR or correlation, bounds
//! stated where they are checked).

use std::time::Duration;

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use trunkline::codec::G722Decoder;
use trunkline::protocol::{AudioEncoding, MediaFormat, ProtocolError, SignalWireDialect, dialect_by_name};
use trunkline::runtime::ManualClock;
use trunkline::{Event, MessageKind, Session, SessionConfig};

use crate::dialect_session::{errors, events, read_all};

const STREAM_ID: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";
const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

fn g722_fixture(name: &str) -> Vec<u8> {
    std::fs::read(crate::common::fixture(&format!("g722/{name}"))).expect("g722 fixture")
}

fn le_samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

fn telnyx_start(encoding: &str, sample_rate: u32) -> String {
    json!({"event": "start", "sequence_number": "1", "stream_id": STREAM_ID,
        "start": {"call_control_id": "v3:call", "media_format": {"encoding": encoding, "sample_rate": sample_rate, "channels": 1}}})
    .to_string()
}

fn telnyx_media(k: u64, payload: &[u8]) -> String {
    json!({"event": "media", "sequence_number": (k + 2).to_string(), "stream_id": STREAM_ID,
        "media": {"track": "inbound", "chunk": (k + 1).to_string(), "timestamp": (k * 20).to_string(), "payload": STANDARD.encode(payload)}})
    .to_string()
}

fn signalwire_start(encoding: &str, sample_rate: u32) -> String {
    json!({"event": "start", "sequenceNumber": "1", "streamSid": SID,
        "start": {"streamSid": SID, "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
        "mediaFormat": {"encoding": encoding, "sampleRate": sample_rate, "channels": 1}}})
    .to_string()
}

fn signalwire_media(k: u64, payload: &[u8]) -> String {
    json!({"event": "media", "sequenceNumber": (k + 2).to_string(), "streamSid": SID,
        "media": {"track": "inbound", "chunk": (k + 1).to_string(), "timestamp": (k * 20).to_string(), "payload": STANDARD.encode(payload)}})
    .to_string()
}

fn open(clock: &ManualClock, spec: &str, agent_rate: u32) -> (trunkline::Engine, Session) {
    let config =
        SessionConfig { agent_rate, play_rate: agent_rate, sync_mark_interval_ms: 0, ..Default::default() };
    let engine = trunkline::Engine::with_manual_clock(
        trunkline::EngineConfig { workers: Some(0), ..Default::default() },
        clock.clone(),
    )
    .unwrap();
    let session = engine.open_session_with(&config, dialect_by_name(spec).unwrap()).unwrap();
    (engine, session)
}

/// Every message waiting for the carrier, parsed.
fn outbound(s: &mut Session) -> Vec<Value> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| {
        let kind = s.next_outbound(&mut buf)?;
        assert_eq!(kind, MessageKind::Text);
        Some(serde_json::from_slice(&buf).unwrap())
    })
    .collect()
}

fn payload(message: &Value) -> Option<Vec<u8>> {
    (message["event"] == "media")
        .then(|| STANDARD.decode(message["media"]["payload"].as_str().unwrap()).unwrap())
}

/// Plays `reply` at `rate` and collects the media payloads sent while the clock runs `ms`.
fn play_and_collect(clock: &ManualClock, s: &mut Session, reply: &[i16], rate: u32, ms: u64) -> Vec<Vec<u8>> {
    assert_eq!(s.play(reply, rate).unwrap(), reply.len());
    let mut sent = Vec::new();
    for _ in 0..ms / 20 {
        sent.extend(outbound(s).iter().filter_map(payload));
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    sent
}

/// Tones at 350, 1100 and 2300 Hz (all inside narrowband, so every codec and rate keeps them).
fn tones(rate: u32, len: usize) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            let v: f64 = [(350.0, 4000.0), (1100.0, 3000.0), (2300.0, 2000.0)]
                .iter()
                .map(|(hz, a)| a * (2.0 * std::f64::consts::PI * hz * t).sin())
                .sum();
            v as i16
        })
        .collect()
}

/// The best normalized correlation of `got` with `want` over delays 0 to `max_delay` samples,
/// and the SNR (dB) at that delay.
fn best_match(want: &[i16], got: &[i16], max_delay: usize) -> (f64, f64) {
    let want: Vec<f64> = want.iter().map(|&x| f64::from(x)).collect();
    (0..=max_delay)
        .filter(|&d| got.len() > d + want.len() / 2)
        .map(|d| {
            let got: Vec<f64> = got[d..].iter().map(|&x| f64::from(x)).collect();
            let n = want.len().min(got.len());
            let signal: f64 = want[..n].iter().map(|x| x * x).sum();
            let noise: f64 = want[..n].iter().zip(&got[..n]).map(|(x, y)| (x - y).powi(2)).sum();
            (crate::common::correlation(&want[..n], &got[..n]), 10.0 * (signal / noise.max(1.0)).log10())
        })
        .fold((f64::MIN, f64::MIN), |best, c| if c.0 > best.0 { c } else { best })
}

// ---------------------------------------------------------------------------------------------
// G.722

#[test]
fn telnyx_g722_at_either_announced_rate_reaches_a_16_khz_agent_as_the_reference_decodes_it() {
    let codes = g722_fixture("codes.g722");
    let reference = le_samples(&g722_fixture("decoded.s16le"));
    let frames = codes.len() / 160;
    for announced in [8000, 16_000] {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, "telnyx;codec=G722", 16_000);
        s.push_text(&telnyx_start("G722", announced)).unwrap();
        for (k, frame) in codes.chunks_exact(160).enumerate() {
            s.push_text(&telnyx_media(k as u64, frame)).unwrap();
        }
        // 16 kHz audio to a 16 kHz agent: no resampling, so exactly the reference's samples.
        let got = read_all(&mut s);
        assert_eq!(got.len(), frames * 320);
        assert!(got == reference[..frames * 320], "announced {announced}: differs from the reference");
        let evs = events(&mut s);
        let Some(Event::Started(start)) = evs.first() else { panic!("{evs:?}") };
        let g722 = MediaFormat { encoding: AudioEncoding::G722, sample_rate: 16_000, channels: 1 };
        assert_eq!(start.media_format, g722);
        assert!(errors(&evs).is_empty(), "{evs:?}");
        assert_eq!(s.stats().media_frames_in, frames as u64);
    }
}

#[test]
fn g722_frames_out_of_order_are_put_back_in_place() {
    // Telnyx does not guarantee order. Frames are decoded as they arrive (the codec's state
    // follows arrival order, a documented cost) and placed by their timestamps: the timeline
    // stays whole, the frames before the first swap are exactly the reference's, and with a
    // third of the frames swapped the call is still the reference's signal, degraded by the
    // wrongly ordered predictions (correlation above 0.6 over the whole call; 1.0 in order).
    let codes = g722_fixture("codes.g722");
    let reference = le_samples(&g722_fixture("decoded.s16le"));
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, "telnyx;codec=G722", 16_000);
    s.push_text(&telnyx_start("G722", 8000)).unwrap();
    let frames: Vec<&[u8]> = codes.chunks_exact(160).collect();
    for k in [0usize, 1, 2, 4, 3, 5, 7, 6, 8, 9, 11, 10] {
        s.push_text(&telnyx_media(k as u64, frames[k])).unwrap();
    }
    let got = read_all(&mut s);
    assert_eq!(got.len(), 12 * 320);
    assert!(got[..3 * 320] == reference[..3 * 320]);
    let (corr, _) = best_match(&reference[..12 * 320], &got, 0);
    assert!(corr > 0.6, "correlation {corr:.3}");
    let stats = s.stats();
    assert!(stats.frames_reordered >= 3 && stats.media_frames_in == 12, "{stats:?}");
    assert!(errors(&events(&mut s)).is_empty());
}

#[test]
fn telnyx_g722_reaches_an_8_and_a_24_khz_agent_resampled_from_16_khz() {
    // The chirp's first 75 ms (100 Hz to 2.9 kHz, inside every agent rate's passband) against
    // the reference's decoding, interpolated (windowed sinc) at the agent's sample instants at
    // the delay that fits best, in quarter samples: correlation above 0.98.
    let codes = g722_fixture("codes.g722");
    let reference: Vec<f64> =
        le_samples(&g722_fixture("decoded.s16le")).iter().map(|&x| f64::from(x)).collect();
    for agent_rate in [8000u32, 24_000] {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, "telnyx;codec=G722", agent_rate);
        s.push_text(&telnyx_start("G722", 16_000)).unwrap();
        for (k, frame) in codes.chunks_exact(160).take(10).enumerate() {
            s.push_text(&telnyx_media(k as u64, frame)).unwrap();
        }
        let got = read_all(&mut s);
        let per_frame = agent_rate as usize / 50;
        assert!(got.len().abs_diff(10 * per_frame) <= per_frame, "{agent_rate}: {}", got.len());
        let step = 16_000.0 / f64::from(agent_rate);
        let window = per_frame..per_frame * 15 / 4;
        let got: Vec<f64> = got[window.clone()].iter().map(|&x| f64::from(x)).collect();
        let best = (0..4 * 48)
            .map(|quarter| {
                let delay = f64::from(quarter) / 4.0;
                let want: Vec<f64> =
                    window.clone().map(|i| sinc_at(&reference, i as f64 * step - delay)).collect();
                crate::common::correlation(&want, &got)
            })
            .fold(f64::MIN, f64::max);
        assert!(best > 0.98, "{agent_rate} Hz agent: correlation {best:.3}");
    }
}

/// `x` sampled at position `at` (in samples) by a Hann-windowed sinc of 32 taps.
fn sinc_at(x: &[f64], at: f64) -> f64 {
    let centre = at.floor() as i64;
    (centre - 15..=centre + 16)
        .filter(|&k| k >= 0 && (k as usize) < x.len())
        .map(|k| {
            let t = at - k as f64;
            let sinc = if t.abs() < 1e-9 {
                1.0
            } else {
                (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
            };
            let hann = 0.5 + 0.5 * (std::f64::consts::PI * t / 16.0).cos();
            x[k as usize] * sinc * hann
        })
        .sum()
}

#[test]
fn telnyx_g722_agent_audio_goes_out_as_160_byte_frames_that_decode_to_the_reply() {
    for play_rate in [16_000u32, 8000] {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, "telnyx;codec=G722", play_rate);
        s.push_text(&telnyx_start("PCMU", 8000)).unwrap();
        let reply = tones(play_rate, play_rate as usize / 2);
        let sent = play_and_collect(&clock, &mut s, &reply, play_rate, 800);
        // 500 ms: 25 frames of 20 ms, each 160 bytes of 64 kbit/s G.722.
        assert_eq!(sent.len(), 25, "{play_rate}");
        assert!(sent.iter().all(|p| p.len() == 160), "{play_rate}");
        let mut decoder = G722Decoder::new();
        let mut pcm = vec![0i16; 25 * 320];
        decoder.decode(&sent.concat(), &mut pcm);
        // G.722 keeps narrowband tones more than 20 dB above its noise (bit-exact decoding:
        // tests/integration/g722.rs); the agent's 8 kHz audio is resampled to 16 kHz first.
        let want = tones(16_000, 7000);
        let (corr, snr) = best_match(&want[640..], &pcm[640..], 200);
        assert!(corr > 0.99 && snr > 20.0, "{play_rate}: correlation {corr:.3}, SNR {snr:.1} dB");
    }
}

#[test]
fn signalwire_g722_is_decoded_and_sent_back_as_g722() {
    let codes = g722_fixture("codes.g722");
    let reference = le_samples(&g722_fixture("decoded.s16le"));
    for name in ["audio/G722", "audio/x-g722"] {
        let clock = ManualClock::new();
        let config = SessionConfig {
            agent_rate: 16_000,
            play_rate: 16_000,
            sync_mark_interval_ms: 0,
            ..Default::default()
        };
        let (_engine, mut s) = crate::dialect_session::open_with(&clock, &config, SignalWireDialect::new());
        s.push_text(&signalwire_start(name, 8000)).unwrap();
        for (k, frame) in codes.chunks_exact(160).take(8).enumerate() {
            s.push_text(&signalwire_media(k as u64, frame)).unwrap();
        }
        assert!(read_all(&mut s) == reference[..8 * 320], "{name}");
        let reply = tones(16_000, 3200);
        let sent = play_and_collect(&clock, &mut s, &reply, 16_000, 400);
        assert_eq!(sent.iter().map(Vec::len).collect::<Vec<_>>(), [160; 10], "{name}");
        let mut pcm = vec![0i16; 3200];
        G722Decoder::new().decode(&sent.concat(), &mut pcm);
        let (corr, _) = best_match(&reply[320..2800], &pcm[320..], 100);
        assert!(corr > 0.99, "{name}: {corr:.3}");
        assert!(errors(&events(&mut s)).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Opus

fn opus_rate(rate: u32) -> SampleRate {
    match rate {
        8000 => SampleRate::Hz8000,
        16_000 => SampleRate::Hz16000,
        24_000 => SampleRate::Hz24000,
        _ => SampleRate::Hz48000,
    }
}

/// `pcm` at `rate` as 20 ms Opus packets from libopus (VOIP, 32 kbit/s).
fn opus_packets(pcm: &[i16], rate: u32) -> Vec<Vec<u8>> {
    let mut encoder = Encoder::new(opus_rate(rate), Channels::Mono, Application::Voip).unwrap();
    encoder.set_bitrate(Bitrate::BitsPerSecond(32_000)).unwrap();
    pcm.chunks_exact(rate as usize / 50)
        .map(|frame| {
            let mut out = vec![0u8; 1500];
            let n = encoder.encode(frame, &mut out).unwrap();
            out.truncate(n);
            out
        })
        .collect()
}

#[test]
fn telnyx_opus_caller_audio_reaches_the_agent() {
    // Opus is not waveform-exact: the agent's audio must correlate with the tones above 0.9
    // (libopus's own round trip at 32 kbit/s is well above that), at a delay under 20 ms.
    let calls = [(48_000u32, 16_000u32), (16_000, 16_000), (16_000, 24_000), (8000, 8000), (48_000, 48_000)];
    for (announced, agent_rate) in calls {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, "telnyx;codec=OPUS", agent_rate);
        s.push_text(&telnyx_start("OPUS", announced)).unwrap();
        let packets = opus_packets(&tones(announced, announced as usize / 2), announced);
        for (k, packet) in packets.iter().enumerate() {
            s.push_text(&telnyx_media(k as u64, packet)).unwrap();
        }
        let got = read_all(&mut s);
        let per_frame = agent_rate as usize / 50;
        assert!(got.len().abs_diff(25 * per_frame) <= per_frame, "{announced}->{agent_rate}: {}", got.len());
        let want = tones(agent_rate, got.len());
        let (corr, _) = best_match(&want[5 * per_frame..20 * per_frame], &got[5 * per_frame..], per_frame);
        assert!(corr > 0.9, "{announced}->{agent_rate}: correlation {corr:.3}");
        let evs = events(&mut s);
        let Some(Event::Started(start)) = evs.first() else { panic!("{evs:?}") };
        assert_eq!(start.media_format.encoding, AudioEncoding::Opus);
        assert!(errors(&evs).is_empty(), "{evs:?}");
    }
}

#[test]
fn an_opus_call_is_recorded_at_the_rate_its_audio_is_decoded_at_not_the_announced_one() {
    // Opus is announced at 48 kHz (RTP's clock) and decoded at the agent's 16 kHz: the recording's
    // caller channel holds 16 kHz audio, so its header must say 16 kHz, or it plays three times
    // too fast and drifts from the agent's channel.
    let path = std::env::temp_dir().join(format!("trunkline-opus-record-{}.wav", std::process::id()));
    let clock = ManualClock::new();
    let engine = trunkline::Engine::with_manual_clock(
        trunkline::EngineConfig { workers: Some(0), ..Default::default() },
        clock.clone(),
    )
    .unwrap();
    let config = SessionConfig {
        agent_rate: 16_000,
        play_rate: 16_000,
        sync_mark_interval_ms: 0,
        record_path: Some(path.clone()),
        ..Default::default()
    };
    let mut s = engine.open_session_with(&config, dialect_by_name("telnyx;codec=OPUS").unwrap()).unwrap();
    s.push_text(&telnyx_start("OPUS", 48_000)).unwrap();
    let packets = opus_packets(&tones(48_000, 48_000), 48_000);
    assert_eq!(packets.len(), 50);
    for (k, packet) in packets.iter().enumerate() {
        clock.advance(std::time::Duration::from_millis(20));
        s.push_text(&telnyx_media(k as u64, packet)).unwrap();
        read_all(&mut s);
    }
    s.push_text(&json!({"event": "stop", "sequence_number": "60", "stream_id": STREAM_ID}).to_string())
        .unwrap();
    drop(s);
    drop(engine);
    let mut reader = hound::WavReader::open(&path).unwrap();
    let spec = reader.spec();
    let frames = reader.samples::<i16>().count() / usize::from(spec.channels);
    let _ = std::fs::remove_file(&path);
    assert_eq!(spec.sample_rate, 16_000);
    // One second of the caller, at the header's rate.
    assert_eq!(frames, 16_000);
}

#[test]
fn telnyx_opus_agent_audio_goes_out_one_packet_per_message_each_decoding_alone_to_20_ms() {
    for (spec, rate) in [("telnyx;codec=OPUS", 16_000u32), ("telnyx;codec=OPUS;rate=48000", 48_000)] {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, spec, 16_000);
        s.push_text(&telnyx_start("PCMU", 8000)).unwrap();
        let reply = tones(16_000, 8000);
        let sent = play_and_collect(&clock, &mut s, &reply, 16_000, 800);
        assert_eq!(sent.len(), 25, "{spec}");
        let frame = rate as usize / 50;
        let mut out = vec![0i16; 5760];
        for packet in &sent {
            // A fresh decoder for each: every message is one whole packet of 20 ms.
            let mut alone = Decoder::new(opus_rate(rate), Channels::Mono).unwrap();
            assert_eq!(alone.decode(Some(&packet[..]), &mut out[..], false).unwrap(), frame, "{spec}");
            assert!(packet.len() < 400, "{spec}: {}", packet.len());
        }
        let mut decoder = Decoder::new(SampleRate::Hz16000, Channels::Mono).unwrap();
        let mut pcm = Vec::new();
        for packet in &sent {
            let n = decoder.decode(Some(&packet[..]), &mut out[..], false).unwrap();
            pcm.extend_from_slice(&out[..n]);
        }
        let (corr, _) = best_match(&reply[1600..6400], &pcm[1600..], 640);
        assert!(corr > 0.9, "{spec}: correlation {corr:.3}");
    }
}

#[test]
fn a_corrupt_opus_payload_is_refused_and_counted_and_the_call_goes_on() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, "telnyx;codec=OPUS", 16_000);
    s.push_text(&telnyx_start("OPUS", 16_000)).unwrap();
    let packets = opus_packets(&tones(16_000, 3200), 16_000);
    s.push_text(&telnyx_media(0, &packets[0])).unwrap();
    // A code-3 packet announcing 63 frames of 20 ms (over Opus's 120 ms), then garbage of
    // every length up to 300 bytes (which libopus may take or refuse, but never panic on).
    s.push_text(&telnyx_media(1, &[0x1B, 0x3F, 0, 0])).unwrap();
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::WrongType("media.payload")]);
    s.push_text(&telnyx_media(2, &packets[2])).unwrap();
    for (k, len) in (3..40).zip((1..300).step_by(8)) {
        let garbage: Vec<u8> = (0..len).map(|i| (i * 97 + k * 31) as u8).collect();
        s.push_text(&telnyx_media(k as u64, &garbage)).unwrap();
    }
    // The good frames arrived, the gap between them was filled.
    assert!(read_all(&mut s).len() >= 3 * 320);
    let stats = s.stats();
    assert!(stats.protocol_errors >= 1, "{stats:?}");
}

#[cfg(not(feature = "opus"))]
#[test]
fn without_libopus_an_opus_stream_is_refused() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, "telnyx", 16_000);
    s.push_text(&telnyx_start("OPUS", 16_000)).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::UnsupportedFormat]);
}

// ---------------------------------------------------------------------------------------------
// Barge-in

#[test]
fn caller_speech_in_g722_or_opus_barges_in_and_clears_the_agent() {
    // The committed speech, µ-law at 8 kHz, to 16 kHz (each sample twice, smoothed), coded as
    // the carrier would.
    let (ulaw, labels) = crate::common::speech();
    let narrow: Vec<i16> = ulaw.iter().map(|&c| crate::common::reference_ulaw_decode(c)).collect();
    let mut wide: Vec<i16> = narrow.iter().flat_map(|&x| [x, x]).collect();
    for i in (1..wide.len()).rev() {
        wide[i] = ((i32::from(wide[i]) + i32::from(wide[i - 1])) / 2) as i16;
    }
    // Up to a second past the first utterance's start.
    let frames = (labels[0].0 / 20 + 50) as usize;
    let g722: Vec<Vec<u8>> = wide
        .chunks_exact(320)
        .take(frames)
        .scan(trunkline::codec::G722Encoder::new(), |enc, pcm| {
            let mut out = vec![0; 160];
            enc.encode(pcm, &mut out);
            Some(out)
        })
        .collect();
    let opus = opus_packets(&wide[..frames * 320], 16_000);
    for (spec, encoding, packets) in
        [("telnyx;codec=G722", "G722", g722), ("telnyx;codec=OPUS", "OPUS", opus)]
    {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, spec, 16_000);
        s.push_text(&telnyx_start(encoding, 16_000)).unwrap();
        s.play(&tones(16_000, 16_000 * 30), 16_000).unwrap();
        let mut cleared = false;
        for (k, packet) in packets.iter().enumerate() {
            s.push_text(&telnyx_media(k as u64, packet)).unwrap();
            clock.advance(Duration::from_millis(20));
            s.read_audio(&mut [0; 1024]);
            cleared |= outbound(&mut s).iter().any(|m| *m == json!({"event": "clear"}));
            while s.read_audio(&mut [0; 1024]) > 0 {}
        }
        let evs = events(&mut s);
        assert!(evs.iter().any(|e| matches!(e, Event::BargeIn { .. })), "{spec}: no barge-in");
        assert!(cleared, "{spec}: no clear sent");
        assert!(errors(&evs).is_empty(), "{spec}: {evs:?}");
    }
}
