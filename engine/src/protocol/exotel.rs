//! The Exotel AgentStream dialect (the Voicebot applet, two-way; the Stream applet is its one-way
//! subset).
//!
//! Exotel sends JSON text frames with snake_case fields and every number as a string: `connected`,
//! `start`, then `media` (base64 16-bit little-endian PCM, about 100 ms a chunk), and with the
//! Voicebot applet `dtmf` and `mark` echoes; `stop` at the end (or the socket closes:
//! `Session::end_stream`). The writers produce `media`, `mark` and `clear`.
//!
//! # What is chosen ([`Capabilities`])
//!
//! | | value | why |
//! |---|---|---|
//! | `framing` | `Messages` | one JSON text frame per message |
//! | `timestamps` | `false` | `media.timestamp` is "ms", but whether of stream time or of the wall clock, and of a chunk's start or its end, differs between Exotel's own documents; placing audio by it could trim or pad real audio. The socket keeps the order, so arrival order is exact |
//! | `frame_ms` | 100 before `start`; then [`chunk_ms`] of the stream's format: 200 (L16 8 kHz), 100 (16 and 24 kHz), 400 (µ-law 8 kHz) | outbound chunks must be at least 3.2 KB and "100 ms", multiples of 320 bytes, and at most 100 KB (⚠ below): the chunk is the shortest whole number of 20 ms that is at least 100 ms and at least 3200 bytes, and a multiple of 320 bytes. That is 3200 B at 8 kHz (L16 and µ-law) and 16 kHz, and 4800 B at 24 kHz (15 times 320). The engine pads the last frame of an utterance (and a frame a mark cuts) with silence to a whole frame, so no chunk is ever shorter |
//! | `max_lead_ms` | `None` | Exotel buffers what it is sent, and `clear` drops it. The engine keeps at least two chunks ahead: 400 ms at 8 kHz L16, 800 ms µ-law, 200 ms at 16 and 24 kHz (above the session's default `lead_ms`, 100) |
//! | `confirmation` | `Echo { on_clear: true }` | a `mark` is echoed when the audio before it has played; see the ⚠ on clears below |
//! | `clear` | `Message` | `clear` |
//!
//! # What is accepted
//!
//! Fields not listed are ignored (whatever their type); a JSON `null` counts as an absent field.
//! "Number" means a string of ASCII digits (how Exotel sends every number, e.g. `"42"`) or a bare
//! non-negative JSON integer; anything else is [`ProtocolError::WrongType`] naming the field. Where
//! two spellings are listed (`stream_sid`/`streamSid`) either may be used; if both are present
//! they must be equal, else `WrongType` naming the first.
//!
//! | event | field | required | accepted values → result |
//! |---|---|---|---|
//! | all | `event` | yes | `connected`, `start`, `media`, `dtmf`, `mark`, `stop`, `clear`; other string → `UnknownEvent`, non-string → `WrongType("event")` |
//! | all | `sequence_number` | no | number |
//! | all | `stream_sid`/`streamSid` | no | string; once [`Dialect::on_start`] has named a stream, a `media`, `dtmf`, `mark`, `stop` or `clear` naming another one → `ForeignStream` (absent: accepted) |
//! | `connected` | `protocol`, `version` | no | ignored → [`Inbound::Connected`] |
//! | `start` | `start` | yes | object |
//! | `start` | `start.stream_sid`/`start.streamSid` | no ("")¹ | string; falls back to the top-level one; if both are present they must be equal, else `WrongType("stream_sid")` |
//! | `start` | `start.call_sid`/`start.callSid`, `start.account_sid`/`start.accountSid` | no ("") | string |
//! | `start` | `start.custom_parameters` | no (empty) | object (string values kept, numbers and booleans as their JSON text), in document order; or a string: empty → none, a JSON object in a string → as the object, else `k=v` items separated by `&` (blanks trimmed, an item without `=` a key with an empty value); anything else → `WrongType("start.custom_parameters")` |
//! | `start` | `start.media_format` | no² | object |
//! | `start` | `start.media_format.encoding` | no (PCM) | `audio/x-raw`, `audio/x-l16`, `audio/l16`, `linear16` → L16 little-endian; any type containing `ulaw` (`audio/x-mulaw`) → µ-law (ASCII case-insensitive; MIME parameters such as `;rate=16000` allowed); another → `UnsupportedFormat` (the stream does not start) |
//! | `start` | `start.media_format.sample_rate` | no³ | number, also with a trailing `Hz` (`"8000Hz"`, as Exotel's own bridge tolerates), 1..=`u32::MAX` |
//! | `start` | `start.media_format.bit_rate`, `start.from`, `start.to` | no | ignored⁴ |
//! | `media` | `media` | yes | object |
//! | `media` | `media.payload` | yes | string, standard base64 with or without `=` padding, decoded into the [`PayloadBuffer`]; bad base64 → `InvalidBase64`, decoded length over [`PayloadBuffer::limit`] → `PayloadTooLarge` |
//! | `media` | `media.timestamp` | no | number (ms); reported as ms since the first `media` of the stream (`0` when absent; earlier ones count as `0`) |
//! | `media` | `media.chunk` | no | number |
//! | `media` | `media.track` | no (inbound) | `inbound`, `outbound` (also with `_track`) |
//! | `dtmf` | `dtmf.digit` | yes | exactly one of `0`-`9` `*` `#` `A`-`D`; `dtmf.duration` (ms, a number or a numeric string) → `duration_ms`, anything else none |
//! | `mark` | `mark.name` | yes | string (any) → [`Inbound::Mark`] |
//! | `stop` | `stop` | no | ignored (`reason` too) → [`Inbound::Stop`] |
//! | `clear` | — | — | [`Inbound::Notice`]⁵ |
//!
//! ¹ Exotel's main protocol page names the stream in `start`; one of its sample documents shows a
//! `start` without any stream id. Such a stream is accepted: its outbound messages carry an empty
//! id and no inbound message is refused as foreign. ² Absent: PCM at the default rate. ³ From the
//! encoding's `rate` parameter when absent, else the dialect's default rate: 8000, Exotel's own
//! default for a URL without `?sample-rate=` (see [`ExotelDialect::with_sample_rate`]).
//! ⁴ The engine's `StreamStart` has no place for the caller's and callee's numbers.
//! ⁵ An acknowledgement the session has nothing to do with: accepted and counted, not reported.
//!
//! Whole-message errors: a [`MessageKind::Binary`] frame → `UnexpectedFrameKind(Binary)`; not
//! UTF-8, not JSON, truncated, trailing data, a top-level value that is not an object, nesting
//! deeper than 128, or a duplicate key among the top-level fields above → `MalformedJson`. Checks
//! run in this order: frame kind, JSON, `event`, `sequence_number`, stream id, then the event's own
//! fields as listed.
//!
//! # What is written
//!
//! ```text
//! {"event":"media","stream_sid":"<sid>","media":{"chunk":"<n>","timestamp":"<ms>","payload":"<base64>"}}
//! {"event":"mark","stream_sid":"<sid>","mark":{"name":"<name>"}}
//! {"event":"clear","stream_sid":"<sid>"}
//! ```
//!
//! The id key is spelled as the `start` spelled it (`streamSid` if it used only that spelling).
//! `media.chunk` counts the stream's `media` messages from 1 and `media.timestamp` is the ms of
//! agent audio sent before this one (one chunk apart), both strings like Exotel's own. The payload is in
//! the format [`Dialect::on_start`] returns: the stream's own (Exotel takes back what it sends).
//!
//! # Uncertain points, decided
//!
//! - ⚠ **Echo on clear** (undocumented; no acknowledgement of `clear` either): taken as echoed,
//!   as by Twilio, whose protocol Exotel's mirrors message for message, and as vocode, run against
//!   Exotel, assumes. The engine's playout model then reports the echoes of marks the caller had
//!   not reached as cleared, never as played. If Exotel does not echo them, such a mark stays
//!   pending until the stream ends (then it is reported cleared).
//! - ⚠ **`stream_sid` vs `streamSid`**: both accepted wherever an id is read (`call_sid`/`callSid`
//!   and `account_sid`/`accountSid` too); outbound messages echo the spelling of `start`.
//! - ⚠ **`chunk`/`timestamp` on outbound `media`**: sent (as strings), since Exotel's own samples
//!   say some Connect streams end early without them and nothing says they are refused.
//! - ⚠ **Default encoding** (PCM in the main documents, µ-law in a beta guide): decided by
//!   `start.media_format.encoding`; PCM when absent. Exotel's chunk rule is stated for PCM; µ-law
//!   follows the same byte rule, so its chunks are 400 ms (3200 B).
//! - ⚠ **The chunk size.** Exotel's applet page gives the minimum as "3.2 KB (100 ms of data)" and
//!   another of its pages "100 ms PCM chunks with 3200 bytes"; but 3200 B is 100 ms only at 16 kHz
//!   (at the default 8 kHz it is 200 ms), and Exotel's own reference bridges send 100 ms frames
//!   at every rate (1600 B at 8 kHz). Both readings are met: a chunk is the shortest whole number
//!   of 20 ms that is at least 100 ms and at least 3200 bytes, and a multiple of 320 bytes
//!   ([`chunk_ms`]): 200 ms at 8 kHz, 100 ms at 16 and 24 kHz, 400 ms for µ-law. The cost is
//!   latency at 8 kHz: a reply's first chunk, and the chunk a mark cuts, carry up to 200 ms (400
//!   ms µ-law) of padding, and the pacer keeps two chunks at Exotel. Since the length depends on
//!   the stream's format, [`Dialect::capabilities`] says 100 ms before `start` and the chunk
//!   length once [`Dialect::on_start`] has run; the session reads it again then. A format no
//!   chunk of at most 100 KB fits refuses the `start` (`UnsupportedFormat`). (A chunk can be
//!   longer than the piece the engine takes from the host at once, 2048 samples: 2400 samples at
//!   24 kHz, 3200 µ-law. When a reply starts, the pacer cuts its first chunk once the host's play
//!   ring is drained, and sends what there is padded with silence rather than wait for more.)
//! - ⚠ **The sample rate** is chosen by the URL's `?sample-rate=`, which the dialect does not see:
//!   `start.media_format.sample_rate` names it, and when it does not, the dialect's default rate
//!   does (8000 unless the host built the dialect with [`ExotelDialect::with_sample_rate`]).
//!
//! # Allocation
//!
//! Parsing a `media` message allocates nothing: the JSON is read into borrowed structs and the
//! payload is base64-decoded into the caller's [`PayloadBuffer`] without growing it. Exceptions, off
//! the normal path: strings with JSON escapes, and errors for malformed JSON. `start` allocates its
//! owned [`StreamStart`]. The writers clear `out` and allocate only if its capacity is too small.
//!
//! # Sizing a session for Exotel
//!
//! Exotel's chunks are larger than Twilio's, and the session's default limits are sized for
//! Twilio. Exotel's documents give 3200 B for an inbound chunk, which is 200 ms at 8 kHz; the same
//! 200 ms is 6400 B at 16 kHz and 9600 B at 24 kHz, and its base64 message 4/3 of that plus about
//! 200 B. The dialect says so ([`Dialect::inbound_sizes`]: 9600 B of payload in messages of up to
//! 13.5 KiB, whatever the rate, since the rate is known only at `start`), and a session on it takes
//! at least those limits, with an inbound ring for two such messages: about 20 KiB more memory
//! than a Twilio session, and nothing for a host to set.
//!
//! Outbound, the defaults hold. The largest chunk is 4800 B (24 kHz); the others are 3200 B. Its
//! `media` message is at most 6400 B of base64, 122 B around it and the stream id (see
//! [`Dialect::max_media_message_len`]). The session takes a message only when its outbound ring
//! has room for that bound plus 1 KiB (for marks) and a 13-byte record header: the default
//! `outbound_ring_bytes` (8 KiB) leaves room for a stream id of over 600 bytes (the ids in Exotel's
//! documents are 26). The outbound queue (`outbound_buffer_ms`, 2 s by default) holds whole chunks, 400 ms at
//! most.

mod wire;

use std::borrow::Cow;
use std::cell::Cell;

use self::wire::EventKind;
use super::json_read::{self, Obj, Scalar};
use super::json_text::{base64_len, push_base64, push_escaped};
use super::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, InboundSizes, MarkSaid,
    MediaFormat, MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};

/// What Exotel needs from the engine (see the module documentation for why), before the stream
/// starts: once [`Dialect::on_start`] has named the stream's format, `frame_ms` is
/// [`chunk_ms`] of it.
pub const CAPABILITIES: Capabilities = Capabilities {
    framing: Framing::Messages,
    timestamps: false,
    frame_ms: MIN_CHUNK_MS,
    max_lead_ms: None,
    confirmation: Confirmation::Echo { on_clear: true },
    clear: ClearKind::Message,
};

/// Exotel's rule for an outbound chunk: at least 100 ms ...
const MIN_CHUNK_MS: u32 = 100;
/// ... and at least 3200 bytes, ...
const MIN_CHUNK_BYTES: u64 = 3200;
/// ... a multiple of 320 bytes, ...
const CHUNK_STEP_BYTES: u64 = 320;
/// ... and at most 100 KB (taken as the smaller reading, 100 000 bytes).
const MAX_CHUNK_BYTES: u64 = 100_000;
/// The engine's frames are whole numbers of this.
const FRAME_STEP_MS: u64 = 20;

/// The length (ms) of every outbound chunk of a stream in `format`: the shortest whole number of
/// 20 ms that is at least 100 ms and at least 3200 bytes, and a multiple of 320 bytes (see the
/// module documentation). 200 ms for L16 at 8 kHz, 100 ms at 16 and 24 kHz, 400 ms for µ-law
/// at 8 kHz. `None` for a format no such chunk of at most 100 KB exists for.
pub fn chunk_ms(format: MediaFormat) -> Option<u32> {
    let bytes_per_second = u64::from(format.sample_rate)
        * format.encoding.bytes_per_sample() as u64
        * u64::from(format.channels);
    if bytes_per_second == 0 {
        return None;
    }
    // `n` steps of 20 ms hold `bytes_per_second * n / 50` bytes, a whole multiple of 320 exactly
    // when `bytes_per_second * n` is a multiple of 320 * 50: when `n` is a multiple of `step`.
    let steps_per_second = 1000 / FRAME_STEP_MS;
    let block = CHUNK_STEP_BYTES * steps_per_second;
    let step = block / gcd(bytes_per_second, block);
    let least = (u64::from(MIN_CHUNK_MS) / FRAME_STEP_MS)
        .max((MIN_CHUNK_BYTES * steps_per_second).div_ceil(bytes_per_second));
    let steps = least.div_ceil(step) * step;
    let bytes = bytes_per_second * steps / steps_per_second;
    if bytes > MAX_CHUNK_BYTES {
        return None;
    }
    u32::try_from(steps * FRAME_STEP_MS).ok()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The rates Exotel streams at (`?sample-rate=`), the first its default.
pub const SAMPLE_RATES: [u32; 3] = [8000, 16_000, 24_000];

/// The most digits a `u64` has: the bound for `chunk` and `timestamp` in a `media` message.
const U64_DIGITS: usize = 20;

const MEDIA_CHUNK: &[u8] = br#"","media":{"chunk":""#;
const MEDIA_TIMESTAMP: &[u8] = br#"","timestamp":""#;
const MEDIA_PAYLOAD: &[u8] = br#"","payload":""#;
const MEDIA_TAIL: &[u8] = br#""}}"#;
const MARK_MID: &[u8] = br#"","mark":{"name":""#;
const MARK_TAIL: &[u8] = br#""}}"#;
const CLEAR_TAIL: &[u8] = br#""}"#;

/// Exotel AgentStream JSON.
///
/// Parses what Exotel sends and writes what it accepts; the stream id learnt in
/// [`Dialect::on_start`] goes into every outbound message (empty before that), and inbound stream
/// messages naming another stream are refused.
#[derive(Debug, Clone)]
pub struct ExotelDialect {
    /// The rate of a stream whose `start` names none.
    default_rate: u32,
    /// The stream id `start` named; `None` before `start`, or when it named none.
    stream_sid: Option<String>,
    /// The same, escaped for the inside of a JSON string (empty when there is none).
    sid_json: Vec<u8>,
    /// Whether outbound messages spell the id key `streamSid` (else `stream_sid`).
    camel_case: bool,
    /// The spelling of the last `start` parsed, taken up by `on_start` (a `start` the session
    /// refuses as a duplicate must not change it).
    start_camel_case: bool,
    /// `media.timestamp` of the stream's first `media`, which later ones are counted from.
    first_timestamp: Option<u64>,
    /// Bytes per second of the outbound format, for `media.timestamp`.
    out_bytes_per_second: u64,
    /// The outbound chunk length, ms: [`chunk_ms`] of the stream's format once it has started.
    frame_ms: u32,
    /// `media` messages written so far. A `Cell`: the seam's writers take `&self`.
    chunks_sent: Cell<u64>,
    /// Audio bytes written so far.
    bytes_sent: Cell<u64>,
}

impl Default for ExotelDialect {
    fn default() -> Self {
        Self::new()
    }
}

impl ExotelDialect {
    /// A dialect with no stream yet, for a stream at Exotel's default rate (8 kHz) unless its
    /// `start` names another.
    pub fn new() -> Self {
        Self::with_sample_rate(SAMPLE_RATES[0])
    }

    /// A dialect for a stream at `rate` Hz unless its `start` names another: for a host that read
    /// the `?sample-rate=` of the URL Exotel connected to (see [`Self::sample_rate_from_query`]).
    pub fn with_sample_rate(rate: u32) -> Self {
        Self {
            default_rate: rate,
            stream_sid: None,
            sid_json: Vec::new(),
            camel_case: false,
            start_camel_case: false,
            first_timestamp: None,
            out_bytes_per_second: u64::from(rate) * 2,
            frame_ms: CAPABILITIES.frame_ms,
            chunks_sent: Cell::new(0),
            bytes_sent: Cell::new(0),
        }
    }

    /// The rate a WebSocket URL's query (`sample-rate=16000`; Exotel's own samples also read
    /// `sample_rate`) asks Exotel for, if it names one Exotel streams at ([`SAMPLE_RATES`]).
    /// `query` is the part after `?` (a whole URL is taken too).
    pub fn sample_rate_from_query(query: &str) -> Option<u32> {
        let query = query.split_once('?').map_or(query, |(_, q)| q);
        let query = query.split('#').next().unwrap_or_default();
        query.split('&').find_map(|item| {
            let (name, value) = item.split_once('=')?;
            let rate = json_read::digits(value).and_then(|r| u32::try_from(r).ok())?;
            (matches!(name, "sample-rate" | "sample_rate") && SAMPLE_RATES.contains(&rate)).then_some(rate)
        })
    }

    fn parse_text<'a>(
        &mut self,
        text: &'a str,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        use json_read::{optional_number, required_object, required_string};

        let mut root: Obj<wire::Message<'a>> = Obj::Absent;
        json_read::parse_root(text, &mut root)?;
        let Obj::Valid(msg) = &mut root else { unreachable!("parse_root succeeds only with an object") };
        let event = json_read::event_kind(&msg.event, EventKind::from_name)?;
        let sequence = optional_number(msg.sequence.take(), "sequence_number")?;
        let outer_camel = msg.stream_sid_camel.is_some() && msg.stream_sid.is_none();
        let stream_sid =
            json_read::either_string(msg.stream_sid.take(), msg.stream_sid_camel.take(), "stream_sid")?;
        // Before the event's own fields: a message for another stream is dropped whatever it
        // carries. `connected` and `start` are left to the session.
        let of_stream = !matches!(event, EventKind::Connected | EventKind::Start);
        json_read::same_stream(self.stream_sid.as_deref(), stream_sid.as_deref(), of_stream)?;
        Ok(match event {
            EventKind::Connected => Inbound::Connected,
            EventKind::Clear => Inbound::Notice,
            EventKind::Stop => Inbound::Stop { sequence },
            EventKind::Media => {
                let media = required_object(&mut msg.media, "media")?;
                let timestamp = optional_number(media.timestamp.take(), "media.timestamp")?;
                let chunk = optional_number(media.chunk.take(), "media.chunk")?;
                let track = json_read::track(media.track.take(), "media.track")?;
                let base64 = required_string(media.payload.take(), "media.payload")?;
                json_read::decode_payload(base64.as_bytes(), payload)?;
                // Only an accepted message sets where the stream's time starts.
                let timestamp_ms =
                    timestamp.map_or(0, |t| t.saturating_sub(*self.first_timestamp.get_or_insert(t)));
                Inbound::Media(MediaFrame { sequence, chunk, timestamp_ms, track })
            }
            EventKind::Dtmf => {
                let dtmf = required_object(&mut msg.dtmf, "dtmf")?;
                let digit = json_read::dtmf_digit(dtmf.digit.take(), "dtmf.digit")?;
                let duration_ms = json_read::dtmf_duration_ms(dtmf.duration.take(), 1);
                Inbound::Dtmf { sequence, digit, duration_ms }
            }
            EventKind::Mark => {
                let mark = required_object(&mut msg.mark, "mark")?;
                Inbound::Mark {
                    sequence,
                    name: required_string(mark.name.take(), "mark.name")?,
                    said: MarkSaid::Nothing,
                }
            }
            EventKind::Start => {
                let (start, camel_case) = self.parse_start(msg, stream_sid, outer_camel, sequence)?;
                self.start_camel_case = camel_case;
                Inbound::Start(Box::new(start))
            }
        })
    }

    /// The stream's start, and whether it spelled its id only `streamSid`.
    fn parse_start(
        &self,
        msg: &mut wire::Message<'_>,
        outer_sid: Option<Cow<'_, str>>,
        outer_camel: bool,
        sequence: Option<u64>,
    ) -> Result<(StreamStart, bool), ProtocolError> {
        use json_read::{either_string, required_object};

        let start = required_object(&mut msg.start, "start")?;
        let inner_camel = start.stream_sid_camel.is_some() && start.stream_sid.is_none();
        let inner_named = start.stream_sid.is_some() || start.stream_sid_camel.is_some();
        let inner_sid =
            either_string(start.stream_sid.take(), start.stream_sid_camel.take(), "start.stream_sid")?;
        let camel_case = if inner_named { inner_camel } else { outer_camel };
        let stream_id = match (inner_sid, outer_sid) {
            (Some(inner), Some(outer)) if inner != outer => {
                return Err(ProtocolError::WrongType("stream_sid"));
            }
            (Some(sid), _) | (None, Some(sid)) => sid.into_owned(),
            (None, None) => String::new(),
        };
        let call_id = either_string(start.call_sid.take(), start.call_sid_camel.take(), "start.call_sid")?;
        let account_id =
            either_string(start.account_sid.take(), start.account_sid_camel.take(), "start.account_sid")?;
        let custom_parameters = match start.custom_parameters.take() {
            None => Vec::new(),
            Some(params) => json_read::params_to_pairs(params, &['&'], "start.custom_parameters")?,
        };
        let media_format = match &mut start.media_format {
            Obj::Absent => {
                MediaFormat { encoding: AudioEncoding::L16, sample_rate: self.default_rate, channels: 1 }
            }
            Obj::Invalid => return Err(ProtocolError::WrongType("start.media_format")),
            Obj::Valid(format) => self.media_format(format)?,
        };
        let start = StreamStart {
            sequence,
            account_id: account_id.map(Cow::into_owned).unwrap_or_default(),
            stream_id,
            call_id: call_id.map(Cow::into_owned).unwrap_or_default(),
            tracks: vec![Track::Inbound],
            custom_parameters,
            media_format,
        };
        Ok((start, camel_case))
    }

    fn media_format(&self, format: &mut wire::FormatBody<'_>) -> Result<MediaFormat, ProtocolError> {
        const ENCODING: &str = "start.media_format.encoding";
        const RATE: &str = "start.media_format.sample_rate";
        let name = json_read::optional_string(format.encoding.take(), ENCODING)?;
        let (essence, rate_parameter) =
            name.as_deref().map_or(("audio/x-raw", None), json_read::mime_and_rate);
        let encoding = if ["audio/x-raw", "audio/x-l16", "audio/l16", "linear16"]
            .iter()
            .any(|pcm| essence.eq_ignore_ascii_case(pcm))
        {
            AudioEncoding::L16
        } else if essence.to_ascii_lowercase().contains("ulaw") {
            AudioEncoding::Mulaw
        } else {
            return Err(ProtocolError::UnsupportedFormat);
        };
        let sample_rate = match format.sample_rate.take() {
            Some(value) => rate(value).ok_or(ProtocolError::WrongType(RATE))?,
            None => match rate_parameter {
                Some(rate) => json_read::digits(rate).ok_or(ProtocolError::WrongType(ENCODING))?,
                None => u64::from(self.default_rate),
            },
        };
        let sample_rate =
            u32::try_from(sample_rate).ok().filter(|&r| r > 0).ok_or(ProtocolError::WrongType(RATE))?;
        Ok(MediaFormat { encoding, sample_rate, channels: 1 })
    }

    /// `{"event":"<event>","<stream_sid|streamSid>":"<sid>` into a cleared `out`.
    fn push_head(&self, out: &mut Vec<u8>, event: &[u8]) {
        out.clear();
        out.extend_from_slice(br#"{"event":""#);
        out.extend_from_slice(event);
        out.extend_from_slice(br#"",""#);
        out.extend_from_slice(self.sid_key());
        out.extend_from_slice(br#"":""#);
        out.extend_from_slice(&self.sid_json);
    }

    fn sid_key(&self) -> &'static [u8] {
        if self.camel_case { b"streamSid" } else { b"stream_sid" }
    }
}

/// A sample rate: a number, or a string of digits with an optional `Hz` suffix.
fn rate(value: Scalar<'_>) -> Option<u64> {
    match value {
        Scalar::Str(text) => {
            let text = text.trim();
            let digits = match text.len().checked_sub(2) {
                Some(cut) if text.is_char_boundary(cut) && text[cut..].eq_ignore_ascii_case("hz") => {
                    text[..cut].trim_end()
                }
                _ => text,
            };
            json_read::digits(digits)
        }
        other => json_read::number(other, "").ok(),
    }
}

/// Appends the decimal digits of `n` (no allocation).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; U64_DIGITS];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The largest inbound chunk taken: 200 ms of 24 kHz L16 (see "Sizing a session for Exotel").
const LARGEST_CHUNK: usize = 9600;

impl Dialect for ExotelDialect {
    fn inbound_sizes(&self) -> Option<InboundSizes> {
        // Base64 of the chunk, and room for the stream id, numbers and custom fields around it.
        Some(InboundSizes { message_bytes: 27 * 1024 / 2, payload_bytes: LARGEST_CHUNK })
    }

    /// [`CAPABILITIES`], with the chunk length for the stream's format once it has started.
    fn capabilities(&self) -> Capabilities {
        Capabilities { frame_ms: self.frame_ms, ..CAPABILITIES }
    }

    /// Parses one Exotel message (see the module documentation for exactly what is accepted).
    ///
    /// `payload` is cleared first, so after any call it holds the decoded audio of this message
    /// if it was a valid `media` message, and nothing otherwise.
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        payload.raw_mut().clear();
        if kind == MessageKind::Binary {
            return Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary));
        }
        // Why validate up front: serde_json's `from_str` then skips its own per-string checks, and
        // ignored fields would otherwise go unchecked.
        let text = std::str::from_utf8(message).map_err(|_| ProtocolError::MalformedJson)?;
        let result = self.parse_text(text, payload);
        if result.is_err() {
            payload.raw_mut().clear();
        }
        result
    }

    /// A `start` or `stop` names itself in quotes; base64 audio has none.
    fn may_start_or_stop(&self, message: &[u8], kind: MessageKind) -> bool {
        kind == MessageKind::Text && json_read::names_start_or_stop(message)
    }

    /// Exotel takes back the format it sends, in chunks of [`chunk_ms`] of it (which
    /// [`Dialect::capabilities`] says from now on). A-law (never parsed from Exotel), more than
    /// one channel, or a rate no chunk can follow Exotel's rule at → `UnsupportedFormat`.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        let format = start.media_format;
        if format.encoding == AudioEncoding::Alaw || format.channels != 1 {
            return Err(ProtocolError::UnsupportedFormat);
        }
        let frame_ms = chunk_ms(format).ok_or(ProtocolError::UnsupportedFormat)?;
        self.frame_ms = frame_ms;
        self.sid_json.clear();
        push_escaped(&mut self.sid_json, &start.stream_id);
        self.stream_sid = (!start.stream_id.is_empty()).then(|| start.stream_id.clone());
        self.camel_case = self.start_camel_case;
        self.first_timestamp = None;
        self.out_bytes_per_second = u64::from(format.sample_rate) * format.encoding.bytes_per_sample() as u64;
        self.chunks_sent.set(0);
        self.bytes_sent.set(0);
        Ok(format)
    }

    /// Writes `media` with the next `chunk` number, the `timestamp` of the audio sent before it,
    /// and `audio` in base64.
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        let chunk = self.chunks_sent.get() + 1;
        let sent = self.bytes_sent.get();
        self.chunks_sent.set(chunk);
        self.bytes_sent.set(sent.saturating_add(audio.len() as u64));
        self.push_head(out, b"media");
        out.extend_from_slice(MEDIA_CHUNK);
        push_decimal(out, chunk);
        out.extend_from_slice(MEDIA_TIMESTAMP);
        // u128: no overflow however long the call.
        let ms = u128::from(sent) * 1000 / u128::from(self.out_bytes_per_second.max(1));
        push_decimal(out, u64::try_from(ms).unwrap_or(u64::MAX));
        out.extend_from_slice(MEDIA_PAYLOAD);
        push_base64(out, audio);
        out.extend_from_slice(MEDIA_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"mark","stream_sid":"<sid>","mark":{"name":"<name>"}}`, `name`
    /// JSON-escaped.
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        self.push_head(out, b"mark");
        out.extend_from_slice(MARK_MID);
        push_escaped(out, name);
        out.extend_from_slice(MARK_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"clear","stream_sid":"<sid>"}`.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        self.push_head(out, b"clear");
        out.extend_from_slice(CLEAR_TAIL);
        MessageKind::Text
    }

    /// A bound on [`Dialect::write_media`]'s output: exact but for the digits of `chunk` and
    /// `timestamp`, counted at their most (saturating at `usize::MAX`).
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        let head =
            br#"{"event":"media",""#.len() + self.sid_key().len() + br#"":""#.len() + self.sid_json.len();
        let fixed = head
            + MEDIA_CHUNK.len()
            + MEDIA_TIMESTAMP.len()
            + MEDIA_PAYLOAD.len()
            + MEDIA_TAIL.len()
            + 2 * U64_DIGITS;
        fixed.saturating_add(base64_len(payload_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_in_full() {
        for n in [0, 7, 10, 320, 1_000_000, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn rates_may_carry_a_hertz_suffix() {
        assert_eq!(rate(Scalar::Str("8000".into())), Some(8000));
        assert_eq!(rate(Scalar::Str(" 16000Hz".into())), Some(16_000));
        assert_eq!(rate(Scalar::Str("24000 hz".into())), Some(24_000));
        assert_eq!(rate(Scalar::U64(8000)), Some(8000));
        for bad in ["", "Hz", "8k", "-8000", "8000 kHz", "é"] {
            assert_eq!(rate(Scalar::Str(bad.into())), None, "{bad}");
        }
        assert_eq!(rate(Scalar::F64(8000.0)), None);
    }

    const fn format(encoding: AudioEncoding, sample_rate: u32) -> MediaFormat {
        MediaFormat { encoding, sample_rate, channels: 1 }
    }

    #[test]
    fn chunks_meet_both_readings_of_exotels_minimum_at_exotels_formats() {
        for (encoding, rate, ms, bytes) in [
            (AudioEncoding::L16, 8000, 200, 3200),
            (AudioEncoding::L16, 16_000, 100, 3200),
            (AudioEncoding::L16, 24_000, 100, 4800),
            (AudioEncoding::Mulaw, 8000, 400, 3200),
        ] {
            let format = format(encoding, rate);
            assert_eq!(chunk_ms(format), Some(ms), "{format:?}");
            assert_eq!(rate as usize / 1000 * ms as usize * encoding.bytes_per_sample(), bytes);
        }
    }

    /// The shortest chunk by trying every length in turn: a second reading of the rule.
    fn shortest_by_search(format: MediaFormat) -> Option<u32> {
        let bytes_per_second = u64::from(format.sample_rate) * format.encoding.bytes_per_sample() as u64;
        (1u64..)
            .map(|n| n * 20)
            .take_while(|ms| bytes_per_second * ms <= 100_000 * 1000)
            .find(|ms| {
                let bytes = bytes_per_second * ms / 1000;
                let whole = (bytes_per_second * ms).is_multiple_of(1000);
                whole && *ms >= 100 && bytes >= 3200 && bytes.is_multiple_of(320)
            })
            .map(|ms| u32::try_from(ms).unwrap())
    }

    #[test]
    fn the_chunk_is_the_shortest_that_follows_the_rule_at_any_rate() {
        for encoding in [AudioEncoding::L16, AudioEncoding::Mulaw] {
            for rate in (1000..=48_000).step_by(1000).chain([50, 11_025, 22_050, 44_100, 96_000, 1_000_000]) {
                let format = format(encoding, rate);
                assert_eq!(chunk_ms(format), shortest_by_search(format), "{format:?}");
            }
        }
        // At 1 MHz, 100 ms is 200 KB: no chunk follows the rule (the start is refused).
        assert_eq!(chunk_ms(format(AudioEncoding::L16, 1_000_000)), None);
        assert_eq!(chunk_ms(format(AudioEncoding::L16, 0)), None);
        assert_eq!(chunk_ms(format(AudioEncoding::L16, u32::MAX)), None);
    }

    #[test]
    fn the_sample_rate_is_read_from_a_query() {
        assert_eq!(ExotelDialect::sample_rate_from_query("sample-rate=16000"), Some(16_000));
        assert_eq!(ExotelDialect::sample_rate_from_query("wss://h/ws?a=1&sample-rate=24000#x"), Some(24_000));
        assert_eq!(ExotelDialect::sample_rate_from_query("?sample_rate=8000"), Some(8000));
        assert_eq!(ExotelDialect::sample_rate_from_query("sample-rate=44100"), None);
        assert_eq!(ExotelDialect::sample_rate_from_query("rate=16000"), None);
        assert_eq!(ExotelDialect::sample_rate_from_query(""), None);
    }
}
