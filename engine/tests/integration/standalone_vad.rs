//! `trunkline::vad::Vad` (the speech detector on its own, frame by frame) against a session:
//! over the VAD corpus (`tests/vad_corpus/mod.rs`) it must make exactly the speech start and stop
//! decisions, at the same stream times, that a session with default settings reports as events
//! for the same audio: through Twilio µ-law at 8 kHz, and through jambonz L16 at 16 kHz (where
//! both resample to the detector's 8 kHz). And it must not allocate per frame.

use std::time::Duration;

use crate::vad_corpus::{conditions, noise_track, speech_track};
use trunkline::codec::mulaw::linear_to_ulaw;
use trunkline::protocol::MessageKind;
use trunkline::resample::StreamResampler;
use trunkline::runtime::ManualClock;
use trunkline::vad::{SpeechTransition, VAD_RATES, Vad, VadConfig, VadFrame};
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig};

/// A speech decision: onset (true) or end (false), at stream ms.
type Decision = (bool, u64);

/// The standalone VAD's decisions over `pcm` at `rate`, 20 ms per call.
fn standalone(pcm: &[i16], rate: u32) -> Vec<Decision> {
    let mut vad = Vad::new(&VadConfig::default(), rate).unwrap();
    let mut out = Vec::new();
    let mut speaking = false;
    for frame in pcm.chunks_exact(vad.frame_len()) {
        let f = vad.process(frame).unwrap();
        match f.transition {
            Some(SpeechTransition::Started { at_ms }) => out.push((true, at_ms)),
            Some(SpeechTransition::Stopped { at_ms }) => out.push((false, at_ms)),
            None => {}
        }
        // The speaking state is the transitions' hysteresis, frame by frame.
        if f.transition.is_some() {
            speaking = !speaking;
        }
        assert_eq!(f.speaking, speaking);
    }
    out
}

/// The speech events of a default session (inline, manual clock) fed `frames`, one message per
/// 20 ms, the clock moved 20 ms per message.
fn session_decisions(
    config: &SessionConfig,
    first: (&str, MessageKind),
    frames: Vec<(Vec<u8>, MessageKind)>,
) -> Vec<Decision> {
    let clock = ManualClock::new();
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .unwrap();
    let mut session = engine.open_session(config).unwrap();
    let mut out = Vec::new();
    let drain = |s: &mut Session, out: &mut Vec<Decision>| {
        let mut pcm = [0i16; 4096];
        while s.read_audio(&mut pcm) > 0 {}
        while let Some(e) = s.poll_event() {
            match e {
                Event::SpeechStarted { stream_ms } => out.push((true, stream_ms)),
                Event::SpeechStopped { stream_ms } => out.push((false, stream_ms)),
                _ => {}
            }
        }
    };
    session.push(first.0.as_bytes(), first.1).unwrap();
    for (message, kind) in frames {
        session.push(&message, kind).unwrap();
        clock.advance(Duration::from_millis(20));
        drain(&mut session, &mut out);
    }
    // A frame held for reordering comes out once its wait is over.
    clock.advance(Duration::from_secs(1));
    drain(&mut session, &mut out);
    out
}

/// Through a Twilio session: 8 kHz µ-law media (the corpus tracks are µ-law already, so the
/// session decodes exactly the samples the standalone VAD gets).
fn twilio_session(pcm: &[i16]) -> Vec<Decision> {
    let frames = pcm
        .chunks_exact(160)
        .enumerate()
        .map(|(i, f)| {
            let ulaw: Vec<u8> = f.iter().map(|&s| linear_to_ulaw(s)).collect();
            let i = i as u64;
            (crate::common::media(i + 2, i + 1, i * 20, &ulaw).into_bytes(), MessageKind::Text)
        })
        .collect();
    session_decisions(&SessionConfig::default(), (&crate::common::start(), MessageKind::Text), frames)
}

/// Through a jambonz session at 16 kHz: binary L16 frames after the metadata.
fn jambonz_session(pcm16k: &[i16]) -> Vec<Decision> {
    let metadata = r#"{"sampleRate":16000,"mixType":"mono","callSid":"c1","direction":"inbound"}"#;
    let frames = pcm16k
        .chunks_exact(320)
        .map(|f| (f.iter().flat_map(|s| s.to_le_bytes()).collect(), MessageKind::Binary))
        .collect();
    let config = SessionConfig { dialect: "jambonz".into(), ..SessionConfig::default() };
    session_decisions(&config, (metadata, MessageKind::Text), frames)
}

fn upsample_to_16k(pcm: &[i16]) -> Vec<i16> {
    let mut r = StreamResampler::new(8_000, 16_000).unwrap();
    let mut out = vec![0i16; r.max_output_len(pcm.len())];
    let n = r.process(pcm, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn on_the_corpus_at_8_khz_the_decisions_are_a_sessions() {
    for cond in conditions() {
        let track = speech_track(&cond);
        let mine = standalone(&track.pcm, 8_000);
        let session = twilio_session(&track.pcm);
        // Not vacuous: every condition has speech in it.
        assert!(mine.len() >= 2 * track.labels.len() - 2, "{}: {} decisions", cond.name, mine.len());
        assert_eq!(mine, session, "{}", cond.name);
    }
    // Noise alone: the same (few or no) false starts.
    let cond = conditions().into_iter().find(|c| c.name == "noisy-mix").unwrap();
    let noise = noise_track(&cond, 1);
    assert_eq!(standalone(&noise.pcm, 8_000), twilio_session(&noise.pcm));
}

#[test]
fn at_16_khz_the_decisions_are_a_16_khz_sessions() {
    for name in ["quiet", "pink-5dB"] {
        let cond = conditions().into_iter().find(|c| c.name == name).unwrap();
        let track = speech_track(&cond);
        let pcm = upsample_to_16k(&track.pcm);
        let mine = standalone(&pcm, 16_000);
        assert!(mine.len() >= 2 * track.labels.len() - 2, "{name}: {} decisions", mine.len());
        assert_eq!(mine, jambonz_session(&pcm), "{name}");
    }
}

#[test]
fn the_probability_is_the_frame_decision_and_silence_is_zero() {
    let cond = conditions().into_iter().find(|c| c.name == "quiet").unwrap();
    let track = speech_track(&cond);
    let mut vad = Vad::new(&VadConfig::default(), 8_000).unwrap();
    let frames: Vec<VadFrame> = track.pcm.chunks_exact(160).map(|f| vad.process(f).unwrap()).collect();
    assert!(frames.iter().all(|f| f.probability == 0.0 || f.probability == 1.0));
    // Speech is only confirmed on frames called speech, and labelled speech is mostly called so.
    for f in &frames {
        if matches!(f.transition, Some(SpeechTransition::Started { .. })) {
            assert_eq!(f.probability, 1.0);
        }
    }
    let in_speech = |i: usize| track.labels.iter().any(|&(s, e)| (s / 20..e / 20).contains(&(i as u64)));
    let (speech, other): (Vec<_>, Vec<_>) = frames.iter().enumerate().partition(|(i, _)| in_speech(*i));
    let share = |v: &[(usize, &VadFrame)]| {
        v.iter().filter(|(_, f)| f.probability == 1.0).count() as f64 / v.len() as f64
    };
    assert!(share(&speech) > 0.6, "speech frames called speech: {}", share(&speech));
    assert!(share(&other) < 0.1, "non-speech frames called speech: {}", share(&other));
    // Digital silence: 0, never speaking, at every rate.
    for rate in VAD_RATES {
        let mut vad = Vad::new(&VadConfig::default(), rate).unwrap();
        let zeros = vec![0i16; vad.frame_len()];
        for _ in 0..100 {
            let f = vad.process(&zeros).unwrap();
            assert_eq!((f.probability, f.speaking, f.transition), (0.0, false, None));
        }
    }
}

#[test]
fn processing_and_resetting_allocate_nothing() {
    let cond = conditions().into_iter().find(|c| c.name == "clicks").unwrap();
    let track = speech_track(&cond);
    for rate in VAD_RATES {
        let pcm: Vec<i16> = match rate {
            8_000 => track.pcm.clone(),
            _ => {
                let mut r = StreamResampler::new(8_000, rate).unwrap();
                let mut out = vec![0i16; r.max_output_len(track.pcm.len())];
                let n = r.process(&track.pcm, &mut out).unwrap();
                out.truncate(n);
                out
            }
        };
        // Built (every allocation made) before counting: from the very first frame on, nothing.
        let mut vad = Vad::new(&VadConfig::default(), rate).unwrap();
        let frames = pcm.len() / vad.frame_len();
        let (allocations, speaking_frames) = crate::thread_allocations::allocations_in(|| {
            let mut speaking = 0;
            for frame in pcm.chunks_exact(vad.frame_len()) {
                speaking += usize::from(vad.process(frame).unwrap().speaking);
            }
            let _ = vad.process(&pcm[..1]);
            vad.reset();
            speaking + usize::from(vad.process(&pcm[..vad.frame_len()]).unwrap().speaking)
        });
        assert_eq!(allocations, 0, "{rate} Hz: {allocations} allocations over {frames} frames");
        assert!(speaking_frames > frames / 10, "{rate} Hz: speech was found ({speaking_frames} of {frames})");
    }
}

/// A 150 Hz pulse train with decaying harmonics at `rate`, `frames` × 20 ms.
fn pulse_train(rate: u32, frames: usize) -> Vec<i16> {
    let period = f64::from(rate) / 150.0;
    (0..frames * rate as usize / 50)
        .map(|i| {
            let phase = (i as f64 % period) / period;
            (6_000.0 * (-phase * 6.0).exp() * (2.0 * std::f64::consts::PI * phase * 5.0).cos()) as i16
        })
        .collect()
}

#[test]
fn rates_settings_and_frame_lengths_are_checked() {
    use trunkline::vad::{StandaloneVadError, VadError};
    let c = VadConfig::default();
    for rate in [0, 11_025, 22_050, 32_000, 44_100, 96_000] {
        assert_eq!(Vad::new(&c, rate).err(), Some(StandaloneVadError::UnsupportedRate(rate)));
    }
    let bad = VadConfig { aggressiveness: 4, ..VadConfig::default() };
    assert_eq!(Vad::new(&bad, 8_000).err(), Some(StandaloneVadError::Config(VadError::BadAggressiveness(4))));
    let bad = VadConfig { hangover_ms: 10_001, ..VadConfig::default() };
    assert_eq!(
        Vad::new(&bad, 16_000).err(),
        Some(StandaloneVadError::Config(VadError::HangoverTooLong(10_001)))
    );
    for (rate, len) in [(8_000, 160), (16_000, 320), (24_000, 480), (48_000, 960)] {
        let mut v = Vad::new(&c, rate).unwrap();
        assert_eq!((v.sample_rate(), v.frame_len()), (rate, len));
        for wrong in [0, 1, len - 1, len + 1, 2 * len] {
            let e = v.process(&vec![0; wrong]).unwrap_err();
            assert_eq!(e, StandaloneVadError::FrameLength { expected: len, given: wrong });
        }
    }
}

#[test]
fn a_voiced_signal_starts_speech_after_the_minimum_at_every_rate() {
    for rate in VAD_RATES {
        let mut v = Vad::new(&VadConfig::default(), rate).unwrap();
        let mut pcm = vec![0i16; 25 * v.frame_len()];
        pcm.extend(pulse_train(rate, 50));
        pcm.extend(vec![0i16; 50 * v.frame_len()]);
        let frames: Vec<VadFrame> = pcm.chunks(v.frame_len()).map(|f| v.process(f).unwrap()).collect();
        assert!(frames[..25].iter().all(|f| f.probability == 0.0 && !f.speaking), "{rate}");
        let started = frames.iter().position(|f| f.speaking).expect("speech started");
        // Confirmed once min_speech (120 ms, 6 frames) of it is voiced: not sooner, not much later.
        assert!((25 + 5..25 + 10).contains(&started), "{rate} Hz: started at frame {started}");
        let Some(SpeechTransition::Started { at_ms }) = frames[started].transition else { panic!() };
        assert!((480..=520).contains(&at_ms), "{rate} Hz: onset {at_ms} ms");
        // Stopped once the hangover (400 ms) has passed after the signal's end (1.5 s).
        let stopped = frames.iter().rposition(|f| f.speaking).unwrap() + 1;
        let Some(SpeechTransition::Stopped { at_ms }) = frames[stopped].transition else { panic!() };
        assert!((1_480..=1_540).contains(&at_ms), "{rate} Hz: end {at_ms} ms");
        assert_eq!(stopped as u64 * 20 + 20, at_ms + 400, "{rate} Hz: reported a hangover after the end");
        v.reset();
        assert!(!v.is_speaking());
        assert_eq!(v.process(&vec![0; v.frame_len()]).unwrap().probability, 0.0);
    }
}
