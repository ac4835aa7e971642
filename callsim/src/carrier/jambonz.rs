//! jambonz's `listen` verb (FreeSWITCH mod_audio_fork), mono at 8 kHz with bidirectional
//! streaming on.
//!
//! The WebSocket offers the subprotocol `audio.jambonz.org` and carries HTTP Basic credentials
//! (`wsAuth`). The first message is a JSON text frame of metadata (`sampleRate`, `mixType`, the
//! call's attributes and the application's own metadata, where callsim puts the custom
//! parameters); then the caller's audio as binary 16-bit little-endian PCM, and key presses as
//! `{"event":"dtmf","dtmf":"5","duration":…}` text. There is no stop message: the socket closes.
//! The bot sends binary PCM (any even length), `{"type":"mark","data":{"name":…}}`,
//! `{"type":"killAudio"}` (the clear) and `{"type":"clearMarks"}`. The module queues a mark ahead
//! of the *next* binary audio it receives (a mark with no audio after it waits for some), keeps at
//! most 30 outstanding and discards the rest; it echoes a mark as
//! `{"type":"mark","data":{"name":…,"event":"playout"}}` when playout reaches it, and every
//! pending one with `"event":"cleared"` on `killAudio`.

use super::{
    CallIds, Carrier, FromBot, Mark, MarkRules, Read, Transport, Wire, json_object, mark_named, ulaw_to_l16le,
};
use base64::Engine as _;

/// Most marks mod_audio_fork keeps outstanding.
const MAX_MARKS: usize = 30;

pub(crate) struct Jambonz {
    ids: CallIds,
    params: Vec<(String, String)>,
}

impl Jambonz {
    pub(crate) fn new(ids: &CallIds, params: &[(String, String)]) -> Self {
        Self { ids: ids.clone(), params: params.to_vec() }
    }
}

impl Carrier for Jambonz {
    fn transport(&self) -> Transport {
        Transport::WebSocket { subprotocol: Some("audio.jambonz.org") }
    }

    fn auth_headers(&self, _url: &str, secret: &str) -> Result<Vec<(String, String)>, String> {
        let credentials = base64::engine::general_purpose::STANDARD.encode(secret);
        Ok(vec![("Authorization".into(), format!("Basic {credentials}"))])
    }

    fn opening(&mut self) -> Vec<Wire> {
        let mut meta = serde_json::Map::new();
        for (k, v) in &self.params {
            meta.insert(k.clone(), v.clone().into());
        }
        let call = serde_json::json!({
            "sampleRate": 8000,
            "mixType": "mono",
            "callSid": self.ids.call_id,
            "accountSid": self.ids.account_id,
            "direction": "inbound",
            "from": "+15550100",
            "to": "+15550199",
        });
        if let serde_json::Value::Object(call) = call {
            meta.extend(call);
        }
        vec![Wire::Text(serde_json::Value::Object(meta).to_string())]
    }

    fn media(&mut self, ulaw: &[u8], _stream_ms: u64) -> Option<Wire> {
        Some(Wire::Binary(ulaw_to_l16le(ulaw)))
    }

    fn dtmf(&mut self, digit: char, _stream_ms: u64) -> Option<Wire> {
        // The duration in 8 kHz samples (200 ms).
        let msg = serde_json::json!({"event": "dtmf", "dtmf": digit.to_string(), "duration": 1600});
        Some(Wire::Text(msg.to_string()))
    }

    fn hangup(&mut self) -> Option<Wire> {
        None
    }

    fn read(&mut self, message: &Wire) -> Read {
        if let Wire::Binary(audio) = message {
            if audio.is_empty() {
                return Read::bad("empty binary frame");
            }
            let rule = (audio.len() % 2 != 0)
                .then(|| format!("binary frame of {} B (16-bit PCM takes an even length)", audio.len()));
            return Read::ok(FromBot::l16(audio)).violation(rule);
        }
        let map = match json_object(message, "jambonz") {
            Ok(m) => m,
            Err(e) => return Read::bad(e),
        };
        match map.get("type").and_then(|t| t.as_str()) {
            Some("mark") => {
                mark_named(map.get("data").and_then(|d| d["name"].as_str()), "mark without data.name")
            }
            Some("killAudio") => Read::ok(FromBot::Clear),
            Some(
                kind @ ("clearMarks" | "disconnect" | "playAudio" | "transcription" | "transfer" | "error"),
            ) => Read::ok(FromBot::Accepted(match kind {
                "clearMarks" => "clearMarks",
                "disconnect" => "disconnect",
                _ => "a message the module passes on",
            })),
            other => Read::bad(format!("unknown type {other:?}")),
        }
    }

    fn mark_rules(&self) -> MarkRules {
        MarkRules { wait_for_next_audio: true, max_outstanding: Some(MAX_MARKS) }
    }

    fn echo(&mut self, mark: &Mark, cleared: bool) -> Option<Wire> {
        let event = if cleared { "cleared" } else { "playout" };
        let msg = serde_json::json!({"type": "mark", "data": {"name": mark.name, "event": event}});
        Some(Wire::Text(msg.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Dialect;
    use crate::rng::SplitMix64;

    #[test]
    fn odd_length_audio_is_a_violation_and_cleared_marks_are_labelled() {
        let ids = Dialect::Jambonz.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = Jambonz::new(&ids, &[]);
        let odd = c.read(&Wire::Binary(vec![0; 321]));
        assert_eq!((FromBot::audio_ms(&odd), odd.violations.len()), (Some(20.0), 1));
        assert!(c.read(&Wire::Binary(vec![0; 322])).violations.is_empty());
        assert_eq!(c.read(&Wire::Text(r#"{"type":"killAudio"}"#.into())).what, Some(Ok(FromBot::Clear)));
        let mark = Mark { name: "m1".into(), payload: None };
        let mut echo = |cleared| match c.echo(&mark, cleared) {
            Some(Wire::Text(t)) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(echo(true), serde_json::json!({"type":"mark","data":{"name":"m1","event":"cleared"}}));
        assert_eq!(echo(false)["data"]["event"], "playout");
    }
}
