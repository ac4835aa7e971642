//! Borrowed, allocation-free reading of a carrier's JSON messages, and the value checks every
//! JSON dialect needs (numbers that may be strings, base64 payloads, DTMF digits, MIME types,
//! `k=v` parameter lists). Carrier-neutral: the Twilio (and SignalWire), Telnyx, Plivo and Exotel
//! dialects all read their messages with it.
//!
//! Every type here deserializes from *any* JSON value without failing: a value of the wrong shape
//! becomes an `Invalid` (or non-matching) variant, its contents read and dropped, and the dialect
//! turns that into [`ProtocolError::WrongType`] naming the field. Why: serde's errors are boxed
//! strings (an allocation, and no way to say which field was wrong), so the only serde errors left
//! are JSON syntax errors and duplicate keys, both [`ProtocolError::MalformedJson`].
//!
//! Nothing here allocates for a well-formed audio message: strings are borrowed from the message
//! (only a string containing escapes is owned), unknown fields are skipped without
//! `serde::de::IgnoredAny` (serde_json keeps a heap stack of brackets for it), and a message is
//! read into one struct in place, never into a `serde_json::Value`.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::protocol::{MediaFrame, PayloadBuffer, ProtocolError, Track};

/// Generates the visitor methods for every non-container JSON value, all answering `$invalid`.
macro_rules! scalars_are {
    ($invalid:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($invalid)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($invalid)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($invalid)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($invalid)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($invalid)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($invalid)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Values

/// Any JSON value, read and dropped through `deserialize_any` (no allocation, and serde_json's
/// recursion limit still applies).
pub(crate) struct Skip;

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    scalars_are!(Skip);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

/// Any JSON value, classified. Strings are kept (borrowed unless escaped); arrays and objects are
/// skipped, only their kind kept. Read as `Option<Scalar>`, a `null` is `None` (an absent field).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // Only reached for strings with escapes (serde_json unescaped them into its scratch).
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map)?;
        Ok(Scalar::Object)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

/// A field that should hold a JSON object, read in place as the [`Body`] `T`.
#[derive(Debug, Default)]
pub(crate) enum Obj<T> {
    /// Absent or `null`.
    #[default]
    Absent,
    /// Present, but not an object.
    Invalid,
    /// An object.
    Valid(T),
}

/// Reads one JSON value into an [`Obj`] in place (moving bodies out through serde's layers of
/// `Result`s would copy them for every message).
pub(crate) struct ObjSeed<'b, T>(pub &'b mut Obj<T>);

impl<'de, T: Body<'de>> DeserializeSeed<'de> for ObjSeed<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Body<'de>> Visitor<'de> for ObjSeed<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        *self.0 = Obj::Invalid;
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        *self.0 = Obj::Invalid;
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        *self.0 = Obj::Invalid;
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        *self.0 = Obj::Invalid;
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        *self.0 = Obj::Invalid;
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // `null` is an absent field; the slot is still `Absent` (keys are never read twice).
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        SkipVisitor.visit_seq(seq)?;
        *self.0 = Obj::Invalid;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        *self.0 = Obj::Valid(T::default());
        match self.0 {
            Obj::Valid(body) => read_body(body, map),
            Obj::Absent | Obj::Invalid => unreachable!("just set to Valid"),
        }
    }
}

/// A JSON object read into a `Default` struct field by field; unknown fields are skipped.
pub(crate) trait Body<'de>: Default {
    /// The names of the fields the struct keeps, in `read_field` index order (at most 32).
    const FIELDS: &'static [&'static str];
    /// Reads the value of field `FIELDS[index]` from `map`.
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error>;
}

/// A `start` body is boxed so that the message struct, on the stack for every audio message,
/// stays small; the box is only allocated when a `start` body is actually read.
impl<'de, T: Body<'de>> Body<'de> for Box<T> {
    const FIELDS: &'static [&'static str] = T::FIELDS;
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        (**self).read_field(index, map)
    }
}

/// Finds a key in a [`Body::FIELDS`] list, `None` for keys the body does not keep.
struct FieldSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    // The transient `&str` is matched directly: even an escaped key costs no allocation.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|&name| name == v))
    }
}

/// Reads a whole JSON object into `body` (its opening brace already consumed).
fn read_body<'de, T: Body<'de>, A: MapAccess<'de>>(body: &mut T, mut map: A) -> Result<(), A::Error> {
    let mut seen = 0u32;
    while let Some(field) = map.next_key_seed(FieldSeed(T::FIELDS))? {
        let Some(index) = field else {
            map.next_value::<Skip>()?;
            continue;
        };
        // Why refuse duplicates: with two `event`s or two `payload`s, which one counts is up to
        // the parser, and the carrier's parser and ours could disagree.
        if seen & (1 << index) != 0 {
            return Err(de::Error::duplicate_field(T::FIELDS[index]));
        }
        seen |= 1 << index;
        body.read_field(index, &mut map)?;
    }
    Ok(())
}

/// Parses one message's JSON into `root` (owned by the caller so the message is not moved).
///
/// Every error is [`ProtocolError::MalformedJson`]: invalid JSON, trailing data, nesting over
/// serde_json's depth limit (128), a duplicate key among the fields read, or a top-level value that
/// is not an object.
pub(crate) fn parse_root<'a, T: Body<'a>>(text: &'a str, root: &mut Obj<T>) -> Result<(), ProtocolError> {
    let mut de = serde_json::Deserializer::from_str(text);
    ObjSeed(&mut *root).deserialize(&mut de).map_err(|_| ProtocolError::MalformedJson)?;
    de.end().map_err(|_| ProtocolError::MalformedJson)?;
    match root {
        Obj::Valid(_) => Ok(()),
        Obj::Absent | Obj::Invalid => Err(ProtocolError::MalformedJson),
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies every JSON carrier spells the same way (Twilio, SignalWire, Telnyx, Plivo, Exotel)

/// The `media` object.
#[derive(Debug, Default)]
pub(crate) struct MediaBody<'a> {
    pub payload: Option<Scalar<'a>>,
    pub timestamp: Option<Scalar<'a>>,
    pub chunk: Option<Scalar<'a>>,
    pub track: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for MediaBody<'de> {
    const FIELDS: &'static [&'static str] = &["payload", "timestamp", "chunk", "track"];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.payload = map.next_value()?,
            1 => self.timestamp = map.next_value()?,
            2 => self.chunk = map.next_value()?,
            _ => self.track = map.next_value()?,
        }
        Ok(())
    }
}

/// The `dtmf` object: the digit and, where the carrier sends one, the duration. A track or
/// timestamp some carriers send alongside is skipped.
#[derive(Debug, Default)]
pub(crate) struct DtmfBody<'a> {
    pub digit: Option<Scalar<'a>>,
    pub duration: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for DtmfBody<'de> {
    const FIELDS: &'static [&'static str] = &["digit", "duration"];
    fn read_field<A: MapAccess<'de>>(&mut self, field: usize, map: &mut A) -> Result<(), A::Error> {
        match field {
            0 => self.digit = map.next_value()?,
            _ => self.duration = map.next_value()?,
        }
        Ok(())
    }
}

/// The `mark` object.
#[derive(Debug, Default)]
pub(crate) struct MarkBody<'a> {
    pub name: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for MarkBody<'de> {
    const FIELDS: &'static [&'static str] = &["name"];
    fn read_field<A: MapAccess<'de>>(&mut self, _: usize, map: &mut A) -> Result<(), A::Error> {
        self.name = map.next_value()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Setup-time shapes (these may allocate: they are only read for a `start`)

/// The name of a track, in the spellings carriers use.
pub(crate) fn track_from_name(name: &str) -> Option<Track> {
    match name {
        "inbound" | "inbound_track" => Some(Track::Inbound),
        "outbound" | "outbound_track" => Some(Track::Outbound),
        _ => None,
    }
}

/// An array of track names, or `Invalid` for anything else (including an array holding anything
/// but known track names).
#[derive(Debug)]
pub(crate) enum Tracks {
    Valid(Vec<Track>),
    Invalid,
}

struct TracksVisitor;

impl<'de> Visitor<'de> for TracksVisitor {
    type Value = Tracks;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of track names")
    }
    scalars_are!(Tracks::Invalid);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut tracks = Vec::with_capacity(2);
        let mut valid = true;
        // Keep reading after a bad element: the array must be consumed either way.
        while let Some(element) = seq.next_element::<Scalar<'de>>()? {
            match element {
                Scalar::Str(name) => match track_from_name(&name) {
                    Some(track) => tracks.push(track),
                    None => valid = false,
                },
                _ => valid = false,
            }
        }
        Ok(if valid { Tracks::Valid(tracks) } else { Tracks::Invalid })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map)?;
        Ok(Tracks::Invalid)
    }
}

impl<'de> Deserialize<'de> for Tracks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TracksVisitor)
    }
}

/// A carrier's custom data: a JSON object of name → value (in document order), or a string
/// (a `k=v` list, or a JSON object serialized into a string), or `Invalid`.
///
/// In an object, string values are kept; numbers and booleans become their JSON text (serde_json's
/// rendering: `1.50` → `"1.5"`); `null`, arrays and objects make the whole field `Invalid`.
#[derive(Debug)]
pub(crate) enum Params<'a> {
    Map(Vec<(String, String)>),
    Text(Cow<'a, str>),
    Invalid,
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of parameters or a string of them")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Params::Invalid)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Params::Invalid)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Params::Invalid)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Params::Invalid)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Params::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Params::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Params::Invalid)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Params::Invalid)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Why a visitor: serde_json's own map type (without `preserve_order`) sorts keys, and
        // the host may care about the order the parameters were written in.
        let mut params = Vec::new();
        let mut valid = true;
        while let Some(key) = map.next_key::<Scalar<'de>>()? {
            let value = map.next_value::<Scalar<'de>>()?;
            let Scalar::Str(key) = key else {
                valid = false;
                continue;
            };
            let value = match value {
                Scalar::Str(s) => s.into_owned(),
                Scalar::U64(n) => n.to_string(),
                Scalar::I64(n) => n.to_string(),
                Scalar::F64(x) => {
                    serde_json::Number::from_f64(x).map_or_else(|| x.to_string(), |n| n.to_string())
                }
                Scalar::Bool(b) => b.to_string(),
                Scalar::Null | Scalar::Array | Scalar::Object => {
                    valid = false;
                    continue;
                }
            };
            params.push((key.into_owned(), value));
        }
        Ok(if valid { Params::Map(params) } else { Params::Invalid })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

/// The name → value pairs of custom data, in the order sent.
///
/// A string is either a JSON object serialized into a string (it starts with `{` once leading
/// blanks are trimmed; read as an object is) or a list of `k=v` items cut at any of `separators`:
/// keys and values are trimmed of blanks, empty items are skipped, an item without `=` is a key
/// with an empty value. Anything else, or a string holding a JSON object that is not one of
/// string-like values, is `WrongType(field)`.
pub(crate) fn params_to_pairs(
    params: Params<'_>,
    separators: &[char],
    field: &'static str,
) -> Result<Vec<(String, String)>, ProtocolError> {
    match params {
        Params::Map(pairs) => Ok(pairs),
        Params::Invalid => Err(ProtocolError::WrongType(field)),
        Params::Text(text) if text.trim_start().starts_with('{') => {
            let mut de = serde_json::Deserializer::from_str(&text);
            let inner = Params::deserialize(&mut de).and_then(|p| de.end().map(|()| p));
            match inner {
                Ok(Params::Map(pairs)) => Ok(pairs),
                _ => Err(ProtocolError::WrongType(field)),
            }
        }
        Params::Text(text) => Ok(text
            .split(separators)
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| match item.split_once('=') {
                Some((key, value)) => (key.trim().to_owned(), value.trim().to_owned()),
                None => (item.to_owned(), String::new()),
            })
            .collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// Field checks

/// A number field's value: a non-negative JSON integer, or a string of ASCII digits.
pub(crate) fn number(value: Scalar<'_>, field: &'static str) -> Result<u64, ProtocolError> {
    match value {
        Scalar::U64(n) => Ok(n),
        Scalar::I64(n) => u64::try_from(n).map_err(|_| ProtocolError::WrongType(field)),
        Scalar::Str(s) => digits(&s).ok_or(ProtocolError::WrongType(field)),
        _ => Err(ProtocolError::WrongType(field)),
    }
}

/// A non-empty string of ASCII digits as a `u64` (no sign, no blanks, no overflow).
pub(crate) fn digits(s: &str) -> Option<u64> {
    // Why check the digits first: `u64::from_str` also takes a leading `+`.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The event a message names (its `event` field), by `from_name`.
pub(crate) fn event_kind<K>(
    event: &Option<Scalar<'_>>,
    from_name: impl Fn(&str) -> Option<K>,
) -> Result<K, ProtocolError> {
    match event {
        None => Err(ProtocolError::MissingField("event")),
        Some(Scalar::Str(name)) => from_name(name).ok_or(ProtocolError::UnknownEvent),
        Some(_) => Err(ProtocolError::WrongType("event")),
    }
}

/// Refuses a message of the stream (`of_stream`) naming another stream than the one `start` named
/// (`expected`), before any of its fields is read: it must have no effect at all. A message naming
/// no stream, or one before `start`, passes.
pub(crate) fn same_stream(
    expected: Option<&str>,
    named: Option<&str>,
    of_stream: bool,
) -> Result<(), ProtocolError> {
    match (expected, named) {
        (Some(expected), Some(named)) if of_stream && named != expected => Err(ProtocolError::ForeignStream),
        _ => Ok(()),
    }
}

/// The audio message body of the Twilio-shaped carriers: `timestamp` required, `chunk` and `track`
/// optional (inbound when absent), and the base64 `payload` it leaves to the dialect to decode.
pub(crate) fn media_frame<'a>(
    media: &mut MediaBody<'a>,
    sequence: Option<u64>,
) -> Result<(MediaFrame, Cow<'a, str>), ProtocolError> {
    let timestamp_ms = required_number(media.timestamp.take(), "media.timestamp")?;
    let chunk = optional_number(media.chunk.take(), "media.chunk")?;
    let track = match optional_string(media.track.take(), "media.track")? {
        None => Track::Inbound,
        Some(name) => track_from_name(&name).ok_or(ProtocolError::WrongType("media.track"))?,
    };
    let base64 = required_string(media.payload.take(), "media.payload")?;
    Ok((MediaFrame { sequence, chunk, timestamp_ms, track }, base64))
}

pub(crate) fn optional_number(
    value: Option<Scalar<'_>>,
    field: &'static str,
) -> Result<Option<u64>, ProtocolError> {
    value.map(|v| number(v, field)).transpose()
}

/// A DTMF duration in `per_ms` units of the carrier (1: ms; 8: samples at 8 kHz) as ms: a
/// number (fractions rounded) or a numeric string, as carriers disagree. Saturates at `u32::MAX`.
/// Anything else is no duration: the key press itself is what the host needs, and a duration
/// it cannot read must not cost it the digit.
pub(crate) fn dtmf_duration_ms(value: Option<Scalar<'_>>, per_ms: u64) -> Option<u32> {
    let units = match value? {
        Scalar::F64(f) if f.is_finite() && f >= 0.0 => f.round() as u64,
        Scalar::Null | Scalar::F64(_) => return None,
        v => number(v, "duration").ok()?,
    };
    Some(u32::try_from(units / per_ms).unwrap_or(u32::MAX))
}

pub(crate) fn required_number(value: Option<Scalar<'_>>, field: &'static str) -> Result<u64, ProtocolError> {
    number(value.ok_or(ProtocolError::MissingField(field))?, field)
}

pub(crate) fn optional_string<'a>(
    value: Option<Scalar<'a>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(_) => Err(ProtocolError::WrongType(field)),
    }
}

pub(crate) fn required_string<'a>(
    value: Option<Scalar<'a>>,
    field: &'static str,
) -> Result<Cow<'a, str>, ProtocolError> {
    optional_string(value, field)?.ok_or(ProtocolError::MissingField(field))
}

pub(crate) fn required_object<'b, T>(
    value: &'b mut Obj<T>,
    field: &'static str,
) -> Result<&'b mut T, ProtocolError> {
    match value {
        Obj::Absent => Err(ProtocolError::MissingField(field)),
        Obj::Invalid => Err(ProtocolError::WrongType(field)),
        Obj::Valid(body) => Ok(body),
    }
}

/// One of two spellings of a string field (`stream_sid` and `streamSid`): either may be present;
/// if both are, they must be equal, else `WrongType(field)`.
pub(crate) fn either_string<'a>(
    first: Option<Scalar<'a>>,
    second: Option<Scalar<'a>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, ProtocolError> {
    let first = optional_string(first, field)?;
    let second = optional_string(second, field)?;
    match (first, second) {
        (Some(a), Some(b)) if a != b => Err(ProtocolError::WrongType(field)),
        (Some(a), _) | (None, Some(a)) => Ok(Some(a)),
        (None, None) => Ok(None),
    }
}

/// An optional media track name (`inbound` when absent).
pub(crate) fn track(value: Option<Scalar<'_>>, field: &'static str) -> Result<Track, ProtocolError> {
    match optional_string(value, field)? {
        None => Ok(Track::Inbound),
        Some(name) => track_from_name(&name).ok_or(ProtocolError::WrongType(field)),
    }
}

/// A DTMF digit: exactly one of `0`-`9`, `*`, `#`, `A`-`D`.
pub(crate) fn dtmf_digit(value: Option<Scalar<'_>>, field: &'static str) -> Result<u8, ProtocolError> {
    match required_string(value, field)?.as_bytes() {
        &[d @ (b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')] => Ok(d),
        _ => Err(ProtocolError::WrongType(field)),
    }
}

/// A MIME type's essence (`audio/x-l16`, blanks trimmed) and its `rate` parameter, if any
/// (`audio/x-l16;rate=16000`, as carriers write a stream's content type).
pub(crate) fn mime_and_rate(mime: &str) -> (&str, Option<&str>) {
    let mut parts = mime.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let rate = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("rate").then(|| value.trim())
    });
    (essence, rate)
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// Standard alphabet, padding optional on input (some carriers strip it); trailing bits must be
/// zero, as in canonical base64.
const PAYLOAD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The decoded length of well-formed base64 `text` (padded or not), without decoding it.
pub(crate) fn decoded_len(text: &[u8]) -> Result<usize, ProtocolError> {
    let padding = text.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let symbols = text.len() - padding;
    let tail = match symbols % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        // One symbol carries 6 bits: not even one byte.
        _ => return Err(ProtocolError::InvalidBase64),
    };
    Ok(symbols / 4 * 3 + tail)
}

/// Decodes base64 `text` into `payload`, never growing its buffer: a decoded length over the
/// limit is `PayloadTooLarge` (checked before decoding), bad base64 `InvalidBase64`; on error the
/// buffer is left empty.
pub(crate) fn decode_payload(text: &[u8], payload: &mut PayloadBuffer) -> Result<(), ProtocolError> {
    let len = decoded_len(text)?;
    let limit = payload.limit();
    let buf = payload.raw_mut();
    // Why also check the capacity: the buffer must never reallocate here, whatever the caller did
    // to it.
    if len > limit || len > buf.capacity() {
        buf.clear();
        return Err(ProtocolError::PayloadTooLarge);
    }
    // Within capacity: no allocation. Zero-filling first keeps this free of `unsafe`.
    buf.resize(len, 0);
    match PAYLOAD_BASE64.decode_slice(text, buf) {
        Ok(written) if written == len => Ok(()),
        // A decode error, or text that was not the well-formed base64 `decoded_len` assumed.
        _ => {
            buf.clear();
            Err(ProtocolError::InvalidBase64)
        }
    }
}

/// Whether a text message may be a `start` or a `stop`: each names its event in quotes, and base64
/// audio has no quotes (see [`crate::protocol::Dialect::may_start_or_stop`]).
pub(crate) fn names_start_or_stop(message: &[u8]) -> bool {
    let contains = |needle: &[u8]| message.windows(needle.len()).any(|w| w == needle);
    contains(b"\"start\"") || contains(b"\"stop\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_len_matches_padded_and_unpadded_base64() {
        // RFC 4648 §10 vectors: "", "f", "fo", "foo", "foob", "fooba", "foobar".
        let vectors = ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"];
        for (len, text) in vectors.iter().enumerate() {
            assert_eq!(decoded_len(text.as_bytes()), Ok(len), "{text}");
            let unpadded = text.trim_end_matches('=');
            assert_eq!(decoded_len(unpadded.as_bytes()), Ok(len), "{unpadded}");
        }
        assert_eq!(decoded_len(b"Zm9vY"), Err(ProtocolError::InvalidBase64));
    }

    #[test]
    fn decode_never_grows_the_buffer() {
        let mut payload = PayloadBuffer::with_limit(3);
        let capacity = payload.raw_mut().capacity();
        assert_eq!(decode_payload(b"Zm9v", &mut payload), Ok(()));
        assert_eq!(payload.as_slice(), b"foo");
        assert_eq!(decode_payload(b"Zm9vYg", &mut payload), Err(ProtocolError::PayloadTooLarge));
        assert!(payload.as_slice().is_empty());
        assert_eq!(decode_payload(b"Zm9!", &mut payload), Err(ProtocolError::InvalidBase64));
        assert!(payload.as_slice().is_empty());
        assert_eq!(payload.raw_mut().capacity(), capacity);
    }

    #[test]
    fn numbers_accept_digit_strings_and_non_negative_integers_only() {
        let f = "f";
        assert_eq!(number(Scalar::Str("0".into()), f), Ok(0));
        assert_eq!(number(Scalar::Str("007".into()), f), Ok(7));
        assert_eq!(number(Scalar::Str("18446744073709551615".into()), f), Ok(u64::MAX));
        assert_eq!(number(Scalar::U64(5), f), Ok(5));
        assert_eq!(number(Scalar::I64(5), f), Ok(5));
        for bad in [
            Scalar::Str("".into()),
            Scalar::Str("+1".into()),
            Scalar::Str("-1".into()),
            Scalar::Str(" 1".into()),
            Scalar::Str("1.0".into()),
            Scalar::Str("18446744073709551616".into()),
            Scalar::I64(-1),
            Scalar::F64(1.0),
            Scalar::Bool(true),
            Scalar::Null,
            Scalar::Array,
            Scalar::Object,
        ] {
            assert_eq!(number(bad.clone(), f), Err(ProtocolError::WrongType(f)), "{bad:?}");
        }
    }

    #[test]
    fn mime_types_split_into_essence_and_rate() {
        assert_eq!(mime_and_rate("audio/x-mulaw"), ("audio/x-mulaw", None));
        assert_eq!(mime_and_rate("audio/x-l16;rate=16000"), ("audio/x-l16", Some("16000")));
        assert_eq!(mime_and_rate(" audio/L16 ; charset=x ; Rate = 8000 "), ("audio/L16", Some("8000")));
        assert_eq!(mime_and_rate(""), ("", None));
    }

    #[test]
    fn parameter_strings_split_at_any_separator() {
        let pairs = |text: &'static str| params_to_pairs(Params::Text(text.into()), &[';', ','], "p");
        let owned = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(pairs("a=1;b=2,c=3"), Ok(owned(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert_eq!(pairs(" a = 1 ;; flag ; e=x=y"), Ok(owned(&[("a", "1"), ("flag", ""), ("e", "x=y")])));
        assert_eq!(pairs(""), Ok(Vec::new()));
        assert_eq!(pairs(r#"{"z":"1","a":2}"#), Ok(owned(&[("z", "1"), ("a", "2")])));
        assert_eq!(pairs(r#"{"z":[1]}"#), Err(ProtocolError::WrongType("p")));
        assert_eq!(pairs(r#"{"z":"1"} x"#), Err(ProtocolError::WrongType("p")));
    }
}
