//! Plain HTTP on the WebSocket port: `/metrics`, `/healthz` and `/readyz`.
//!
//! The request head is read here first (within the handshake's deadline). A request for one of
//! these paths is answered and the connection closed; any other goes to the WebSocket
//! handshake with the bytes already read put back in front of the stream ([`Rewind`]), so the
//! upgrade sees exactly what the client sent.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The paths answered as plain HTTP (never WebSocket routes).
pub(crate) const PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// Most bytes read looking for a request head; a longer head goes to the WebSocket handshake
/// as it is (which has its own limits).
const MAX_HEAD: usize = 16 * 1024;

/// Most request headers parsed (as the WebSocket handshake does).
const MAX_HEADERS: usize = 124;

/// A plain HTTP request for one of [`PATHS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// One of [`PATHS`].
    pub(crate) path: &'static str,
    /// The `Accept` header, if any.
    pub(crate) accept: Option<String>,
}

/// What the start of a connection turned out to be.
pub(crate) enum Head {
    /// A request for one of [`PATHS`].
    Plain(Request),
    /// Anything else (a WebSocket upgrade, garbage, a head too long to look at): these bytes
    /// go back in front of the stream for the handshake.
    Other(Vec<u8>),
}

/// Reads until the request head is complete (or shows it is not a plain request for us).
/// Cancel with a timeout for slow clients.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // Closed before a whole head: the handshake reports it as it always has.
            return Ok(Head::Other(buf));
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse(&buf) {
            Parsed::Partial if buf.len() < MAX_HEAD => continue,
            Parsed::Plain(request) => return Ok(Head::Plain(request)),
            _ => return Ok(Head::Other(buf)),
        }
    }
}

enum Parsed {
    Partial,
    Plain(Request),
    Other,
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    }
    let target = request.path.unwrap_or("");
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let Some(&path) = PATHS.iter().find(|&&p| p == path) else { return Parsed::Other };
    let accept = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("accept"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned);
    Parsed::Plain(Request { method: request.method.unwrap_or("").to_owned(), path, accept })
}

/// An HTTP/1.1 response that closes the connection.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    /// HEAD: the headers only.
    pub(crate) head_only: bool,
}

impl Response {
    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.to_owned(), head_only: false }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "",
        };
        let allow = if self.status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
             {allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// A stream with bytes already read from it put back in front.
pub(crate) struct Rewind<S> {
    prefix: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self { prefix, read: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let n = (this.prefix.len() - this.read).min(buf.remaining());
            buf.put_slice(&this.prefix[this.read..this.read + n]);
            this.read += n;
            if this.read == this.prefix.len() {
                // Given back: not kept for the life of the call.
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn plain(bytes: &[u8]) -> Option<Request> {
        match parse(bytes) {
            Parsed::Plain(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn only_whole_requests_for_the_plain_paths_are_taken() {
        let r =
            plain(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text\r\n\r\n");
        assert_eq!(
            r,
            Some(Request {
                method: "GET".into(),
                path: "/metrics",
                accept: Some("application/openmetrics-text".into())
            })
        );
        assert_eq!(
            plain(b"HEAD /readyz HTTP/1.1\r\n\r\n").map(|r| (r.method, r.path)),
            Some(("HEAD".into(), "/readyz"))
        );
        assert!(matches!(parse(b"GET /healthz HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial));
        assert!(matches!(parse(b"GET /media HTTP/1.1\r\n\r\n"), Parsed::Other));
        assert!(matches!(parse(b"GET /metricsx HTTP/1.1\r\n\r\n"), Parsed::Other));
        assert!(matches!(parse(b"\x16\x03\x01garbage\r\n\r\n"), Parsed::Other));
    }

    #[tokio::test]
    async fn the_bytes_read_are_put_back_in_front() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET /media HTTP/1.1\r\n\r\nafter").await.unwrap();
        drop(client);
        let Head::Other(prefix) = read_head(&mut server).await.unwrap() else { panic!("taken as plain") };
        let mut all = Vec::new();
        Rewind::new(prefix, server).read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET /media HTTP/1.1\r\n\r\nafter");
    }
}
