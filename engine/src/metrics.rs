//! The engine's counters in the Prometheus / OpenMetrics text format (feature `metrics`).
//!
//! Everything is built at scrape time from an [`Engine::metrics_snapshot`](crate::Engine::metrics_snapshot):
//! nothing is counted for the exposition itself, so the workers' path is the same with or
//! without it. A component with counters of its own (the offload server) passes them as
//! [`Family`] values to be rendered with the engine's.
//!
//! Names (see `docs/offload.md` for the full list): `trunkline_calls_active`,
//! `trunkline_calls_opened_total`, `trunkline_calls_total{outcome}`,
//! `trunkline_media_frames_total{direction}`, `trunkline_messages_out_total{kind}`,
//! `trunkline_protocol_errors_total`, one `trunkline_session_<counter>_total` per
//! [`SessionStats`](crate::SessionStats) counter (generated from `SessionStats::fields`, so new
//! counters appear by themselves; a counter of µs, `<name>_us`, as
//! `trunkline_session_<name>_seconds_total`), `trunkline_session_jitter_max_seconds`,
//! `trunkline_engine_latency_seconds` (a histogram), the histograms over ended calls
//! `trunkline_call_mos`, `trunkline_call_jitter_seconds` and `trunkline_call_loss_ratio` (see
//! [`crate::quality`]), the histogram `trunkline_barge_in_reaction_seconds`,
//! `trunkline_worker_cpu_seconds_total{worker}` and `trunkline_process_cpu_seconds_total`. No
//! label is per call: every label's values are a fixed set (or the engine's workers).

use crate::protocol::PROTOCOL_ERROR_NAMES;
use crate::runtime::{Histogram, MetricsSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// `SessionStats` fields that are not counters (so not summed into a `_total`).
const NOT_COUNTERS: [&str; 1] = ["jitter_us"];

/// Upper bounds of the latency histogram, µs: 25 µs doubling to 1.6 s. Each is where one of
/// the engine's own buckets starts, so the counts below it are exact.
const LATENCY_BOUNDS_US: [u64; 17] = {
    let mut bounds = [0u64; 17];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 25 << i;
        i += 1;
    }
    bounds
};

/// Which text format to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (what every scraper takes).
    Prometheus,
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The format a scraper asks for in its `Accept` header: OpenMetrics when it names it,
    /// else the Prometheus text format.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.to_ascii_lowercase().contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What a [`Family`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (rendered with the `_total` suffix: give the name without it).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A metric of another component, to render with the engine's (see [`render`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Its name, without the `_total` of a counter (e.g. `trunkline_server_connections`).
    pub name: String,
    /// One line saying what it counts.
    pub help: String,
    /// Counter or gauge.
    pub kind: Kind,
    /// The label its samples differ by, if any (keep its values a small fixed set).
    pub label: Option<String>,
    /// (label value, value) per sample; the label value is ignored without a label.
    pub samples: Vec<(String, u64)>,
}

impl Family {
    /// One counter without labels.
    pub fn counter(name: impl Into<String>, help: impl Into<String>, value: u64) -> Self {
        Self::one(name, help, Kind::Counter, value)
    }

    /// One gauge without labels.
    pub fn gauge(name: impl Into<String>, help: impl Into<String>, value: u64) -> Self {
        Self::one(name, help, Kind::Gauge, value)
    }

    fn one(name: impl Into<String>, help: impl Into<String>, kind: Kind, value: u64) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            label: None,
            samples: vec![(String::new(), value)],
        }
    }

    /// Counters told apart by `label`.
    pub fn counters(
        name: impl Into<String>,
        help: impl Into<String>,
        label: impl Into<String>,
        samples: Vec<(String, u64)>,
    ) -> Self {
        Self { name: name.into(), help: help.into(), kind: Kind::Counter, label: Some(label.into()), samples }
    }
}

/// Renders the engine's snapshot, then `extra`, in `format` (served with
/// [`Format::content_type`]).
pub fn render(snapshot: &MetricsSnapshot, extra: &[Family], format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector(snapshot.clone())));
    registry.register_collector(Box::new(Extra(extra.to_vec())));
    let mut out = String::with_capacity(16 * 1024);
    let written = match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing to a `String` cannot fail, and every name and value here is well formed.
    debug_assert!(written.is_ok(), "metrics rendering failed");
    out
}

#[derive(Debug)]
struct EngineCollector(MetricsSnapshot);

#[derive(Debug)]
struct Extra(Vec<Family>);

type Result = std::result::Result<(), std::fmt::Error>;

fn counter<V: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> Result {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}

fn labelled_counters<V: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: &[(&str, V)],
) -> Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value_of_label, value) in samples {
        metric
            .encode_family(&[(label, *value_of_label)])?
            .encode_counter::<NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result {
        let s = &self.0;
        let e = &mut encoder;
        gauge(e, "trunkline_calls_active", "Sessions open now.", s.active as u64)?;
        counter(e, "trunkline_calls_opened", "Sessions opened.", s.opened)?;
        labelled_counters(
            e,
            "trunkline_calls",
            "Sessions ended and freed, by outcome: stopped (the stream ended: stop, hang-up or \
             connection closed), closed (closed by the host while streaming or before the start), \
             failed.",
            "outcome",
            &[("stopped", s.ended.stopped), ("closed", s.ended.closed), ("failed", s.ended.failed)],
        )?;
        labelled_counters(
            e,
            "trunkline_media_frames",
            "Media frames: in, accepted from the carrier; out, sent to the carrier.",
            "direction",
            &[("in", s.sessions.media_frames_in), ("out", s.sessions.frames_out)],
        )?;
        let out = &s.sessions;
        labelled_counters(
            e,
            "trunkline_messages_out",
            "Messages sent to the carrier, by kind: media (agent audio), mark (host marks on \
             carriers that echo them, and synchronisation marks), clear, reply (handshake replies).",
            "kind",
            &[
                ("media", out.frames_out),
                ("mark", out.mark_messages_sent),
                ("clear", out.clears_sent),
                ("reply", out.replies_sent),
            ],
        )?;
        counter(
            e,
            "trunkline_protocol_errors",
            "Carrier messages dropped as protocol errors.",
            s.sessions.protocol_errors,
        )?;
        let by_kind: Vec<(&str, u64)> = PROTOCOL_ERROR_NAMES.iter().copied().zip(s.protocol_errors).collect();
        labelled_counters(
            e,
            "trunkline_protocol_errors_by_kind",
            "Carrier messages dropped as protocol errors, by kind (every kind, zeros included).",
            "kind",
            &by_kind,
        )?;
        for (field, value) in s.sessions.fields() {
            if NOT_COUNTERS.contains(&field) {
                continue;
            }
            let help = format!("Sum over every session of its {field} counter (Session::stats).");
            match field.strip_suffix("_us") {
                Some(stem) => {
                    counter(e, &format!("trunkline_session_{stem}_seconds"), &help, seconds(value))?
                }
                None => counter(e, &format!("trunkline_session_{field}"), &help, value)?,
            }
        }
        gauge(
            e,
            "trunkline_session_jitter_max_seconds",
            "Largest interarrival jitter estimate among the sessions not yet freed.",
            seconds(s.live_jitter_max_us),
        )?;
        encode_latency(e, s)?;
        let q = &s.call_quality;
        let mos_help = format!(
            "Ended calls by E-model (ITU-T G.107) MOS of the caller's line: G.711 without loss \
             concealment, the audio filled with silence as loss, the engine's and reorder stage's \
             delay on top of an assumed {} ms path (calls that carried caller audio).",
            crate::quality::ASSUMED_PATH_DELAY_MS
        );
        histogram(e, "trunkline_call_mos", &mos_help, &q.mos)?;
        histogram(
            e,
            "trunkline_call_jitter_seconds",
            "Ended calls by RFC 3550 interarrival jitter of the caller's media at the call's end.",
            &q.jitter_seconds,
        )?;
        histogram(
            e,
            "trunkline_call_loss_ratio",
            "Ended calls by the share of the caller's audio never received.",
            &q.loss_ratio,
        )?;
        histogram(
            e,
            "trunkline_barge_in_reaction_seconds",
            "Barge-ins by time from the arrival of the caller's audio holding the speech onset to \
             the barge-in decision (agent audio dropped, clear queued).",
            &s.barge_in_reaction,
        )?;
        let cpu: Vec<(String, f64)> = (s.worker_cpu.iter().enumerate())
            .filter_map(|(i, t)| t.map(|t| (i.to_string(), t.as_secs_f64())))
            .collect();
        if !cpu.is_empty() {
            let samples: Vec<(&str, f64)> = cpu.iter().map(|(w, t)| (w.as_str(), *t)).collect();
            labelled_counters(
                e,
                "trunkline_worker_cpu_seconds",
                "CPU time used by each audio worker thread.",
                "worker",
                &samples,
            )?;
        }
        if let Some(cpu) = s.process_cpu {
            counter(
                e,
                "trunkline_process_cpu_seconds",
                "CPU time used by the whole process (user and system).",
                cpu.as_secs_f64(),
            )?;
        }
        Ok(())
    }
}

fn histogram(e: &mut DescriptorEncoder, name: &str, help: &str, h: &Histogram) -> Result {
    let buckets: Vec<(f64, u64)> = h.buckets().collect();
    e.encode_descriptor(name, help, None, MetricType::Histogram)?.encode_histogram::<NoLabelSet>(
        h.sum(),
        h.count(),
        &buckets,
        None,
    )
}

/// The engine's fine latency buckets (at most 6.25 % wide) summed into the exported bounds.
fn encode_latency(e: &mut DescriptorEncoder, s: &MetricsSnapshot) -> Result {
    let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US.iter().map(|&b| (seconds(b), 0)).collect();
    buckets.push((f64::INFINITY, 0));
    let (mut count, mut sum_us) = (0u64, 0f64);
    for (floor, end, n) in s.latency.buckets() {
        if n == 0 {
            continue;
        }
        count += n;
        // The bucket's middle: the sum is an estimate, within half a bucket per message.
        sum_us += n as f64 * (floor + end - 1) as f64 / 2.0;
        let i = LATENCY_BOUNDS_US.iter().position(|&bound| end <= bound).unwrap_or(LATENCY_BOUNDS_US.len());
        buckets[i].1 += n;
    }
    e.encode_descriptor(
        "trunkline_engine_latency_seconds",
        "Engine-added latency per carrier message, from push to its audio in the agent's ring \
         (threaded sessions; bucket counts are of values below each bound, the sum is estimated \
         from the engine's buckets, within 3.2 %).",
        None,
        MetricType::Histogram,
    )?
    .encode_histogram::<NoLabelSet>(sum_us / 1e6, count, &buckets, None)
}

impl Collector for Extra {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result {
        for family in &self.0 {
            let kind = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let sample = |m: &mut MetricEncoder, value: &u64| match family.kind {
                Kind::Counter => m.encode_counter::<NoLabelSet, _, u64>(value, None),
                Kind::Gauge => m.encode_gauge(value),
            };
            let mut metric = encoder.encode_descriptor(&family.name, &family.help, None, kind)?;
            match &family.label {
                Some(label) => {
                    for (label_value, value) in &family.samples {
                        sample(&mut metric.encode_family(&[(label.as_str(), label_value.as_str())])?, value)?;
                    }
                }
                // Without a label there is one sample.
                None => {
                    if let Some((_, value)) = family.samples.first() {
                        sample(&mut metric, value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{LatencyHistogram, ManualClock};
    use crate::{Engine, EngineConfig, SessionConfig, SessionStats};
    use base64::Engine as _;
    use std::time::Duration;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#;
    const STOP: &str = r#"{"event":"stop","sequenceNumber":"99","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#;

    fn media(seq: u64) -> String {
        let payload = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
        format!(
            r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{seq}","timestamp":"{}","payload":"{payload}"}},"streamSid":"MZ1"}}"#,
            seq + 1,
            (seq - 1) * 20
        )
    }

    /// The value of the sample `series` (name and labels as rendered) in `text`.
    fn value(text: &str, series: &str) -> f64 {
        let line = text.lines().find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series));
        let line = line.unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    fn call(engine: &Engine, frames: u64, stop: bool) -> crate::Session {
        let mut session = engine.open_session(&SessionConfig::default()).unwrap();
        session.push_text(START).unwrap();
        for seq in 1..=frames {
            session.push_text(&media(seq)).unwrap();
        }
        if stop {
            session.push_text(STOP).unwrap();
        }
        session
    }

    #[test]
    fn sessions_counters_and_outcomes_survive_the_sessions() {
        let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
        let mut seen = call(&engine, 5, true);
        while seen.poll_event().is_some() {}
        let unseen = call(&engine, 3, true);
        let closed = call(&engine, 4, false);
        let mut open = engine.open_session(&SessionConfig::default()).unwrap();
        open.push_text("not json").unwrap();
        let all = [&seen, &unseen, &closed, &open].map(|s| s.stats());
        let expected = all.iter().fold(SessionStats::default(), |sum, s| sum.plus(s));
        assert_eq!(expected.media_frames_in, 12);
        assert_eq!(expected.protocol_errors, 1);

        let before = engine.metrics_snapshot();
        assert_eq!(before.sessions, expected);
        assert_eq!((before.active, before.opened, before.ended.total()), (4, 4, 0));
        drop((seen, unseen, closed));
        let after = engine.metrics_snapshot();
        assert_eq!(after.sessions, expected, "freed sessions' counts are kept");
        assert_eq!((after.active, after.opened), (1, 4));
        assert_eq!(after.ended, crate::runtime::CallOutcomes { stopped: 2, closed: 1, failed: 0 });

        let text = render(&after, &[Family::counter("x_extra", "Extra.", 7)], Format::Prometheus);
        assert_eq!(value(&text, "trunkline_calls_active"), 1.0);
        assert_eq!(value(&text, "trunkline_calls_opened_total"), 4.0);
        assert_eq!(value(&text, r#"trunkline_calls_total{outcome="stopped"}"#), 2.0);
        assert_eq!(value(&text, r#"trunkline_calls_total{outcome="closed"}"#), 1.0);
        assert_eq!(value(&text, r#"trunkline_calls_total{outcome="failed"}"#), 0.0);
        assert_eq!(value(&text, r#"trunkline_media_frames_total{direction="in"}"#), 12.0);
        assert_eq!(value(&text, "trunkline_protocol_errors_total"), 1.0);
        // By kind: the one error ("not json") under its name, every other kind at 0, and the
        // kinds adding up to the total.
        assert_eq!(value(&text, r#"trunkline_protocol_errors_by_kind_total{kind="malformed_json"}"#), 1.0);
        let by_kind: f64 = PROTOCOL_ERROR_NAMES
            .iter()
            .map(|k| value(&text, &format!("trunkline_protocol_errors_by_kind_total{{kind=\"{k}\"}}")))
            .sum();
        assert_eq!(by_kind, 1.0);
        assert_eq!(
            PROTOCOL_ERROR_NAMES[crate::protocol::ProtocolError::MalformedJson.code() as usize - 1],
            "malformed_json"
        );
        for (field, v) in expected.fields() {
            if NOT_COUNTERS.contains(&field) {
                continue;
            }
            match field.strip_suffix("_us") {
                Some(stem) => {
                    let rendered = value(&text, &format!("trunkline_session_{stem}_seconds_total"));
                    assert_eq!(rendered, v as f64 / 1e6, "{field}");
                }
                None => {
                    assert_eq!(value(&text, &format!("trunkline_session_{field}_total")), v as f64, "{field}")
                }
            }
        }
        assert!(!text.contains("jitter_us"));
        assert_eq!(value(&text, "x_extra_total"), 7.0);
        // Inline sessions' latency is not measured: an empty histogram, all its buckets there.
        assert_eq!(value(&text, r#"trunkline_engine_latency_seconds_bucket{le="+Inf"}"#), 0.0);
        assert_eq!(value(&text, "trunkline_engine_latency_seconds_count"), 0.0);
        assert!(value(&text, "trunkline_process_cpu_seconds_total") > 0.0);
        assert!(!text.contains("trunkline_worker_cpu_seconds"), "an inline engine has no workers");

        let open_metrics = render(&after, &[], Format::OpenMetrics);
        assert!(open_metrics.ends_with("# EOF\n"));
        assert!(open_metrics.contains("# TYPE trunkline_calls counter\n"));
        assert_eq!(value(&open_metrics, r#"trunkline_calls_total{outcome="stopped"}"#), 2.0);
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "waits, bounded, for a worker thread")]
    fn a_threaded_engine_reports_its_workers_and_latency() {
        let engine = Engine::new(EngineConfig { workers: Some(2), ..Default::default() }).unwrap();
        let mut session = call(&engine, 20, false);
        // Wait (bounded) for the worker to process what was pushed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while session.stats().media_frames_in < 20 && std::time::Instant::now() < deadline {
            engine.wait(Some(std::time::Duration::from_millis(10)));
            while session.poll_event().is_some() {}
        }
        let snapshot = engine.metrics_snapshot();
        assert_eq!(snapshot.worker_cpu.len(), 2);
        assert!(snapshot.worker_cpu.iter().all(Option::is_some));
        let text = render(&snapshot, &[], Format::Prometheus);
        let messages = snapshot.latency.count();
        assert_eq!(messages, session.stats().messages_in);
        assert_eq!(value(&text, "trunkline_engine_latency_seconds_count"), messages as f64);
        assert_eq!(value(&text, r#"trunkline_engine_latency_seconds_bucket{le="+Inf"}"#), messages as f64);
        // Cumulative buckets never decrease and end at the count.
        let buckets: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("trunkline_engine_latency_seconds_bucket{le=\""))
            .map(|l| {
                let (le, count) = l.split_once("\"} ").unwrap();
                (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, count.parse().unwrap())
            })
            .collect();
        let bounds: Vec<f64> = LATENCY_BOUNDS_US.iter().map(|&b| seconds(b)).chain([f64::INFINITY]).collect();
        assert_eq!(buckets.iter().map(|b| b.0).collect::<Vec<_>>(), bounds);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        // Below 800 µs: the engine's buckets ending there. (Nothing waits 35 minutes: a message
        // stamped after its pass began counts as having waited nothing.)
        assert!(snapshot.latency.buckets().all(|(floor, _, n)| floor < 1 << 31 || n == 0));
        let below = snapshot.latency.buckets().filter(|&(_, end, _)| end <= 800).map(|(_, _, n)| n);
        assert_eq!(buckets[5], (0.0008, below.sum::<u64>() as f64));
        let mean = value(&text, "trunkline_engine_latency_seconds_sum") / messages as f64;
        assert!((0.0..1.0).contains(&mean), "mean latency {mean} s");
        for w in 0..2 {
            assert!(value(&text, &format!("trunkline_worker_cpu_seconds_total{{worker=\"{w}\"}}")) >= 0.0);
        }
    }

    #[test]
    fn latency_bounds_are_edges_of_the_engines_buckets() {
        for bound in LATENCY_BOUNDS_US {
            let edge = LatencyHistogram::default().buckets().any(|(floor, _, _)| floor == bound);
            assert!(edge, "{bound} µs");
        }
    }

    /// A call's media as the network delivered it: (arrival µs after the call's start, chunk),
    /// in arrival order. Impaired: every tenth frame lost (chunks 5, 15, ...), the others each
    /// delayed by up to 40 ms (seeded), so some overtake the frame before them.
    fn network(frames: u64, impaired: bool) -> Vec<(u64, u64)> {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut delivered = Vec::new();
        for k in 1..=frames {
            if impaired && k % 10 == 5 {
                continue;
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let delay_us = if impaired { (seed >> 33) % 40_000 } else { 0 };
            delivered.push((5_000 + (k - 1) * 20_000 + delay_us, k));
        }
        delivered.sort_unstable();
        delivered
    }

    /// RFC 3550's estimator written out from its definition, for the frames in arrival order:
    /// D = (Rj − Ri) − (Sj − Si), S the media timestamp (chunk k starts at (k − 1) · 20 ms),
    /// J += (|D| − J) / 16.
    fn rfc3550_jitter_us(delivered: &[(u64, u64)]) -> f64 {
        let mut j = 0.0f64;
        for pair in delivered.windows(2) {
            let ((ri, ki), (rj, kj)) = (pair[0], pair[1]);
            let (si, sj) = ((ki - 1) as f64 * 20_000.0, (kj - 1) as f64 * 20_000.0);
            let d = (rj as f64 - ri as f64) - (sj - si);
            j += (d.abs() - j) / 16.0;
        }
        j
    }

    /// Plays `delivered` into a new session on the engine's manual clock, from its time now,
    /// reading the caller audio and events as a host does; then the carrier's stop.
    fn play_network(engine: &Engine, clock: &ManualClock, delivered: &[(u64, u64)]) -> crate::Session {
        let mut session = engine.open_session(&SessionConfig::default()).unwrap();
        session.push_text(START).unwrap();
        let base = clock.now_us();
        let mut pcm = [0i16; 4096];
        for &(arrival, chunk) in delivered {
            clock.advance(Duration::from_micros(base + arrival - clock.now_us()));
            session.push_text(&media(chunk)).unwrap();
            while session.read_audio(&mut pcm) > 0 {}
            while session.poll_event().is_some() {}
        }
        clock.advance(Duration::from_millis(100));
        session.push_text(STOP).unwrap();
        while session.read_audio(&mut pcm) > 0 {}
        while session.poll_event().is_some() {}
        session
    }

    /// A histogram's cumulative buckets as rendered: (le, count).
    fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        (text.lines().filter_map(|l| l.strip_prefix(prefix.as_str())))
            .map(|l| {
                let (le, count) = l.split_once("\"} ").unwrap();
                (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, count.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_call_with_loss_and_jitter_rates_below_a_clean_one() {
        let clock = ManualClock::new();
        let engine =
            Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
                .unwrap();
        let (clean_net, impaired_net) = (network(100, false), network(100, true));
        let clean = play_network(&engine, &clock, &clean_net);
        let impaired = play_network(&engine, &clock, &impaired_net);
        let (cs, is) = (clean.stats(), impaired.stats());
        assert!(is.frames_reordered > 0, "the delays reorder some frames: {is:?}");

        // The jitter is RFC 3550's, over the frames as they arrived.
        let expected_jitter = rfc3550_jitter_us(&impaired_net);
        assert!(expected_jitter > 5_000.0, "{expected_jitter} µs");
        assert_eq!(is.jitter_us, expected_jitter as u64);
        assert_eq!(cs.jitter_us, 0);

        // 10 frames of 100 never came: 10 % of the caller's audio lost.
        let (cq, iq) = (clean.line_quality().unwrap(), impaired.line_quality().unwrap());
        assert_eq!((cq.expected_samples, cq.lost_samples, cq.loss_ratio), (16_000, 0, 0.0));
        assert_eq!((iq.expected_samples, iq.lost_samples, iq.loss_ratio), (16_000, 1_600, 0.1));
        // The clean call: no loss, no delay past the assumed path: R = 93.2, MOS 4.41.
        assert!((cq.mos - 4.409286).abs() < 1e-6, "{cq:?}");
        assert!(iq.mos < 2.0, "{iq:?}");

        drop((clean, impaired));
        let snapshot = engine.metrics_snapshot();
        let text = render(&snapshot, &[], Format::Prometheus);
        assert_eq!(value(&text, "trunkline_call_mos_count"), 2.0);
        assert!((value(&text, "trunkline_call_mos_sum") - (cq.mos + iq.mos)).abs() < 1e-9);
        let mos = buckets(&text, "trunkline_call_mos");
        let le = |b: &[(f64, f64)], bound: f64| b.iter().find(|(le, _)| *le == bound).unwrap().1;
        assert_eq!(
            (le(&mos, 2.0), le(&mos, 4.3), le(&mos, 4.5), le(&mos, f64::INFINITY)),
            (1.0, 1.0, 2.0, 2.0)
        );
        assert_eq!(value(&text, "trunkline_call_loss_ratio_count"), 2.0);
        assert_eq!(value(&text, "trunkline_call_loss_ratio_sum"), 0.1);
        let loss = buckets(&text, "trunkline_call_loss_ratio");
        assert_eq!((le(&loss, 0.0), le(&loss, 0.05), le(&loss, 0.1)), (1.0, 1.0, 2.0));
        let jitter_s = (expected_jitter as u64) as f64 / 1e6;
        assert_eq!(value(&text, "trunkline_call_jitter_seconds_sum"), jitter_s);
        let jitter = buckets(&text, "trunkline_call_jitter_seconds");
        let below = |bound: f64| f64::from(u8::from(0.0 <= bound) + u8::from(jitter_s <= bound));
        assert!(jitter.iter().all(|&(bound, n)| n == below(bound)), "{jitter:?}");
        // Late and reordered frames are the sessions' counters, summed.
        assert_eq!(
            value(&text, "trunkline_session_frames_reordered_total"),
            (cs.frames_reordered + is.frames_reordered) as f64
        );
        assert_eq!(
            value(&text, "trunkline_session_frames_late_total"),
            (cs.frames_late + is.frames_late) as f64
        );
    }

    #[test]
    fn messages_out_by_kind_are_the_messages_the_carrier_got() {
        let clock = ManualClock::new();
        let engine =
            Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
                .unwrap();
        let mut session = call(&engine, 3, false);
        // One second of agent audio with a mark after it, paced out (100 ms ahead) for 0.96 s,
        // then an interrupt (a clear) while the end plays.
        let tone: Vec<i16> = (0..8_000).map(|i| ((i % 40) as i16 - 20) * 500).collect();
        let mut played = 0;
        while played < tone.len() {
            played += session.play(&tone[played..], 8_000).unwrap();
        }
        session.mark("end").unwrap();
        let mut got: std::collections::HashMap<String, u64> = Default::default();
        let mut buf = Vec::new();
        let mut take = |session: &mut crate::Session| {
            while session.next_outbound(&mut buf).is_some() {
                let message: serde_json::Value = serde_json::from_slice(&buf).unwrap();
                *got.entry(message["event"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        };
        for _ in 0..48 {
            clock.advance(Duration::from_millis(20));
            take(&mut session);
        }
        session.interrupt().unwrap();
        take(&mut session);
        let stats = session.stats();
        // Every frame; the host's mark and a synchronisation mark per 500 ms of audio sent.
        assert_eq!((got["media"], got["mark"], got["clear"]), (50, 3, 1), "{got:?}");
        let text = render(&engine.metrics_snapshot(), &[], Format::Prometheus);
        for (kind, n) in
            [("media", got["media"]), ("mark", got["mark"]), ("clear", got["clear"]), ("reply", 0)]
        {
            assert_eq!(
                value(&text, &format!("trunkline_messages_out_total{{kind=\"{kind}\"}}")),
                n as f64,
                "{kind}"
            );
        }
        assert_eq!(stats.frames_out, got["media"]);
        assert_eq!(stats.mark_messages_sent, got["mark"]);
    }

    #[test]
    fn counter_names_come_from_the_session_counters() {
        assert!(crate::SessionStats::default().fields().iter().any(|(f, _)| NOT_COUNTERS.contains(f)));
    }
}
