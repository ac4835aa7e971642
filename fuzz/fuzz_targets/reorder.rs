//! The inbound reorder / gap-fill buffer with arbitrary frames and chunkings.
//!
//! Mode 1 (arbitrary frames: any sequence numbers, timestamps, lengths, arrival times, polls):
//! delivered audio is one contiguous timeline from 0 (each delivery starts where the last ended),
//! its length is `position()`, silence delivered equals `gap_fill_samples`, and after `flush`
//! nothing is held. Mode 2 (one stream cut into arbitrary chunk sizes, each stamped with its exact
//! timestamp, arriving in order at arbitrary times): the output is the input, sample for sample,
//! with nothing filled, dropped or trimmed, whatever the chunking.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use trunkline::pipeline::reorder::{Delivery, InboundReorder};
use trunkline::stats::SessionStats;

#[derive(Arbitrary, Debug)]
enum Step {
    Frame { seq: Option<u16>, timestamp_ms: u32, len: u16, wait_us: u32 },
    Poll { wait_us: u32 },
}

#[derive(Arbitrary, Debug)]
struct Arbitrary1 {
    window_ms: u8,
    max_gap_ms: u16,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Chunked {
    window_ms: u8,
    /// Chunk lengths in ms (1..=256).
    chunks: Vec<(u8, u16)>,
    with_sequence: bool,
}

#[derive(Default)]
struct Timeline {
    pcm: Vec<i16>,
    silence: u64,
    splices: u64,
}

impl Timeline {
    fn take(&mut self, d: Delivery<'_>) {
        match d {
            Delivery::Audio { start, pcm } => {
                assert_eq!(start, self.pcm.len() as u64, "a delivery that does not continue the timeline");
                assert!(!pcm.is_empty(), "an empty delivery");
                self.pcm.extend_from_slice(pcm);
            }
            Delivery::Silence { start, len } => {
                assert_eq!(start, self.pcm.len() as u64, "silence that does not continue the timeline");
                assert!(len > 0 && len < 1 << 24, "silence of {len} samples");
                self.silence += len;
                self.pcm.resize(self.pcm.len() + len as usize, 0);
            }
            Delivery::Splice { start } => {
                assert_eq!(start, self.pcm.len() as u64, "a splice off the timeline");
                assert!(start > 0, "a splice before any audio");
                self.splices += 1;
            }
        }
    }
}

fn arbitrary_frames(input: Arbitrary1) {
    let mut counters = SessionStats::default();
    let mut r = InboundReorder::new(u32::from(input.window_ms), u32::from(input.max_gap_ms));
    let mut out = Timeline::default();
    let mut now = 0u64;
    for (i, step) in input.steps.iter().take(300).enumerate() {
        match *step {
            Step::Frame { seq, timestamp_ms, len, wait_us } => {
                now += u64::from(wait_us % 200_000);
                let pcm = vec![(i % 30_000) as i16 + 1; usize::from(len % 2000)];
                let (jumps, splices, had_audio) = (counters.timestamp_jumps, out.splices, !out.pcm.is_empty());
                r.push(seq.map(u64::from), u64::from(timestamp_ms), &pcm, now, &mut counters, &mut |d| {
                    out.take(d)
                });
                // A jump after audio is a splice; one before any is not (unless frames held
                // until it were delivered first).
                let (jumped, spliced) = (counters.timestamp_jumps - jumps, out.splices - splices);
                assert!(spliced <= jumped, "a splice with no jump");
                assert!(!had_audio || spliced == jumped, "a jump without its splice");
            }
            Step::Poll { wait_us } => {
                now += u64::from(wait_us % 200_000);
                r.poll(now, &mut counters, &mut |d| out.take(d));
            }
        }
        assert_eq!(r.position(), out.pcm.len() as u64);
        assert_eq!(counters.gap_fill_samples, out.silence);
        if let Some(deadline) = r.deadline_us() {
            assert!(deadline <= now + u64::from(input.window_ms) * 1000, "a deadline beyond the window");
        }
    }
    r.flush(&mut counters, &mut |d| out.take(d));
    assert_eq!(r.deadline_us(), None, "nothing held after flush");
    assert_eq!(r.position(), out.pcm.len() as u64);
    // Nothing is delivered after a flush with no new frames.
    r.poll(now + 10_000_000, &mut counters, &mut |d| out.take(d));
    assert_eq!(r.position(), out.pcm.len() as u64);
}

fn chunked(input: Chunked) {
    let mut counters = SessionStats::default();
    let mut r = InboundReorder::new(u32::from(input.window_ms), 2000);
    let mut out = Timeline::default();
    let mut sent = Vec::new();
    let mut ts_ms = 0u64;
    let mut now = 0u64;
    for (i, &(ms, wait)) in input.chunks.iter().take(200).enumerate() {
        let len = usize::from(ms).max(1) * 8;
        let pcm: Vec<i16> = (0..len).map(|k| (sent.len() + k) as i16 ^ 0x5a5a).collect();
        now += u64::from(wait);
        let seq = input.with_sequence.then_some(i as u64 + 1);
        r.push(seq, ts_ms, &pcm, now, &mut counters, &mut |d| out.take(d));
        r.poll(now, &mut counters, &mut |d| out.take(d));
        sent.extend_from_slice(&pcm);
        ts_ms += len as u64 / 8;
        assert_eq!(out.pcm, sent, "an in-order stream passes straight through");
    }
    let c = counters;
    assert_eq!(c.gap_fill_samples, 0);
    assert_eq!(c.frames_late + c.frames_duplicate, 0);
    assert_eq!(c.frames_overlap_trimmed + c.timestamp_jumps, 0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let u = Unstructured::new(rest);
    if mode & 1 == 0 {
        if let Ok(input) = Arbitrary1::arbitrary_take_rest(u) {
            arbitrary_frames(input);
        }
    } else if let Ok(input) = Chunked::arbitrary_take_rest(u) {
        chunked(input);
    }
});
