//! One simulated call: the carrier's side of a media stream, driven by a script.
//!
//! The task connects as the chosen carrier does (a WebSocket with the carrier's authentication,
//! or AudioSocket's plain TCP), sends the carrier's opening messages, then every 20 ms the next
//! frame of the caller's stream (impaired as configured; messages due together, as after a stall,
//! leave in one write), key presses as scripted and the carrier's hang-up at the end. What the bot
//! sends is read by the carrier's module ([`crate::carrier`]) and goes into the simulated
//! carrier's playout buffer, which echoes marks and obeys clears as that carrier does; caller
//! speech events (from the script's labels) and bot audio events are matched up into response
//! latency and barge-in reaction measurements, and the carrier's framing rules are checked on
//! every message.

use super::audio::{FRAME_BYTES, FRAME_MS, LineNoise};
use super::carrier::{CallIds, Carrier, Dialect, FromBot, Mark, PlayoutKind, Transport, Wire};
use super::echo::{EchoLine, EchoPath};
use super::impair::{Impairer, Impairments, Outgoing};
use super::playout::{BotLevels, CarrierPlayout, MediaOutcome, PlayoutConfig};
use super::result::{CallError, CallEvent, CallMetrics, CallResult, TimelineEntry};
use super::rng::SplitMix64;
use super::runner::Progress;
use super::script::{CallerMark, ReplyView, Script, ScriptCursor};
use super::transport::{self, Link};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How each simulated call connects and behaves.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The bot's URL: `ws://…` (or `wss://…` with the `tls` feature); for AudioSocket
    /// `tcp://HOST:PORT` (or `HOST:PORT`).
    pub url: String,
    /// The carrier callsim plays (default Twilio).
    pub dialect: Dialect,
    /// The call's custom parameters, in order: Twilio's `customParameters` (the TwiML
    /// `<Parameter>`s), and wherever each carrier carries its own (Telnyx and Exotel
    /// `custom_parameters`, Plivo `extra_headers`, Vonage's and jambonz's metadata).
    pub custom_parameters: Vec<(String, String)>,
    /// The account's secret: when set, the upgrade request carries the carrier's authentication
    /// (Twilio `X-Twilio-Signature`, Plivo `X-Plivo-Signature-V3`, Telnyx
    /// `x-telnyx-streaming-auth-token`, SignalWire and Vonage `Authorization: Bearer`, Exotel and
    /// jambonz `Authorization: Basic` of this `user:password`).
    pub auth_token: Option<String>,
    /// The URL to sign, if the bot sees another one than `url` (a proxy in front of it).
    pub signed_url: Option<String>,
    /// `accountSid` (default: one generated from `seed`, the same for every call of a run).
    pub account_sid: Option<String>,
    /// The call's id (`callSid`, Telnyx's call session, AudioSocket's UUID...) for every call,
    /// e.g. an AudioSocket UUID the bot allowed (default: one generated per call from `seed`).
    pub call_id: Option<String>,
    /// Network impairments of the caller's media.
    pub impairments: Impairments,
    /// Level (dBFS RMS) of the white noise the caller's line carries where the script plays no
    /// audio (waits, pauses, padding), like a real line's idle noise; `None`: digital silence
    /// (µ-law 0xFF). Default −70 dBFS.
    pub line_noise_dbfs: Option<f64>,
    /// The simulated carrier's playout.
    pub playout: PlayoutConfig,
    /// An echo of the bot's voice on the caller's line (what the caller heard, back `erl_db`
    /// quieter and `delay_ms` later); `None`: no echo.
    pub echo: Option<EchoPath>,
    /// Longest TCP + TLS + WebSocket handshake.
    pub connect_timeout: Duration,
    /// After the hang-up, how long to wait for the bot to close.
    pub close_timeout: Duration,
    /// Seed of the generated ids (each call derives its own).
    pub seed: u64,
    /// PEM file of the CA certificates trusted for `wss://` (default: `SSL_CERT_FILE`, else
    /// `/etc/ssl/certs/ca-certificates.crt`). Only with the `tls` feature.
    pub ca_file: Option<PathBuf>,
    /// Largest message accepted from the bot, bytes.
    pub max_message_bytes: usize,
}

impl CallOptions {
    /// Defaults for calls to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            dialect: Dialect::Twilio,
            custom_parameters: vec![],
            auth_token: None,
            signed_url: None,
            account_sid: None,
            call_id: None,
            impairments: Impairments::default(),
            line_noise_dbfs: Some(-70.0),
            playout: PlayoutConfig::default(),
            echo: None,
            connect_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
            seed: 1,
            ca_file: None,
            max_message_bytes: 1 << 20,
        }
    }
}

/// Runs call number `index` of a run (its ids and jitter derive from `options.seed` and `index`)
/// to the end of `script`. Never panics on network errors: a failed call has `error` set and
/// keeps what it measured.
pub async fn run_call(index: usize, options: &CallOptions, script: &Script) -> CallResult {
    run(index, options, script, None).await
}

pub(crate) async fn run(
    index: usize,
    options: &CallOptions,
    script: &Script,
    progress: Option<&Progress>,
) -> CallResult {
    let mut rng = SplitMix64::for_call(options.seed, index);
    let mut ids = options.dialect.ids(&mut rng, options.account_sid.as_deref(), options.seed);
    if let Some(id) = &options.call_id {
        ids.call_id.clone_from(id);
    }
    let uuid_ok = |id: &str| {
        id.chars().filter(|c| *c != '-').filter(char::is_ascii_hexdigit).count() == 32
            && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
    };
    let bad_uuid = options.dialect.is_tcp() && !uuid_ok(&ids.call_id);
    let mut call = Call::new(index, options, script, ids, progress);
    if bad_uuid {
        call.error =
            Some(CallError::Url(format!("AudioSocket's call id must be a UUID, not {:?}", call.ids.call_id)));
        return call.finish();
    }
    // However the bot behaves (a peer that stops reading stalls our sends), the call ends.
    let limit = options.connect_timeout
        + Duration::from_millis(script.max_duration_ms())
        + options.close_timeout
        + CALL_SLACK;
    match timeout(limit, connect_and_drive(&mut call)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => call.error = Some(e),
        Err(_) => call.error = Some(CallError::Connection(format!("call still running after {limit:?}"))),
    }
    call.finish()
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
}

/// Where a TCP dialect connects: `tcp://HOST:PORT` or `HOST:PORT`.
fn tcp_target(url: &str) -> Result<Target, CallError> {
    let rest = match url.split_once("://") {
        Some(("tcp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(CallError::Url(format!("scheme {scheme:?}: AudioSocket takes tcp://HOST:PORT")));
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| CallError::Url(format!("no port in {url}")))?;
    let port = port.parse().map_err(|_| CallError::Url(format!("bad port in {url}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    Ok(Target { tls: false, host, port })
}

fn request(options: &CallOptions, carrier: &dyn Carrier) -> Result<(Request, Target), CallError> {
    let mut req = options.url.as_str().into_client_request().map_err(|e| CallError::Url(e.to_string()))?;
    let uri = req.uri().clone();
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        other => return Err(CallError::Url(format!("scheme {other:?}: use ws:// or wss://"))),
    };
    let host = uri.host().ok_or_else(|| CallError::Url("no host".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bad = |e: &dyn std::fmt::Display| CallError::Url(e.to_string());
    let headers = req.headers_mut();
    for (name, value) in carrier.headers() {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Transport::WebSocket { subprotocol: Some(p) } = carrier.transport() {
        headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
    }
    if let Some(token) = &options.auth_token {
        let url = options.signed_url.as_deref().unwrap_or(&options.url);
        for (name, value) in carrier.auth_headers(url, token).map_err(|e| bad(&e))? {
            let name = HeaderName::try_from(name).map_err(|e| bad(&e))?;
            headers.insert(name, HeaderValue::from_str(&value).map_err(|e| bad(&e))?);
        }
    }
    Ok((req, Target { tls, host, port }))
}

async fn connect_and_drive(call: &mut Call<'_>) -> Result<(), CallError> {
    let began = Instant::now();
    let deadline = call.options.connect_timeout;
    let transport = call.carrier.transport();
    let (req, target) = match transport {
        Transport::Tcp => {
            if call.options.auth_token.is_some() {
                return Err(CallError::Url(format!(
                    "{} has no authentication to send",
                    call.options.dialect
                )));
            }
            (None, tcp_target(&call.options.url)?)
        }
        Transport::WebSocket { .. } => {
            let (req, target) = request(call.options, call.carrier.as_ref())?;
            (Some(req), target)
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(call.options.max_message_bytes))
        .max_frame_size(Some(call.options.max_message_bytes));
    let tcp = timeout(deadline, TcpStream::connect((target.host.as_str(), target.port)))
        .await
        .map_err(|_| CallError::Connect("timed out".into()))?
        .map_err(|e| CallError::Connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let Some(req) = req else {
        return call.drive(Link::Tcp { stream: tcp, read: vec![], write: vec![] }, began).await;
    };
    if target.tls {
        #[cfg(feature = "tls")]
        {
            let left = deadline.saturating_sub(began.elapsed());
            let stream = timeout(left, tls::connect(&target.host, tcp, call.options.ca_file.as_deref()))
                .await
                .map_err(|_| CallError::Connect("TLS handshake timed out".into()))??;
            let ws = handshake(req, stream, config, began, deadline, transport).await?;
            return call.drive(ws, began).await;
        }
        #[cfg(not(feature = "tls"))]
        return Err(CallError::Url("wss:// needs trunkline built with the `tls` feature".into()));
    }
    let ws = handshake(req, tcp, config, began, deadline, transport).await?;
    call.drive(ws, began).await
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    req: Request,
    stream: S,
    config: WebSocketConfig,
    began: Instant,
    deadline: Duration,
    transport: Transport,
) -> Result<Link<S>, CallError> {
    let left = deadline.saturating_sub(began.elapsed());
    let ws = match transport {
        Transport::WebSocket { subprotocol: Some(p) } => {
            transport::handshake_offering(req, stream, config, left, p).await?
        }
        _ => transport::handshake(req, stream, config, left).await?,
    };
    Ok(Link::Ws(Box::new(ws)))
}

#[cfg(feature = "tls")]
mod tls {
    use super::CallError;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::rustls::crypto::ring::default_provider;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    pub(super) async fn connect(
        host: &str,
        tcp: TcpStream,
        ca_file: Option<&Path>,
    ) -> Result<TlsStream<TcpStream>, CallError> {
        let err = |what: &str, e: &dyn std::fmt::Display| CallError::Connect(format!("TLS {what}: {e}"));
        let path = ca_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SSL_CERT_FILE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        let pem = std::fs::read(&path).map_err(|e| err(&format!("CA file {}", path.display()), &e))?;
        let mut roots = RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| err("CA file", &e))?;
            roots.add(cert).map_err(|e| err("CA certificate", &e))?;
        }
        let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| err("setup", &e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned()).map_err(|e| err("server name", &e))?;
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| err("handshake", &e))
    }
}

/// Allowance on top of a script's longest run before a call is abandoned.
const CALL_SLACK: Duration = Duration::from_secs(5);

/// Most bad messages (and framing violations) from the bot written to the timeline (all are
/// counted).
const MAX_BAD_LOGGED: u64 = 10;

/// A caller frame decided by the script and not yet handed to the carrier.
struct Recording {
    k: u64,
    stream_ms: u64,
    payload: [u8; FRAME_BYTES],
}

struct Call<'a> {
    index: usize,
    options: &'a CallOptions,
    progress: Option<&'a Progress>,
    ids: CallIds,
    carrier: Box<dyn Carrier>,
    t0: Instant,
    /// Next media frame index.
    frame: u64,
    /// Caller frames the carrier holds for its next media message (Exotel gathers 100 ms).
    frames_held: u64,
    /// The frame being "recorded": decided at its tick, handed to the carrier at the next one.
    recording: Option<Recording>,
    cursor: ScriptCursor<'a>,
    impairer: Impairer,
    queue: VecDeque<Outgoing>,
    /// Caller speech onsets and ends still to happen: (when, mark), in time order.
    caller_events: VecDeque<(Instant, CallerMark)>,
    playout: CarrierPlayout<Mark>,
    /// The bot's voice returning on the caller's line (`CallOptions::echo`).
    echo: Option<EchoLine>,
    timeline: Vec<TimelineEntry>,
    metrics: CallMetrics,
    /// End of the caller's last utterance, until a reply answers it.
    pending_turn: Option<Instant>,
    /// Onset of the caller's last barge-in, until a `clear` answers it.
    pending_barge: Option<Instant>,
    /// The bot's level as played, for when its voice dropped.
    levels: BotLevels,
    /// Every barge-in not measured yet ([`Self::measure_voice_drops`]): its onset, and the
    /// `clear` that answered it.
    barges: VecDeque<(Instant, Option<Instant>)>,
    /// Start of the bot's reply to the caller's last utterance.
    reply_start: Option<Instant>,
    /// Whether the caller finished an utterance since the current reply started (the bot's next
    /// audio after a silence answers it).
    caller_spoke: bool,
    script_done: bool,
    stop_queued: bool,
    /// When the call ended for the caller (its hang-up went out, or the bot closed): nothing
    /// the bot sent after it was heard.
    ended: Option<Instant>,
    /// Whether the hang-up is a message (else just the connection's close).
    stop_message: bool,
    error: Option<CallError>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const FRAME: Duration = Duration::from_millis(FRAME_MS);

impl<'a> Call<'a> {
    fn new(
        index: usize,
        options: &'a CallOptions,
        script: &'a Script,
        ids: CallIds,
        progress: Option<&'a Progress>,
    ) -> Self {
        Self {
            index,
            options,
            progress,
            carrier: options.dialect.carrier(&ids, &options.custom_parameters),
            ids,
            t0: Instant::now(),
            frame: 0,
            frames_held: 0,
            recording: None,
            cursor: ScriptCursor::new(
                script,
                LineNoise::new(
                    options.line_noise_dbfs,
                    SplitMix64::for_call(options.seed, index).next_u64() ^ 0x5A5A,
                ),
            ),
            impairer: Impairer::new(options.impairments, index, Instant::now()),
            queue: VecDeque::new(),
            caller_events: VecDeque::new(),
            playout: CarrierPlayout::new(options.playout),
            echo: options.echo.map(|path| {
                EchoLine::new(path, SplitMix64::for_call(options.seed, index).next_u64(), Instant::now())
            }),
            timeline: vec![],
            metrics: CallMetrics::default(),
            pending_turn: None,
            pending_barge: None,
            levels: BotLevels::default(),
            barges: VecDeque::new(),
            reply_start: None,
            caller_spoke: false,
            script_done: false,
            stop_queued: false,
            ended: None,
            stop_message: false,
            error: None,
        }
    }

    fn log(&mut self, at: Instant, event: CallEvent) {
        let stream_ms = if at >= self.t0 { ms(at - self.t0) } else { -ms(self.t0 - at) };
        self.timeline.push(TimelineEntry { at, stream_ms, event });
    }

    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut link: Link<S>,
        began: Instant,
    ) -> Result<(), CallError> {
        let connected_at = Instant::now();
        let handshake_ms = ms(connected_at - began);
        self.metrics.connect_ms = Some(handshake_ms);

        for message in self.carrier.opening() {
            link.feed(message).await?;
        }
        link.flush().await?;
        self.t0 = Instant::now();
        self.impairer.set_origin(self.t0);
        if let Some(echo) = &mut self.echo {
            echo.set_origin(self.t0);
        }
        self.log(connected_at, CallEvent::Connected { handshake_ms });
        let (stream_sid, call_sid) = (self.ids.stream_id.clone(), self.ids.call_id.clone());
        self.log(self.t0, CallEvent::StreamStarted { stream_sid, call_sid });

        let mut next_tick = self.t0;
        loop {
            let now = Instant::now();
            self.caller_events_due(now);
            self.marks_due(now);
            while !self.script_done && now >= next_tick {
                self.tick(next_tick);
                next_tick += FRAME;
            }
            self.measure_voice_drops(now, None);
            let mut sent = false;
            while self.queue.front().is_some_and(|m| m.due <= now) {
                let m = self.queue.pop_front().expect("checked");
                if m.frames > 0 {
                    self.metrics.frames_sent += m.frames;
                    if let Some(p) = self.progress {
                        p.frames_sent.fetch_add(m.frames, Ordering::Relaxed);
                    }
                }
                link.feed(m.msg).await?;
                sent = true;
            }
            if sent {
                link.flush().await?;
            }
            if self.stop_queued && self.queue.is_empty() {
                // A carrier without a stop message hangs up by closing the connection.
                let now = Instant::now();
                if self.stop_message {
                    self.log(now, CallEvent::StopSent);
                }
                self.ended = Some(now);
                break;
            }
            let deadline = [
                (!self.script_done).then_some(next_tick),
                self.queue.front().map(|m| m.due),
                self.caller_events.front().map(|e| e.0),
                self.playout.next_mark_due(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + FRAME);
            tokio::select! {
                biased;
                msg = link.recv() => match msg {
                    Some(Ok(message)) => {
                        if self.on_message(Instant::now(), &message) {
                            return self.closed_by_bot();
                        }
                    }
                    None => return self.closed_by_bot(),
                    Some(Err(e)) => return Err(e),
                },
                _ = sleep_until(deadline.into()) => {}
            }
        }

        // Hang up as the carrier does: its stop message (if it has one) went out, now close and
        // wait (briefly) for the bot's close.
        link.close(self.options.close_timeout).await;
        self.log(Instant::now(), CallEvent::Closed { by_bot: false });
        Ok(())
    }

    fn closed_by_bot(&mut self) -> Result<(), CallError> {
        let now = Instant::now();
        self.ended = Some(now);
        self.log(now, CallEvent::Closed { by_bot: true });
        Err(CallError::ClosedEarly { at_ms: ms(now - self.t0) })
    }

    /// The frame starting at `tick` (stream time `20 × frame`) is decided now and handed to the
    /// carrier when it has been "recorded", at the next tick. Decided as of `tick` itself, not
    /// when this task got to it, so a late wake-up does not move the caller's speech.
    fn tick(&mut self, tick: Instant) {
        self.hand_recorded(tick);
        let stream_ms = self.frame * FRAME_MS;
        let view = ReplyView {
            now: tick,
            reply_start: self.reply_start,
            silent_since: self.playout.silent_since(tick),
        };
        let frame = self.cursor.next_frame(stream_ms, &view);
        for what in frame.timeouts {
            self.log(tick, CallEvent::WaitTimedOut { what });
        }
        for (at_ms, mark) in frame.speech {
            let at = self.t0 + Duration::from_millis(at_ms);
            let pos = self.caller_events.partition_point(|e| e.0 <= at);
            self.caller_events.insert(pos, (at, mark));
        }
        for digit in frame.dtmf {
            if let Some(msg) = self.carrier.dtmf(digit, stream_ms) {
                self.impairer.control(tick, msg, &mut self.queue);
            }
            self.log(tick, CallEvent::DtmfSent { digit });
        }
        let Some(payload) = frame.payload else {
            self.hang_up(tick);
            return;
        };
        let k = self.frame;
        self.frame += 1;
        self.recording = Some(Recording { k, stream_ms, payload });
    }

    /// The frame recorded until `now` goes to the carrier: it takes the echo of everything the
    /// caller heard meanwhile, and the carrier numbers it now, after any message it sent while
    /// the frame was being recorded (a mark's echo, a key press), as it sends them.
    fn hand_recorded(&mut self, now: Instant) {
        let Some(Recording { k, stream_ms, mut payload }) = self.recording.take() else { return };
        if self.options.impairments.drops(k) {
            self.impairer.count_drop();
            return;
        }
        if let Some(echo) = &mut self.echo {
            echo.mix(stream_ms, &mut payload);
        }
        self.frames_held += 1;
        if let Some(msg) = self.carrier.media(&payload, stream_ms) {
            let frames = std::mem::take(&mut self.frames_held);
            self.impairer.media(k, now, msg, frames, &mut self.queue);
        }
    }

    /// The script is over at `tick`: what the carrier still holds goes out, then its hang-up.
    fn hang_up(&mut self, tick: Instant) {
        self.script_done = true;
        if let Some(rest) = self.carrier.flush_media() {
            let frames = std::mem::take(&mut self.frames_held);
            self.impairer.media(self.frame, tick, rest, frames, &mut self.queue);
        }
        self.impairer.flush(tick, &mut self.queue);
        if let Some(stop) = self.carrier.hangup() {
            self.impairer.control(tick, stop, &mut self.queue);
            self.stop_message = true;
        }
        self.stop_queued = true;
    }

    fn caller_events_due(&mut self, now: Instant) {
        while self.caller_events.front().is_some_and(|e| e.0 <= now) {
            let (at, mark) = self.caller_events.pop_front().expect("checked");
            match mark {
                CallerMark::SpeechStart => {
                    if self.pending_turn.take().is_some() {
                        self.metrics.turns_unanswered += 1;
                    }
                    let over_bot = self.playout.is_playing(at);
                    if over_bot {
                        self.metrics.barge_ins += 1;
                        self.barges.push_back((at, None));
                    }
                    let previous =
                        if over_bot { self.pending_barge.replace(at) } else { self.pending_barge.take() };
                    if previous.is_some() {
                        self.metrics.barge_ins_without_clear += 1;
                    }
                    self.log(at, CallEvent::CallerSpeechStarted { over_bot });
                }
                CallerMark::SpeechEnd => {
                    self.metrics.turns += 1;
                    self.pending_turn = Some(at);
                    self.reply_start = None;
                    self.caller_spoke = true;
                    self.log(at, CallEvent::CallerSpeechStopped);
                }
            }
        }
    }

    fn marks_due(&mut self, now: Instant) {
        for mark in self.playout.due_marks(now) {
            self.echo(now, mark, false);
        }
    }

    fn echo(&mut self, now: Instant, mark: Mark, cleared: bool) {
        // After its hang-up (its stop may still be held by the impairments) a carrier sends
        // nothing more.
        if self.stop_queued {
            return;
        }
        match self.carrier.echo(&mark, cleared) {
            Some(msg) => {
                self.impairer.control(now, msg, &mut self.queue);
                self.log(now, CallEvent::MarkEchoed { name: mark.name, cleared });
            }
            None if cleared => {
                self.metrics.marks_dropped += 1;
                self.log(now, CallEvent::MarkDropped { name: mark.name });
            }
            // A carrier without marks never queues one.
            None => {}
        }
    }

    fn bad(&mut self, detail: String) {
        self.metrics.bad_messages += 1;
        if self.metrics.bad_messages <= MAX_BAD_LOGGED {
            self.log(Instant::now(), CallEvent::BadMessage { detail });
        }
    }

    fn violation(&mut self, at: Instant, detail: String) {
        self.metrics.framing_violations += 1;
        if self.metrics.framing_violations <= MAX_BAD_LOGGED {
            self.log(at, CallEvent::FramingViolation { detail });
        }
    }

    /// Handles one message from the bot; `true` if it hung up.
    fn on_message(&mut self, now: Instant, message: &Wire) -> bool {
        // Marks whose audio played before this message are acknowledged before it is handled.
        self.marks_due(now);
        let read = self.carrier.read(message);
        for rule in read.violations {
            self.violation(now, rule);
        }
        match read.what {
            None => {}
            Some(Err(detail)) => self.bad(detail),
            Some(Ok(FromBot::Audio { ms: dur_ms, pcm })) => {
                if let Some(echo) = &mut self.echo {
                    echo.played(self.playout.play_start(now), &pcm);
                }
                self.levels.played(self.playout.play_start(now), &pcm);
                self.on_audio(now, dur_ms)
            }
            Some(Ok(FromBot::Mark(mark))) => self.on_mark(now, mark),
            Some(Ok(FromBot::Clear)) => self.on_clear(now),
            Some(Ok(FromBot::Accepted(_))) => {}
            Some(Ok(FromBot::Hangup)) => return true,
        }
        false
    }

    fn on_audio(&mut self, now: Instant, dur_ms: f64) {
        if let Some(p) = self.progress {
            p.bot_frames.fetch_add(1, Ordering::Relaxed);
        }
        match self.playout.on_audio(now, dur_ms, self.caller_spoke) {
            MediaOutcome::ReplyStarted { previous } => {
                self.caller_spoke = false;
                // The reply the caller spoke over is over, uncut: a clear from now on answers
                // something else.
                if self.pending_barge.take().is_some() {
                    self.metrics.barge_ins_without_clear += 1;
                }
                if let Some(end) = previous {
                    self.log(
                        end.at,
                        CallEvent::BotReplyEnded { played_ms: end.played_ms, cleared: end.cleared },
                    );
                }
                let response_ms = self.pending_turn.take().map(|end| ms(now.saturating_duration_since(end)));
                self.metrics.response_ms.extend(response_ms);
                self.reply_start = Some(now);
                self.log(now, CallEvent::BotReplyStarted { response_ms });
            }
            MediaOutcome::Underrun { gap_ms } => self.log(now, CallEvent::BotUnderrun { gap_ms }),
            MediaOutcome::Continued => {}
        }
        // A carrier that plays on arrival cannot hold audio sent too far ahead.
        if let PlayoutKind::OnArrival { max_lead_ms } = self.carrier.playout() {
            let ahead = self.playout.buffered_ms(now);
            if ahead > max_lead_ms {
                self.violation(
                    now,
                    format!("overrun: audio {ahead:.0} ms ahead of real time (at most {max_lead_ms:.0} ms: the bot must pace)"),
                );
            }
        }
    }

    fn on_mark(&mut self, now: Instant, mark: Mark) {
        let rules = self.carrier.mark_rules();
        if let Some(max) = rules.max_outstanding.filter(|max| self.playout.marks_outstanding() >= *max) {
            self.bad(format!(
                "mark '{}' discarded: {max} marks already outstanding (the carrier keeps {max})",
                mark.name
            ));
            return;
        }
        if rules.wait_for_next_audio {
            self.playout.on_mark_before_next_audio(mark);
        } else if let Some(mark) = self.playout.on_mark(now, mark) {
            self.echo(now, mark, false);
        }
    }

    fn on_clear(&mut self, now: Instant) {
        let outcome = self.playout.on_clear(now);
        if let Some(echo) = &mut self.echo {
            echo.cleared(now);
        }
        self.metrics.clears += 1;
        self.levels.cleared(now);
        let reaction_ms = self.pending_barge.take().map(|onset| ms(now.saturating_duration_since(onset)));
        if let (Some(_), Some(last)) = (reaction_ms, self.barges.back_mut()) {
            last.1 = Some(now);
        }
        match reaction_ms {
            Some(r) => self.metrics.barge_in_reaction_ms.push(r),
            None => self.metrics.clears_unprompted += 1,
        }
        if let Some(end) = outcome.reply {
            self.log(end.at, CallEvent::BotReplyEnded { played_ms: end.played_ms, cleared: end.cleared });
        }
        let played_ms = outcome.reply.map(|r| r.played_ms);
        self.log(now, CallEvent::ClearReceived { reaction_ms, dropped_ms: outcome.dropped_ms, played_ms });
        for mark in outcome.flushed {
            self.echo(now, mark, true);
        }
        // Nothing after the hang-up, as for mark echoes.
        if !self.stop_queued
            && let Some(ack) = self.carrier.clear_ack()
        {
            self.impairer.control(now, ack, &mut self.queue);
        }
    }

    /// For each barge-in, in order, once nothing can change it any more (by `now`; all of them
    /// at `end`, the call's end): when the bot's voice dropped (10 dB down or silent, or the
    /// `clear`), or, if no `clear` answered it, how long in the next 2 s (up to the next barge-in
    /// or the call's end) the bot played 10 dB down or not at all (a bot that ducks for a
    /// backchannel dips; one that does not, plays on; one that stops talking dips until it talks
    /// again). Then the bot's levels that no onset still to measure can look at are forgotten,
    /// so that a long call's memory does not grow with its length. Called once the ticks due by
    /// `now` are done: an onset still to come is in `caller_events` or after `now`.
    fn measure_voice_drops(&mut self, now: Instant, end: Option<Instant>) {
        while let Some(&(onset, clear)) = self.barges.front() {
            let next = self.barges.get(1).map(|b| b.0);
            match clear {
                // What played before the clear is all there will be.
                Some(clear) => {
                    let drop = self.levels.drop_after(onset, clear).map_or(clear, |d| d.min(clear));
                    self.metrics.voice_drop_ms.push(ms(drop.saturating_duration_since(onset)));
                }
                None => {
                    let until =
                        [next, end].into_iter().flatten().fold(onset + Duration::from_secs(2), Instant::min);
                    // Unless it ended, a barge-in waits for its clear while it is the pending one,
                    // and, if none comes, for its 2 s to have played with no onset cutting them
                    // short.
                    let open = end.is_none()
                        && next.is_none()
                        && (self.pending_barge.is_some()
                            || now < until
                            || self.caller_events.front().is_some_and(|e| e.0 < until));
                    if open {
                        break;
                    }
                    self.metrics.barge_in_dip_ms.push(self.levels.dip_ms(onset, until));
                }
            }
            self.barges.pop_front();
        }
        let horizon = [self.barges.front().map(|b| b.0), self.caller_events.front().map(|e| e.0)]
            .into_iter()
            .flatten()
            .fold(now, Instant::min);
        self.levels.forget_before(horizon);
    }

    fn finish(mut self) -> CallResult {
        let now = Instant::now();
        // The reply playing at the hang-up ends there: the wait for the bot's close after it
        // is no audio the caller heard.
        if let Some(end) = self.playout.finish(self.ended.unwrap_or(now)) {
            self.log(end.at, CallEvent::BotReplyEnded { played_ms: end.played_ms, cleared: end.cleared });
        }
        for rule in self.carrier.finish() {
            self.violation(now, rule);
        }
        // Whatever the script did not reach still counts: speech it had scheduled, turns and
        // barge-ins nobody answered.
        self.caller_events.retain(|e| e.0 <= now);
        self.caller_events_due(now);
        if self.pending_turn.take().is_some() {
            self.metrics.turns_unanswered += 1;
        }
        if self.pending_barge.take().is_some() {
            self.metrics.barge_ins_without_clear += 1;
        }
        self.measure_voice_drops(now, Some(self.ended.unwrap_or(now)));
        let s = self.playout.stats().clone();
        let m = &mut self.metrics;
        m.replies = s.replies;
        m.bot_frames = s.frames;
        m.bot_audio_ms = s.audio_ms;
        m.underruns = s.underruns;
        m.underrun_ms = s.underrun_ms;
        m.frame_lateness_ms = s.lateness_ms;
        m.jitter_ms = s.jitter_ms;
        m.marks = s.marks;
        m.marks_played = s.marks_played;
        m.marks_cleared = s.marks_cleared;
        m.impairments = self.impairer.counts;
        self.timeline.sort_by_key(|e| e.at);
        CallResult {
            index: self.index,
            dialect: self.options.dialect,
            stream_sid: self.ids.stream_id,
            call_sid: self.ids.call_id,
            stream_start: self.t0,
            error: self.error,
            timeline: self.timeline,
            metrics: self.metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use trunkline::codec::{linear_to_ulaw, ulaw_to_linear};

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A call as `drive` has it once its stream started at `t0`, with no connection: the tests
    /// hand it what the bot sends and read what it queued.
    fn call<'a>(options: &'a CallOptions, script: &'a Script, t0: Instant) -> Call<'a> {
        let ids = options.dialect.ids(&mut SplitMix64::for_call(options.seed, 0), None, options.seed);
        let mut call = Call::new(0, options, script, ids, None);
        call.t0 = t0;
        call.impairer.set_origin(t0);
        call
    }

    /// `ms` of a steady tone at `amp`, as µ-law.
    fn tone(amp: f64, ms: u32) -> Vec<u8> {
        (0..8 * ms).map(|i| linear_to_ulaw((amp * (f64::from(i) * 0.7).sin()) as i16)).collect()
    }

    fn twilio(sid: &str, event: &str, body: serde_json::Value) -> Wire {
        let mut msg = serde_json::json!({"event": event, "streamSid": sid});
        if !body.is_null() {
            msg[event] = body;
        }
        Wire::Text(msg.to_string())
    }

    fn media(sid: &str, ulaw: &[u8]) -> Wire {
        let payload = base64::engine::general_purpose::STANDARD.encode(ulaw);
        twilio(sid, "media", serde_json::json!({"payload": payload}))
    }

    fn mark(sid: &str, name: &str) -> Wire {
        twilio(sid, "mark", serde_json::json!({"name": name}))
    }

    /// What the call queued for the bot: each message's event and when it leaves.
    fn queued(call: &Call) -> Vec<(String, Instant)> {
        let event = |w: &Wire| match w {
            Wire::Text(t) => serde_json::from_str::<serde_json::Value>(t).unwrap()["event"].to_string(),
            Wire::Binary(_) => "binary".into(),
        };
        call.queue.iter().map(|m| (event(&m.msg), m.due)).collect()
    }

    #[test]
    fn nothing_is_sent_after_the_hang_up_while_its_stop_is_held() {
        let t0 = Instant::now();
        let script = Script::new();
        let mut options = CallOptions::new("ws://127.0.0.1:9/");
        // A network stall from 1 s to 1.5 s holds what the caller's side sends meanwhile.
        options.impairments = Impairments { stall_every_ms: 1_000, stall_ms: 500, ..Default::default() };
        let mut c = call(&options, &script, t0);
        let sid = c.ids.stream_id.clone();
        // 100 ms of audio and a mark after it (due at 1150); the hang-up at 1100: its stop leaves
        // when the stall ends.
        c.on_message(at(t0, 1_050), &media(&sid, &tone(8_000.0, 100)));
        c.on_message(at(t0, 1_050), &mark(&sid, "played"));
        c.hang_up(at(t0, 1_100));
        let stop = vec![("\"stop\"".to_owned(), at(t0, 1_500))];
        assert_eq!(queued(&c), stop);
        // Meanwhile the mark's audio plays out, more audio and a mark come and a clear flushes
        // them, and one more mark comes with nothing buffered: Twilio would echo each of them,
        // but it has hung up.
        c.marks_due(at(t0, 1_200));
        c.on_message(at(t0, 1_210), &media(&sid, &tone(8_000.0, 20)));
        c.on_message(at(t0, 1_210), &mark(&sid, "flushed"));
        c.on_message(at(t0, 1_220), &twilio(&sid, "clear", serde_json::Value::Null));
        c.on_message(at(t0, 1_240), &mark(&sid, "at once"));
        assert_eq!(queued(&c), stop, "the stop is the last message");
        assert!(!c.timeline.iter().any(|e| matches!(e.event, CallEvent::MarkEchoed { .. })));
        assert_eq!((c.metrics.clears, c.playout.stats().marks), (1, 3));

        // Plivo hangs up by closing the connection, and acknowledges a clear: not after that.
        options.dialect = Dialect::Plivo;
        let mut c = call(&options, &script, t0);
        let clear = serde_json::json!({"event": "clearAudio", "streamId": c.ids.stream_id});
        c.hang_up(at(t0, 1_100));
        c.on_message(at(t0, 1_200), &Wire::Text(clear.to_string()));
        assert_eq!((queued(&c), c.metrics.clears), (vec![], 1));
    }

    #[test]
    fn a_long_call_measures_its_barge_ins_keeping_a_bounded_span_of_the_bots_levels() {
        const CYCLE: u64 = 4_000;
        const CYCLES: u64 = 150;
        let t0 = Instant::now();
        let script = Script::new();
        let options = CallOptions::new("ws://127.0.0.1:9/");
        let mut c = call(&options, &script, t0);
        let sid = c.ids.stream_id.clone();
        let (loud, ducked) = (tone(8_000.0, 20), tone(1_000.0, 20));
        let pcm = |ulaw: &[u8]| -> Vec<i16> { ulaw.iter().map(|&b| ulaw_to_linear(b)).collect() };
        let clear = twilio(&sid, "clear", serde_json::Value::Null);
        // The bot's levels as played, all of them, and every barge-in, for the measurement as it
        // was made over the whole call at its end.
        let (mut all, mut barges) = (BotLevels::default(), vec![]);
        let mut most_windows = 0;
        // Ten minutes of the bot talking on, paced, 18 dB down (ducked) while marked below. Each
        // 4 s the caller barges in at 1010 ms, the bot ducks at 1120 and clears at 1300; then
        // the caller says "mm-hm" at 3010, the bot ducks 3060..3260 and talks on.
        for k in 0..CYCLES * CYCLE / 20 {
            let (t, now) = (k * 20, at(t0, k * 20));
            let m = t % CYCLE;
            if m == 0 {
                // Known ahead, as a script's clip's speech is once it starts.
                c.caller_events.push_back((at(t0, t + 1_010), CallerMark::SpeechStart));
                c.caller_events.push_back((at(t0, t + 3_010), CallerMark::SpeechStart));
                barges.push((at(t0, t + 1_010), Some(at(t0, t + 1_300))));
                barges.push((at(t0, t + 3_010), None));
            }
            // What each pass of the call's loop does first.
            c.caller_events_due(now);
            c.marks_due(now);
            c.measure_voice_drops(now, None);
            most_windows = most_windows.max(c.levels.windows());
            if m == 1_300 {
                c.on_message(now, &clear);
                all.cleared(now);
            }
            let frame =
                if (1_120..1_300).contains(&m) || (3_060..3_260).contains(&m) { &ducked } else { &loud };
            c.on_message(now, &media(&sid, frame));
            all.played(now, &pcm(frame));
        }
        let end = at(t0, CYCLES * CYCLE);
        c.measure_voice_drops(end, Some(end));

        // The measurement over everything kept.
        let (mut drops, mut dips) = (vec![], vec![]);
        for (i, &(onset, clear)) in barges.iter().enumerate() {
            let next = barges.get(i + 1).map_or(end, |b| b.0);
            match clear {
                Some(clear) => {
                    let drop = all.drop_after(onset, clear).map_or(clear, |d| d.min(clear));
                    drops.push(ms(drop.saturating_duration_since(onset)));
                }
                None => dips.push(all.dip_ms(onset, next.min(onset + Duration::from_secs(2)))),
            }
        }
        let m = &c.metrics;
        assert_eq!(
            (m.barge_ins, m.clears, m.barge_in_reaction_ms.len()),
            (2 * CYCLES, CYCLES, CYCLES as usize)
        );
        assert_eq!((&m.voice_drop_ms, &m.barge_in_dip_ms), (&drops, &dips));
        // By hand: the voice dropped 110 ms after each onset answered, clear after 290 ms; each
        // "mm-hm" dipped it for 200 ms.
        assert!(m.barge_in_reaction_ms.iter().all(|r| (r - 290.0).abs() < 1e-6));
        assert!(drops.iter().all(|d| (d - 110.0).abs() < 1e-6), "{drops:?}");
        assert!(dips.len() == CYCLES as usize && dips.iter().all(|d| (d - 200.0).abs() < 1e-6), "{dips:?}");
        // At most the 10 ms windows of the 2.5 s a backchannel's measurement spans (its 0.5 s
        // reference and 2 s after it), not the call's 60,000.
        assert!(most_windows <= 260, "{most_windows}");
    }
}
