//! The offload server over TLS (feature `tls`), with clients that trust the test CA
//! (`tests/fixtures/tls`): a whole call over wss:// whose Twilio signature is checked against the
//! wss:// URL, the health check over https, a plain client refused, and certificate files the
//! server cannot use refused when it starts.

use crate::common::*;
use crate::offload::{Bot, assert_one_whole_call, caller, engine, runtime};
use futures_util::SinkExt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use trunkline::protocol::signature;
use trunkline_server::{OffloadConfig, OffloadError, OffloadServer, TlsConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

fn tls() -> Option<TlsConfig> {
    Some(TlsConfig { cert_pem: fixture("cert.pem"), key_pem: fixture("key.pem") })
}

/// A TLS connection to the server as `localhost`, trusting the test CA alone.
async fn tls_connect(addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(fixture("ca.pem")).unwrap()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// A WebSocket over TLS to `url` (`wss://localhost:<port>/...`), with Twilio's signature header.
async fn connect_wss(
    addr: SocketAddr,
    url: &str,
    signature: &str,
) -> Result<WebSocketStream<TlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("X-Twilio-Signature", signature.parse().unwrap());
    let stream = tls_connect(addr).await?;
    tokio_tungstenite::client_async(request, stream).await.map(|(ws, _)| ws)
}

#[test]
fn a_call_over_wss_is_signed_for_the_wss_url() {
    let engine = Arc::new(engine());
    let token = "tls-token";
    let config = OffloadConfig {
        paths: vec!["/media".into()],
        auth_token: Some(token.into()),
        tls: tls(),
        ..Default::default()
    };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let addr = server.local_addr();
    let url = format!("wss://localhost:{}/media", addr.port());
    let bot = Bot::start(engine.clone(), server.clone(), vec![3000; 8000]); // 1 s reply
    let (frames, marks, refused) = runtime().block_on(async {
        let signed = signature::twilio_signature(token, &url, &[]);
        let mut ws = connect_wss(addr, &url, &signed).await.expect("a TLS call signed for its wss:// URL");
        let (frames, marks) = caller(&mut ws, 200, "reply").await;
        ws.send(Message::text(stop(9999))).await.unwrap();
        ws.close(None).await.ok();
        // The same request signed for ws:// is not what this server was reached at.
        let plain_url = format!("ws://localhost:{}/media", addr.port());
        let for_plain = signature::twilio_signature(token, &plain_url, &[]);
        let refused = match connect_wss(addr, &url, &for_plain).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        };
        (frames, marks, refused)
    });
    std::thread::sleep(Duration::from_millis(100));
    let (events, calls) = bot.finish();
    assert_one_whole_call(frames, &marks, &events, &calls);
    assert_eq!(refused, 403);
    assert_eq!(server.stats().rejected_signature, 1);
}

#[test]
fn health_checks_answer_over_https_and_a_plain_client_is_refused() {
    let engine = engine();
    let config = OffloadConfig { paths: vec!["/media".into()], tls: tls(), ..Default::default() };
    let server = OffloadServer::start(&engine, config).unwrap();
    let addr = server.local_addr();
    runtime().block_on(async {
        let mut tls = tls_connect(addr).await.unwrap();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut answer)).await.unwrap().ok();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");

        let plain = tokio_tungstenite::connect_async(format!("ws://{addr}/media")).await;
        assert!(plain.is_err(), "a plain ws:// client on a TLS port");
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().handshake_failures < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = server.stats();
    assert_eq!((stats.handshake_failures, stats.accepted), (1, 0));
}

#[test]
fn certificate_files_it_cannot_use_stop_the_server_starting() {
    let engine = engine();
    let start = |cert: &str, key: &str| {
        let tls = Some(TlsConfig { cert_pem: fixture(cert), key_pem: fixture(key) });
        OffloadServer::start(&engine, OffloadConfig { tls, ..Default::default() }).map(|_| ())
    };
    assert!(start("cert.pem", "key.pem").is_ok());
    for (cert, key, why) in [
        ("cert.pem", "no-such-key.pem", "reading the key"),
        ("no-such-cert.pem", "key.pem", "reading the certificate"),
        ("cert.pem", "cert.pem", "no private key"),
        ("key.pem", "key.pem", "certificate"),
        // A valid pair that does not match: the CA's certificate with the server's key.
        ("ca.pem", "key.pem", "certificate"),
    ] {
        match start(cert, key) {
            Err(OffloadError::Tls(message)) => assert!(message.contains(why), "{cert}/{key}: {message}"),
            other => panic!("{cert}/{key}: expected a TLS error, got {other:?}"),
        }
    }
}
