//! Telnyx media streaming, bidirectional RTP mode with PCMU both ways.
//!
//! JSON text, snake_case, ids and counters as strings: `connected`, `start` (`stream_id` at the top
//! level, `start.media_format` with numbers), `media` (base64 PCMU RTP payloads, no RTP header),
//! `dtmf`, `stop`. The bot sends `media` (`{"media":{"payload":…}}`, the stream id optional),
//! `mark` and `clear`; Telnyx echoes a mark when the audio before it has played and returns the
//! queued marks on `clear`. Each media payload must hold 20 ms to 30 s of audio. The connection
//! carries the stream's auth token in `x-telnyx-streaming-auth-token`.

use super::{
    CallIds, Carrier, FromBot, Mark, Read, Transport, Wire, b64, check_stream_id, json_object, mark_named,
    unb64,
};

/// Shortest and longest payload Telnyx plays, in PCMU bytes (20 ms, 30 s).
const MIN_PAYLOAD: usize = 160;
const MAX_PAYLOAD: usize = 30 * 8000;

pub(crate) struct Telnyx {
    ids: CallIds,
    params: Vec<(String, String)>,
    seq: u64,
    chunk: u64,
}

impl Telnyx {
    pub(crate) fn new(ids: &CallIds, params: &[(String, String)]) -> Self {
        Self { ids: ids.clone(), params: params.to_vec(), seq: 0, chunk: 0 }
    }

    fn next_seq(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }
}

impl Carrier for Telnyx {
    fn transport(&self) -> Transport {
        Transport::WebSocket { subprotocol: None }
    }

    fn auth_headers(&self, _url: &str, secret: &str) -> Result<Vec<(String, String)>, String> {
        Ok(vec![("x-telnyx-streaming-auth-token".into(), secret.to_owned())])
    }

    fn opening(&mut self) -> Vec<Wire> {
        let start = serde_json::json!({
            "event": "start",
            "sequence_number": self.next_seq(),
            "stream_id": self.ids.stream_id,
            "start": {
                "user_id": self.ids.account_id,
                "call_control_id": format!("v2:{}", self.ids.call_id),
                "call_session_id": self.ids.call_id,
                "from": "+15550100",
                "to": "+15550199",
                "custom_parameters": super::params_object(&self.params),
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            },
        });
        vec![Wire::Text(r#"{"event":"connected","version":"1.0.0"}"#.into()), Wire::Text(start.to_string())]
    }

    fn media(&mut self, ulaw: &[u8], stream_ms: u64) -> Option<Wire> {
        self.chunk += 1;
        let msg = serde_json::json!({
            "event": "media",
            "sequence_number": self.next_seq(),
            "stream_id": self.ids.stream_id,
            "media": {
                "track": "inbound",
                "chunk": self.chunk.to_string(),
                "timestamp": stream_ms.to_string(),
                "payload": b64(ulaw),
            },
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn dtmf(&mut self, digit: char, _stream_ms: u64) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "dtmf", "stream_id": self.ids.stream_id, "sequence_number": self.next_seq(),
            "dtmf": {"digit": digit.to_string()},
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn hangup(&mut self) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "stop", "sequence_number": self.next_seq(), "stream_id": self.ids.stream_id,
            "stop": {"user_id": self.ids.account_id, "call_control_id": format!("v2:{}", self.ids.call_id)},
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn read(&mut self, message: &Wire) -> Read {
        let map = match json_object(message, "Telnyx") {
            Ok(m) => m,
            Err(e) => return Read::bad(e),
        };
        let event = map.get("event").and_then(|e| e.as_str()).unwrap_or("");
        if !matches!(event, "media" | "mark" | "clear") {
            return Read::bad(format!("unknown event {event:?}"));
        }
        if let Err(e) = check_stream_id(&map, &["stream_id"], &self.ids.stream_id, false, event) {
            return Read::bad(e);
        }
        match event {
            "media" => {
                let payload = map.get("media").and_then(|m| m["payload"].as_str()).and_then(unb64);
                let Some(p) = payload.filter(|p| !p.is_empty()) else {
                    return Read::bad("media without a base64 payload");
                };
                let rule = if p.len() < MIN_PAYLOAD {
                    Some(format!("media payload of {} ms (Telnyx takes 20 ms to 30 s)", p.len() as f64 / 8.0))
                } else if p.len() > MAX_PAYLOAD {
                    Some(format!("media payload of {} s (Telnyx takes at most 30 s)", p.len() / 8000))
                } else {
                    None
                };
                Read::ok(FromBot::ulaw(&p)).violation(rule)
            }
            "mark" => mark_named(map.get("mark").and_then(|m| m["name"].as_str()), "mark without a name"),
            _ => Read::ok(FromBot::Clear),
        }
    }

    fn echo(&mut self, mark: &Mark, _cleared: bool) -> Option<Wire> {
        let msg = serde_json::json!({
            "event": "mark", "sequence_number": self.next_seq(), "stream_id": self.ids.stream_id,
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

    #[test]
    fn a_payload_under_20_ms_is_a_violation_and_still_plays() {
        let ids = Dialect::Telnyx.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = Telnyx::new(&ids, &[]);
        let msg = |n: usize| {
            Wire::Text(format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, b64(&vec![0xFF; n])))
        };
        let short = c.read(&msg(80));
        assert_eq!(FromBot::audio_ms(&short), Some(10.0));
        assert_eq!(short.violations.len(), 1, "{short:?}");
        assert!(c.read(&msg(160)).violations.is_empty());
        let foreign = Wire::Text(r#"{"event":"clear","stream_id":"another"}"#.into());
        assert!(matches!(c.read(&foreign).what, Some(Err(_))));
    }
}
