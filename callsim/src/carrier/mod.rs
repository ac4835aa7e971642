//! The carriers callsim can play: what each sends (its opening messages, the caller's audio, key
//! presses, its hang-up, its acknowledgements), how it authenticates the connection, how it reads
//! what the bot sends, and the framing rules it holds the bot's audio to.
//!
//! One module per carrier, each written from the carriers' own documentation, independently of
//! Trunkline's dialects (callsim is the second implementation the engine is tested against). The
//! call driver (`client`) knows none of this: it asks a [`Carrier`] for messages and hands it what
//! arrives.

mod audiosocket;

pub(crate) use audiosocket::message_len as audiosocket_message_len;
mod exotel;
mod jambonz;
mod plivo;
mod telnyx;
mod twilio;
mod vonage;

use super::rng::SplitMix64;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::str::FromStr;

/// The carrier callsim plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Twilio Media Streams (the default).
    #[default]
    Twilio,
    /// Telnyx media streaming (RTP mode, PCMU).
    Telnyx,
    /// Plivo audio streams (`audio/x-mulaw`).
    Plivo,
    /// Vonage Voice API WebSocket (binary L16, 8 kHz).
    Vonage,
    /// Exotel Voicebot applet (base64 L16, 8 kHz, 100 ms chunks).
    Exotel,
    /// SignalWire cXML `<Stream>` (Twilio-compatible, µ-law).
    SignalWire,
    /// jambonz `listen` verb (mod_audio_fork: binary L16, 8 kHz).
    Jambonz,
    /// Asterisk AudioSocket (raw TCP, TLV messages, slin 8 kHz).
    AudioSocket,
}

impl Dialect {
    /// Every dialect, by its name's order in `--help`.
    pub const ALL: [Self; 8] = [
        Self::Twilio,
        Self::Telnyx,
        Self::Plivo,
        Self::Vonage,
        Self::Exotel,
        Self::SignalWire,
        Self::Jambonz,
        Self::AudioSocket,
    ];

    /// The name `--dialect` takes (the same as Trunkline's dialect names).
    pub fn name(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
            Self::Plivo => "plivo",
            Self::Vonage => "vonage",
            Self::Exotel => "exotel",
            Self::SignalWire => "signalwire",
            Self::Jambonz => "jambonz",
            Self::AudioSocket => "audiosocket",
        }
    }

    /// Whether the carrier connects over raw TCP (AudioSocket) rather than a WebSocket.
    pub fn is_tcp(self) -> bool {
        self == Self::AudioSocket
    }

    /// The call's identifiers, as this carrier spells them, drawn from `rng`.
    pub(crate) fn ids(self, rng: &mut SplitMix64, account: Option<&str>, seed: u64) -> CallIds {
        let twilio_like = matches!(self, Self::Twilio | Self::SignalWire | Self::Exotel);
        let (stream_id, call_id) =
            if twilio_like { (rng.sid("MZ"), rng.sid("CA")) } else { (uuid(rng), uuid(rng)) };
        let account_id = account.map(str::to_owned).unwrap_or_else(|| SplitMix64::new(seed).sid("AC"));
        let nonce = format!("{:020}", rng.next_u64());
        CallIds { stream_id, call_id, account_id, nonce }
    }

    pub(crate) fn carrier(self, ids: &CallIds, params: &[(String, String)]) -> Box<dyn Carrier> {
        match self {
            Self::Twilio => Box::new(twilio::Twilio::new(ids, params, twilio::Flavour::Twilio)),
            Self::SignalWire => Box::new(twilio::Twilio::new(ids, params, twilio::Flavour::SignalWire)),
            Self::Telnyx => Box::new(telnyx::Telnyx::new(ids, params)),
            Self::Plivo => Box::new(plivo::Plivo::new(ids, params)),
            Self::Vonage => Box::new(vonage::Vonage::new(ids, params)),
            Self::Exotel => Box::new(exotel::Exotel::new(ids, params)),
            Self::Jambonz => Box::new(jambonz::Jambonz::new(ids, params)),
            Self::AudioSocket => Box::new(audiosocket::AudioSocket::new(ids)),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
            format!("unknown dialect {s:?} (one of {})", names.join(", "))
        })
    }
}

/// A call's identifiers.
#[derive(Debug, Clone)]
pub(crate) struct CallIds {
    pub(crate) stream_id: String,
    pub(crate) call_id: String,
    pub(crate) account_id: String,
    /// Plivo's signature nonce.
    pub(crate) nonce: String,
}

/// A lowercase canonical UUID (version 4 layout) from `rng`.
fn uuid(rng: &mut SplitMix64) -> String {
    let b = uuid_bytes(rng);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn uuid_bytes(rng: &mut SplitMix64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    b[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// How the carrier reaches the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A WebSocket, offering this subprotocol if any.
    WebSocket { subprotocol: Option<&'static str> },
    /// A plain TCP connection.
    Tcp,
}

/// One message on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wire {
    /// A WebSocket text frame.
    Text(String),
    /// A WebSocket binary frame, or bytes on a TCP stream.
    Binary(Vec<u8>),
}

#[cfg(test)]
impl From<&str> for Wire {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// A mark (checkpoint, notify) the bot sent, as the carrier will echo it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    /// Its name, for the timeline.
    pub(crate) name: String,
    /// What the echo carries back when that is more than the name (Vonage's `payload`).
    pub(crate) payload: Option<serde_json::Value>,
}

/// What a message from the bot asks of the carrier.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FromBot {
    /// Audio to play: its length in ms, and the audio itself (8 kHz), which an echo path
    /// returns to the caller.
    Audio { ms: f64, pcm: Vec<i16> },
    /// A mark, echoed once the audio before it has played.
    Mark(Mark),
    /// Drop the buffered audio.
    Clear,
    /// Valid, and nothing for the playout to do (Plivo's `sendDTMF`, jambonz's `clearMarks`...).
    Accepted(&'static str),
    /// The bot hung up (AudioSocket's `0x00`).
    Hangup,
}

impl FromBot {
    /// Audio in µ-law bytes.
    pub(crate) fn ulaw(bytes: &[u8]) -> Self {
        Self::Audio {
            ms: bytes.len() as f64 / 8.0,
            pcm: bytes.iter().map(|&c| trunkline::codec::ulaw_to_linear(c)).collect(),
        }
    }

    /// Audio in 16-bit little-endian PCM at 8 kHz (an odd last byte is dropped).
    pub(crate) fn l16(bytes: &[u8]) -> Self {
        let pcm: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        Self::Audio { ms: pcm.len() as f64 / 8.0, pcm }
    }

    /// The length of audio, ms (`None` for anything else).
    #[cfg(test)]
    pub(crate) fn audio_ms(read: &Read) -> Option<f64> {
        match read.what {
            Some(Ok(Self::Audio { ms, .. })) => Some(ms),
            _ => None,
        }
    }
}

/// What the carrier made of one message from the bot.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Read {
    /// The request, or why the carrier refuses the message (a bad message).
    pub(crate) what: Option<Result<FromBot, String>>,
    /// Framing rules the message (or the one before it) broke; its audio still plays.
    pub(crate) violations: Vec<String>,
}

impl Read {
    fn ok(what: FromBot) -> Self {
        Self { what: Some(Ok(what)), violations: vec![] }
    }

    fn bad(why: impl Into<String>) -> Self {
        Self { what: Some(Err(why.into())), violations: vec![] }
    }

    fn violation(mut self, rule: Option<String>) -> Self {
        self.violations.extend(rule);
        self
    }
}

/// How the carrier queues the bot's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MarkRules {
    /// A mark is queued ahead of the next audio the bot sends (so it is due when that audio
    /// starts playing, and waits for it), not behind the audio already sent.
    pub(crate) wait_for_next_audio: bool,
    /// Most marks the carrier keeps outstanding (waiting or queued); it discards the rest.
    pub(crate) max_outstanding: Option<usize>,
}

/// How the carrier plays the bot's audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PlayoutKind {
    /// It buffers what it is sent and plays it on its own clock.
    Buffered,
    /// It plays each message as it arrives; audio more than `max_lead_ms` ahead of real time is
    /// an overrun (the bot must pace).
    OnArrival { max_lead_ms: f64 },
}

/// One carrier's side of a call.
pub(crate) trait Carrier: Send {
    /// How it connects.
    fn transport(&self) -> Transport;
    /// The upgrade request's authentication headers for `url`, given the account's `secret`.
    fn auth_headers(&self, url: &str, secret: &str) -> Result<Vec<(String, String)>, String>;
    /// Extra upgrade headers the carrier always sends (its user agent).
    fn headers(&self) -> Vec<(&'static str, &'static str)> {
        vec![]
    }
    /// What it sends once connected (the stream starts after them).
    fn opening(&mut self) -> Vec<Wire>;
    /// The next 20 ms of the caller's 8 kHz µ-law at stream time `stream_ms` (`None`: the
    /// carrier gathers a longer chunk).
    fn media(&mut self, ulaw: &[u8], stream_ms: u64) -> Option<Wire>;
    /// The audio it still holds when the caller hangs up.
    fn flush_media(&mut self) -> Option<Wire> {
        None
    }
    /// A key press at stream time `stream_ms`.
    fn dtmf(&mut self, digit: char, stream_ms: u64) -> Option<Wire>;
    /// Its hang-up message (`None`: it just closes the connection).
    fn hangup(&mut self) -> Option<Wire>;
    /// Reads one message from the bot.
    fn read(&mut self, message: &Wire) -> Read;
    /// The acknowledgement of `mark`, played or flushed by a clear (`None`: not acknowledged).
    fn echo(&mut self, mark: &Mark, cleared: bool) -> Option<Wire>;
    /// What it answers a clear with.
    fn clear_ack(&mut self) -> Option<Wire> {
        None
    }
    /// How it plays audio.
    fn playout(&self) -> PlayoutKind {
        PlayoutKind::Buffered
    }
    /// How it queues marks.
    fn mark_rules(&self) -> MarkRules {
        MarkRules::default()
    }
    /// Rules broken by the last messages once the bot has sent everything (the call ended).
    fn finish(&mut self) -> Vec<String> {
        vec![]
    }
}

/// G.711 µ-law to 16-bit linear (ITU-T G.711: the inverted code's segment and step, biased by
/// 0x84).
pub(crate) fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// µ-law bytes as 16-bit little-endian PCM.
pub(crate) fn ulaw_to_l16le(ulaw: &[u8]) -> Vec<u8> {
    ulaw.iter().flat_map(|&c| ulaw_to_linear(c).to_le_bytes()).collect()
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Standard base64, with or without padding.
fn unb64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed).ok()
}

/// A JSON object from a text frame, or why not.
/// A mark (or checkpoint) the bot sent, from its name field; `missing` says what was absent.
fn mark_named(name: Option<&str>, missing: &str) -> Read {
    match name {
        Some(name) => Read::ok(FromBot::Mark(Mark { name: name.to_owned(), payload: None })),
        None => Read::bad(missing),
    }
}

fn json_object(message: &Wire, carrier: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let Wire::Text(text) = message else {
        return Err(format!("binary frame ({carrier} takes JSON text frames)"));
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("not a JSON object: {}", truncate(text))),
        Err(_) => Err(format!("not JSON: {}", truncate(text))),
    }
}

/// Custom parameters as a JSON object, in order.
fn params_object(params: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(params.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect())
}

/// Whether the bot's stream id (under `key`) is absent or this call's (`required`: absent is
/// wrong too).
fn check_stream_id(
    map: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
    ours: &str,
    required: bool,
    event: &str,
) -> Result<(), String> {
    let found: Vec<&serde_json::Value> = keys.iter().filter_map(|k| map.get(*k)).collect();
    if found.is_empty() {
        return if required { Err(format!("{event} without this call's {}", keys[0])) } else { Ok(()) };
    }
    if found.iter().all(|v| v.as_str() == Some(ours)) {
        Ok(())
    } else {
        Err(format!("{event} with another stream's {}", keys[0]))
    }
}

pub(crate) fn truncate(text: &str) -> String {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_decodes_like_an_independent_g711_reference() {
        use sha2::{Digest, Sha256};
        // The digest of ulaw2lin over every code (CPython's audioop), committed with the engine's
        // G.711 tests.
        let reference = include_str!("../../../engine/tests/fixtures/g711_reference.txt");
        let expected = reference
            .lines()
            .find_map(|l| l.strip_prefix("sha256 ulaw2lin "))
            .expect("the reference names the ulaw2lin digest");
        let all: Vec<u8> = (0..=255u8).flat_map(|c| ulaw_to_linear(c).to_le_bytes()).collect();
        let digest: String = Sha256::digest(&all).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, expected.trim());
        assert_eq!((ulaw_to_linear(0xFF), ulaw_to_linear(0x00)), (0, -32124));
    }

    #[test]
    fn malformed_messages_are_bad_messages_for_every_carrier_never_a_panic() {
        use std::panic::{AssertUnwindSafe, catch_unwind};
        // Each with this call's stream id under every carrier's key, so that only the malformed
        // part is wrong.
        let malformed = [
            r#"{"event":"playAudio"}"#,
            r#"{"event":"playAudio","media":5}"#,
            r#"{"event":"media"}"#,
            r#"{"event":"media","media":"x"}"#,
            r#"{"event":"mark"}"#,
            r#"{"event":"mark","mark":[]}"#,
            r#"{"event":"checkpoint","name":7}"#,
            r#"{"event":"sendDTMF","dtmf":7}"#,
            r#"{"action":"notify","payload":3}"#,
            r#"{"type":"mark","data":"x"}"#,
        ];
        let mut failures = vec![];
        for dialect in Dialect::ALL {
            let ids = dialect.ids(&mut SplitMix64::new(3), None, 1);
            let mut carrier = dialect.carrier(&ids, &[]);
            let sid = &ids.stream_id;
            let ids_json =
                format!(r#""streamSid":"{sid}","stream_id":"{sid}","streamId":"{sid}","stream_sid":"{sid}""#);
            let mut messages: Vec<Wire> = malformed
                .iter()
                .map(|m| Wire::Text(format!("{},{ids_json}}}", m.trim_end_matches('}'))))
                .collect();
            messages.extend(["[1,2]", "\"text\"", "not json"].map(Wire::from));
            for message in messages {
                match catch_unwind(AssertUnwindSafe(|| carrier.read(&message))) {
                    Ok(Read { what: Some(Err(_)), .. }) => {}
                    Ok(other) => failures.push(format!("{dialect} took {message:?}: {other:?}")),
                    Err(_) => failures.push(format!("{dialect} panicked on {message:?}")),
                }
            }
            // Binary frames of any shape may be audio to some carriers, but never a panic.
            for bytes in [vec![], vec![0x10], vec![0x10, 0x00, 0x09, 0x01], vec![0xff, 0xff, 0xff]] {
                let message = Wire::Binary(bytes);
                if catch_unwind(AssertUnwindSafe(|| carrier.read(&message))).is_err() {
                    failures.push(format!("{dialect} panicked on {message:?}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for d in Dialect::ALL {
            assert_eq!(d.name().parse::<Dialect>(), Ok(d));
        }
        assert!("sip".parse::<Dialect>().unwrap_err().contains("audiosocket"));
    }
}
