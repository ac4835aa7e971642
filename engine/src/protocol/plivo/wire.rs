//! Borrowed serde shapes of Plivo's inbound messages (read with [`crate::protocol::json_read`]).

use serde::de::MapAccess;

use crate::protocol::json_read::{Body, DtmfBody, MediaBody, Obj, ObjSeed, Params, Scalar, Skip, Tracks};

/// `start.mediaFormat`.
#[derive(Debug, Default)]
pub(super) struct FormatBody<'a> {
    pub encoding: Option<Scalar<'a>>,
    pub sample_rate: Option<Scalar<'a>>,
}

impl<'de> Body<'de> for FormatBody<'de> {
    const FIELDS: &'static [&'static str] = &["encoding", "sampleRate"];
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
    pub call_id: Option<Scalar<'a>>,
    pub stream_id: Option<Scalar<'a>>,
    pub account_id: Option<Scalar<'a>>,
    pub tracks: Option<Tracks>,
    pub media_format: Obj<FormatBody<'a>>,
}

impl<'de> Body<'de> for StartBody<'de> {
    const FIELDS: &'static [&'static str] = &["callId", "streamId", "accountId", "tracks", "mediaFormat"];
    fn read_field<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.call_id = map.next_value()?,
            1 => self.stream_id = map.next_value()?,
            2 => self.account_id = map.next_value()?,
            3 => self.tracks = map.next_value()?,
            _ => map.next_value_seed(ObjSeed(&mut self.media_format))?,
        }
        Ok(())
    }
}

/// The events Plivo sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventKind {
    Start,
    Media,
    Dtmf,
    /// `playedStream` (`played` in older material): a checkpoint was reached.
    Played,
    /// `clearedAudio`: the answer to `clearAudio`.
    Cleared,
    /// Not documented as sent; Plivo's own code parses it.
    Stop,
    /// `muteStream`, `unmuteStream`: not documented as sent; Plivo's own code parses them.
    /// Nothing for the engine to do.
    Notice,
    /// `error`, `playFailed`: not documented as sent either; if Plivo reports a failure, the host
    /// hears of it.
    Failure(&'static str),
}

impl EventKind {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "start" => Self::Start,
            "media" => Self::Media,
            "dtmf" => Self::Dtmf,
            "playedStream" | "played" => Self::Played,
            "clearedAudio" => Self::Cleared,
            "stop" => Self::Stop,
            "error" => Self::Failure("error"),
            "playFailed" => Self::Failure("playFailed"),
            "muteStream" | "unmuteStream" => Self::Notice,
            _ => return None,
        })
    }
}

/// A whole inbound message, before validation.
///
/// Only the body matching `event` is read once `event` has been seen (Plivo sends it first); the
/// others are skipped, `extra_headers` (repeated on every message) included. A body that comes
/// before `event` is read in case it is the one needed.
#[derive(Debug, Default)]
pub(super) struct Message<'a> {
    pub event: Option<Scalar<'a>>,
    pub sequence: Option<Scalar<'a>>,
    pub stream_id: Option<Scalar<'a>>,
    pub name: Option<Scalar<'a>>,
    pub extra_headers: Option<Params<'a>>,
    pub media: Obj<MediaBody<'a>>,
    pub start: Obj<Box<StartBody<'a>>>,
    pub dtmf: Obj<DtmfBody<'a>>,
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
        &["event", "sequenceNumber", "streamId", "name", "extra_headers", "media", "start", "dtmf"];
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
            3 if self.wants(EventKind::Played) => self.name = map.next_value()?,
            4 if self.wants(EventKind::Start) => self.extra_headers = map.next_value()?,
            5 if self.wants(EventKind::Media) => map.next_value_seed(ObjSeed(&mut self.media))?,
            6 if self.wants(EventKind::Start) => map.next_value_seed(ObjSeed(&mut self.start))?,
            7 if self.wants(EventKind::Dtmf) => map.next_value_seed(ObjSeed(&mut self.dtmf))?,
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
}
