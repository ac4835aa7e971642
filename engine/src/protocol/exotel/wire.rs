//! Borrowed serde shapes of Exotel's inbound messages (read with the shared `json_read`).
//!
//! Identifiers come in two spellings (`stream_sid` and `streamSid`, by applet and Connect path), so
//! each spelling has its own slot; the dialect reconciles them.

use serde::de::MapAccess;

use crate::protocol::json_read::{Body, DtmfBody, MarkBody, MediaBody, Obj, ObjSeed, Params, Scalar, Skip};

/// `start.media_format` (its `bit_rate` is not kept: payloads are 16-bit whatever it says).
#[derive(Debug, Default)]
pub(super) struct FormatBody<'a> {
    pub encoding: Option<Scalar<'a>>,
    pub sample_rate: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for FormatBody<'de> {
    const FIELDS: &'static [&'static str] = &["encoding", "sample_rate"];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.encoding = map.next_value()?,
            _ => self.sample_rate = map.next_value()?,
        }
        Ok(())
    }
}

/// The `start` object.
#[derive(Debug, Default)]
pub(super) struct StartBody<'a> {
    pub stream_sid: Option<Scalar<'a>>,
    pub stream_sid_camel: Option<Scalar<'a>>,
    pub call_sid: Option<Scalar<'a>>,
    pub call_sid_camel: Option<Scalar<'a>>,
    pub account_sid: Option<Scalar<'a>>,
    pub account_sid_camel: Option<Scalar<'a>>,
    pub custom_parameters: Option<Params<'a>>,
    pub media_format: Obj<FormatBody<'a>>,
}

impl<'de> Body<'de> for StartBody<'de> {
    const FIELDS: &'static [&'static str] = &[
        "stream_sid",
        "streamSid",
        "call_sid",
        "callSid",
        "account_sid",
        "accountSid",
        "custom_parameters",
        "media_format",
    ];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.stream_sid = map.next_value()?,
            1 => self.stream_sid_camel = map.next_value()?,
            2 => self.call_sid = map.next_value()?,
            3 => self.call_sid_camel = map.next_value()?,
            4 => self.account_sid = map.next_value()?,
            5 => self.account_sid_camel = map.next_value()?,
            6 => self.custom_parameters = map.next_value()?,
            _ => map.next_value_seed(ObjSeed(&mut self.media_format))?,
        }
        Ok(())
    }
}

/// The events Exotel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventKind {
    Connected,
    Start,
    Media,
    Dtmf,
    Mark,
    Stop,
    /// `clear`: not documented as sent, but Exotel's own bridge handles one. Nothing to do.
    Clear,
}

impl EventKind {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "connected" => Self::Connected,
            "start" => Self::Start,
            "media" => Self::Media,
            "dtmf" => Self::Dtmf,
            "mark" => Self::Mark,
            "stop" => Self::Stop,
            "clear" => Self::Clear,
            _ => return None,
        })
    }
}

/// A whole inbound message, before validation.
///
/// Only the body matching `event` is read once `event` has been seen (Exotel sends it first); the
/// others are skipped. A body that comes before `event` is read in case it is the one needed.
#[derive(Debug, Default)]
pub(super) struct Message<'a> {
    pub event: Option<Scalar<'a>>,
    pub sequence: Option<Scalar<'a>>,
    pub stream_sid: Option<Scalar<'a>>,
    pub stream_sid_camel: Option<Scalar<'a>>,
    pub media: Obj<MediaBody<'a>>,
    pub start: Obj<Box<StartBody<'a>>>,
    pub dtmf: Obj<DtmfBody<'a>>,
    pub mark: Obj<MarkBody<'a>>,
    /// `None`: no `event` yet; `Some(None)`: an `event` that names nothing known.
    kind: Option<Option<EventKind>>,
}

impl Message<'_> {
    fn wants(&self, body: EventKind) -> bool {
        self.kind.is_none_or(|kind| kind == Some(body))
    }
}

impl<'de> Body<'de> for Message<'de> {
    const FIELDS: &'static [&'static str] =
        &["event", "sequence_number", "stream_sid", "streamSid", "media", "start", "dtmf", "mark"];
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
            2 => self.stream_sid = map.next_value()?,
            3 => self.stream_sid_camel = map.next_value()?,
            4 if self.wants(EventKind::Media) => map.next_value_seed(ObjSeed(&mut self.media))?,
            5 if self.wants(EventKind::Start) => map.next_value_seed(ObjSeed(&mut self.start))?,
            6 if self.wants(EventKind::Dtmf) => map.next_value_seed(ObjSeed(&mut self.dtmf))?,
            7 if self.wants(EventKind::Mark) => map.next_value_seed(ObjSeed(&mut self.mark))?,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
}
