//! Plivo audio streams (bidirectional, `contentType="audio/x-mulaw;rate=8000"`).
//!
//! JSON text, camelCase, `sequenceNumber` and `media.chunk` as numbers and timestamps as strings
//! of Unix ms. No `connected`: `start` comes first. No `stop` either: Plivo ends the stream by
//! closing the socket. The bot sends `playAudio` (whose `contentType` and `sampleRate` must be
//! the stream's), `checkpoint` (answered with `playedStream` once the audio before it has played,
//! and never if a clear dropped it) and `clearAudio` (answered with `clearedAudio`), and may send
//! `sendDTMF`. Messages are at most 64 KB. The upgrade is signed: `X-Plivo-Signature-V3` is the
//! base64 HMAC-SHA256, keyed with the auth token, of the URL (scheme `http`/`https`, the query
//! sorted by key) followed by `"."` and the `X-Plivo-Signature-V3-Nonce`, as Plivo's SDKs build it.

use super::{
    CallIds, Carrier, FromBot, Mark, Read, Transport, Wire, b64, check_stream_id, json_object, mark_named,
    unb64,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest message Plivo takes.
const MAX_MESSAGE: usize = 64 * 1024;

pub(crate) struct Plivo {
    ids: CallIds,
    extra_headers: String,
    seq: u64,
    chunk: u64,
    /// Unix ms of stream time 0, read as `start` goes out (after the handshake): Plivo stamps
    /// media and key presses with the wall-clock time of the stream they belong to.
    epoch_ms: u64,
}

impl Plivo {
    pub(crate) fn new(ids: &CallIds, params: &[(String, String)]) -> Self {
        let extra_headers: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Self { ids: ids.clone(), extra_headers: extra_headers.join(";"), seq: 0, chunk: 0, epoch_ms: 0 }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Plivo's V3 signature of a request to `url` with `nonce`.
pub(crate) fn signature_v3(auth_token: &str, url: &str, nonce: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("not a URL: {url}"))?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => return Err(format!("scheme {other:?}")),
    };
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut pairs: Vec<(&str, &str)> =
        query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    // Sorted by key, and a key's values sorted too.
    pairs.sort();
    let mut signed = format!("{scheme}://{base}");
    if !pairs.is_empty() {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        signed.push('?');
        signed.push_str(&query.join("&"));
    }
    signed.push('.');
    signed.push_str(nonce);
    let mut mac = Hmac::<Sha256>::new_from_slice(auth_token.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(signed.as_bytes());
    Ok(b64(&mac.finalize().into_bytes()))
}

impl Carrier for Plivo {
    fn transport(&self) -> Transport {
        Transport::WebSocket { subprotocol: None }
    }

    fn auth_headers(&self, url: &str, secret: &str) -> Result<Vec<(String, String)>, String> {
        Ok(vec![
            ("X-Plivo-Signature-V3".into(), signature_v3(secret, url, &self.ids.nonce)?),
            ("X-Plivo-Signature-V3-Nonce".into(), self.ids.nonce.clone()),
        ])
    }

    fn opening(&mut self) -> Vec<Wire> {
        self.epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let start = serde_json::json!({
            "event": "start",
            "sequenceNumber": self.next_seq(),
            "start": {
                "callId": self.ids.call_id,
                "streamId": self.ids.stream_id,
                "accountId": self.ids.account_id,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
            "extra_headers": self.extra_headers,
        });
        vec![Wire::Text(start.to_string())]
    }

    fn media(&mut self, ulaw: &[u8], stream_ms: u64) -> Option<Wire> {
        self.chunk += 1;
        let msg = serde_json::json!({
            "event": "media",
            "sequenceNumber": self.next_seq(),
            "streamId": self.ids.stream_id,
            "media": {
                "track": "inbound",
                "timestamp": (self.epoch_ms + stream_ms).to_string(),
                "chunk": self.chunk,
                "payload": b64(ulaw),
            },
            "extra_headers": self.extra_headers,
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn dtmf(&mut self, digit: char, stream_ms: u64) -> Option<Wire> {
        let timestamp = (self.epoch_ms + stream_ms).to_string();
        let msg = serde_json::json!({
            "event": "dtmf", "sequenceNumber": self.next_seq(), "streamId": self.ids.stream_id,
            "dtmf": {"track": "inbound", "digit": digit.to_string(), "timestamp": timestamp},
            "extra_headers": self.extra_headers,
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn hangup(&mut self) -> Option<Wire> {
        None
    }

    fn read(&mut self, message: &Wire) -> Read {
        let map = match json_object(message, "Plivo") {
            Ok(m) => m,
            Err(e) => return Read::bad(e),
        };
        let event = map.get("event").and_then(|e| e.as_str()).unwrap_or("");
        if !matches!(event, "playAudio" | "checkpoint" | "clearAudio" | "sendDTMF") {
            return Read::bad(format!("unknown event {event:?}"));
        }
        if let Err(e) = check_stream_id(&map, &["streamId"], &self.ids.stream_id, false, event) {
            return Read::bad(e);
        }
        let size = match message {
            Wire::Text(t) => t.len(),
            Wire::Binary(b) => b.len(),
        };
        let too_big =
            (size > MAX_MESSAGE).then(|| format!("{event} of {size} B (Plivo takes messages up to 64 KB)"));
        let read = match event {
            "playAudio" => {
                // Indexing a `Value` never panics: a missing `media` reads as null, so no payload.
                let media = map.get("media").unwrap_or(&serde_json::Value::Null);
                let Some(p) = media["payload"].as_str().and_then(unb64).filter(|p| !p.is_empty()) else {
                    return Read::bad("playAudio without a base64 payload");
                };
                let rate =
                    media["sampleRate"].as_u64().or_else(|| media["sampleRate"].as_str()?.parse().ok());
                let content = media["contentType"].as_str();
                let rule = (content != Some("audio/x-mulaw") || rate != Some(8000)).then(|| {
                    format!(
                        "playAudio as {} at {} (the stream is audio/x-mulaw at 8000)",
                        content.unwrap_or("no contentType"),
                        rate.map_or("no sampleRate".into(), |r| r.to_string())
                    )
                });
                Read::ok(FromBot::ulaw(&p)).violation(rule)
            }
            "checkpoint" => mark_named(map.get("name").and_then(|n| n.as_str()), "checkpoint without a name"),
            "clearAudio" => Read::ok(FromBot::Clear),
            _ => match map.get("dtmf").and_then(|d| d.as_str()) {
                Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit() || "ABCD*#".contains(c)) => {
                    Read::ok(FromBot::Accepted("sendDTMF"))
                }
                _ => Read::bad("sendDTMF without digits"),
            },
        };
        read.violation(too_big)
    }

    fn echo(&mut self, mark: &Mark, cleared: bool) -> Option<Wire> {
        // A checkpoint a clear dropped is never answered.
        if cleared {
            return None;
        }
        let msg = serde_json::json!({
            "event": "playedStream", "sequenceNumber": self.next_seq(), "streamId": self.ids.stream_id,
            "name": mark.name,
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn clear_ack(&mut self) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "clearedAudio", "sequenceNumber": self.next_seq(), "streamId": self.ids.stream_id,
        });
        Some(Wire::Text(msg.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Dialect;
    use crate::rng::SplitMix64;

    #[test]
    fn the_signature_matches_an_independent_vector() {
        // The vector scripts/gen_signature_vectors.py computes with Python's hmac (HMAC-SHA256 of
        // "https://bot.example.com/stream?a=1&b=2." + nonce).
        let expected = include_str!("../../../engine/tests/fixtures/plivo_signature_vector_0.txt").trim();
        let sig = signature_v3(
            "MAXXXXXXXXXXXXXXXXXX-token",
            "wss://bot.example.com/stream?b=2&a=1",
            "12345678901234567890",
        );
        assert_eq!(sig.unwrap(), expected);
    }

    #[test]
    fn play_audio_in_another_format_is_a_violation_and_cleared_checkpoints_are_never_echoed() {
        let ids = Dialect::Plivo.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = Plivo::new(&ids, &[]);
        let play = |ct: &str, rate: &str| {
            Wire::Text(format!(
                r#"{{"event":"playAudio","media":{{"contentType":"{ct}","sampleRate":{rate},"payload":"{}"}}}}"#,
                b64(&[0xFF; 160])
            ))
        };
        assert!(c.read(&play("audio/x-mulaw", "8000")).violations.is_empty());
        assert!(c.read(&play("audio/x-mulaw", "\"8000\"")).violations.is_empty());
        let l16 = c.read(&play("audio/x-l16", "8000"));
        assert_eq!((FromBot::audio_ms(&l16), l16.violations.len()), (Some(20.0), 1));
        assert_eq!(c.read(&play("audio/x-mulaw", "16000")).violations.len(), 1);
        let mark = Mark { name: "m".into(), payload: None };
        assert!(c.echo(&mark, true).is_none());
        assert!(
            matches!(c.echo(&mark, false), Some(Wire::Text(t)) if t.contains(r#""event":"playedStream""#))
        );
    }
}
