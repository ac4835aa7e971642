//! One simulated call: the carrier's side of a Media Streams WebSocket, driven by a script.
//!
//! The task connects (with `X-Twilio-Signature` when an auth token is given), sends `connected`
//! and `start`, then every 20 ms the next frame of the caller's stream (impaired as configured;
//! messages due together, as after a stall, leave in one write), plus `dtmf` as scripted and `stop` at the end. What the bot sends goes into the simulated
//! carrier's playout buffer, which echoes marks and obeys `clear` like Twilio; caller speech events
//! (from the script's labels) and bot audio events are matched up into response latency and
//! barge-in reaction measurements.

use super::audio::{FRAME_BYTES, FRAME_MS, LineNoise};
use super::impair::{Impairer, Impairments, Outgoing};
use super::playout::{CarrierPlayout, MediaOutcome, PlayoutConfig};
use super::result::{CallError, CallEvent, CallMetrics, CallResult, TimelineEntry};
use super::rng::SplitMix64;
use super::runner::Progress;
use super::script::{CallerMark, ReplyView, Script, ScriptCursor};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use trunkline::protocol::signature::twilio_signature;

/// How each simulated call connects and behaves.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The bot's Media Streams URL (`ws://…`, or `wss://…` with the `tls` feature).
    pub url: String,
    /// `customParameters` of `start` (the TwiML `<Parameter>`s), in order.
    pub custom_parameters: Vec<(String, String)>,
    /// The account's auth token: when set, the upgrade request carries `X-Twilio-Signature`.
    pub auth_token: Option<String>,
    /// The URL to sign, if the bot sees another one than `url` (a proxy in front of it).
    pub signed_url: Option<String>,
    /// `accountSid` (default: one generated from `seed`, the same for every call of a run).
    pub account_sid: Option<String>,
    /// Network impairments of the caller's media.
    pub impairments: Impairments,
    /// Level (dBFS RMS) of the white noise the caller's line carries where the script plays no
    /// audio (waits, pauses, padding), like a real line's idle noise; `None`: digital silence
    /// (µ-law 0xFF). Default −70 dBFS.
    pub line_noise_dbfs: Option<f64>,
    /// The simulated carrier's playout.
    pub playout: PlayoutConfig,
    /// Longest TCP + TLS + WebSocket handshake.
    pub connect_timeout: Duration,
    /// After `stop`, how long to wait for the bot to close.
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
            custom_parameters: vec![],
            auth_token: None,
            signed_url: None,
            account_sid: None,
            impairments: Impairments::default(),
            line_noise_dbfs: Some(-70.0),
            playout: PlayoutConfig::default(),
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
    let mut ids = SplitMix64::for_call(options.seed, index);
    let stream_sid = ids.sid("MZ");
    let call_sid = ids.sid("CA");
    let account_sid = options.account_sid.clone().unwrap_or_else(|| SplitMix64::new(options.seed).sid("AC"));
    let mut call = Call::new(index, options, script, stream_sid, call_sid, account_sid, progress);
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

fn request(options: &CallOptions) -> Result<(Request, Target), CallError> {
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
    let headers = req.headers_mut();
    headers.insert("User-Agent", HeaderValue::from_static("TwilioProxy/1.1"));
    if let Some(token) = &options.auth_token {
        let url = options.signed_url.as_deref().unwrap_or(&options.url);
        let sig = twilio_signature(token, url, &[]);
        headers.insert(
            "X-Twilio-Signature",
            HeaderValue::from_str(&sig).map_err(|e| CallError::Url(e.to_string()))?,
        );
    }
    Ok((req, Target { tls, host, port }))
}

async fn connect_and_drive(call: &mut Call<'_>) -> Result<(), CallError> {
    let (req, target) = request(call.options)?;
    let began = Instant::now();
    let config = WebSocketConfig::default()
        .max_message_size(Some(call.options.max_message_bytes))
        .max_frame_size(Some(call.options.max_message_bytes));
    let deadline = call.options.connect_timeout;
    let tcp = timeout(deadline, TcpStream::connect((target.host.as_str(), target.port)))
        .await
        .map_err(|_| CallError::Connect("timed out".into()))?
        .map_err(|e| CallError::Connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    if target.tls {
        #[cfg(feature = "tls")]
        {
            let left = deadline.saturating_sub(began.elapsed());
            let stream = timeout(left, tls::connect(&target.host, tcp, call.options.ca_file.as_deref()))
                .await
                .map_err(|_| CallError::Connect("TLS handshake timed out".into()))??;
            let ws = handshake(req, stream, config, began, deadline).await?;
            return call.drive(ws, began).await;
        }
        #[cfg(not(feature = "tls"))]
        return Err(CallError::Url("wss:// needs trunkline built with the `tls` feature".into()));
    }
    let ws = handshake(req, tcp, config, began, deadline).await?;
    call.drive(ws, began).await
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    req: Request,
    stream: S,
    config: WebSocketConfig,
    began: Instant,
    deadline: Duration,
) -> Result<WebSocketStream<S>, CallError> {
    use tokio_tungstenite::tungstenite::Error;
    let left = deadline.saturating_sub(began.elapsed());
    match timeout(left, tokio_tungstenite::client_async_with_config(req, stream, Some(config))).await {
        Err(_) => Err(CallError::Handshake("timed out".into())),
        Ok(Err(Error::Http(resp))) => Err(CallError::Refused(resp.status().as_u16())),
        Ok(Err(e)) => Err(CallError::Handshake(e.to_string())),
        Ok(Ok((ws, _))) => Ok(ws),
    }
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

/// Most bad messages from the bot written to the timeline (all are counted).
const MAX_BAD_LOGGED: u64 = 10;

struct Call<'a> {
    index: usize,
    options: &'a CallOptions,
    progress: Option<&'a Progress>,
    stream_sid: String,
    call_sid: String,
    account_sid: String,
    t0: Instant,
    seq: u64,
    chunk: u64,
    /// Next media frame index.
    frame: u64,
    cursor: ScriptCursor<'a>,
    impairer: Impairer,
    queue: VecDeque<Outgoing>,
    /// Caller speech onsets and ends still to happen: (when, mark), in time order.
    caller_events: VecDeque<(Instant, CallerMark)>,
    playout: CarrierPlayout,
    timeline: Vec<TimelineEntry>,
    metrics: CallMetrics,
    /// End of the caller's last utterance, until a reply answers it.
    pending_turn: Option<Instant>,
    /// Onset of the caller's last barge-in, until a `clear` answers it.
    pending_barge: Option<Instant>,
    /// Start of the bot's reply to the caller's last utterance.
    reply_start: Option<Instant>,
    /// Whether the caller finished an utterance since the bot's last frame.
    caller_spoke: bool,
    script_done: bool,
    stop_queued: bool,
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
        stream_sid: String,
        call_sid: String,
        account_sid: String,
        progress: Option<&'a Progress>,
    ) -> Self {
        Self {
            index,
            options,
            progress,
            stream_sid,
            call_sid,
            account_sid,
            t0: Instant::now(),
            seq: 0,
            chunk: 0,
            frame: 0,
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
            timeline: vec![],
            metrics: CallMetrics::default(),
            pending_turn: None,
            pending_barge: None,
            reply_start: None,
            caller_spoke: false,
            script_done: false,
            stop_queued: false,
            error: None,
        }
    }

    fn log(&mut self, at: Instant, event: CallEvent) {
        let stream_ms = if at >= self.t0 { ms(at - self.t0) } else { -ms(self.t0 - at) };
        self.timeline.push(TimelineEntry { at, stream_ms, event });
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: WebSocketStream<S>,
        began: Instant,
    ) -> Result<(), CallError> {
        let connected_at = Instant::now();
        let handshake_ms = ms(connected_at - began);
        self.metrics.connect_ms = Some(handshake_ms);
        let (mut sink, mut incoming) = ws.split();
        let io = |e: tokio_tungstenite::tungstenite::Error| CallError::Connection(e.to_string());

        sink.send(Message::text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#))
            .await
            .map_err(io)?;
        let start = self.start_message();
        sink.send(Message::text(start)).await.map_err(io)?;
        self.t0 = Instant::now();
        self.impairer.set_origin(self.t0);
        self.log(connected_at, CallEvent::Connected { handshake_ms });
        let (stream_sid, call_sid) = (self.stream_sid.clone(), self.call_sid.clone());
        self.log(self.t0, CallEvent::StreamStarted { stream_sid, call_sid });

        let mut next_tick = self.t0;
        loop {
            let now = Instant::now();
            self.caller_events_due(now);
            for name in self.playout.due_marks(now) {
                self.echo(now, name, false);
            }
            while !self.script_done && now >= next_tick {
                self.tick(next_tick);
                next_tick += FRAME;
            }
            let mut sent = false;
            while self.queue.front().is_some_and(|m| m.due <= now) {
                let m = self.queue.pop_front().expect("checked");
                if m.is_media {
                    self.metrics.frames_sent += 1;
                    if let Some(p) = self.progress {
                        p.frames_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sink.feed(Message::text(m.text)).await.map_err(io)?;
                sent = true;
            }
            if sent {
                sink.flush().await.map_err(io)?;
            }
            if self.stop_queued && self.queue.is_empty() {
                self.log(Instant::now(), CallEvent::StopSent);
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
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_message(Instant::now(), text.as_str()),
                    Some(Ok(Message::Binary(_))) => self.bad("binary frame (Twilio takes JSON text frames)".into()),
                    Some(Ok(Message::Close(_))) | None => {
                        let now = Instant::now();
                        self.log(now, CallEvent::Closed { by_bot: true });
                        return Err(CallError::ClosedEarly { at_ms: ms(now - self.t0) });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(io(e)),
                },
                _ = sleep_until(deadline.into()) => {}
            }
        }

        // Hang up like Twilio: `stop` went out, now close and wait (briefly) for the bot's close.
        let _ = sink.send(Message::Close(None)).await;
        let closing = async {
            while let Some(msg) = incoming.next().await {
                if matches!(msg, Ok(Message::Close(_)) | Err(_)) {
                    break;
                }
            }
        };
        let _ = timeout(self.options.close_timeout, closing).await;
        self.log(Instant::now(), CallEvent::Closed { by_bot: false });
        Ok(())
    }

    fn start_message(&mut self) -> String {
        let seq = self.next_seq();
        // Built by hand to keep the parameters in their order (as Twilio sends the TwiML's).
        let q = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        let params: Vec<String> =
            self.options.custom_parameters.iter().map(|(k, v)| format!("{}:{}", q(k), q(v))).collect();
        format!(
            r#"{{"event":"start","sequenceNumber":"{seq}","start":{{"accountSid":{},"streamSid":{},"callSid":{},"tracks":["inbound"],"customParameters":{{{}}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":{}}}"#,
            q(&self.account_sid),
            q(&self.stream_sid),
            q(&self.call_sid),
            params.join(","),
            q(&self.stream_sid),
        )
    }

    /// The frame starting at `tick` (stream time `20 × frame`) is decided now and sent when it
    /// has been "recorded", one frame later. Decided as of `tick` itself, not when this task got
    /// to it, so a late wake-up does not move the caller's speech.
    fn tick(&mut self, tick: Instant) {
        let stream_ms = self.frame * FRAME_MS;
        let view = ReplyView {
            now: tick,
            reply_start: self.reply_start,
            silent_since: self.playout.silent_since(tick),
        };
        let Some(frame) = self.cursor.next_frame(stream_ms, &view) else {
            self.script_done = true;
            self.impairer.flush(tick, &mut self.queue);
            let seq = self.next_seq();
            let stop = serde_json::json!({
                "event": "stop",
                "sequenceNumber": seq.to_string(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            });
            self.impairer.control(tick, stop.to_string(), &mut self.queue);
            self.stop_queued = true;
            return;
        };
        for what in frame.timeouts {
            self.log(tick, CallEvent::WaitTimedOut { what });
        }
        for (at_ms, mark) in frame.speech {
            let at = self.t0 + Duration::from_millis(at_ms);
            let pos = self.caller_events.partition_point(|e| e.0 <= at);
            self.caller_events.insert(pos, (at, mark));
        }
        for digit in frame.dtmf {
            let seq = self.next_seq();
            let msg = format!(
                r#"{{"event":"dtmf","streamSid":"{}","sequenceNumber":"{seq}","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#,
                self.stream_sid
            );
            self.impairer.control(tick, msg, &mut self.queue);
            self.log(tick, CallEvent::DtmfSent { digit });
        }
        let k = self.frame;
        self.frame += 1;
        if self.options.impairments.drops(k) {
            self.impairer.count_drop();
            return;
        }
        let seq = self.next_seq();
        self.chunk += 1;
        let msg = media_message(seq, self.chunk, stream_ms, &frame.payload, &self.stream_sid);
        self.impairer.media(k, tick + FRAME, msg, &mut self.queue);
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

    fn echo(&mut self, now: Instant, name: String, cleared: bool) {
        let seq = self.next_seq();
        let msg = serde_json::json!({
            "event": "mark",
            "sequenceNumber": seq.to_string(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        });
        self.impairer.control(now, msg.to_string(), &mut self.queue);
        self.log(now, CallEvent::MarkEchoed { name, cleared });
    }

    fn bad(&mut self, detail: String) {
        self.metrics.bad_messages += 1;
        if self.metrics.bad_messages <= MAX_BAD_LOGGED {
            self.log(Instant::now(), CallEvent::BadMessage { detail });
        }
    }

    fn on_message(&mut self, now: Instant, text: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            return self.bad(format!("not JSON: {}", truncate(text)));
        };
        let event = v["event"].as_str().unwrap_or("");
        if !matches!(event, "media" | "mark" | "clear") {
            return self.bad(format!("unknown event: {}", truncate(text)));
        }
        if v["streamSid"].as_str() != Some(self.stream_sid.as_str()) {
            return self.bad(format!("{event} without this call's streamSid"));
        }
        match event {
            "media" => {
                let payload = v["media"]["payload"].as_str().and_then(|p| STANDARD.decode(p).ok());
                let Some(payload) = payload.filter(|p| !p.is_empty()) else {
                    return self.bad("media without a base64 payload".into());
                };
                if let Some(p) = self.progress {
                    p.bot_frames.fetch_add(1, Ordering::Relaxed);
                }
                match self.playout.on_media(now, payload.len(), std::mem::take(&mut self.caller_spoke)) {
                    MediaOutcome::ReplyStarted { previous } => {
                        if let Some(end) = previous {
                            self.log(
                                end.at,
                                CallEvent::BotReplyEnded { played_ms: end.played_ms, cleared: end.cleared },
                            );
                        }
                        let response_ms =
                            self.pending_turn.take().map(|end| ms(now.saturating_duration_since(end)));
                        self.metrics.response_ms.extend(response_ms);
                        self.reply_start = Some(now);
                        self.log(now, CallEvent::BotReplyStarted { response_ms });
                    }
                    MediaOutcome::Underrun { gap_ms } => self.log(now, CallEvent::BotUnderrun { gap_ms }),
                    MediaOutcome::Continued => {}
                }
            }
            "mark" => {
                let Some(name) = v["mark"]["name"].as_str() else {
                    return self.bad("mark without a name".into());
                };
                if let Some(name) = self.playout.on_mark(now, name.to_owned()) {
                    self.echo(now, name, false);
                }
            }
            _ => {
                let outcome = self.playout.on_clear(now);
                self.metrics.clears += 1;
                let reaction_ms =
                    self.pending_barge.take().map(|onset| ms(now.saturating_duration_since(onset)));
                match reaction_ms {
                    Some(r) => self.metrics.barge_in_reaction_ms.push(r),
                    None => self.metrics.clears_unprompted += 1,
                }
                if let Some(end) = outcome.reply {
                    self.log(
                        end.at,
                        CallEvent::BotReplyEnded { played_ms: end.played_ms, cleared: end.cleared },
                    );
                }
                let played_ms = outcome.reply.map(|r| r.played_ms);
                self.log(
                    now,
                    CallEvent::ClearReceived { reaction_ms, dropped_ms: outcome.dropped_ms, played_ms },
                );
                for name in outcome.echoed {
                    self.echo(now, name, true);
                }
            }
        }
    }

    fn finish(mut self) -> CallResult {
        let now = Instant::now();
        if let Some(end) = self.playout.finish(now) {
            self.log(end.at, CallEvent::BotReplyEnded { played_ms: end.played_ms, cleared: end.cleared });
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
            stream_sid: self.stream_sid,
            call_sid: self.call_sid,
            stream_start: self.t0,
            error: self.error,
            timeline: self.timeline,
            metrics: self.metrics,
        }
    }
}

fn truncate(text: &str) -> String {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn media_message(
    seq: u64,
    chunk: u64,
    timestamp_ms: u64,
    payload: &[u8; FRAME_BYTES],
    stream_sid: &str,
) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp_ms}","payload":"{}"}},"streamSid":"{stream_sid}"}}"#,
        STANDARD.encode(payload)
    )
}
