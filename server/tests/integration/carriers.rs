//! The offload server's carrier transports and their authentication, over loopback: Asterisk
//! AudioSocket over real TCP (its allow-list, audio both ways, pacing, hang-up and EOF, limits),
//! Vonage's signed JWT on the WebSocket upgrade (tokens built here by hand with HMAC-SHA256, not
//! with the crate under test), and jambonz's WebSocket subprotocol negotiated with a real client.
//! Every refusal is checked in its own counter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use trunkline::{Engine, EngineConfig, Event, SessionConfig};
use trunkline_server::{
    AudioSocketListener, OffloadConfig, OffloadError, OffloadServer, OffloadedCall, RequestAuth, Route,
    ServerStats,
};

fn engine() -> Engine {
    Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap()
}

/// Waits (briefly) until the server's counters satisfy `ok`: a client sees a refusal before the
/// server task has counted it.
fn settled(server: &OffloadServer, ok: impl Fn(&ServerStats) -> bool) -> ServerStats {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !ok(&server.stats()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stats()
}

// ---------------------------------------------------------------------------------------------
// AudioSocket

const UUID_TEXT: &str = "40325ec2-5efd-4bd3-805f-53576e581d13";
const UUID: [u8; 16] =
    [0x40, 0x32, 0x5e, 0xc2, 0x5e, 0xfd, 0x4b, 0xd3, 0x80, 0x5f, 0x53, 0x57, 0x6e, 0x58, 0x1d, 0x13];
const OTHER_UUID_TEXT: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const OTHER_UUID: [u8; 16] =
    [0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0];
const HANGUP: [u8; 3] = [0x00, 0x00, 0x00];

/// One AudioSocket message: type, big-endian length, value.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    m
}

fn l16(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Distinct, non-silent samples (so a lost, repeated or reordered frame shows).
fn ramp(samples: usize, seed: usize) -> Vec<i16> {
    (0..samples).map(|i| (((i * 37 + seed * 1009) % 20_000) as i16) - 10_000).collect()
}

/// Asterisk's side of a call: the UUID, then 20 ms frames of 8 kHz audio (`0x10`).
fn asterisk_stream(uuid: [u8; 16], audio: &[i16]) -> Vec<u8> {
    let mut stream = tlv(0x01, &uuid);
    for frame in audio.chunks(160) {
        stream.extend(tlv(0x10, &l16(frame)));
    }
    stream
}

fn audiosocket_server(config: OffloadConfig, allowed: &[&str]) -> (Engine, OffloadServer, SocketAddr) {
    let engine = engine();
    let config = OffloadConfig {
        // 8 kHz end to end: no resampling, so audio is compared sample for sample.
        session: SessionConfig { agent_rate: 8_000, play_rate: 8_000, ..Default::default() },
        ..config
    };
    let server = OffloadServer::start(&engine, config).unwrap();
    let listener = AudioSocketListener {
        bind: "127.0.0.1:0".parse().unwrap(),
        allowed_calls: allowed.iter().map(|s| s.to_string()).collect(),
    };
    let addr = server.listen_audiosocket(listener).unwrap();
    (engine, server, addr)
}

#[test]
fn a_refused_audiosocket_listen_allows_none_of_its_calls() {
    const CALL: &str = "40325ec2-5efd-4bd3-805f-53576e581d13";
    let (_engine, server, addr) = audiosocket_server(OffloadConfig::default(), &[]);
    // The address is taken (by the first listener): the second listen fails to bind.
    let taken = AudioSocketListener { bind: addr, allowed_calls: vec![CALL.into()] };
    assert!(matches!(server.listen_audiosocket(taken), Err(OffloadError::Io(_))));
    assert!(!server.revoke_audiosocket_call(CALL), "a failed listen allowed its call");
    // One bad UUID refuses the whole list.
    let bad = AudioSocketListener {
        bind: "127.0.0.1:0".parse().unwrap(),
        allowed_calls: vec![CALL.into(), "nope".into()],
    };
    assert!(matches!(server.listen_audiosocket(bad), Err(OffloadError::Invalid(_))));
    assert!(!server.revoke_audiosocket_call(CALL));
}

fn dial(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// Whether the server closed the connection (EOF or reset) within the read timeout.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // audio still in flight
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // timed out: still open
        }
    }
}

/// One message from the server, or `None` at EOF.
fn read_tlv(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 3];
    stream.read_exact(&mut header).ok()?;
    let mut value = vec![0u8; usize::from(u16::from_be_bytes([header[1], header[2]]))];
    stream.read_exact(&mut value).ok()?;
    Some((header[0], value))
}

/// The host's next call, waiting up to 5 s.
fn accept(engine: &Engine, server: &OffloadServer) -> OffloadedCall {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(call) = server.accept() {
            return call;
        }
        assert!(Instant::now() < deadline, "no call reached the host: {:?}", server.stats());
        engine.wait(Some(Duration::from_millis(10)));
    }
}

/// Reads the call's audio and events until `done` says so (or 5 s pass); what was read.
fn host_until(
    engine: &Engine,
    call: &mut OffloadedCall,
    audio: &mut Vec<i16>,
    events: &mut Vec<Event>,
    done: impl Fn(&[i16], &[Event]) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pcm = [0i16; 1024];
    while Instant::now() < deadline {
        loop {
            let n = call.session.read_audio(&mut pcm);
            if n == 0 {
                break;
            }
            audio.extend_from_slice(&pcm[..n]);
        }
        while let Some(e) = call.session.poll_event() {
            events.push(e);
        }
        if done(audio, events) {
            return true;
        }
        engine.wait(Some(Duration::from_millis(5)));
    }
    false
}

/// A call written a byte at a time: the host gets it with its UUID and every caller sample; the
/// host's reply reaches Asterisk whole as 20 ms `0x10` messages, paced (never more than the
/// engine's 40 ms lead ahead of the time it was played); the hang-up ends the call and the
/// server closes the connection.
#[test]
fn an_audiosocket_call_carries_audio_both_ways_and_ends_with_the_hang_up() {
    let (engine, server, addr) = audiosocket_server(OffloadConfig::default(), &[UUID_TEXT]);
    let caller_audio = ramp(25 * 160, 1); // 500 ms
    let mut tcp = dial(addr);
    for byte in asterisk_stream(UUID, &caller_audio) {
        tcp.write_all(&[byte]).unwrap();
    }

    let mut call = accept(&engine, &server);
    assert_eq!((call.start.call_id.as_str(), call.start.stream_id.as_str()), (UUID_TEXT, UUID_TEXT));
    assert_eq!(call.start.media_format.sample_rate, 8_000);
    let (mut heard, mut events) = (vec![], vec![]);
    assert!(host_until(&engine, &mut call, &mut heard, &mut events, |a, _| a.len() >= caller_audio.len()));
    assert_eq!(heard, caller_audio, "the caller's audio, sample for sample");
    assert!(matches!(events[..], [Event::Connected, Event::Started(_), ..]), "{events:?}");

    // The host plays one second; Asterisk's side reads it with arrival times.
    let reply = ramp(8_000, 2);
    let reader = {
        let mut tcp = tcp.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut frames = vec![];
            while frames.len() < 50 {
                let Some((kind, value)) = read_tlv(&mut tcp) else { break };
                frames.push((Instant::now(), kind, value));
            }
            frames
        })
    };
    let played_at = Instant::now();
    // `play` takes what its ring has room for (none: `Full`); the rest follows as it plays.
    let mut at = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while at < reply.len() && Instant::now() < deadline {
        match call.session.play(&reply[at..], 8_000) {
            Ok(n) => at += n,
            Err(trunkline::runtime::SessionError::Full) => {}
            Err(e) => panic!("play: {e}"),
        }
        engine.wait(Some(Duration::from_millis(5)));
    }
    let frames = reader.join().unwrap();
    assert_eq!(frames.len(), 50, "one second in 20 ms frames");
    assert!(frames.iter().all(|(_, kind, value)| *kind == 0x10 && value.len() == 320));
    let sent: Vec<u8> = frames.iter().flat_map(|(_, _, v)| v.clone()).collect();
    assert_eq!(sent, l16(&reply), "the reply, byte for byte");
    // Paced: by any time t after the play, at most t / 20 ms frames plus the 2 of the lead (and
    // 2 for the timer's granularity) have arrived. Lateness cannot break this, only a burst can.
    for (i, (at, _, _)) in frames.iter().enumerate() {
        let allowed = at.duration_since(played_at).as_millis() as usize / 20 + 4;
        assert!(i < allowed, "frame {i} arrived {:?} after the play", at.duration_since(played_at));
    }

    tcp.write_all(&HANGUP).unwrap();
    assert!(host_until(&engine, &mut call, &mut heard, &mut events, |_, e| e.contains(&Event::Stopped)));
    assert!(closed_by_server(&mut tcp), "the server ends the connection after the hang-up");
    let stats = settled(&server, |s| s.active == 0);
    assert_eq!((stats.accepted, stats.calls_opened, stats.closed, stats.active), (1, 1, 1, 0));
}

/// The server cuts Asterisk's byte stream itself, to see the call's start: with the route's
/// limits as configured (6 KiB messages), a 20 ms message at 192 kHz (7683 B) was skipped and
/// the call never reached the host. The session takes it (its audio refused, as the engine does
/// not convert that rate); so does the server now. At 48 kHz the call's audio arrives whole.
#[test]
fn audiosocket_calls_at_high_rates_reach_the_host() {
    for (kind, rate) in [(0x16u8, 48_000usize), (0x18, 192_000)] {
        let (engine, server, addr) = audiosocket_server(OffloadConfig::default(), &[UUID_TEXT]);
        let mut tcp = dial(addr);
        let audio = ramp(5 * rate / 50, 4);
        let mut stream = tlv(0x01, &UUID);
        for frame in audio.chunks(rate / 50) {
            stream.extend(tlv(kind, &l16(frame)));
        }
        tcp.write_all(&stream).unwrap();
        let mut call = accept(&engine, &server);
        assert_eq!(call.start.media_format.sample_rate, rate as u32);
        if rate == 48_000 {
            // The server's sessions deliver at 8 kHz: every sample, resampled.
            let (mut heard, mut events) = (vec![], vec![]);
            assert!(host_until(&engine, &mut call, &mut heard, &mut events, |a, _| a.len() >= 5 * 160));
            assert!(events.iter().all(|e| !matches!(e, Event::ProtocolError { .. })), "{events:?}");
        }
        tcp.write_all(&HANGUP).unwrap();
    }
}

/// Asterisk may close the connection without the hang-up message: the call ends all the same.
#[test]
fn a_bare_eof_ends_an_audiosocket_call() {
    let (engine, server, addr) = audiosocket_server(OffloadConfig::default(), &[UUID_TEXT]);
    let mut tcp = dial(addr);
    tcp.write_all(&asterisk_stream(UUID, &ramp(5 * 160, 3))).unwrap();
    let mut call = accept(&engine, &server);
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let (mut heard, mut events) = (vec![], vec![]);
    assert!(
        host_until(&engine, &mut call, &mut heard, &mut events, |_, e| e.contains(&Event::Stopped)),
        "{events:?}"
    );
    assert!(closed_by_server(&mut tcp));
    assert_eq!(settled(&server, |s| s.closed == 1).active, 0);
}

/// AudioSocket has no authentication: only UUIDs on the allow-list (static or registered at
/// run time, until revoked) get a call; everything else is closed and counted by reason. The
/// limits are those of WebSocket calls.
#[test]
fn audiosocket_connections_are_refused_unless_allowed_and_within_the_limits() {
    let config = OffloadConfig {
        max_sessions: 1,
        idle_timeout: Duration::from_millis(500),
        handshake_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let (engine, server, addr) = audiosocket_server(config, &[]);
    assert!(matches!(server.allow_audiosocket_call("not-a-uuid"), Err(OffloadError::Invalid(_))));

    // Not on the list (nothing allowed yet), then allowed and revoked.
    let mut tcp = dial(addr);
    tcp.write_all(&tlv(0x01, &UUID)).unwrap();
    assert!(closed_by_server(&mut tcp), "an unknown UUID");
    server.allow_audiosocket_call(UUID_TEXT).unwrap();
    assert!(server.revoke_audiosocket_call(&UUID_TEXT.to_uppercase()));
    assert!(!server.revoke_audiosocket_call(UUID_TEXT));
    let mut tcp = dial(addr);
    tcp.write_all(&tlv(0x01, &UUID)).unwrap();
    assert!(closed_by_server(&mut tcp), "a revoked UUID");
    let stats = settled(&server, |s| s.rejected_audiosocket_call == 2);
    assert_eq!((stats.rejected_audiosocket_call, stats.accepted), (2, 0));

    // A first message that is not a UUID, and a connection that sends nothing.
    let mut tcp = dial(addr);
    tcp.write_all(&tlv(0x10, &[0; 320])).unwrap();
    assert!(closed_by_server(&mut tcp), "audio before the UUID");
    let mut silent = dial(addr);
    assert!(closed_by_server(&mut silent), "no UUID within the handshake timeout");
    assert_eq!(settled(&server, |s| s.handshake_failures == 2).handshake_failures, 2);

    // Registered at run time (bare hex, any case): taken. A second call is over `max_sessions`.
    server.allow_audiosocket_call("0F1E2D3C4B5A69788796A5B4C3D2E1F0").unwrap();
    server.allow_audiosocket_call(UUID_TEXT).unwrap();
    let mut first = dial(addr);
    first.write_all(&asterisk_stream(OTHER_UUID, &ramp(160, 4))).unwrap();
    let mut call = accept(&engine, &server);
    assert_eq!(call.start.call_id, OTHER_UUID_TEXT);
    let mut second = dial(addr);
    second.write_all(&asterisk_stream(UUID, &ramp(160, 5))).unwrap();
    assert!(closed_by_server(&mut second), "over max_sessions");
    assert_eq!(settled(&server, |s| s.rejected_capacity == 1).rejected_capacity, 1);

    // The first call now sends nothing: the idle timeout ends it.
    let (mut heard, mut events) = (vec![], vec![]);
    assert!(host_until(&engine, &mut call, &mut heard, &mut events, |_, e| e.contains(&Event::Stopped)));
    assert!(closed_by_server(&mut first));
    let stats = settled(&server, |s| s.idle_timeouts == 1 && s.active == 0);
    assert_eq!((stats.idle_timeouts, stats.accepted, stats.calls_opened, stats.active), (1, 1, 1, 0));
}

// ---------------------------------------------------------------------------------------------
// Vonage's JWT, jambonz's subprotocol (WebSocket)

type HmacSha256 = Hmac<sha2::Sha256>;

/// A JWT built by hand: base64url header and claims, HMAC-SHA256 signature (none for
/// `alg: none`).
fn jwt(secret: &str, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    if header.contains("\"none\"") {
        return format!("{input}.");
    }
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

type Upgrade = Result<
    tokio_tungstenite::tungstenite::handshake::client::Response,
    tokio_tungstenite::tungstenite::Error,
>;

/// A real WebSocket upgrade with the given headers; the server's answer.
async fn upgrade(url: &str, headers: &[(&str, &str)]) -> Upgrade {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().append(name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(_, response)| response)
}

fn status(result: Upgrade) -> u16 {
    match result {
        Ok(response) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP answer, got {other}"),
    }
}

const SECRET: &str = "vonage-signature-secret-0123456789";
const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A route chooses Vonage's JWT (`RequestAuth::VonageJwt`) over its custom bearer value (the
/// default for `vonage`): only a current HS256 token signed with the secret opens a call; each
/// refusal is a 403 counted by reason, and per route.
#[test]
fn vonage_routes_check_the_signed_jwt_or_the_custom_bearer() {
    let engine = engine();
    let config = OffloadConfig {
        routes: vec![
            Route {
                path: "/vonage".into(),
                dialect: "vonage".into(),
                auth_token: Some(SECRET.into()),
                auth: Some(RequestAuth::VonageJwt),
            },
            Route {
                path: "/vonage-custom".into(),
                dialect: "vonage".into(),
                auth_token: Some("custom-value".into()),
                auth: None,
            },
        ],
        ..Default::default()
    };
    let server = OffloadServer::start(&engine, config).unwrap();
    let addr = server.local_addr();
    let t = now_s();
    let valid = jwt(SECRET, HS256, &format!(r#"{{"iat":{t},"exp":{},"api_key":"k","jti":"1"}}"#, t + 300));
    let wrong_secret = jwt("another-secret", HS256, &format!(r#"{{"iat":{t},"exp":{}}}"#, t + 300));
    let expired = jwt(SECRET, HS256, &format!(r#"{{"iat":{},"exp":{}}}"#, t - 1200, t - 900));
    let alg_none = jwt(SECRET, r#"{"alg":"none","typ":"JWT"}"#, &format!(r#"{{"iat":{t}}}"#));
    let bearer = |token: &str| format!("Bearer {token}");
    runtime().block_on(async {
        let url = format!("ws://{addr}/vonage");
        assert_eq!(status(upgrade(&url, &[("Authorization", &bearer(&valid))]).await), 101);
        for (token, what) in [(&wrong_secret, "wrong secret"), (&expired, "expired"), (&alg_none, "alg none")]
        {
            assert_eq!(status(upgrade(&url, &[("Authorization", &bearer(token))]).await), 403, "{what}");
        }
        assert_eq!(status(upgrade(&url, &[]).await), 403, "missing");
        assert_eq!(status(upgrade(&url, &[("Authorization", "Bearer custom-value")]).await), 403);

        let custom = format!("ws://{addr}/vonage-custom");
        assert_eq!(status(upgrade(&custom, &[("Authorization", "Bearer custom-value")]).await), 101);
        assert_eq!(status(upgrade(&custom, &[("Authorization", &bearer(&valid))]).await), 403);
    });
    let stats = settled(&server, |s| s.rejected_signature == 6);
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.rejected_signature, 6);
    assert_eq!(stats.rejected_signature_missing, 1);
    assert_eq!(stats.rejected_signature_expired, 1);
    let routes = server.route_stats();
    assert_eq!(
        routes.iter().map(|r| (r.path.as_str(), r.accepted, r.rejected_signature)).collect::<Vec<_>>(),
        [("/vonage", 1, 5), ("/vonage-custom", 1, 1)]
    );
    assert_eq!(routes[0].rejected_signature_missing, 1);

    // A scheme without its secret cannot be served.
    let no_secret = OffloadConfig {
        routes: vec![Route {
            path: "/v".into(),
            dialect: "vonage".into(),
            auth: Some(RequestAuth::VonageJwt),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(matches!(OffloadServer::start(&engine, no_secret), Err(OffloadError::Invalid(_))));
}

/// jambonz offers `audio.jambonz.org`: the answer selects it (the client checks it too); a
/// client offering only other subprotocols is refused (400, counted).
#[test]
fn jambonz_routes_negotiate_their_subprotocol() {
    let engine = engine();
    let config = OffloadConfig {
        routes: vec![Route { path: "/jambonz".into(), dialect: "jambonz".into(), ..Default::default() }],
        ..Default::default()
    };
    let server = OffloadServer::start(&engine, config).unwrap();
    let url = format!("ws://{}/jambonz", server.local_addr());
    let selected = |response: &tokio_tungstenite::tungstenite::handshake::client::Response| {
        response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned())
    };
    runtime().block_on(async {
        let offered = upgrade(&url, &[("Sec-WebSocket-Protocol", "audio.jambonz.org")]).await.unwrap();
        assert_eq!(selected(&offered).as_deref(), Some("audio.jambonz.org"));
        let among_others =
            upgrade(&url, &[("Sec-WebSocket-Protocol", "x.example, audio.jambonz.org")]).await.unwrap();
        assert_eq!(selected(&among_others).as_deref(), Some("audio.jambonz.org"));
        let none_offered = upgrade(&url, &[]).await.unwrap();
        assert_eq!(selected(&none_offered), None);
        assert_eq!(status(upgrade(&url, &[("Sec-WebSocket-Protocol", "x.example")]).await), 400);
    });
    let stats = settled(&server, |s| s.rejected_subprotocol == 1);
    assert_eq!((stats.accepted, stats.rejected_subprotocol), (3, 1));
}

/// Shutting the server down ends a live AudioSocket call within the grace period: the host gets
/// `Stopped`, Asterisk's connection is closed.
#[test]
fn shutdown_ends_live_audiosocket_calls() {
    let (engine, server, addr) = audiosocket_server(OffloadConfig::default(), &[UUID_TEXT]);
    let mut tcp = dial(addr);
    tcp.write_all(&asterisk_stream(UUID, &ramp(5 * 160, 6))).unwrap();
    let mut call = accept(&engine, &server);
    let started = Instant::now();
    server.shutdown(Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(closed_by_server(&mut tcp));
    let (mut heard, mut events) = (vec![], vec![]);
    assert!(host_until(&engine, &mut call, &mut heard, &mut events, |_, e| e.contains(&Event::Stopped)));
}

// ---------------------------------------------------------------------------------------------
// Dialect options on routes

/// The media payloads of `messages` (JSON text frames of `{"event":"media",...}`), decoded.
fn media_payloads(messages: &[String]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .filter_map(|text| {
            let v: serde_json::Value = serde_json::from_str(text).ok()?;
            (v["event"] == "media").then(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(v["media"]["payload"].as_str().unwrap())
                    .unwrap()
            })
        })
        .collect()
}

/// Sends `messages`; plays `reply` at `rate` from the host; returns the carrier's media payloads
/// and the caller audio the host read, once `out_bytes` of payload came and `in_samples` were
/// read (or 10 s passed).
fn call_with(
    url: &str,
    messages: Vec<String>,
    reply: &[i16],
    rate: u32,
    engine: &Engine,
    server: &OffloadServer,
    (out_bytes, in_samples): (usize, usize),
) -> (Vec<Vec<u8>>, Vec<i16>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let rt = runtime();
    let (mut ws, _) = rt.block_on(tokio_tungstenite::connect_async(url)).unwrap();
    for m in messages {
        rt.block_on(ws.send(Message::text(m))).unwrap();
    }
    let mut call = accept(engine, server);
    let (mut heard, mut played, mut pcm) = (vec![], 0, [0i16; 4096]);
    let mut received: Vec<String> = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        loop {
            let n = call.session.read_audio(&mut pcm);
            heard.extend_from_slice(&pcm[..n]);
            if n == 0 {
                break;
            }
        }
        if played < reply.len() {
            played += call.session.play(&reply[played..], rate).unwrap_or(0);
        }
        let next = rt.block_on(async { tokio::time::timeout(Duration::from_millis(20), ws.next()).await });
        if let Ok(Some(Ok(Message::Text(t)))) = next {
            received.push(t.to_string());
        }
        if media_payloads(&received).iter().map(Vec::len).sum::<usize>() >= out_bytes
            && heard.len() >= in_samples
        {
            break;
        }
    }
    (media_payloads(&received), heard)
}

/// A route's dialect may carry options (`telnyx;codec=L16;rate=16000`): Telnyx then gets its
/// agent audio back as 16 kHz L16 (big-endian, as Telnyx sends it), sample for sample; and an
/// Exotel call whose `start` names no rate streams at the rate its URL's `?sample-rate=` asked
/// for, both ways.
#[test]
fn route_dialect_options_and_exotels_url_rate_shape_the_stream() {
    let engine = engine();
    // Default limits: sizing a session for Exotel's larger chunks is the dialect's business.
    let session = SessionConfig { agent_rate: 16_000, play_rate: 16_000, ..Default::default() };
    let route = |path: &str, dialect: &str| Route {
        path: path.into(),
        dialect: dialect.into(),
        ..Default::default()
    };
    let config = OffloadConfig {
        routes: vec![route("/telnyx", "telnyx;codec=L16;rate=16000"), route("/exotel", "exotel")],
        session,
        ..Default::default()
    };
    let server = OffloadServer::start(&engine, config).unwrap();
    let addr = server.local_addr();
    let reply = ramp(1600, 3); // 100 ms at 16 kHz

    // Telnyx: the caller sends 8 kHz µ-law; what it gets back is 16 kHz big-endian L16.
    let start = r#"{"event":"start","sequence_number":"1","stream_id":"s1","start":{"call_control_id":"c1","media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}"#;
    let (payloads, _) = call_with(
        &format!("ws://{addr}/telnyx"),
        vec![start.into()],
        &reply,
        16_000,
        &engine,
        &server,
        (3200, 0),
    );
    let sent: Vec<i16> =
        payloads.concat().chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])).collect();
    assert!(sent.len() >= reply.len(), "{} samples came back", sent.len());
    assert_eq!(&sent[..reply.len()], &reply[..], "16 kHz agent audio reaches Telnyx untouched, big-endian");

    // Exotel: no rate in `start`, 16 kHz from the URL: 100 ms of caller audio is 1600 samples,
    // delivered to the 16 kHz agent untouched, and the reply goes out untouched in 3200-byte
    // multiples.
    let caller = ramp(1600, 11);
    let start = r#"{"event":"start","sequence_number":"1","stream_sid":"x1","start":{"stream_sid":"x1","call_sid":"c2"}}"#;
    let media = format!(
        r#"{{"event":"media","sequence_number":"2","stream_sid":"x1","media":{{"chunk":"1","timestamp":"0","payload":"{}"}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(l16(&caller))
    );
    let (payloads, heard) = call_with(
        &format!("ws://{addr}/exotel?sample-rate=16000"),
        vec![start.into(), media],
        &reply,
        16_000,
        &engine,
        &server,
        (3200, caller.len()),
    );
    assert_eq!(&heard[..caller.len().min(heard.len())], &caller[..heard.len().min(caller.len())]);
    assert!(heard.len() >= caller.len(), "the agent heard {} of {} samples", heard.len(), caller.len());
    assert!(
        payloads.iter().all(|p| p.len() % 320 == 0 && p.len() >= 3200),
        "chunk sizes {:?}",
        payloads.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let sent: Vec<i16> =
        payloads.concat().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    assert_eq!(&sent[..reply.len()], &reply[..], "16 kHz agent audio reaches Exotel untouched");

    // An option a dialect cannot take stops the server from starting, with the reason.
    let bad = OffloadConfig { routes: vec![route("/t", "telnyx;codec=G729")], ..Default::default() };
    match OffloadServer::start(&engine, bad) {
        Err(e @ OffloadError::Dialect(_)) => assert!(e.to_string().contains("G729"), "{e}"),
        other => panic!("expected a dialect error, got {:?}", other.map(|_| ())),
    }
}

/// A `start` naming a stream the session cannot take (Exotel at 8001 Hz: no chunk of whole 20 ms
/// steps is a multiple of 320 bytes under Exotel's 100 KB cap) ends the connection
/// with 1003 and a protocol failure: the host is never handed a call that cannot start.
#[test]
fn a_start_the_session_cannot_take_ends_the_connection_unhanded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let engine = engine();
    let route = Route { path: "/exotel".into(), dialect: "exotel".into(), ..Default::default() };
    let server =
        OffloadServer::start(&engine, OffloadConfig { routes: vec![route], ..Default::default() }).unwrap();
    let addr = server.local_addr();
    let start = r#"{"event":"start","sequence_number":"1","stream_sid":"x2","start":{"stream_sid":"x2","call_sid":"c3","media_format":{"encoding":"audio/x-raw","sample_rate":"8001"}}}"#;
    let rt = runtime();
    let close = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/exotel")).await.unwrap();
        ws.send(Message::text(start)).await.unwrap();
        let frame = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Close(frame) = m {
                    return frame;
                }
            }
            None
        });
        frame.await.expect("the server closes the connection")
    });
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Unsupported));
    let stats = settled(&server, |s| s.active == 0);
    assert_eq!((stats.calls_opened, stats.protocol_failures), (0, 1), "{stats:?}");
    assert!(server.accept().is_none(), "a call was handed to the host");
}
