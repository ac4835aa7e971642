//! Exotel's Voicebot applet (AgentStream), at its default 8 kHz.
//!
//! JSON text, snake_case, every number a string: `connected`, `start` (`media_format` `audio/x-raw`,
//! 16-bit little-endian PCM), `media` (base64 PCM in chunks of about 100 ms), `dtmf`, `stop`. The
//! bot sends `media`, `mark` and `clear`, naming the stream as `stream_sid` (or `streamSid`, which
//! Exotel's own samples use). Its chunks must be multiples of 320 B, at least 3.2 KB (which is
//! 200 ms of callsim's 8 kHz stream, so also the 100 ms Exotel asks for) and at most 100 KB;
//! callsim allows a shorter last chunk (still a multiple of 320 B) right before a mark, a
//! clear or the end of the call, as Exotel's own samples pad their last frame only to 320 B.
//! Whether a clear makes Exotel echo the marks it dropped is not documented: callsim echoes them,
//! as Twilio, whose protocol Exotel's mirrors, does (see docs/callsim.md). Authentication is HTTP
//! Basic (`wss://key:token@host/…`).

use super::{
    CallIds, Carrier, FromBot, Mark, Read, Transport, Wire, b64, check_stream_id, json_object, mark_named,
    ulaw_to_l16le, unb64,
};
use base64::Engine as _;

/// 20 ms frames per inbound chunk (100 ms).
const FRAMES_PER_CHUNK: usize = 5;
/// Chunks of the bot's audio: a multiple of this, at least `MIN_CHUNK`, at most `MAX_CHUNK` bytes.
const CHUNK_STEP: usize = 320;
const MIN_CHUNK: usize = 3200;
const MAX_CHUNK: usize = 100_000;

pub(crate) struct Exotel {
    ids: CallIds,
    params: Vec<(String, String)>,
    seq: u64,
    chunk: u64,
    /// PCM gathered for the next chunk, and its stream time.
    pending: Vec<u8>,
    pending_ms: u64,
    /// A short chunk the bot sent: fine if a mark, a clear or the end of the call follows it.
    short_chunk: Option<usize>,
}

impl Exotel {
    pub(crate) fn new(ids: &CallIds, params: &[(String, String)]) -> Self {
        Self {
            ids: ids.clone(),
            params: params.to_vec(),
            seq: 0,
            chunk: 0,
            pending: Vec::new(),
            pending_ms: 0,
            short_chunk: None,
        }
    }

    fn next_seq(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    fn chunk_message(&mut self) -> Option<Wire> {
        if self.pending.is_empty() {
            return None;
        }
        self.chunk += 1;
        let payload = std::mem::take(&mut self.pending);
        let msg = serde_json::json!({
            "event": "media",
            "sequence_number": self.next_seq(),
            "stream_sid": self.ids.stream_id,
            "media": {"chunk": self.chunk.to_string(), "timestamp": self.pending_ms.to_string(), "payload": b64(&payload)},
        });
        Some(Wire::Text(msg.to_string()))
    }
}

impl Carrier for Exotel {
    fn transport(&self) -> Transport {
        Transport::WebSocket { subprotocol: None }
    }

    fn auth_headers(&self, _url: &str, secret: &str) -> Result<Vec<(String, String)>, String> {
        let credentials = base64::engine::general_purpose::STANDARD.encode(secret);
        Ok(vec![("Authorization".into(), format!("Basic {credentials}"))])
    }

    fn opening(&mut self) -> Vec<Wire> {
        let start = serde_json::json!({
            "event": "start",
            "sequence_number": self.next_seq(),
            "stream_sid": self.ids.stream_id,
            "start": {
                "stream_sid": self.ids.stream_id,
                "call_sid": self.ids.call_id,
                "account_sid": self.ids.account_id,
                "from": "+919876543210",
                "to": "+918047491899",
                "custom_parameters": super::params_object(&self.params),
                "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
            },
        });
        vec![Wire::Text(r#"{"event":"connected"}"#.into()), Wire::Text(start.to_string())]
    }

    fn media(&mut self, ulaw: &[u8], stream_ms: u64) -> Option<Wire> {
        if self.pending.is_empty() {
            self.pending_ms = stream_ms;
        }
        self.pending.extend(ulaw_to_l16le(ulaw));
        if self.pending.len() >= FRAMES_PER_CHUNK * ulaw.len() * 2 { self.chunk_message() } else { None }
    }

    fn flush_media(&mut self) -> Option<Wire> {
        self.chunk_message()
    }

    fn dtmf(&mut self, digit: char, _stream_ms: u64) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "dtmf", "sequence_number": self.next_seq(), "stream_sid": self.ids.stream_id,
            "dtmf": {"digit": digit.to_string(), "duration": "100"},
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn hangup(&mut self) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "stop", "sequence_number": self.next_seq(), "stream_sid": self.ids.stream_id,
            "stop": {"call_sid": self.ids.call_id, "account_sid": self.ids.account_id, "reason": "callended"},
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn read(&mut self, message: &Wire) -> Read {
        let map = match json_object(message, "Exotel") {
            Ok(m) => m,
            Err(e) => return Read::bad(e),
        };
        let event = map.get("event").and_then(|e| e.as_str()).unwrap_or("");
        if !matches!(event, "media" | "mark" | "clear") {
            return Read::bad(format!("unknown event {event:?}"));
        }
        if let Err(e) = check_stream_id(&map, &["stream_sid", "streamSid"], &self.ids.stream_id, false, event)
        {
            return Read::bad(e);
        }
        // A short chunk followed by more audio broke the minimum.
        let earlier = match (event, self.short_chunk.take()) {
            ("media", Some(len)) => Some(format!(
                "media chunk of {len} B followed by more audio (Exotel takes at least {MIN_CHUNK} B)"
            )),
            _ => None,
        };
        match event {
            "media" => {
                let payload = map.get("media").and_then(|m| m["payload"].as_str()).and_then(unb64);
                let Some(p) = payload.filter(|p| !p.is_empty()) else {
                    return Read::bad("media without a base64 payload").violation(earlier);
                };
                let len = p.len();
                let rule = if len % CHUNK_STEP != 0 {
                    Some(format!("media chunk of {len} B (Exotel takes multiples of {CHUNK_STEP} B)"))
                } else if len > MAX_CHUNK {
                    Some(format!("media chunk of {len} B (Exotel takes at most 100 KB)"))
                } else {
                    if len < MIN_CHUNK {
                        self.short_chunk = Some(len);
                    }
                    None
                };
                Read::ok(FromBot::l16(&p)).violation(earlier).violation(rule)
            }
            "mark" => mark_named(map.get("mark").and_then(|m| m["name"].as_str()), "mark without a name"),
            _ => Read::ok(FromBot::Clear),
        }
    }

    fn echo(&mut self, mark: &Mark, _cleared: bool) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "mark", "sequence_number": self.next_seq(), "stream_sid": self.ids.stream_id,
            "mark": {"name": mark.name},
        });
        Some(Wire::Text(msg.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Dialect;
    use crate::rng::SplitMix64;

    fn media(n: usize) -> Wire {
        Wire::Text(format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, b64(&vec![0; n])))
    }

    #[test]
    fn chunks_off_the_320_byte_grid_or_short_ones_followed_by_audio_are_violations() {
        let ids = Dialect::Exotel.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = Exotel::new(&ids, &[]);
        assert!(c.read(&media(3200)).violations.is_empty());
        let odd = c.read(&media(1000));
        assert_eq!((FromBot::audio_ms(&odd), odd.violations.len()), (Some(62.5), 1));
        // A short chunk right before a mark is the padded end of a reply...
        assert!(c.read(&media(640)).violations.is_empty());
        assert!(c.read(&Wire::Text(r#"{"event":"mark","mark":{"name":"m"}}"#.into())).violations.is_empty());
        // ...but not when more audio follows it.
        assert!(c.read(&media(1600)).violations.is_empty());
        assert_eq!(c.read(&media(3200)).violations.len(), 1);
        assert_eq!(c.read(&media(102_400)).violations.len(), 1);
    }

    #[test]
    fn the_caller_audio_goes_out_in_100_ms_chunks() {
        let ids = Dialect::Exotel.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = Exotel::new(&ids, &[]);
        for k in 0..4 {
            assert!(c.media(&[0xFF; 160], 20 * k).is_none());
        }
        let Some(Wire::Text(chunk)) = c.media(&[0xFF; 160], 80) else { panic!() };
        let v: serde_json::Value = serde_json::from_str(&chunk).unwrap();
        assert_eq!(unb64(v["media"]["payload"].as_str().unwrap()).unwrap(), vec![0; 1600]);
        assert_eq!(v["media"]["timestamp"], "0");
        assert!(c.flush_media().is_none());
    }
}
