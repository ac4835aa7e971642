//! Per-session counters: everything received, dropped, filled, late or stalled is counted here.
//!
//! The pipeline counts in plain [`SessionStats`] fields; the worker publishes them into relaxed
//! atomics before each event it queues and after each step (no locks, no allocation), and the
//! host reads a snapshot whenever it likes: one taken after seeing an event counts everything
//! before it. Counters only grow, so a snapshot is consistent per field.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[doc = $doc:expr])* $name:ident,)*) => {
        /// The live counters of one session, shared between its worker and its host handle.
        #[derive(Debug, Default)]
        pub struct SessionCounters {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        /// A snapshot of a session's counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct SessionStats {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl SessionCounters {
            /// Reads every counter.
            pub fn snapshot(&self) -> SessionStats {
                SessionStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }

            /// Stores every counter the worker side owns (all but [`HOST_WRITTEN`]) from `stats`.
            pub(crate) fn publish(&self, stats: &SessionStats) {
                $(if const { !is_host_written(stringify!($name)) } {
                    self.$name.store(stats.$name, Ordering::Relaxed);
                })*
            }
        }

        impl SessionStats {
            /// Number of counters.
            pub const COUNT: usize = counters!(@count $($name)*);
            /// Counter names, NUL-terminated (for the C ABI), in declaration order.
            pub const NAMES_NUL: [&'static str; counters!(@count $($name)*)] =
                [$(concat!(stringify!($name), "\0"),)*];

            /// `(name, value)` for every counter, in declaration order (for bindings and logs).
            pub fn fields(&self) -> [(&'static str, u64); counters!(@count $($name)*)] {
                [$((stringify!($name), self.$name),)*]
            }

            /// Every counter's value, in declaration order.
            pub fn values(&self) -> [u64; counters!(@count $($name)*)] {
                [$(self.$name,)*]
            }

            fn values_mut(&mut self) -> [&mut u64; counters!(@count $($name)*)] {
                [$(&mut self.$name,)*]
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + counters!(@count $($tail)*) };
}

/// The counters host threads write (the carrier side's `push` and the agent side's `play` and
/// `play_encoded`); the worker side owns the others and publishes them with
/// [`SessionCounters::publish`].
const HOST_WRITTEN: [&str; 3] = ["messages_refused_full", "play_refused_full", "encoded_audio_errors"];

const fn is_host_written(name: &str) -> bool {
    let mut i = 0;
    while i < HOST_WRITTEN.len() {
        if str_eq(HOST_WRITTEN[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

counters! {
    /// Messages the host pushed that the engine processed.
    messages_in,
    /// Messages refused at `push` because the inbound ring was full (the host got `Full`).
    messages_refused_full,
    /// Media messages accepted (inbound track).
    media_frames_in,
    /// Media messages on the outbound track (ignored: the agent's own audio).
    media_outbound_track_ignored,
    /// Messages dropped as protocol errors (each also raised a `protocol_error` event).
    protocol_errors,
    /// Media frames dropped as duplicates (sequence number already seen).
    frames_duplicate,
    /// Media frames dropped because their audio had already been played out or filled.
    frames_late,
    /// Media frames that arrived out of order and were put back in place.
    frames_reordered,
    /// Media frames whose start overlapped audio already delivered (the overlap was trimmed).
    frames_overlap_trimmed,
    /// Samples (at the carrier's rate) of silence inserted for timestamp gaps.
    gap_fill_samples,
    /// Timestamp discontinuities too large to fill (the stream was re-anchored).
    timestamp_jumps,
    /// Interarrival jitter estimate (RFC 3550), in microseconds.
    jitter_us,
    /// Caller audio delivered, in samples at the carrier's rate (received + gap-filled).
    inbound_samples,
    /// Agent-rate samples written to the host's PCM ring.
    agent_samples_out,
    /// Agent-rate samples dropped because the host did not read audio fast enough; among them
    /// the silence filling a gap in the caller's audio (audio the carrier lost) that the host's
    /// ring had no room for, left out so that the audio after the gap is not what is dropped.
    agent_samples_dropped,
    /// Events dropped because the host did not poll events fast enough (oldest dropped first).
    /// Counted as the drop is decided; a host that polls at that very moment can leave it one
    /// higher than the drops made (a counter never goes back).
    events_dropped,
    /// Agent samples the host played (before resampling).
    play_samples_in,
    /// `play` calls refused or shortened because the play ring was full.
    play_refused_full,
    /// Media frames sent to the carrier (of the dialect's frame length).
    frames_out,
    /// Frames padded with silence because agent audio ran out mid-frame (underruns, mark borders).
    frames_padded,
    /// Times the carrier's buffer ran dry inside an utterance (the pacer had nothing to send
    /// until after the audio before had played out): each a gap the caller heard. A new
    /// utterance's first frame is none.
    underruns,
    /// Times the pacer held a frame because the host was not taking outbound messages.
    outbound_stalls,
    /// Agent audio dropped by barge-in or interrupt before it was sent (carrier-rate samples,
    /// agent-rate samples for audio dropped before resampling).
    flushed_samples,
    /// Host marks sent to the carrier.
    marks_sent,
    /// Host marks reported played.
    marks_played,
    /// Host marks reported cleared (flushed before the caller heard them).
    marks_cleared,
    /// Of those, marks the carrier was expected to echo after a clear and did not (reported
    /// cleared by the engine once a later mark's echo came, or a second after the clear). Non-zero
    /// on a carrier documented to echo cleared marks means it does not.
    cleared_marks_unechoed,
    /// Hidden synchronisation marks sent.
    sync_marks_sent,
    /// `clear` messages sent.
    clears_sent,
    /// Barge-ins.
    barge_ins,
    /// Host interrupts.
    interrupts,
    /// DTMF digits.
    dtmf_digits,
    /// Speech segments detected.
    speech_segments,
    /// Samples (at the carrier's rate) of the media frames dropped as late (`frames_late`):
    /// audio that arrived, but after its place had been filled or delivered.
    late_samples,
    /// Time caller audio was held in the reorder stage waiting for a gap before it, µs, summed
    /// over the frames held (in-order frames are not held).
    reorder_wait_us,
    /// Engine-added latency summed over the carrier messages taken, µs: from the host's push to
    /// the engine taking the message (divide by `messages_in` for the mean).
    message_wait_us,
    /// Handshake replies sent to the carrier (dialects that answer the stream's opening).
    replies_sent,
    /// Mark messages sent to the carrier: host marks on carriers that echo them, and hidden
    /// synchronisation marks.
    mark_messages_sent,
    /// Encoded agent audio (`play_encoded`) dropped as corrupt, truncated or unsupported: a bad
    /// Ogg page (capture pattern, CRC, order), a stream that is not Opus, a packet libopus
    /// rejected. Each also returned an error to the host.
    encoded_audio_errors,
    /// Times the agent was turned down for caller speech that might be an interruption
    /// (`BargeInConfig::duck_db`).
    ducks,
    /// Of those, times it was turned back up: the speech was too short to interrupt.
    duck_restores,
    /// Audio a recording of the call lost, ms (caller and agent audio summed): the recorder did
    /// not keep up and its hand-off ring was full (the recording has silence there), or the file
    /// could not be written (a full disk, an IO error: the recording ends at its last flush, and
    /// every later moment counts both channels).
    recording_dropped_ms,
    /// Streams whose caller audio could not be echo-reduced (`SessionConfig::echo_reduction`):
    /// the canceller works at 8 kHz, and the agent's audio went out at a rate that is not a
    /// multiple of it (no carrier is sent such a stream today). Its audio was delivered as
    /// received.
    echo_reduction_unavailable,
    /// Speech starts an echo-aware session held back (up to 160 ms) because the echo match had
    /// just found what may be the agent's echo: each was reported late, or dropped.
    speech_starts_held,
    /// Of those, the ones dropped unreported: the match confirmed, while the start was held,
    /// that the speech was the agent's echo. Not in `speech_segments`.
    speech_starts_dropped_as_echo,
}

impl SessionCounters {
    /// Adds one to a counter that host threads write (see [`HOST_WRITTEN`]).
    #[inline]
    pub(crate) fn bump_shared(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl SessionStats {
    /// The sum of two sets of counts (the pipeline's and the worker's own).
    pub(crate) fn plus(&self, other: &Self) -> Self {
        let mut sum = *self;
        for (s, o) in sum.values_mut().into_iter().zip(other.values()) {
            *s = s.wrapping_add(o);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_leaves_the_host_written_counters_alone() {
        let counters = SessionCounters::default();
        counters.messages_refused_full.store(7, Ordering::Relaxed);
        let stats = SessionStats {
            frames_out: 3,
            messages_refused_full: 1,
            play_refused_full: 2,
            ..Default::default()
        };
        counters.publish(&stats);
        let seen = counters.snapshot();
        assert_eq!((seen.frames_out, seen.messages_refused_full, seen.play_refused_full), (3, 7, 0));
        assert!(
            HOST_WRITTEN
                .iter()
                .all(|name| SessionStats::NAMES_NUL.iter().any(|n| n.trim_end_matches('\0') == *name))
        );
    }
}
