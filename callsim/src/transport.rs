//! The connection to the bot: a WebSocket (text and binary frames) or a plain TCP byte stream cut
//! into AudioSocket messages, behind one interface for the call driver.

use super::carrier::{Wire, audiosocket_message_len};
use super::result::CallError;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Longest response head accepted from the bot's HTTP server.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// An open connection.
pub(crate) enum Link<S> {
    /// A WebSocket.
    Ws(Box<WebSocketStream<S>>),
    /// A TCP stream of type-length-value messages: what has been read and not yet cut, and what
    /// waits to be written.
    Tcp { stream: S, read: Vec<u8>, write: Vec<u8> },
}

fn io(e: impl std::fmt::Display) -> CallError {
    CallError::Connection(e.to_string())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// Queues `message` (sent by [`Self::flush`]).
    pub(crate) async fn feed(&mut self, message: Wire) -> Result<(), CallError> {
        match self {
            Self::Ws(ws) => {
                let m = match message {
                    Wire::Text(t) => Message::text(t),
                    Wire::Binary(b) => Message::binary(b),
                };
                ws.feed(m).await.map_err(io)
            }
            Self::Tcp { write, .. } => {
                match message {
                    Wire::Binary(b) => write.extend(b),
                    Wire::Text(t) => write.extend(t.into_bytes()),
                }
                Ok(())
            }
        }
    }

    /// Sends what was fed, in one write where the transport allows.
    pub(crate) async fn flush(&mut self) -> Result<(), CallError> {
        match self {
            Self::Ws(ws) => ws.flush().await.map_err(io),
            Self::Tcp { stream, write, .. } => {
                stream.write_all(write).await.map_err(io)?;
                write.clear();
                stream.flush().await.map_err(io)
            }
        }
    }

    /// The next message from the bot; `None` once it closed. Cancel-safe (what was read before a
    /// cancellation stays buffered).
    pub(crate) async fn recv(&mut self) -> Option<Result<Wire, CallError>> {
        match self {
            Self::Ws(ws) => loop {
                return match ws.next().await? {
                    Ok(Message::Text(t)) => Some(Ok(Wire::Text(t.as_str().to_owned()))),
                    Ok(Message::Binary(b)) => Some(Ok(Wire::Binary(b.to_vec()))),
                    Ok(Message::Close(_)) => None,
                    Ok(_) => continue,
                    Err(e) => Some(Err(io(e))),
                };
            },
            Self::Tcp { stream, read, .. } => loop {
                if let Some(len) = audiosocket_message_len(read).filter(|l| *l <= read.len()) {
                    return Some(Ok(Wire::Binary(read.drain(..len).collect())));
                }
                match stream.read_buf(read).await {
                    Ok(0) if read.is_empty() => return None,
                    Ok(0) => return Some(Err(io("the bot closed the connection inside a message"))),
                    Ok(_) => {}
                    Err(e) => return Some(Err(io(e))),
                }
            },
        }
    }

    /// Closes our side and waits up to `wait` for the bot to close its own.
    pub(crate) async fn close(&mut self, wait: Duration) {
        match self {
            Self::Ws(ws) => {
                let _ = ws.send(Message::Close(None)).await;
            }
            Self::Tcp { stream, .. } => {
                let _ = stream.shutdown().await;
            }
        }
        let closing = async {
            while let Some(msg) = self.recv().await {
                if msg.is_err() {
                    break;
                }
            }
        };
        let _ = timeout(wait, closing).await;
    }
}

/// The WebSocket handshake through tungstenite, which refuses a server that does not select a
/// subprotocol the client offered.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    req: Request,
    stream: S,
    config: WebSocketConfig,
    left: Duration,
) -> Result<WebSocketStream<S>, CallError> {
    use tokio_tungstenite::tungstenite::Error;
    match timeout(left, tokio_tungstenite::client_async_with_config(req, stream, Some(config))).await {
        Err(_) => Err(CallError::Handshake("timed out".into())),
        Ok(Err(Error::Http(resp))) => Err(CallError::Refused(resp.status().as_u16())),
        Ok(Err(e)) => Err(CallError::Handshake(e.to_string())),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// The WebSocket handshake as a carrier that offers a subprotocol makes it (jambonz, over
/// libwebsockets): a server that selects none is accepted (the carrier then speaks its first
/// protocol); one that selects another is refused.
pub(crate) async fn handshake_offering<S: AsyncRead + AsyncWrite + Unpin>(
    req: Request,
    mut stream: S,
    config: WebSocketConfig,
    left: Duration,
    subprotocol: &str,
) -> Result<WebSocketStream<S>, CallError> {
    let bad = |why: String| CallError::Handshake(why);
    let exchange = async {
        let key = req
            .headers()
            .get("Sec-WebSocket-Key")
            .and_then(|k| k.to_str().ok())
            .ok_or_else(|| bad("no Sec-WebSocket-Key".into()))?
            .to_owned();
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!("GET {target} HTTP/1.1\r\n");
        for (name, value) in req.headers() {
            head.push_str(&format!("{}: {}\r\n", name, value.to_str().map_err(|e| bad(e.to_string()))?));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(|e| CallError::Connect(e.to_string()))?;
        // Byte by byte, so that nothing after the head is read here: it is the WebSocket's.
        let mut response = Vec::new();
        while !response.ends_with(b"\r\n\r\n") {
            if response.len() > MAX_RESPONSE_HEAD {
                return Err(bad("response head too long".into()));
            }
            response.push(stream.read_u8().await.map_err(|e| bad(e.to_string()))?);
        }
        let text = String::from_utf8_lossy(&response);
        let mut lines = text.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no HTTP status".into()))?;
        if status != 101 {
            return Err(CallError::Refused(status));
        }
        let header = |name: &str| {
            text.split("\r\n")
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        if header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes())) {
            return Err(bad("wrong Sec-WebSocket-Accept".into()));
        }
        if let Some(chosen) = header("sec-websocket-protocol").filter(|p| p != subprotocol) {
            return Err(bad(format!("the server chose subprotocol {chosen:?}, not {subprotocol:?}")));
        }
        Ok(())
    };
    match timeout(left, exchange).await {
        Err(_) => Err(CallError::Handshake("timed out".into())),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => Ok(WebSocketStream::from_raw_socket(stream, Role::Client, Some(config)).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn tcp_messages_are_cut_whatever_the_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Two messages, split mid-header and mid-payload.
            for part in [&[0x10u8, 0x00][..], &[0x02, 0xAA], &[0xBB, 0x00, 0x00], &[0x00]] {
                s.write_all(part).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut link = Link::Tcp { stream, read: vec![], write: vec![] };
        assert_eq!(link.recv().await.unwrap().unwrap(), Wire::Binary(vec![0x10, 0, 2, 0xAA, 0xBB]));
        assert_eq!(link.recv().await.unwrap().unwrap(), Wire::Binary(vec![0, 0, 0]));
        assert!(link.recv().await.is_none());
        peer.await.unwrap();
    }
}
