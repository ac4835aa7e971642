//! Borrowed serde shapes of Vonage's text messages after the first (`websocket:dtmf`,
//! `websocket:notify`, `websocket:cleared`), and the texts of what is written back.

use serde::Deserialize;

use crate::protocol::json_in::{Field, Text};
use crate::protocol::json_read::Scalar;

/// Any text message but `websocket:connected` (which is read whole, in order: see
/// [`crate::protocol::json_in::Ordered`]). Fields other than these are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Message<'a> {
    #[serde(borrow)]
    pub event: Option<Text<'a>>,
    /// `websocket:dtmf` as documented: the digit at the top level.
    #[serde(borrow)]
    pub digit: Option<Text<'a>>,
    /// `websocket:dtmf` as some integrations send it: `{"digit":…}` or the digit itself.
    #[serde(borrow)]
    pub dtmf: Field<'a, DtmfBody<'a>>,
    /// `websocket:dtmf`: how long the key was held, ms.
    #[serde(borrow)]
    pub duration: Option<Scalar<'a>>,
    /// `websocket:notify`: the payload of the `notify` it echoes.
    #[serde(borrow)]
    pub payload: Field<'a, NotifyPayload<'a>>,
}

/// `dtmf` as an object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DtmfBody<'a> {
    #[serde(borrow)]
    pub digit: Option<Text<'a>>,
    #[serde(borrow)]
    pub duration: Option<Scalar<'a>>,
}

/// The payload this dialect puts in every `notify`: the mark's name.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NotifyPayload<'a> {
    #[serde(borrow)]
    pub mark: Option<Text<'a>>,
}

/// The events Vonage sends as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    Connected,
    Dtmf,
    Notify,
    Cleared,
}

impl Event {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "websocket:connected" => Self::Connected,
            "websocket:dtmf" => Self::Dtmf,
            "websocket:notify" => Self::Notify,
            "websocket:cleared" => Self::Cleared,
            _ => return None,
        })
    }
}

/// `{"action":"notify","payload":{"mark":"` … `"}}`
pub(super) const NOTIFY_HEAD: &[u8] = br#"{"action":"notify","payload":{"mark":""#;
pub(super) const NOTIFY_TAIL: &[u8] = br#""}}"#;
/// The whole clear message.
pub(super) const CLEAR: &[u8] = br#"{"action":"clear"}"#;
