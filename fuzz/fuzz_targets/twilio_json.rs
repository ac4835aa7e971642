//! The Twilio dialect parser on structured JSON: messages built field by field (valid values,
//! nulls, wrong types, missing fields, unknown fields, escaped strings, shuffled keys), each
//! checked against an oracle written from the parser's documented rules (the table in
//! `engine/src/protocol/twilio.rs`). Also round-trips the writers: what `write_media`/`write_mark`
//! produce parses back to the same payload and name.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD};
use libfuzzer_sys::fuzz_target;
use trunkline::protocol::{
    AudioEncoding, Dialect, Inbound, MessageKind, PayloadBuffer, ProtocolError, StreamStart, TwilioDialect,
};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JSON value of any type (no deeper than two levels).
#[derive(Arbitrary, Debug, Clone)]
enum Junk {
    Null,
    Bool(bool),
    Neg(i64),
    Pos(u64),
    Float(f64),
    Str(String),
    Digits(u64),
    EmptyArray,
    EmptyObject,
    Array(Vec<Scalar>),
    Object(Vec<(String, Scalar)>),
}

#[derive(Arbitrary, Debug, Clone)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
}

/// How a field appears in the message.
#[derive(Arbitrary, Debug, Clone)]
enum Field<T> {
    Absent,
    Null,
    Valid(T),
    Other(Junk),
}

#[derive(Arbitrary, Debug, Clone)]
enum EventName {
    Connected,
    Start,
    Media,
    Dtmf,
    Mark,
    Stop,
    Other(String),
}

/// A number as Twilio sends it (a digit string) or as compatible carriers do (a bare integer).
#[derive(Arbitrary, Debug, Clone)]
enum Num {
    Str(u64),
    Bare(u64),
    Padded(u8, u64),
}

#[derive(Arbitrary, Debug, Clone)]
enum Payload {
    Bytes { bytes: Vec<u8>, padded: bool },
    Text(String),
}

#[derive(Arbitrary, Debug, Clone)]
struct MediaBody {
    payload: Field<Payload>,
    timestamp: Field<Num>,
    chunk: Field<Num>,
    track: Field<String>,
    extra: Vec<(u8, Junk)>,
}

#[derive(Arbitrary, Debug, Clone)]
struct FormatBody {
    encoding: Field<u8>,
    sample_rate: Field<Num>,
    channels: Field<Num>,
}

#[derive(Arbitrary, Debug, Clone)]
struct StartBody {
    stream_sid: Field<String>,
    call_sid: Field<String>,
    account_sid: Field<String>,
    tracks: Option<Vec<bool>>,
    media_format: Field<FormatBody>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Body {
    None,
    Media(Field<MediaBody>),
    Dtmf(Field<Field<String>>),
    Mark(Field<Field<String>>),
    Start(Field<StartBody>),
    /// A body for another event than `event` names (skipped).
    Stray(Junk),
}

#[derive(Arbitrary, Debug)]
struct Message {
    event: Field<EventName>,
    sequence: Field<Num>,
    stream_sid: Field<String>,
    body: Body,
    extra: Vec<(u8, Junk)>,
    /// Keys in this rotated order; also where `event` goes.
    rotate: u8,
    /// Write every string with `\u` escapes.
    escape: bool,
    limit: u16,
}

// ---------------------------------------------------------------- rendering

fn string(s: &str, escape: bool) -> String {
    if !escape {
        return serde_json::to_string(s).unwrap();
    }
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out.push('"');
    out
}

fn scalar(s: &Scalar, escape: bool) -> String {
    match s {
        Scalar::Null => "null".into(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => string(s, escape),
    }
}

fn junk(j: &Junk, escape: bool) -> String {
    match j {
        Junk::Null => "null".into(),
        Junk::Bool(b) => b.to_string(),
        Junk::Neg(i) => i.to_string(),
        Junk::Pos(u) => u.to_string(),
        Junk::Float(f) if f.is_finite() => format!("{f:?}"),
        Junk::Float(_) => "1.5e300".into(),
        Junk::Str(s) => string(s, escape),
        Junk::Digits(d) => format!("\"{d}\""),
        Junk::EmptyArray => "[]".into(),
        Junk::EmptyObject => "{}".into(),
        Junk::Array(items) => {
            format!("[{}]", items.iter().map(|s| scalar(s, escape)).collect::<Vec<_>>().join(","))
        }
        Junk::Object(items) => format!(
            "{{{}}}",
            items
                .iter()
                .enumerate()
                // Index-prefixed keys: never a duplicate.
                .map(|(i, (k, v))| format!("{}:{}", string(&format!("{i}{k}"), escape), scalar(v, escape)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn num(n: &Num) -> String {
    match n {
        Num::Str(v) => format!("\"{v}\""),
        Num::Bare(v) => v.to_string(),
        Num::Padded(zeros, v) => format!("\"{}{v}\"", "0".repeat(usize::from(*zeros % 4))),
    }
}

fn num_value(n: &Num) -> u64 {
    match n {
        Num::Str(v) | Num::Bare(v) | Num::Padded(_, v) => *v,
    }
}

const ENCODINGS: [&str; 6] =
    ["audio/x-mulaw", "AUDIO/X-MULAW", "audio/x-alaw", "audio/x-l16", "audio/l16", "audio/opus"];

fn payload_text(p: &Payload) -> String {
    match p {
        Payload::Bytes { bytes, padded: true } => STANDARD.encode(bytes),
        Payload::Bytes { bytes, padded: false } => STANDARD_NO_PAD.encode(bytes),
        Payload::Text(t) => t.clone(),
    }
}

/// `"key":value` pairs of an object; `None` values are absent fields.
fn object(fields: Vec<(String, Option<String>)>, rotate: u8, escape: bool) -> String {
    let mut present: Vec<_> = fields.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    if !present.is_empty() {
        let n = usize::from(rotate) % present.len();
        present.rotate_left(n);
    }
    let body: Vec<_> = present.iter().map(|(k, v)| format!("{}:{v}", string(k, escape))).collect();
    format!("{{{}}}", body.join(","))
}

fn field<T>(f: &Field<T>, escape: bool, valid: impl Fn(&T) -> String) -> Option<String> {
    match f {
        Field::Absent => None,
        Field::Null => Some("null".into()),
        Field::Valid(v) => Some(valid(v)),
        Field::Other(j) => Some(junk(j, escape)),
    }
}

fn extras(extra: &[(u8, Junk)], escape: bool) -> Vec<(String, Option<String>)> {
    // Unknown names only ("x" + index): never a duplicate of a field the parser reads.
    extra.iter().enumerate().map(|(i, (k, j))| (format!("x{i}_{k}"), Some(junk(j, escape)))).collect()
}

fn render(m: &Message) -> String {
    let e = m.escape;
    let mut fields = vec![
        (
            "event".to_owned(),
            field(&m.event, e, |n| match n {
                EventName::Connected => string("connected", e),
                EventName::Start => string("start", e),
                EventName::Media => string("media", e),
                EventName::Dtmf => string("dtmf", e),
                EventName::Mark => string("mark", e),
                EventName::Stop => string("stop", e),
                EventName::Other(s) => string(s, e),
            }),
        ),
        ("sequenceNumber".to_owned(), field(&m.sequence, e, num)),
        ("streamSid".to_owned(), field(&m.stream_sid, e, |s| string(s, e))),
    ];
    match &m.body {
        Body::None => {}
        Body::Stray(j) => fields.push(("stop".into(), Some(junk(j, e)))),
        Body::Media(f) => fields.push((
            "media".into(),
            field(f, e, |b| {
                let mut inner = vec![
                    ("payload".to_owned(), field(&b.payload, e, |p| string(&payload_text(p), e))),
                    ("timestamp".to_owned(), field(&b.timestamp, e, num)),
                    ("chunk".to_owned(), field(&b.chunk, e, num)),
                    ("track".to_owned(), field(&b.track, e, |s| string(s, e))),
                ];
                inner.extend(extras(&b.extra, e));
                object(inner, m.rotate / 3, e)
            }),
        )),
        Body::Dtmf(f) => fields.push((
            "dtmf".into(),
            field(f, e, |d| {
                let inner = vec![
                    ("track".to_owned(), Some(string("inbound_track", e))),
                    ("digit".to_owned(), field(d, e, |s| string(s, e))),
                ];
                object(inner, m.rotate / 3, e)
            }),
        )),
        Body::Mark(f) => fields.push((
            "mark".into(),
            field(f, e, |d| object(vec![("name".to_owned(), field(d, e, |s| string(s, e)))], 0, e)),
        )),
        Body::Start(f) => fields.push((
            "start".into(),
            field(f, e, |b| {
                let tracks = b.tracks.as_ref().map(|t| {
                    let names: Vec<_> =
                        t.iter().map(|&i| string(if i { "inbound" } else { "outbound" }, e)).collect();
                    format!("[{}]", names.join(","))
                });
                let format = field(&b.media_format, e, |f| {
                    let inner = vec![
                        (
                            "encoding".to_owned(),
                            field(&f.encoding, e, |i| {
                                string(ENCODINGS[usize::from(*i) % ENCODINGS.len()], e)
                            }),
                        ),
                        ("sampleRate".to_owned(), field(&f.sample_rate, e, num)),
                        ("channels".to_owned(), field(&f.channels, e, num)),
                    ];
                    object(inner, m.rotate / 5, e)
                });
                let inner = vec![
                    ("streamSid".to_owned(), field(&b.stream_sid, e, |s| string(s, e))),
                    ("callSid".to_owned(), field(&b.call_sid, e, |s| string(s, e))),
                    ("accountSid".to_owned(), field(&b.account_sid, e, |s| string(s, e))),
                    ("tracks".to_owned(), tracks),
                    ("customParameters".to_owned(), Some("{\"a\":\"b\"}".to_owned())),
                    ("mediaFormat".to_owned(), format),
                ];
                object(inner, m.rotate / 3, e)
            }),
        )),
    }
    fields.extend(extras(&m.extra, e));
    object(fields, m.rotate, e)
}

// ---------------------------------------------------------------- the oracle

type E = ProtocolError;

/// `Some(value)` for a valid number field, `Err` for a present invalid one, `None` if absent.
fn number<T>(f: &Field<T>, name: &'static str, valid: impl Fn(&T) -> u64) -> Result<Option<u64>, E> {
    match f {
        Field::Absent | Field::Null => Ok(None),
        Field::Valid(v) => Ok(Some(valid(v))),
        Field::Other(Junk::Null) => Ok(None),
        Field::Other(Junk::Pos(v)) => Ok(Some(*v)),
        Field::Other(Junk::Neg(v)) if *v >= 0 => Ok(Some(*v as u64)),
        Field::Other(Junk::Digits(v)) => Ok(Some(*v)),
        Field::Other(Junk::Str(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| E::WrongType(name))
        }
        Field::Other(_) => Err(E::WrongType(name)),
    }
}

fn text<'a>(f: &'a Field<String>, name: &'static str) -> Result<Option<String>, E> {
    match f {
        Field::Absent | Field::Null | Field::Other(Junk::Null) => Ok(None),
        Field::Valid(s) | Field::Other(Junk::Str(s)) => Ok(Some(s.clone())),
        Field::Other(Junk::Digits(d)) => Ok(Some(d.to_string())),
        Field::Other(_) => Err(E::WrongType(name)),
    }
}

fn required<T>(v: Result<Option<T>, E>, name: &'static str) -> Result<T, E> {
    v?.ok_or(E::MissingField(name))
}

/// A body with none of the fields the parser reads (what an unrelated JSON object amounts to).
trait Empty {
    fn empty() -> Self;
}

impl<T> Empty for Field<T> {
    fn empty() -> Self {
        Field::Absent
    }
}

impl Empty for MediaBody {
    fn empty() -> Self {
        Self {
            payload: Field::Absent,
            timestamp: Field::Absent,
            chunk: Field::Absent,
            track: Field::Absent,
            extra: vec![],
        }
    }
}

impl Empty for StartBody {
    fn empty() -> Self {
        Self {
            stream_sid: Field::Absent,
            call_sid: Field::Absent,
            account_sid: Field::Absent,
            tracks: None,
            media_format: Field::Absent,
        }
    }
}

impl Empty for FormatBody {
    fn empty() -> Self {
        Self { encoding: Field::Absent, sample_rate: Field::Absent, channels: Field::Absent }
    }
}

/// The object behind a body field: `MissingField` when absent, `WrongType` when not an object.
fn body<T: Clone + Empty>(f: &Field<T>, name: &'static str) -> Result<T, E> {
    match f {
        Field::Absent | Field::Null | Field::Other(Junk::Null) => Err(E::MissingField(name)),
        Field::Valid(b) => Ok(b.clone()),
        // Objects whose keys (index-prefixed) are none of the fields read.
        Field::Other(Junk::EmptyObject | Junk::Object(_)) => Ok(T::empty()),
        Field::Other(_) => Err(E::WrongType(name)),
    }
}

fn encoding_of(name: &str) -> Result<AudioEncoding, E> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("audio/x-mulaw") {
        Ok(AudioEncoding::Mulaw)
    } else if is("audio/x-alaw") {
        Ok(AudioEncoding::Alaw)
    } else if is("audio/x-l16") || is("audio/l16") {
        Ok(AudioEncoding::L16)
    } else {
        Err(E::UnsupportedFormat)
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Connected,
    Stop,
    Media { timestamp: u64, payload: Vec<u8> },
    Dtmf(u8),
    Mark(String),
    Start { stream_sid: String, encoding: AudioEncoding, rate: u32, channels: u16 },
}

fn decoded_len(text: &[u8]) -> Result<usize, E> {
    let padding = text.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let symbols = text.len() - padding;
    match symbols % 4 {
        1 => Err(E::InvalidBase64),
        r => Ok(symbols / 4 * 3 + r.saturating_sub(1)),
    }
}

fn payload(text: &str, limit: usize) -> Result<Vec<u8>, E> {
    if decoded_len(text.as_bytes())? > limit {
        return Err(E::PayloadTooLarge);
    }
    LENIENT.decode(text).map_err(|_| E::InvalidBase64)
}

fn expect(m: &Message, limit: usize) -> Result<Expect, E> {
    let event = match &m.event {
        Field::Absent | Field::Null | Field::Other(Junk::Null) => return Err(E::MissingField("event")),
        Field::Valid(n) => n.clone(),
        Field::Other(Junk::Str(s)) => EventName::Other(s.clone()),
        Field::Other(Junk::Digits(d)) => EventName::Other(d.to_string()),
        Field::Other(_) => return Err(E::WrongType("event")),
    };
    let event = match event {
        EventName::Other(s) => match s.as_str() {
            "connected" => EventName::Connected,
            "start" => EventName::Start,
            "media" => EventName::Media,
            "dtmf" => EventName::Dtmf,
            "mark" => EventName::Mark,
            "stop" => EventName::Stop,
            _ => return Err(E::UnknownEvent),
        },
        known => known,
    };
    number(&m.sequence, "sequenceNumber", num_value)?;
    let outer_sid = text(&m.stream_sid, "streamSid")?;
    Ok(match event {
        EventName::Connected => Expect::Connected,
        EventName::Stop => Expect::Stop,
        EventName::Media => {
            let b = body(if let Body::Media(f) = &m.body { f } else { &Field::Absent }, "media")?;
            let timestamp = required(number(&b.timestamp, "media.timestamp", num_value), "media.timestamp")?;
            number(&b.chunk, "media.chunk", num_value)?;
            if let Some(track) = text(&b.track, "media.track")? {
                if !["inbound", "outbound", "inbound_track", "outbound_track"].contains(&track.as_str()) {
                    return Err(E::WrongType("media.track"));
                }
            }
            let p = match &b.payload {
                Field::Valid(p) => payload_text(p),
                Field::Other(Junk::Str(s)) => s.clone(),
                Field::Other(Junk::Digits(d)) => d.to_string(),
                Field::Absent | Field::Null | Field::Other(Junk::Null) => {
                    return Err(E::MissingField("media.payload"));
                }
                Field::Other(_) => return Err(E::WrongType("media.payload")),
            };
            Expect::Media { timestamp, payload: payload(&p, limit)? }
        }
        EventName::Dtmf => {
            let b = body(if let Body::Dtmf(f) = &m.body { f } else { &Field::Absent }, "dtmf")?;
            let digit = required(text(&b, "dtmf.digit"), "dtmf.digit")?;
            match digit.as_bytes() {
                &[d @ (b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')] => Expect::Dtmf(d),
                _ => return Err(E::WrongType("dtmf.digit")),
            }
        }
        EventName::Mark => {
            let b = body(if let Body::Mark(f) = &m.body { f } else { &Field::Absent }, "mark")?;
            Expect::Mark(required(text(&b, "mark.name"), "mark.name")?)
        }
        EventName::Start => {
            let b = body(if let Body::Start(f) = &m.body { f } else { &Field::Absent }, "start")?;
            let inner = text(&b.stream_sid, "start.streamSid")?;
            let stream_sid = match (inner, outer_sid) {
                (Some(i), Some(o)) if i != o => return Err(E::WrongType("streamSid")),
                (Some(s), _) | (None, Some(s)) => s,
                (None, None) => return Err(E::MissingField("start.streamSid")),
            };
            text(&b.call_sid, "start.callSid")?;
            text(&b.account_sid, "start.accountSid")?;
            let (encoding, rate, channels) = match &b.media_format {
                Field::Absent | Field::Null | Field::Other(Junk::Null) => (AudioEncoding::Mulaw, 8000, 1),
                other => {
                    let f = body(other, "start.mediaFormat")?;
                    const ENC: &str = "start.mediaFormat.encoding";
                    let encoding = match &f.encoding {
                        Field::Valid(i) => encoding_of(ENCODINGS[usize::from(*i) % ENCODINGS.len()])?,
                        Field::Absent | Field::Null | Field::Other(Junk::Null) => {
                            return Err(E::MissingField(ENC));
                        }
                        Field::Other(Junk::Str(s)) => encoding_of(s)?,
                        Field::Other(Junk::Digits(_)) => return Err(E::UnsupportedFormat),
                        Field::Other(_) => return Err(E::WrongType(ENC)),
                    };
                    const RATE: &str = "start.mediaFormat.sampleRate";
                    let rate = required(number(&f.sample_rate, RATE, num_value), RATE)?;
                    let rate = u32::try_from(rate).ok().filter(|&r| r > 0).ok_or(E::WrongType(RATE))?;
                    const CH: &str = "start.mediaFormat.channels";
                    let channels = number(&f.channels, CH, num_value)?.unwrap_or(1);
                    let channels = u16::try_from(channels).ok().filter(|&c| c > 0).ok_or(E::WrongType(CH))?;
                    (encoding, rate, channels)
                }
            };
            Expect::Start { stream_sid, encoding, rate, channels }
        }
        EventName::Other(_) => unreachable!("mapped above"),
    })
}

fn actual(parsed: Inbound<'_>, payload: &PayloadBuffer) -> Expect {
    match parsed {
        Inbound::Connected => Expect::Connected,
        Inbound::Notice => panic!("Twilio sends no notice the dialect accepts"),
        Inbound::Stop { .. } => Expect::Stop,
        Inbound::Media(f) => {
            Expect::Media { timestamp: f.timestamp_ms, payload: payload.as_slice().to_vec() }
        }
        Inbound::Dtmf { digit, .. } => Expect::Dtmf(digit),
        Inbound::Mark { name, .. } => Expect::Mark(name.into_owned()),
        Inbound::Start(s) => {
            let StreamStart { stream_id: stream_sid, media_format: f, .. } = *s;
            Expect::Start { stream_sid, encoding: f.encoding, rate: f.sample_rate, channels: f.channels }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(message) = Message::arbitrary(&mut u) else { return };
    let limit = usize::from(message.limit % 2048);
    let json = render(&message);
    let mut dialect = TwilioDialect::new();
    let mut buf = PayloadBuffer::with_limit(limit);
    let got = dialect.parse(json.as_bytes(), MessageKind::Text, &mut buf).map(|p| actual(p, &buf));
    let want = expect(&message, limit);
    assert_eq!(got, want, "message: {json}");

    // Round trips of the writers, with the stream SID of this message.
    if let Ok(Expect::Start { .. }) = &got {
        let mut buf = PayloadBuffer::with_limit(limit);
        if let Ok(Inbound::Start(start)) = dialect.parse(json.as_bytes(), MessageKind::Text, &mut buf) {
            dialect.on_start(&start).expect("Twilio takes any start");
        }
    }
    let bytes: Vec<u8> = u.arbitrary().unwrap_or_default();
    let name: String = u.arbitrary().unwrap_or_default();
    let mut out = Vec::new();
    let mut big = PayloadBuffer::with_limit(bytes.len());
    dialect.write_media(&bytes, &mut out);
    assert_eq!(out.len(), dialect.max_media_message_len(bytes.len()));
    // (Outbound media has no timestamp, so it is read back as plain JSON.)
    let media: serde_json::Value = serde_json::from_slice(&out).expect("write_media writes JSON");
    assert_eq!(media["event"], "media");
    let payload = STANDARD.decode(media["media"]["payload"].as_str().expect("a payload")).expect("base64");
    assert_eq!(payload, bytes);
    dialect.write_mark(&name, &mut out);
    match dialect.parse(&out, MessageKind::Text, &mut big) {
        Ok(Inbound::Mark { name: n, .. }) => assert_eq!(n, name),
        other => panic!("write_mark parsed as {other:?}"),
    }
    dialect.write_clear(&mut out);
    let clear: serde_json::Value = serde_json::from_slice(&out).expect("clear is JSON");
    assert_eq!(clear["event"], "clear");
});
