//! Played position per host-named segment, checked against a simulated carrier on the manual
//! clock: it plays what it receives in real time after a jitter delay, echoes marks (the engine's
//! hidden sync marks among them) once the audio before them has played, and drops its buffer on
//! `clear`. Each segment's audio has its own level, so the carrier knows from the samples at its
//! playhead which segment the caller is hearing and how much of it has played: the truth the
//! engine's report is held to.

use crate::common::*;
use std::time::Duration;
use trunkline::runtime::ManualClock;
use trunkline::{
    BargeInConfig, Engine, EngineConfig, Event, HeardSegment, Session, SessionConfig, SessionError,
};

const TICK_US: u64 = 5_000;
/// The carrier starts playing a frame this long after it arrives (its jitter buffer).
const JITTER_US: u64 = 60_000;
/// Levels of segments A, B and C (and 0: padding or nothing).
const LEVELS: [(char, i16); 3] = [('A', 1000), ('B', 3000), ('C', 6000)];
const TOLERANCE_MS: u64 = 20;

struct Carrier {
    play_end_us: u64,
    /// (play start µs, decoded samples) per frame received.
    frames: Vec<(u64, Vec<i16>)>,
    pending_marks: Vec<(u64, String)>,
    echo_seq: u64,
}

impl Carrier {
    fn new() -> Self {
        Self { play_end_us: 0, frames: vec![], pending_marks: vec![], echo_seq: 1000 }
    }

    fn receive(&mut self, message: Outbound, now_us: u64) -> Vec<String> {
        match message {
            Outbound::Media(payload) => {
                let begin = self.play_end_us.max(now_us + JITTER_US);
                self.play_end_us = begin + payload.len() as u64 * 125;
                self.frames.push((begin, payload.iter().map(|&b| reference_ulaw_decode(b)).collect()));
                vec![]
            }
            Outbound::Mark(name) => {
                self.pending_marks.push((self.play_end_us.max(now_us), name));
                vec![]
            }
            Outbound::Clear => {
                // Frames not yet played are gone; the one playing stops now.
                for (start, samples) in &mut self.frames {
                    let played = (now_us.saturating_sub(*start) / 125).min(samples.len() as u64) as usize;
                    samples.truncate(played);
                }
                self.play_end_us = now_us;
                self.pending_marks.drain(..).map(|(_, n)| n).collect()
            }
        }
    }

    fn due_echoes(&mut self, now_us: u64) -> Vec<String> {
        let (due, later): (Vec<_>, Vec<_>) = self.pending_marks.drain(..).partition(|(at, _)| *at <= now_us);
        self.pending_marks = later;
        due.into_iter().map(|(_, n)| n).collect()
    }

    /// The segment of each sample heard by `now_us`, in play order ('-' for silence).
    fn heard(&self, now_us: u64) -> Vec<char> {
        let mut out = vec![];
        for (start, samples) in &self.frames {
            let n = (now_us.saturating_sub(*start) / 125).min(samples.len() as u64) as usize;
            out.extend(samples[..n].iter().map(|&v| {
                LEVELS
                    .iter()
                    .find(|(_, level)| (i32::from(v) - i32::from(*level)).abs() < i32::from(*level) / 8)
                    .map_or('-', |(c, _)| *c)
            }));
        }
        out
    }

    /// The segment being heard at `now_us` and its ms heard, by the samples that played.
    fn truth(&self, now_us: u64) -> Option<(char, u64)> {
        let heard = self.heard(now_us);
        let current = *heard.iter().rev().find(|&&c| c != '-')?;
        Some((current, heard.iter().filter(|&&c| c == current).count() as u64 / 8))
    }
}

struct Call {
    clock: ManualClock,
    session: Session,
    carrier: Carrier,
    _engine: Engine,
    seq: u64,
}

impl Call {
    fn new() -> Self {
        let clock = ManualClock::new();
        let engine =
            Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
                .unwrap();
        // The carrier tells the segments apart by their level, which ducking changes: off here
        // (it moves no position: tests/integration/ducking.rs).
        let config = SessionConfig {
            barge_in: BargeInConfig { duck_db: 0, ..BargeInConfig::default() },
            ..SessionConfig::default()
        };
        let mut session = engine.open_session(&config).unwrap();
        session.push_text(&start()).unwrap();
        while session.poll_event().is_some() {}
        Self { clock, session, carrier: Carrier::new(), _engine: engine, seq: 2 }
    }

    fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// Exchanges messages with the carrier at the current time; returns the events.
    fn exchange(&mut self) -> Vec<Event> {
        let now = self.now_us();
        let mut buf = Vec::new();
        let mut echoes = vec![];
        while self.session.next_outbound(&mut buf).is_some() {
            echoes.extend(self.carrier.receive(parse_outbound(&buf), now));
        }
        echoes.extend(self.carrier.due_echoes(now));
        for name in echoes {
            self.carrier.echo_seq += 1;
            self.session.push_text(&mark_echo(self.carrier.echo_seq, &name)).unwrap();
        }
        // The host takes the caller's audio (its speech-to-text), as a real one does.
        let mut pcm = [0i16; 1024];
        while self.session.read_audio(&mut pcm) > 0 {}
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// Moves time on one tick, feeding the caller's audio (`caller`, from stream time 0) every
    /// 20 ms; returns the events.
    fn tick(&mut self, caller: &[u8]) -> Vec<Event> {
        self.clock.advance(Duration::from_micros(TICK_US));
        let now = self.now_us();
        if now.is_multiple_of(20_000) {
            let i = now / 20_000 - 1;
            let from = (i * 160) as usize;
            let frame = caller.get(from..from + 160).unwrap_or(&[0xFF; 160]);
            self.seq += 1;
            self.session.push_text(&media(self.seq, i + 1, i * 20, frame)).unwrap();
        }
        self.exchange()
    }

    /// Begins segments A (500 ms), B (300 ms) and C (400 ms) and queues their audio.
    fn play_abc(&mut self) {
        for ((tag, level), ms) in LEVELS.iter().zip([500usize, 300, 400]) {
            self.session.begin_segment(&tag.to_string()).unwrap();
            assert_eq!(self.session.play(&vec![*level; ms * 8], 8000), Ok(ms * 8));
        }
    }
}

fn silence(ms: u64) -> Vec<u8> {
    vec![0xFF; (ms * 8) as usize]
}

/// Checks a cut's report against the carrier's truth at `now_us`: segment `expect` being heard.
fn check_cut(call: &Call, expect: char, unheard: &[&str]) -> u64 {
    let report = call.session.segments_at_cut().expect("a report with the event").clone();
    let (truth_seg, truth_ms) = call.carrier.truth(call.now_us()).expect("the caller heard something");
    assert_eq!(truth_seg, expect, "the carrier was playing {truth_seg}");
    let Some(HeardSegment { tag, played_ms: Some(played) }) = report.segment else {
        panic!("no played position: {report:?}")
    };
    assert_eq!(tag, expect.to_string());
    assert!(
        played.abs_diff(truth_ms) <= TOLERANCE_MS,
        "reported {played} ms, the caller heard {truth_ms} ms"
    );
    assert_eq!(report.unheard, unheard);
    played
}

#[test]
fn an_interrupt_mid_segment_reports_that_segment_its_played_time_and_the_unheard_rest() {
    let mut call = Call::new();
    call.play_abc();
    let quiet = silence(5_000);
    // Until B has played about 120 ms by the carrier's own playout.
    while call.carrier.truth(call.now_us()).is_none_or(|(seg, ms)| seg != 'B' || ms < 120) {
        assert!(call.tick(&quiet).is_empty());
    }
    call.session.interrupt().unwrap();
    let evs = call.exchange();
    assert!(matches!(evs[..], [Event::Interrupted { .. }]), "{evs:?}");
    let played = check_cut(&call, 'B', &["C"]);
    assert!(played <= 300, "never more than was queued for B");
}

#[test]
fn silence_padded_at_the_hosts_marks_inside_a_segment_is_not_counted_as_heard() {
    // B queued as ten chunks of 170 samples with a mark after each (a host marking every TTS
    // chunk): each chunk goes out as two frames, the second padded with 150 samples of silence.
    let mut call = Call::new();
    call.session.begin_segment("A").unwrap();
    assert_eq!(call.session.play(&vec![LEVELS[0].1; 500 * 8], 8000), Ok(500 * 8));
    call.session.begin_segment("B").unwrap();
    for k in 0..10 {
        assert_eq!(call.session.play(&[LEVELS[1].1; 170], 8000), Ok(170));
        call.session.mark(&format!("chunk-{k}")).unwrap();
    }
    call.session.begin_segment("C").unwrap();
    assert_eq!(call.session.play(&vec![LEVELS[2].1; 400 * 8], 8000), Ok(400 * 8));
    let quiet = silence(10_000);
    // Until the caller has heard about 120 ms of B's audio (half of it, over 0.2 s of playout).
    while call.carrier.truth(call.now_us()).is_none_or(|(seg, ms)| seg != 'B' || ms < 120) {
        call.tick(&quiet);
    }
    call.session.interrupt().unwrap();
    let evs = call.exchange();
    assert!(evs.iter().any(|e| matches!(e, Event::Interrupted { .. })), "{evs:?}");
    check_cut(&call, 'B', &["C"]);
}

#[test]
fn queued_ms_counts_down_with_what_the_carrier_played() {
    let mut call = Call::new();
    call.play_abc();
    assert_eq!(call.session.queued_ms(), 1200);
    let quiet = silence(5_000);
    // The carrier's jitter buffer is invisible until its first echo of a sync mark (500 ms of
    // audio in); from then on the count follows what it played.
    while call.now_us() < 600_000 {
        call.tick(&quiet);
    }
    for _ in 0..(500_000 / TICK_US) {
        call.tick(&quiet);
        let heard = call.carrier.heard(call.now_us()).iter().filter(|&&c| c != '-').count() as u64 / 8;
        let queued = call.session.queued_ms();
        assert!((1200 - heard).abs_diff(queued) <= TOLERANCE_MS, "queued {queued} ms, heard {heard} of 1200");
    }
    for _ in 0..(300_000 / TICK_US) {
        call.tick(&quiet);
    }
    assert_eq!(call.session.queued_ms(), 0);
}

#[test]
fn nothing_heard_yet_is_reported_as_not_played_not_as_zero() {
    let mut call = Call::new();
    call.play_abc();
    // The lead's frames went out at once; none has played yet.
    call.exchange();
    assert!(call.carrier.truth(call.now_us()).is_none());
    call.session.interrupt().unwrap();
    call.exchange();
    let report = call.session.segments_at_cut().unwrap();
    assert_eq!(report.segment, Some(HeardSegment { tag: "A".into(), played_ms: None }));
    assert_eq!(report.unheard, ["B", "C"]);
    // Every segment ended: the next interrupt, with none begun since, names none.
    call.session.interrupt().unwrap();
    call.exchange();
    assert_eq!(call.session.segments_at_cut().unwrap().segment, None);
}

#[test]
fn a_barge_in_reports_the_segment_heard_against_the_carriers_playout() {
    let (caller, _) = speech();
    // When the caller's speech barges in, with agent audio playing throughout.
    let mut probe = Call::new();
    probe.session.play(&vec![100i16; 8 * 4000], 8000).unwrap();
    let barge_us = loop {
        if probe.tick(&caller).iter().any(|e| matches!(e, Event::BargeIn { .. })) {
            break probe.now_us();
        }
        assert!(probe.now_us() < 4_000_000, "the caller's speech barges in");
    };
    // The same call, with A, B and C queued so that B has played about 120 ms at that moment.
    let mut call = Call::new();
    let start_us = barge_us - JITTER_US - 620_000;
    while call.now_us() < start_us {
        call.tick(&caller);
    }
    call.play_abc();
    while !call.tick(&caller).iter().any(|e| matches!(e, Event::BargeIn { .. })) {
        assert!(call.now_us() < barge_us, "no barge-in before the probe's");
    }
    assert_eq!(call.now_us(), barge_us, "the barge-in came when the probe's did");
    check_cut(&call, 'B', &["C"]);
}

#[test]
fn a_segment_begun_after_an_interrupt_is_not_cut_off_by_it() {
    let mut call = Call::new();
    call.play_abc();
    call.session.interrupt().unwrap();
    // Not yet polled: D is begun after the interrupt, so it is not cut off by it.
    call.session.begin_segment("D").unwrap();
    call.session.play(&[500i16; 800], 8000).unwrap();
    let evs = call.exchange();
    assert!(matches!(evs[..], [Event::Interrupted { .. }]), "{evs:?}");
    let report = call.session.segments_at_cut().unwrap();
    assert_eq!(report.segment.as_ref().map(|s| s.tag.as_str()), Some("A"));
    assert_eq!(report.unheard, ["B", "C"]);
    // D plays, and a second interrupt finds it.
    for _ in 0..(100_000 / TICK_US) {
        call.tick(&silence(200));
    }
    call.session.interrupt().unwrap();
    call.exchange();
    let report = call.session.segments_at_cut().unwrap();
    assert_eq!(report.segment.as_ref().map(|s| s.tag.as_str()), Some("D"));
    assert!(report.unheard.is_empty());
}

#[test]
fn the_segment_table_is_bounded_and_says_so() {
    let mut call = Call::new();
    for i in 0..32 {
        call.session.begin_segment(&format!("s{i}")).unwrap();
        call.session.play(&[1000i16; 80], 8000).unwrap();
    }
    assert_eq!(call.session.begin_segment("one-too-many"), Err(SessionError::Full));
    for bad in ["", &"x".repeat(64), "nul\0"] {
        assert!(matches!(call.session.begin_segment(bad), Err(SessionError::InvalidArgument(_))));
    }
    // Once playout has moved past them, their slots are free again.
    for _ in 0..(600_000 / TICK_US) {
        call.tick(&silence(600));
    }
    call.session.begin_segment("after").unwrap();
    call.session.interrupt().unwrap();
    call.exchange();
    for i in 0..32 {
        call.session.begin_segment(&format!("again{i}")).unwrap();
    }
}
