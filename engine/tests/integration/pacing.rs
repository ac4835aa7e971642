//! Outbound pacing against a simulated monotonic clock (deterministic: the pipeline never reads
//! time itself).

use crate::common::*;
use trunkline::SessionConfig;
use trunkline::event::RawEvent;
use trunkline::pipeline::SessionPipeline;
use trunkline::protocol::{MessageKind, TwilioDialect};

#[derive(Default)]
struct Sink {
    frames: u64,
    marks: Vec<String>,
    events: Vec<RawEvent>,
}

impl Sink {
    /// Timer work at `now`, then everything due taken, as the runtime does.
    fn tick(&mut self, p: &mut SessionPipeline, now: u64) {
        p.handle_timeout(now, true, &mut |_| {});
        self.drain(p, now);
    }

    /// Ticks every 10 ms from `*now` until `until`, leaving `*now` there.
    fn tick_until(&mut self, p: &mut SessionPipeline, now: &mut u64, until: u64) {
        while *now < until {
            self.tick(p, *now);
            *now += 10_000;
        }
    }

    /// The played positions reported so far: marks' and interrupts', in order.
    fn played_positions(&self) -> Vec<(&'static str, u64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RawEvent::MarkPlayed { played_ms, .. } => Some(("mark", *played_ms)),
                RawEvent::Interrupted { played_ms, .. } => Some(("interrupt", *played_ms)),
                _ => None,
            })
            .collect()
    }

    fn drain(&mut self, p: &mut SessionPipeline, now: u64) {
        while let Some(event) = p.poll_event() {
            self.events.push(event);
        }
        while let Some((_, message)) = p.poll_transmit(now) {
            match parse_outbound(message) {
                Outbound::Media(p) => {
                    assert_eq!(p.len(), 160);
                    self.frames += 1;
                }
                Outbound::Mark(name) => self.marks.push(name),
                Outbound::Clear => {}
            }
        }
    }
}

fn pipeline(config: &SessionConfig) -> (SessionPipeline, Sink) {
    let mut p = SessionPipeline::new(config, Box::new(TwilioDialect::new())).unwrap();
    let mut sink = Sink::default();
    p.handle_message(start().as_bytes(), MessageKind::Text, 0, 0, &mut |_| {});
    sink.drain(&mut p, 0);
    (p, sink)
}

#[test]
fn an_hour_of_agent_audio_goes_out_at_exactly_one_frame_per_20_ms() {
    let config = SessionConfig { sync_mark_interval_ms: 0, ..Default::default() };
    let (mut p, mut sink) = pipeline(&config);
    let chunk = vec![1000i16; 2000]; // 250 ms at 8 kHz, bursty: the host keeps the buffer full
    let total_frames: u64 = 3600 * 50;
    let mut queued: u64 = 0;
    let lead_frames = u64::from(config.lead_ms / 20);
    // The worker's 10 ms tick, with a little scheduling jitter (deterministic).
    let mut now: u64 = 1_000;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    while now < 3_600_000_000 + 1_000_000 {
        while queued < total_frames * 160 && p.play_fits(chunk.len(), 8_000) {
            assert!(p.play(&chunk, 8_000).unwrap());
            queued += chunk.len() as u64;
        }
        sink.tick(&mut p, now);
        // Sent never runs ahead of real time by more than the lead, nor falls behind it.
        let elapsed_frames = (now - 1_000) / 20_000;
        let expect = (elapsed_frames + lead_frames).min(total_frames);
        assert!(
            sink.frames <= expect + 1 && sink.frames + 1 >= expect,
            "at {now} µs: {} frames, expected {expect}",
            sink.frames
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        now += 10_000 + rng % 2_000 - 1_000;
    }
    assert_eq!(sink.frames, total_frames);
    let c = p.counters();
    assert_eq!(c.frames_out, total_frames);
    assert_eq!(c.underruns, 0);
    assert_eq!(c.frames_padded, 0);
}

#[test]
fn slow_tts_is_counted_as_underruns_and_marks_follow_their_audio() {
    let config = SessionConfig { sync_mark_interval_ms: 0, ..Default::default() };
    let (mut p, mut sink) = pipeline(&config);
    // TTS delivers 10 ms of audio every 20 ms: half real time.
    let mut now = 0;
    for i in 0..100 {
        p.play(&[500i16; 80], 8_000).unwrap();
        if i == 49 {
            p.mark(7, b"half");
        }
        sink.tick(&mut p, now);
        now += 20_000;
    }
    let c = p.counters();
    assert!(c.underruns > 0, "{c:?}");
    assert!(c.frames_padded > 0);
    // 8000 samples of audio = 50 full frames' worth, spread over padded frames.
    assert!(c.frames_out >= 50);
    assert_eq!(sink.marks, vec!["half".to_owned()]);
}

/// An underrun is the carrier running dry inside an utterance, whatever the frames hold: whole
/// frames that come late count, and a reply's first frame does not, however short it is.
#[test]
fn underruns_count_gaps_inside_an_utterance_and_not_a_new_replys_start() {
    let config = SessionConfig { sync_mark_interval_ms: 0, ..Default::default() };
    let (mut p, mut sink) = pipeline(&config);
    // A whole frame every 60 ms: 40 ms of silence at the carrier after each, ten times.
    let mut now = 0;
    for _ in 0..10 {
        p.play(&[500i16; 160], 8_000).unwrap();
        for _ in 0..6 {
            sink.tick(&mut p, now);
            now += 10_000;
        }
    }
    assert_eq!(p.counters().underruns, 9, "every frame after the first came to a dry carrier");
    // A reply played out whole, then after a pause longer than the utterance gap a new reply
    // whose first piece is shorter than a frame.
    let (mut p, mut sink) = pipeline(&config);
    p.play(&[500i16; 8000], 8_000).unwrap();
    let mut now = 0;
    sink.tick_until(&mut p, &mut now, 2_000_000);
    now += 3_000_000;
    p.play(&[500i16; 80], 8_000).unwrap();
    sink.tick(&mut p, now);
    let c = p.counters();
    assert_eq!(c.frames_out, 51, "{c:?}");
    assert_eq!(c.underruns, 0, "{c:?}");
}

/// Once an utterance is over, a mark placed before the next reply's audio, and an interrupt of
/// an agent that is not speaking, are at the start of nothing: 0 ms, not the last reply's length.
#[test]
fn positions_after_an_utterance_is_over_are_not_the_last_ones_length() {
    let config = SessionConfig { sync_mark_interval_ms: 0, ..Default::default() };
    let (mut p, mut sink) = pipeline(&config);
    p.play(&[500i16; 8000], 8_000).unwrap(); // a 1 s reply
    let mut now = 0;
    sink.tick_until(&mut p, &mut now, 2_000_000);
    now = 5_000_000;
    p.mark(1, b"start2");
    sink.tick(&mut p, now);
    assert_eq!(sink.marks, ["start2"]);
    p.handle_message(mark_echo(50, "start2").as_bytes(), MessageKind::Text, now + 100_000, 0, &mut |_| {});
    p.interrupt(now + 200_000);
    sink.drain(&mut p, now + 200_000);
    let played = sink.played_positions();
    assert_eq!(played, [("mark", 0), ("interrupt", 0)]);
    // The carrier held nothing: no clear went out for that interrupt.
    assert_eq!(p.counters().clears_sent, 0);

    // Nor for one before the stream's start.
    let mut p = SessionPipeline::new(&config, Box::new(TwilioDialect::new())).unwrap();
    p.interrupt(0);
    p.handle_message(start().as_bytes(), MessageKind::Text, 1_000, 0, &mut |_| {});
    let mut sink = Sink::default();
    sink.drain(&mut p, 1_000);
    p.play(&[500i16; 800], 8_000).unwrap();
    sink.tick(&mut p, 2_000);
    assert_eq!((p.counters().clears_sent, sink.frames), (0, 5));
}

/// An interrupt after the reply has played out, but within the utterance gap, sends no clear and
/// still ends the utterance: the next reply's mark counts from that reply.
#[test]
fn an_interrupt_with_nothing_at_the_carrier_still_starts_the_next_reply_afresh() {
    let config = SessionConfig { sync_mark_interval_ms: 0, ..Default::default() };
    let (mut p, mut sink) = pipeline(&config);
    p.play(&[500i16; 8000], 8_000).unwrap(); // a 1 s reply
    let mut now = 0;
    sink.tick_until(&mut p, &mut now, 1_300_000);
    p.interrupt(now); // 300 ms after it played out
    p.play(&[500i16; 1600], 8_000).unwrap(); // 200 ms
    p.mark(1, b"second");
    sink.tick_until(&mut p, &mut now, 1_700_000);
    p.handle_message(mark_echo(70, "second").as_bytes(), MessageKind::Text, now, 0, &mut |_| {});
    sink.drain(&mut p, now);
    // The interrupt finds the whole first reply heard; the mark counts from the second.
    assert_eq!(sink.played_positions(), [("interrupt", 1000), ("mark", 200)]);
    assert_eq!(p.counters().clears_sent, 0);
}

/// Marks placed inside a frame's worth of audio cut frames short, and the rest of such a frame
/// goes out as silence: the played positions count the host's audio, not that silence.
#[test]
fn played_positions_leave_out_the_silence_padded_at_marks() {
    let config = SessionConfig { sync_mark_interval_ms: 0, ..Default::default() };
    let (mut p, mut sink) = pipeline(&config);
    // 125 ms, a mark, 125 ms more, a mark: each ends inside a 20 ms frame.
    p.play(&[500i16; 1000], 8_000).unwrap();
    p.mark(1, b"a");
    p.play(&[500i16; 1000], 8_000).unwrap();
    p.mark(2, b"b");
    let mut now = 0;
    sink.tick_until(&mut p, &mut now, 600_000);
    assert_eq!(sink.marks, ["a", "b"]);
    assert!(p.counters().frames_padded >= 2, "{:?}", p.counters());
    p.handle_message(mark_echo(20, "a").as_bytes(), MessageKind::Text, now, 0, &mut |_| {});
    p.handle_message(mark_echo(21, "b").as_bytes(), MessageKind::Text, now, 0, &mut |_| {});
    // Heard through, within the utterance gap: the interrupt's position is the whole reply.
    p.interrupt(now);
    sink.drain(&mut p, now);
    let played = sink.played_positions();
    assert_eq!(played, [("mark", 125), ("mark", 250), ("interrupt", 250)]);

    // Cut off 200 ms into the caller's timeline, with the second piece's padding still ahead:
    // the first piece's 140 ms (125 of audio, 15 of padding), then 60 ms of the second's audio.
    let (mut p, mut sink) = pipeline(&config);
    for (id, name) in [(1, b"a"), (2, b"b")] {
        p.play(&[500i16; 1000], 8_000).unwrap();
        p.mark(id, name);
    }
    p.play(&[500i16; 1000], 8_000).unwrap();
    let mut now = 0;
    sink.tick_until(&mut p, &mut now, 200_000);
    p.interrupt(now);
    sink.drain(&mut p, now);
    assert_eq!(sink.played_positions(), [("interrupt", 185)]);
}
