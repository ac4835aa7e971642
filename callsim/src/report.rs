//! The run's summary: percentiles over calls and events, as a table or JSON, and a call's
//! timeline as text.

use super::metrics::{Histogram, Percentiles};
use super::result::{CallMetrics, CallResult};
use serde::Serialize;
use std::fmt::Write as _;

/// Percentiles of every measurement, over all calls of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Caller end of speech → first bot audio frame, ms, over answered utterances.
    pub response_latency_ms: Percentiles,
    /// Caller onset over bot audio → `clear`, ms, over answered barge-ins.
    pub barge_in_reaction_ms: Percentiles,
    /// Caller onset over bot audio → the bot's level 10 dB down as played, or nothing playing
    /// (or `clear`), ms, over answered barge-ins.
    pub voice_drop_ms: Percentiles,
    /// Time the bot played 10 dB down or not at all in the 2 s after a caller onset no `clear`
    /// answered, ms, over those onsets.
    pub barge_in_dip_ms: Percentiles,
    /// Underruns (buffer ran dry inside a reply) per call.
    pub underruns_per_call: Percentiles,
    /// Silence heard inside replies per call, ms.
    pub underrun_ms_per_call: Percentiles,
    /// Bot frame arrival later than the previous frame's length, ms, over frames (its percentiles
    /// and max to the 0.1 ms the table prints).
    pub frame_lateness_ms: Percentiles,
    /// RFC 3550 interarrival jitter of the bot's frames, ms, over calls.
    pub jitter_ms: Percentiles,
    /// WebSocket handshake, ms, over calls that connected.
    pub connect_ms: Percentiles,
}

/// Counts over all calls.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    /// Caller utterances that ended.
    pub turns: u64,
    /// Utterances no reply answered.
    pub turns_unanswered: u64,
    /// Caller onsets over bot audio.
    pub barge_ins: u64,
    /// Barge-ins no `clear` answered.
    pub barge_ins_without_clear: u64,
    /// `clear`s received.
    pub clears: u64,
    /// `clear`s with no barge-in to answer.
    pub clears_unprompted: u64,
    /// Bot replies.
    pub replies: u64,
    /// Media frames sent.
    pub frames_sent: u64,
    /// Bot media payloads received.
    pub bot_frames: u64,
    /// Marks received.
    pub marks: u64,
    /// Marks echoed after playing.
    pub marks_played: u64,
    /// Marks a `clear` flushed (echoed at once or dropped, as the carrier does).
    pub marks_cleared: u64,
    /// Of those, the marks the carrier dropped unanswered (Plivo, Vonage).
    pub marks_dropped: u64,
    /// Underruns.
    pub underruns: u64,
    /// Messages from the bot that the carrier would reject.
    pub bad_messages: u64,
    /// Framing rules of the carrier the bot broke.
    pub framing_violations: u64,
    /// Caller frames dropped (gaps).
    pub frames_dropped: u64,
    /// Caller frames reordered.
    pub frames_reordered: u64,
    /// Caller frames held in bursts.
    pub frames_held_in_bursts: u64,
    /// Caller frames delayed by jitter.
    pub frames_jittered: u64,
    /// Network stalls (everything the caller sent held, then released at once).
    pub stalls: u64,
    /// Time the caller's line was stalled, ms.
    pub stalled_ms: u64,
    /// Most caller frames one stall released at once, over all calls.
    pub largest_stall_burst: u64,
}

/// One call in the report.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    /// Index in the run.
    pub index: usize,
    /// The carrier it played.
    pub dialect: crate::Dialect,
    /// `callSid`.
    pub call_sid: String,
    /// `streamSid`.
    pub stream_sid: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Its measurements.
    pub metrics: CallMetrics,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Calls run.
    pub calls: usize,
    /// Calls that completed their script.
    pub ok: usize,
    /// Calls that failed (connection refused, closed early, ...).
    pub failed: usize,
    /// Percentiles.
    pub metrics: Metrics,
    /// Counts.
    pub totals: Totals,
    /// Every call.
    pub per_call: Vec<CallSummary>,
}

impl Report {
    /// Summarises `results`.
    pub fn new(results: &[CallResult]) -> Self {
        let all = || results.iter().map(|r| &r.metrics);
        let metrics = Metrics {
            response_latency_ms: Percentiles::of(all().flat_map(|m| m.response_ms.iter().copied())),
            barge_in_reaction_ms: Percentiles::of(all().flat_map(|m| m.barge_in_reaction_ms.iter().copied())),
            voice_drop_ms: Percentiles::of(all().flat_map(|m| m.voice_drop_ms.iter().copied())),
            barge_in_dip_ms: Percentiles::of(all().flat_map(|m| m.barge_in_dip_ms.iter().copied())),
            underruns_per_call: Percentiles::of(
                results.iter().filter(|r| r.ok()).map(|r| r.metrics.underruns as f64),
            ),
            underrun_ms_per_call: Percentiles::of(
                results.iter().filter(|r| r.ok()).map(|r| r.metrics.underrun_ms),
            ),
            frame_lateness_ms: all()
                .fold(Histogram::default(), |mut h, m| {
                    h.merge(&m.frame_lateness_ms);
                    h
                })
                .percentiles(),
            jitter_ms: Percentiles::of(all().filter(|m| m.bot_frames > 1).map(|m| m.jitter_ms)),
            connect_ms: Percentiles::of(all().filter_map(|m| m.connect_ms)),
        };
        let mut t = Totals::default();
        for m in all() {
            t.turns += m.turns;
            t.turns_unanswered += m.turns_unanswered;
            t.barge_ins += m.barge_ins;
            t.barge_ins_without_clear += m.barge_ins_without_clear;
            t.clears += m.clears;
            t.clears_unprompted += m.clears_unprompted;
            t.replies += m.replies;
            t.frames_sent += m.frames_sent;
            t.bot_frames += m.bot_frames;
            t.marks += m.marks;
            t.marks_played += m.marks_played;
            t.marks_cleared += m.marks_cleared;
            t.marks_dropped += m.marks_dropped;
            t.underruns += m.underruns;
            t.bad_messages += m.bad_messages;
            t.framing_violations += m.framing_violations;
            t.frames_dropped += m.impairments.dropped;
            t.frames_reordered += m.impairments.reordered;
            t.frames_held_in_bursts += m.impairments.held_in_bursts;
            t.frames_jittered += m.impairments.jittered;
            t.stalls += m.impairments.stalls;
            t.stalled_ms += m.impairments.stalled_ms;
            t.largest_stall_burst = t.largest_stall_burst.max(m.impairments.largest_stall_burst);
        }
        let ok = results.iter().filter(|r| r.ok()).count();
        let per_call = results
            .iter()
            .map(|r| CallSummary {
                index: r.index,
                dialect: r.dialect,
                call_sid: r.call_sid.clone(),
                stream_sid: r.stream_sid.clone(),
                error: r.error.as_ref().map(ToString::to_string),
                metrics: r.metrics.clone(),
            })
            .collect();
        Self { calls: results.len(), ok, failed: results.len() - ok, metrics, totals: t, per_call }
    }

    /// The report as JSON (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// The report as a text table.
    pub fn table(&self) -> String {
        let (m, t) = (&self.metrics, &self.totals);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "callsim: {} calls ({} ok, {} failed); {} caller turns ({} unanswered), {} barge-ins ({} without clear)",
            self.calls,
            self.ok,
            self.failed,
            t.turns,
            t.turns_unanswered,
            t.barge_ins,
            t.barge_ins_without_clear
        );
        let _ = writeln!(out);
        let _ =
            writeln!(out, "{:<34} {:>6} {:>8} {:>8} {:>8} {:>8}", "metric", "n", "p50", "p90", "p99", "max");
        let rows = [
            ("response latency (ms)", &m.response_latency_ms),
            ("barge-in reaction (ms)", &m.barge_in_reaction_ms),
            ("barge-in voice drop, 10 dB (ms)", &m.voice_drop_ms),
            ("dip without barge-in (ms)", &m.barge_in_dip_ms),
            ("underruns per call", &m.underruns_per_call),
            ("underrun silence per call (ms)", &m.underrun_ms_per_call),
            ("bot frame lateness (ms)", &m.frame_lateness_ms),
            ("bot frame jitter, RFC 3550 (ms)", &m.jitter_ms),
            ("connect (ms)", &m.connect_ms),
        ];
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        for (name, p) in rows {
            let _ = writeln!(
                out,
                "{name:<34} {:>6} {:>8} {:>8} {:>8} {:>8}",
                p.n,
                cell(p.p50),
                cell(p.p90),
                cell(p.p99),
                cell(p.max)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "frames: {} sent, {} bot frames in {} replies; marks: {} received, {} echoed played, {} flushed by a clear ({} echoed, {} dropped unanswered); clears: {} ({} unprompted: false barge-ins); bad messages from the bot: {}; framing violations: {}",
            t.frames_sent,
            t.bot_frames,
            t.replies,
            t.marks,
            t.marks_played,
            t.marks_cleared,
            t.marks_cleared - t.marks_dropped,
            t.marks_dropped,
            t.clears,
            t.clears_unprompted,
            t.bad_messages,
            t.framing_violations
        );
        if t.frames_dropped + t.frames_reordered + t.frames_held_in_bursts + t.frames_jittered + t.stalls > 0
        {
            let _ = writeln!(
                out,
                "impairments: {} frames dropped, {} reordered, {} held in bursts, {} jittered; {} stalls ({} ms held, largest burst {} frames)",
                t.frames_dropped,
                t.frames_reordered,
                t.frames_held_in_bursts,
                t.frames_jittered,
                t.stalls,
                t.stalled_ms,
                t.largest_stall_burst
            );
        }
        for c in self.per_call.iter().filter(|c| c.error.is_some()) {
            let _ = writeln!(out, "call {} failed: {}", c.index, c.error.as_deref().unwrap_or(""));
        }
        out
    }
}

/// A call's timeline, one event per line (`stream ms  event`), optionally leaving out marks whose
/// names start with `hide_marks_prefix` (e.g. an engine's own bookkeeping marks).
pub fn format_timeline(result: &CallResult, hide_marks_prefix: Option<&str>) -> String {
    use super::result::CallEvent;
    let mut out = String::new();
    for entry in &result.timeline {
        if let (CallEvent::MarkEchoed { name, .. }, Some(prefix)) = (&entry.event, hide_marks_prefix)
            && name.starts_with(prefix)
        {
            continue;
        }
        let _ = writeln!(out, "{entry}");
    }
    if let Some(e) = &result.error {
        let _ = writeln!(out, "call failed: {e}");
    }
    out
}
