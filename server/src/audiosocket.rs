//! Asterisk AudioSocket over TCP: the allow-list of call UUIDs (AudioSocket has no
//! authentication), the check of a connection's first message, then the call over the raw byte
//! stream (the engine's `audiosocket` dialect cuts it into messages and paces what goes back).

use super::connection::{
    self, CallLog, ConnectionContext, Deadline, Ending, Inbox, NoSlot, Outbox, Received, SendError,
};
use super::logs::{Origin, Refusal};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;
use trunkline::config::SessionConfig;
use trunkline::protocol::MessageKind;
use trunkline::protocol::audiosocket::AudioSocketDialect;

/// The first message's type: the call's UUID.
const UUID_TYPE: u8 = 0x01;
/// The UUID message: type, big-endian length 16, 16 bytes of UUID.
const UUID_MESSAGE_LEN: usize = 3 + 16;

/// A call UUID, as its 16 bytes.
pub(crate) type Uuid = [u8; 16];

/// The call UUIDs allowed to connect, shared by every AudioSocket listener of a server.
#[derive(Debug, Default)]
pub(crate) struct AllowList(Mutex<HashSet<Uuid>>);

impl AllowList {
    pub(crate) fn allow(&self, uuid: Uuid) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(uuid);
    }

    pub(crate) fn revoke(&self, uuid: &Uuid) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(uuid)
    }

    fn contains(&self, uuid: &Uuid) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(uuid)
    }
}

/// A UUID in text form: 32 hex digits, any case, either bare or hyphenated as
/// `8-4-4-4-12`.
pub(crate) fn parse_uuid(text: &str) -> Option<Uuid> {
    let text = text.trim().as_bytes();
    let hex: Vec<u8> = match text.len() {
        32 => text.to_vec(),
        36 if [8, 13, 18, 23].iter().all(|&i| text[i] == b'-') => {
            text.iter().copied().filter(|&b| b != b'-').collect()
        }
        _ => return None,
    };
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut uuid = [0u8; 16];
    for (byte, pair) in uuid.iter_mut().zip(hex.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(uuid)
}

/// Serves one AudioSocket connection: its first message must be the UUID of an allowed call.
pub(crate) async fn serve(
    stream: TcpStream,
    ctx: Arc<ConnectionContext>,
    session: Arc<SessionConfig>,
    origin: Origin,
) {
    let (read, write) = stream.into_split();
    // Reads never exceed the session's message limit (as raised for Asterisk's largest): the
    // engine takes a larger chunk of the stream for an oversize message and drops it, which would
    // cut the stream out of step.
    let buf_len = session.inbound_limits(&AudioSocketDialect::new()).message_bytes.max(UUID_MESSAGE_LEN);
    let mut inbox = TcpInbox { read, buf: vec![0; buf_len], pending: 0 };
    let uuid = match timeout(ctx.config.handshake_timeout, inbox.read_uuid()).await {
        Ok(Some(uuid)) => uuid,
        // No UUID in time, a first message of another kind, or the connection closed.
        outcome => {
            ctx.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Err(_) => origin.refused(Refusal::Handshake("no call UUID within handshake_timeout"), None),
                // Closed without a byte: a TCP check, not Asterisk.
                Ok(_) if inbox.pending == 0 => origin.closed_silently(),
                Ok(_) => origin.refused(Refusal::Handshake("the first message was not a call UUID"), None),
            }
            return;
        }
    };
    if !ctx.audiosocket_calls.contains(&uuid) {
        ctx.counters.rejected_audiosocket_call.fetch_add(1, Ordering::Relaxed);
        origin.refused(Refusal::AudioSocketCall, None);
        return;
    }
    match ctx.take_slot() {
        Ok(()) => {}
        Err(NoSlot::Draining) => {
            ctx.counters.rejected_draining.fetch_add(1, Ordering::Relaxed);
            origin.refused(Refusal::Draining, None);
            return;
        }
        Err(NoSlot::Capacity) => {
            ctx.counters.rejected_capacity.fetch_add(1, Ordering::Relaxed);
            origin.refused(Refusal::Capacity, None);
            return;
        }
    }
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    origin.upgraded("", &session.dialect);
    let outbox = TcpOutbox { write, queued: Vec::new(), deadline: Deadline::new(ctx.config.send_timeout) };
    // A hang-up message ends the call: nothing follows it.
    let left = connection::call(inbox, outbox, &ctx, &session, true, CallLog::new(&origin, "")).await;
    ctx.call_ended();
    if let Some(inbox) = left {
        connection::linger(inbox).await;
    }
}

/// The bytes Asterisk sends, as TCP delivers them.
struct TcpInbox {
    read: OwnedReadHalf,
    buf: Vec<u8>,
    /// Bytes read while checking the UUID, not yet handed to the call.
    pending: usize,
}

impl TcpInbox {
    /// Reads until the first message is whole: the call's UUID, or `None` if it is another
    /// message or the connection ends first. What was read stays for the call.
    async fn read_uuid(&mut self) -> Option<Uuid> {
        while self.pending < UUID_MESSAGE_LEN {
            let n = self.read.read(&mut self.buf[self.pending..]).await.ok()?;
            if n == 0 {
                return None;
            }
            self.pending += n;
            // Refused as soon as the header shows another message.
            let header = &self.buf[..self.pending.min(3)];
            if header.first().is_some_and(|&t| t != UUID_TYPE)
                || (header.len() == 3 && header[1..] != [0, 16])
            {
                return None;
            }
        }
        self.buf[3..UUID_MESSAGE_LEN].try_into().ok()
    }
}

impl Inbox for TcpInbox {
    async fn receive(&mut self) -> Received<'_> {
        if self.pending > 0 {
            let n = std::mem::take(&mut self.pending);
            return Received::Data(&self.buf[..n], MessageKind::Binary);
        }
        match self.read.read(&mut self.buf).await {
            Ok(0) | Err(_) => Received::Closed,
            Ok(n) => Received::Data(&self.buf[..n], MessageKind::Binary),
        }
    }
}

/// What goes back to Asterisk: the session's messages written as they are (the engine paces
/// them), every write bounded by the send timeout.
struct TcpOutbox {
    write: OwnedWriteHalf,
    queued: Vec<u8>,
    deadline: Deadline,
}

impl Outbox for TcpOutbox {
    async fn feed(&mut self, bytes: &[u8], _kind: MessageKind) -> Result<(), SendError> {
        self.queued.extend_from_slice(bytes);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        let done = self.deadline.run(self.write.write_all(&self.queued)).await;
        self.queued.clear();
        done
    }

    /// AudioSocket has no keepalive: Asterisk sends audio every 20 ms.
    async fn ping(&mut self) -> Result<(), SendError> {
        Ok(())
    }

    /// Closing the connection is AudioSocket's hang-up (every version takes it; the `0x00`
    /// message is optional).
    async fn end(&mut self, _why: Ending) {
        let _ = self.deadline.run(self.write.shutdown()).await;
    }

    fn stalled(&self) -> bool {
        self.deadline.stalled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_parse_hyphenated_or_bare_in_any_case() {
        let expected =
            [0x40, 0x32, 0x5e, 0xc2, 0x5e, 0xfd, 0x4b, 0xd3, 0x80, 0x5f, 0x53, 0x57, 0x6e, 0x58, 0x1d, 0x13];
        assert_eq!(parse_uuid("40325ec2-5efd-4bd3-805f-53576e581d13"), Some(expected));
        assert_eq!(parse_uuid("40325EC2-5EFD-4BD3-805F-53576E581D13"), Some(expected));
        assert_eq!(parse_uuid("40325ec25efd4bd3805f53576e581d13"), Some(expected));
        for bad in [
            "",
            "40325ec2-5efd-4bd3-805f-53576e581d1",
            "40325ec2-5efd-4bd3-805f-53576e581d1g",
            "40325ec25-efd-4bd3-805f-53576e581d13",
            "+0325ec25efd4bd3805f53576e581d13",
            "40325ec2-5efd-4bd3-805f-53576e581d13-",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }
}
