//! The Vonage Voice API WebSocket (`content-type: audio/l16;rate=8000`).
//!
//! The first message is text: `websocket:connected` with the content type and the NCCO's
//! `headers` flattened beside it (callsim puts the call's `uuid` and the custom parameters
//! there). Then the caller's audio as binary frames of 16-bit little-endian PCM, exactly 20 ms
//! each, and key presses as `websocket:dtmf` text. There is no stop message: the call ends when
//! the socket closes. The bot sends binary audio in the same format, each message exactly 20 ms
//! (320 B at 8 kHz, 640 B at 16 kHz), and the text actions `{"action":"clear"}` (answered with
//! `websocket:cleared`) and `{"action":"notify","payload":{…}}` (its payload echoed in
//! `websocket:notify` once the audio before it has played). What a clear does to pending
//! notifies is not documented: callsim drops them unanswered (see docs/callsim.md). The upgrade
//! carries `Authorization: Bearer <token>` (a custom authorization value, or the signed JWT).

use super::{CallIds, Carrier, FromBot, Mark, Read, Transport, Wire, json_object, ulaw_to_l16le};

/// Bytes of one 20 ms message at 8 kHz.
const FRAME_BYTES: usize = 320;

pub(crate) struct Vonage {
    ids: CallIds,
    params: Vec<(String, String)>,
}

impl Vonage {
    pub(crate) fn new(ids: &CallIds, params: &[(String, String)]) -> Self {
        Self { ids: ids.clone(), params: params.to_vec() }
    }
}

/// The name shown for a notify: its payload's `name` or `mark` string if it has one, else the
/// payload's JSON.
fn notify_name(payload: &serde_json::Value) -> String {
    ["name", "mark"]
        .iter()
        .find_map(|k| payload.get(k).and_then(|v| v.as_str()))
        .map_or_else(|| payload.to_string(), str::to_owned)
}

impl Carrier for Vonage {
    fn transport(&self) -> Transport {
        Transport::WebSocket { subprotocol: None }
    }

    fn auth_headers(&self, _url: &str, secret: &str) -> Result<Vec<(String, String)>, String> {
        Ok(vec![("Authorization".into(), format!("Bearer {secret}"))])
    }

    fn opening(&mut self) -> Vec<Wire> {
        let mut connected = serde_json::Map::new();
        connected.insert("event".into(), "websocket:connected".into());
        connected.insert("content-type".into(), "audio/l16;rate=8000".into());
        connected.insert("uuid".into(), self.ids.call_id.clone().into());
        for (k, v) in &self.params {
            connected.entry(k.clone()).or_insert_with(|| v.clone().into());
        }
        vec![Wire::Text(serde_json::Value::Object(connected).to_string())]
    }

    fn media(&mut self, ulaw: &[u8], _stream_ms: u64) -> Option<Wire> {
        Some(Wire::Binary(ulaw_to_l16le(ulaw)))
    }

    fn dtmf(&mut self, digit: char, _stream_ms: u64) -> Option<Wire> {
        let msg = serde_json::json!({"event": "websocket:dtmf", "digit": digit.to_string(), "duration": 260});
        Some(Wire::Text(msg.to_string()))
    }

    fn hangup(&mut self) -> Option<Wire> {
        None
    }

    fn read(&mut self, message: &Wire) -> Read {
        if let Wire::Binary(audio) = message {
            let rule = (audio.len() != FRAME_BYTES).then(|| {
                format!("binary frame of {} B (Vonage takes exactly 320 B, 20 ms at 8 kHz)", audio.len())
            });
            if audio.is_empty() {
                return Read::bad("empty binary frame");
            }
            return Read::ok(FromBot::l16(audio)).violation(rule);
        }
        let map = match json_object(message, "Vonage") {
            Ok(m) => m,
            Err(e) => return Read::bad(e),
        };
        match map.get("action").and_then(|a| a.as_str()) {
            Some("clear") => Read::ok(FromBot::Clear),
            Some("notify") => match map.get("payload") {
                Some(p) if p.is_object() => {
                    Read::ok(FromBot::Mark(Mark { name: notify_name(p), payload: Some(p.clone()) }))
                }
                _ => Read::bad("notify without an object payload"),
            },
            other => Read::bad(format!("unknown action {other:?}")),
        }
    }

    fn echo(&mut self, mark: &Mark, cleared: bool) -> Option<Wire> {
        if cleared {
            return None;
        }
        let payload = mark.payload.clone().unwrap_or_else(|| serde_json::json!({"name": mark.name}));
        Some(Wire::Text(serde_json::json!({"event": "websocket:notify", "payload": payload}).to_string()))
    }

    fn clear_ack(&mut self) -> Option<Wire> {
        Some(Wire::Text(r#"{"event":"websocket:cleared"}"#.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Dialect;
    use crate::rng::SplitMix64;

    #[test]
    fn frames_other_than_320_bytes_are_violations_and_notify_echoes_its_payload() {
        let ids = Dialect::Vonage.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = Vonage::new(&ids, &[]);
        let odd = c.read(&Wire::Binary(vec![0; 300]));
        assert_eq!(FromBot::audio_ms(&odd), Some(18.75));
        assert_eq!(odd.violations.len(), 1);
        assert_eq!(
            c.read(&Wire::Binary(vec![0; 640])).violations.len(),
            1,
            "16 kHz frames on an 8 kHz stream"
        );
        assert!(c.read(&Wire::Binary(vec![0; 320])).violations.is_empty());
        let notify = c.read(&Wire::Text(r#"{"action":"notify","payload":{"mark":"r-1","n":2}}"#.into()));
        let Some(Ok(FromBot::Mark(mark))) = notify.what else { panic!("{notify:?}") };
        assert_eq!(mark.name, "r-1");
        let echo = c.echo(&mark, false).unwrap();
        assert_eq!(echo, Wire::Text(r#"{"event":"websocket:notify","payload":{"mark":"r-1","n":2}}"#.into()));
        assert!(c.echo(&mark, true).is_none());
    }
}
