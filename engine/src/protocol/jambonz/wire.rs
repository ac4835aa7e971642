//! Borrowed serde shapes of jambonz's text messages after the metadata, the texts of what is
//! written back, and the spelling of mark names on the wire.

use std::borrow::Cow;

use serde::Deserialize;

use crate::protocol::ProtocolError;
use crate::protocol::json_in::{Field, Text};
use crate::protocol::json_read::Scalar;

/// Any text message after the metadata. Fields other than these are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Message<'a> {
    /// What mod_audio_fork itself sends (`mark`, `playDone`).
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    /// What the jambonz `listen` task sends (`dtmf`).
    #[serde(borrow)]
    pub event: Option<Text<'a>>,
    /// The digit of a `dtmf` event.
    #[serde(borrow)]
    pub dtmf: Option<Text<'a>>,
    /// How long the key of a `dtmf` event was held, in samples at 8 kHz.
    #[serde(borrow)]
    pub duration: Option<Scalar<'a>>,
    /// The body of a `mark` echo.
    #[serde(borrow)]
    pub data: Field<'a, MarkData<'a>>,
}

/// `data` of a mark echo: `{"name":"m1","event":"playout"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MarkData<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub event: Option<Text<'a>>,
}

/// `{"type":"mark","data":{"name":"` … `"}}`
pub(super) const MARK_HEAD: &[u8] = br#"{"type":"mark","data":{"name":""#;
pub(super) const MARK_TAIL: &[u8] = br#""}}"#;
/// The whole clear message.
pub(super) const KILL_AUDIO: &[u8] = br#"{"type":"killAudio"}"#;

/// Appends a mark name as it goes on the wire: `%`, `"`, `\` and control characters as `%XX`,
/// everything else (including non-ASCII) as it is.
///
/// Why not JSON escapes: mod_audio_fork writes the name back into its echo between quotes
/// without escaping it, so a name holding any of these would come back as broken JSON. Encoded
/// this way, no name needs a JSON escape, so it survives the carrier's parse and its unescaped
/// echo alike; [`name_from_wire`] undoes it.
pub(super) fn push_name(out: &mut Vec<u8>, name: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in name.as_bytes() {
        if matches!(b, b'%' | b'"' | b'\\' | 0x00..=0x1f) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
}

/// A mark name as the echo spells it, decoded: borrowed when it holds no `%` (no allocation for
/// the engine's own names), `WrongType("data.name")` when a `%` is not followed by two hex digits
/// or the decoded bytes are not UTF-8 (never a name [`push_name`] wrote).
pub(super) fn name_from_wire(wire: Cow<'_, str>) -> Result<Cow<'_, str>, ProtocolError> {
    const BAD: ProtocolError = ProtocolError::WrongType("data.name");
    if !wire.contains('%') {
        return Ok(wire);
    }
    let bytes = wire.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).ok_or(BAD)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BAD);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_wire(name: &str) -> String {
        let mut out = Vec::new();
        push_name(&mut out, name);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_needing_json_escapes_are_percent_encoded_and_decoded_back() {
        assert_eq!(on_wire("trunkline-sync-7"), "trunkline-sync-7");
        assert_eq!(on_wire(r#"a"b\c%d"#), "a%22b%5Cc%25d");
        assert_eq!(on_wire("\n\u{0}\u{1f}é€\u{7f}"), "%0A%00%1Fé€\u{7f}");
        for name in ["", "plain", r#"a"b\c%d"#, "%25", "\t\u{1b}x", "é😀%"] {
            let wire = on_wire(name);
            assert_eq!(name_from_wire(Cow::Borrowed(&wire)).unwrap(), name, "{wire}");
        }
        assert!(matches!(name_from_wire(Cow::Borrowed("m1")), Ok(Cow::Borrowed("m1"))));
        for bad in ["%", "%4", "%zz", "%+1", "a%C3"] {
            assert_eq!(
                name_from_wire(Cow::Borrowed(bad)),
                Err(ProtocolError::WrongType("data.name")),
                "{bad}"
            );
        }
    }
}
