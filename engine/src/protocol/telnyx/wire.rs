//! Borrowed serde shapes of Telnyx's inbound messages.
//!
//! Built like the Twilio dialect's reader, for the same reasons: every type here deserializes from
//! *any* JSON value without failing (a value of the wrong shape becomes an `Invalid` variant, which
//! the dialect turns into [`ProtocolError::WrongType`] naming the field, since serde's own errors
//! are allocated strings that cannot say which field was wrong), so the only serde errors left are
//! JSON syntax errors and duplicate keys, both [`ProtocolError::MalformedJson`].
//!
//! Nothing here allocates for a well-formed `media` message: strings are borrowed from the message
//! (only a string containing escapes is owned), unknown fields are skipped through
//! `deserialize_any`, and no `serde_json::Value` or internally tagged enum is involved.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::protocol::{ProtocolError, Track};

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

/// Any JSON value, read and dropped.
///
/// Why not `serde::de::IgnoredAny`: serde_json skips it with a heap-allocated bracket stack and no
/// depth limit; `deserialize_any` allocates nothing and keeps serde_json's recursion limit.
struct Skip;

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

/// Any JSON value, classified. Strings are kept (borrowed when unescaped); arrays and objects are
/// skipped and only their kind is kept.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar<'a> {
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
        // Only reached for strings with escapes (serde_json unescaped them into its scratch buffer).
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

/// A field that should hold a JSON object, read in place as the [`Body`] `T`.
#[derive(Debug, Default)]
pub(super) enum Obj<T> {
    /// Absent or `null`.
    #[default]
    Absent,
    /// Present, but not an object.
    Invalid,
    /// An object.
    Valid(T),
}

/// Reads one JSON value into an [`Obj`], in place (a body is not moved out through serde's
/// `Result`s on every `media`).
pub(super) struct ObjSeed<'b, T>(pub &'b mut Obj<T>);

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

/// The name of a track as `media.track` spells it. Telnyx sends `inbound`/`outbound`; the
/// `_track` forms (how the stream is configured, and how Twilio-style peers send it) are taken too.
pub(super) fn track_from_name(name: &str) -> Option<Track> {
    match name {
        "inbound" | "inbound_track" => Some(Track::Inbound),
        "outbound" | "outbound_track" => Some(Track::Outbound),
        _ => None,
    }
}

/// `start.custom_parameters`: an object of name → value in document order, or `Invalid`.
///
/// String values are kept as they are; numbers and booleans become their JSON text (a number is
/// re-rendered by serde_json, so `1.50` becomes `"1.5"`); `null`, arrays and objects make the whole
/// field `Invalid`.
#[derive(Debug)]
pub(super) enum Params {
    Valid(Vec<(String, String)>),
    Invalid,
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string parameters")
    }
    scalars_are!(Params::Invalid);
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Params::Invalid)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Why a visitor: serde_json's own map type sorts keys, and the host may care about the
        // order the `<Parameter>`s were written in.
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
        Ok(if valid { Params::Valid(params) } else { Params::Invalid })
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

/// A JSON object read into a `Default` struct field by field; unknown fields are skipped.
pub(super) trait Body<'de>: Default {
    /// The names of the fields the struct keeps, in `read_field` index order (at most 32).
    const FIELDS: &'static [&'static str];
    /// Reads the value of field `FIELDS[index]` from `map`.
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error>;
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
    // Matching the transient `&str` directly: even an escaped key costs no allocation here.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|&name| name == v))
    }
}

/// Reads a whole JSON object into `body` (the map's opening brace already consumed).
fn read_body<'de, T: Body<'de>, A: MapAccess<'de>>(body: &mut T, mut map: A) -> Result<(), A::Error> {
    let mut seen = 0u32;
    while let Some(field) = map.next_key_seed(FieldSeed(T::FIELDS))? {
        let Some(index) = field else {
            map.next_value::<Skip>()?;
            continue;
        };
        // Why reject duplicates: with two `event`s or two `payload`s, which one counts is up to
        // the parser, and Telnyx's and ours could disagree.
        if seen & (1 << index) != 0 {
            return Err(de::Error::duplicate_field(T::FIELDS[index]));
        }
        seen |= 1 << index;
        body.read_field(index, &mut map)?;
    }
    Ok(())
}

/// `start` is boxed so that `Message`, on the stack for every `media`, stays small.
impl<'de, T: Body<'de>> Body<'de> for Box<T> {
    const FIELDS: &'static [&'static str] = T::FIELDS;
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        (**self).read_field(index, map)
    }
}

/// The `media` object.
#[derive(Debug, Default)]
pub(super) struct MediaBody<'a> {
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

/// The `dtmf` object (anything besides the digit, such as a duration, is not kept).
#[derive(Debug, Default)]
pub(super) struct DtmfBody<'a> {
    pub digit: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for DtmfBody<'de> {
    const FIELDS: &'static [&'static str] = &["digit"];
    fn read_field<A: MapAccess<'de>>(&mut self, _: usize, map: &mut A) -> Result<(), A::Error> {
        self.digit = map.next_value()?;
        Ok(())
    }
}

/// The `mark` object.
#[derive(Debug, Default)]
pub(super) struct MarkBody<'a> {
    pub name: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for MarkBody<'de> {
    const FIELDS: &'static [&'static str] = &["name"];
    fn read_field<A: MapAccess<'de>>(&mut self, _: usize, map: &mut A) -> Result<(), A::Error> {
        self.name = map.next_value()?;
        Ok(())
    }
}

/// `start.media_format`.
#[derive(Debug, Default)]
pub(super) struct FormatBody<'a> {
    pub encoding: Option<Scalar<'a>>,
    pub sample_rate: Option<Scalar<'a>>,
    pub channels: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for FormatBody<'de> {
    const FIELDS: &'static [&'static str] = &["encoding", "sample_rate", "channels"];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.encoding = map.next_value()?,
            1 => self.sample_rate = map.next_value()?,
            _ => self.channels = map.next_value()?,
        }
        Ok(())
    }
}

/// The `start` object. `call_session_id`, `from`, `to`, `tags` and `client_state` are not kept:
/// [`crate::protocol::StreamStart`] has no place for them.
#[derive(Debug, Default)]
pub(super) struct StartBody<'a> {
    pub user_id: Option<Scalar<'a>>,
    pub stream_id: Option<Scalar<'a>>,
    pub call_control_id: Option<Scalar<'a>>,
    pub custom_parameters: Option<Params>,
    pub media_format: Obj<FormatBody<'a>>,
}

impl<'de> Body<'de> for StartBody<'de> {
    const FIELDS: &'static [&'static str] =
        &["user_id", "stream_id", "call_control_id", "custom_parameters", "media_format"];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.user_id = map.next_value()?,
            1 => self.stream_id = map.next_value()?,
            2 => self.call_control_id = map.next_value()?,
            3 => self.custom_parameters = map.next_value()?,
            _ => map.next_value_seed(ObjSeed(&mut self.media_format))?,
        }
        Ok(())
    }
}

/// The events Telnyx sends that the dialect takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventKind {
    Connected,
    Start,
    Media,
    Dtmf,
    Mark,
    Stop,
}

impl EventKind {
    /// `None` for anything else, including Telnyx's `error` frame (see the module documentation
    /// of the dialect for why).
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "connected" => Self::Connected,
            "start" => Self::Start,
            "media" => Self::Media,
            "dtmf" => Self::Dtmf,
            "mark" => Self::Mark,
            "stop" => Self::Stop,
            _ => return None,
        })
    }
}

/// A whole inbound message, before validation.
///
/// Once `event` has been seen, only the body it names is read; the others are skipped. A body
/// that comes before `event` is read in case it is the one needed.
#[derive(Debug, Default)]
pub(super) struct Message<'a> {
    pub event: Option<Scalar<'a>>,
    pub sequence: Option<Scalar<'a>>,
    pub stream_id: Option<Scalar<'a>>,
    pub media: Obj<MediaBody<'a>>,
    pub start: Obj<Box<StartBody<'a>>>,
    pub dtmf: Obj<DtmfBody<'a>>,
    pub mark: Obj<MarkBody<'a>>,
    /// `None`: no `event` yet; `Some(None)`: an `event` that names nothing we know.
    kind: Option<Option<EventKind>>,
}

impl Message<'_> {
    fn wants(&self, body: EventKind) -> bool {
        self.kind.is_none_or(|kind| kind == Some(body))
    }
}

impl<'de> Body<'de> for Message<'de> {
    const FIELDS: &'static [&'static str] =
        &["event", "sequence_number", "stream_id", "media", "start", "dtmf", "mark"];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => {
                self.event = map.next_value()?;
                self.kind = Some(match &self.event {
                    Some(Scalar::Str(name)) => EventKind::from_name(name),
                    _ => None,
                });
            }
            1 => self.sequence = map.next_value()?,
            2 => self.stream_id = map.next_value()?,
            3 if self.wants(EventKind::Media) => map.next_value_seed(ObjSeed(&mut self.media))?,
            4 if self.wants(EventKind::Start) => map.next_value_seed(ObjSeed(&mut self.start))?,
            5 if self.wants(EventKind::Dtmf) => map.next_value_seed(ObjSeed(&mut self.dtmf))?,
            6 if self.wants(EventKind::Mark) => map.next_value_seed(ObjSeed(&mut self.mark))?,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
}

/// Parses one message's JSON into `root` (which the caller owns so the message is not moved).
///
/// Every error is [`ProtocolError::MalformedJson`]: invalid JSON, trailing data, nesting over
/// serde_json's depth limit (128), a duplicate key among the fields read, or a top-level value that
/// is not an object.
pub(super) fn parse_message<'a>(text: &'a str, root: &mut Obj<Message<'a>>) -> Result<(), ProtocolError> {
    let mut de = serde_json::Deserializer::from_str(text);
    ObjSeed(&mut *root).deserialize(&mut de).map_err(|_| ProtocolError::MalformedJson)?;
    de.end().map_err(|_| ProtocolError::MalformedJson)?;
    match root {
        Obj::Valid(_) => Ok(()),
        Obj::Absent | Obj::Invalid => Err(ProtocolError::MalformedJson),
    }
}
