//! Per-session counters: everything received, dropped, filled, late or stalled is counted here.
//!
//! The worker bumps relaxed atomics (no locks, no allocation); the host reads a [`SessionStats`]
//! snapshot whenever it likes. Counters only grow, so a snapshot is consistent per field.

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
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + counters!(@count $($tail)*) };
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
    /// Samples (8 kHz) of silence inserted for timestamp gaps.
    gap_fill_samples,
    /// Timestamp discontinuities too large to fill (the stream was re-anchored).
    timestamp_jumps,
    /// Interarrival jitter estimate (RFC 3550), in microseconds.
    jitter_us,
    /// Caller audio delivered, in 8 kHz samples (received + gap-filled).
    inbound_samples,
    /// Agent-rate samples written to the host's PCM ring.
    agent_samples_out,
    /// Agent-rate samples dropped because the host did not read audio fast enough.
    agent_samples_dropped,
    /// Events dropped because the host did not poll events fast enough (oldest dropped first).
    events_dropped,
    /// Agent samples the host played (before resampling).
    play_samples_in,
    /// `play` calls refused or shortened because the play ring was full.
    play_refused_full,
    /// 20 ms media frames sent to the carrier.
    frames_out,
    /// Frames padded with silence because agent audio ran out mid-frame (underruns, mark borders).
    frames_padded,
    /// Times the carrier's buffer ran dry while the agent was speaking (the pacer had nothing).
    underruns,
    /// Times the pacer held a frame because the host was not taking outbound messages.
    outbound_stalls,
    /// Agent audio (8 kHz samples) dropped by barge-in or interrupt before it was sent.
    flushed_samples,
    /// Host marks sent to the carrier.
    marks_sent,
    /// Host marks reported played.
    marks_played,
    /// Host marks reported cleared (flushed before the caller heard them).
    marks_cleared,
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
}

impl SessionCounters {
    /// Adds `n` to a counter.
    ///
    /// Every counter has one writer at a time: the worker side of the session (its worker
    /// thread, or the host thread in inline mode), except `messages_refused_full` (the carrier
    /// side's `push`) and `play_refused_full` (`play`), which the host handles count with
    /// [`Self::bump_shared`]. With one writer a relaxed load and store is exact, and costs far less
    /// than a locked read-modify-write (several per frame).
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    /// Adds one to a counter (single writer, see [`Self::add`]).
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }
    /// Adds one to a counter that host threads write.
    #[inline]
    pub(crate) fn bump_shared(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    /// Sets a gauge.
    #[inline]
    pub(crate) fn set(counter: &AtomicU64, v: u64) {
        counter.store(v, Ordering::Relaxed);
    }
}
