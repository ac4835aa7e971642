//! The carrier-facing half of a session: messages in from the carrier, messages out to it.
//!
//! A [`super::Session`] owns one and uses it for `push` and `next_outbound`. The offload server
//! detaches it ([`super::Session::detach_carrier`]) to drive the carrier's WebSocket itself while
//! the host keeps the agent-facing half (audio, play, marks, events).

use super::engine::{EngineShared, WorkerRef};
use super::latency;
use super::records::{self, Header};
use super::session::SessionError;
use super::shared::{SessionShared, inbound_tag, outbound_tag};
use crate::protocol::MessageKind;
use crate::stats::{SessionCounters, SessionStats};
use ringbuf::{HeapCons, HeapProd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Carrier-side ring ends of one session.
pub struct CarrierPort {
    pub(crate) engine: Arc<EngineShared>,
    pub(crate) shared: Arc<SessionShared>,
    /// Worker the session is pinned to (`None` inline: the owning `Session` runs the work).
    pub(crate) worker: Option<WorkerRef>,
    inbound: HeapProd<u8>,
    outbound: HeapCons<u8>,
    max_message: usize,
    /// The connection's end was told to the worker (`end_stream`, or the port dropped).
    transport_closed: bool,
}

impl CarrierPort {
    pub(crate) fn new(
        engine: Arc<EngineShared>,
        shared: Arc<SessionShared>,
        worker: Option<WorkerRef>,
        inbound: HeapProd<u8>,
        outbound: HeapCons<u8>,
        max_message: usize,
    ) -> Self {
        Self { engine, shared, worker, inbound, outbound, max_message, transport_closed: false }
    }

    fn check_open(&self) -> Result<(), SessionError> {
        if self.shared.closed.load(Ordering::Acquire) || self.engine.shutdown.load(Ordering::Acquire) {
            Err(SessionError::Closed)
        } else if self.shared.failed.load(Ordering::Acquire) {
            Err(SessionError::Failed)
        } else {
            Ok(())
        }
    }

    fn wake(&self) {
        if let Some(at) = self.worker {
            self.engine.wake(at);
        }
    }

    /// Queues one received message for the worker (see [`super::Session::push`]).
    pub(crate) fn write(&mut self, message: &[u8], kind: MessageKind) -> Result<(), SessionError> {
        self.check_open()?;
        let written = if message.len() > self.max_message {
            let header = Header { tag: inbound_tag::OVERSIZE, a: 0, b: message.len() as u32, c: 0 };
            records::write_contiguous(&mut self.inbound, header, &[], 0)
        } else {
            let tag = match kind {
                MessageKind::Text => inbound_tag::TEXT,
                MessageKind::Binary => inbound_tag::BINARY,
            };
            // Contiguous: the worker parses the message where it lies in the ring. `a` carries
            // when it was pushed, for the engine's own latency figure.
            let header =
                Header { tag, a: latency::stamp(self.engine.now_us()), b: message.len() as u32, c: 0 };
            records::write_contiguous(&mut self.inbound, header, message, 0)
        };
        if !written {
            SessionCounters::bump_shared(&self.shared.counters.messages_refused_full);
            return Err(SessionError::Full);
        }
        Ok(())
    }

    /// Hands one message received from the carrier to the engine and wakes the worker.
    /// `Full` when the inbound ring is full (nothing taken: retry after the worker caught up).
    pub fn push(&mut self, message: &[u8], kind: MessageKind) -> Result<(), SessionError> {
        self.write(message, kind)?;
        self.wake();
        Ok(())
    }

    /// Tells the engine the carrier's connection closed: a stream that has not ended with the
    /// carrier's own stop message ends now, as if it had (the host gets `Stopped`), after every
    /// message pushed before. For carriers that send no stop, and for connections that drop. A
    /// full inbound ring does not refuse it, and dropping the port does the same.
    pub fn end_stream(&mut self) -> Result<(), SessionError> {
        self.check_open()?;
        self.close_transport();
        Ok(())
    }

    fn close_transport(&mut self) {
        if std::mem::replace(&mut self.transport_closed, true) {
            return;
        }
        let header = Header { tag: inbound_tag::CLOSED, a: 0, b: 0, c: 0 };
        if !records::write_contiguous(&mut self.inbound, header, &[], 0) {
            // No room behind the messages waiting: the worker ends the stream once the ring
            // has drained.
            self.shared.transport_closed.store(true, Ordering::Release);
        }
        self.wake();
    }

    /// Size of the next outbound message, if there is one.
    pub fn outbound_len(&self) -> Option<usize> {
        records::peek(&self.outbound, |h| h.b as usize).map(|h| h.b as usize)
    }

    /// Takes the next outbound message into `buf` if it fits; returns its kind and length.
    pub fn next_outbound_into(&mut self, buf: &mut [u8]) -> Option<(MessageKind, usize)> {
        let h = records::peek(&self.outbound, |h| h.b as usize)?;
        let len = h.b as usize;
        if buf.len() < len {
            return None;
        }
        records::take(&mut self.outbound, len, buf);
        // The pacer may have stalled on this full ring: now there is room.
        if self.shared.pacer_stalled.load(Ordering::Acquire) {
            self.wake();
        }
        let kind = if h.tag == outbound_tag::BINARY { MessageKind::Binary } else { MessageKind::Text };
        Some((kind, len))
    }

    /// A snapshot of the session's counters, the same the host's half reads: the carrier side
    /// keeps it for its own summary of the call (the offload server logs it when the call ends).
    pub fn stats(&self) -> SessionStats {
        self.shared.counters.snapshot()
    }

    /// Whether the session is still usable (not closed by the host, not failed, engine running).
    pub fn is_open(&self) -> bool {
        self.check_open().is_ok()
    }

    /// `Ok` while the session is usable; `Closed` (by the host, or the engine stopped) or
    /// `Failed` (a bug caught in its pipeline) otherwise.
    pub fn status(&self) -> Result<(), SessionError> {
        self.check_open()
    }

    /// The flag the worker raises for a detached carrier side when it produced outbound messages
    /// (after which it signals the wakeup given to [`super::Session::detach_carrier`]): one
    /// wakeup serves many sessions, and this tells which of them have output.
    pub fn outbound_signal(&self) -> OutboundSignal {
        OutboundSignal { shared: self.shared.clone() }
    }
}

impl Drop for CarrierPort {
    /// No message can come after the port is gone: the stream ends as with `end_stream` (a
    /// connection task that ended without saying so, or panicked, still gives the host its
    /// `Stopped`).
    fn drop(&mut self) {
        if self.check_open().is_ok() {
            self.close_transport();
        }
    }
}

/// Whether a detached session produced outbound messages since it was last asked (see
/// [`CarrierPort::outbound_signal`]). Cheap to clone; any thread.
#[derive(Clone)]
pub struct OutboundSignal {
    shared: Arc<SessionShared>,
}

impl OutboundSignal {
    /// Clears the flag and returns whether it was set.
    pub fn take(&self) -> bool {
        self.shared.outbound_ready.swap(false, Ordering::AcqRel)
    }
}

impl std::fmt::Debug for OutboundSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundSignal").finish_non_exhaustive()
    }
}
