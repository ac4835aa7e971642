//! Borrowed serde shapes of Telnyx's inbound messages, read with the carrier-neutral
//! [`crate::protocol::json_read`] (which says why every shape there reads any JSON value without
//! failing, and why a well-formed `media` message costs no allocation).

use serde::de::MapAccess;

use crate::protocol::ProtocolError;
use crate::protocol::json_read::{
    self, Body, DtmfBody, MarkBody, MediaBody, Obj, ObjSeed, Params, Scalar, Skip,
};

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
    pub custom_parameters: Option<Params<'a>>,
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
    /// Telnyx's error frame: reported to the host, whatever its body.
    Error,
}

impl EventKind {
    /// `None` for anything else.
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "connected" => Self::Connected,
            "start" => Self::Start,
            "media" => Self::Media,
            "dtmf" => Self::Dtmf,
            "mark" => Self::Mark,
            "stop" => Self::Stop,
            "error" => Self::Error,
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
    json_read::parse_root(text, root)
}
