//! Writing the three outbound messages into a caller-owned buffer, without allocating.

pub(super) use crate::protocol::json_text::{base64_len, push_base64, push_escaped};

/// `{"event":"media","streamSid":"` … `","media":{"payload":"` … `"}}`
pub(super) const MEDIA_HEAD: &[u8] = br#"{"event":"media","streamSid":""#;
pub(super) const MEDIA_MID: &[u8] = br#"","media":{"payload":""#;
pub(super) const MEDIA_TAIL: &[u8] = br#""}}"#;
/// `{"event":"mark","streamSid":"` … `","mark":{"name":"` … `"}}`
pub(super) const MARK_HEAD: &[u8] = br#"{"event":"mark","streamSid":""#;
pub(super) const MARK_MID: &[u8] = br#"","mark":{"name":""#;
pub(super) const MARK_TAIL: &[u8] = br#""}}"#;
/// `{"event":"clear","streamSid":"` … `"}`
pub(super) const CLEAR_HEAD: &[u8] = br#"{"event":"clear","streamSid":""#;
pub(super) const CLEAR_TAIL: &[u8] = br#""}"#;
