//! Twilio Media Streams, and SignalWire's Twilio-compatible `<Stream>`.
//!
//! JSON text both ways, camelCase, numbers as strings: `connected`, `start`, `media` (base64
//! 8 kHz µ-law, 20 ms), `dtmf`, `stop`; back from the bot `media`, `mark` and `clear`, each
//! naming this call's `streamSid`. Marks are echoed when played and, on `clear`, at once (an echo
//! of a cleared mark looks like any other). Authentication: Twilio signs the URL
//! (`X-Twilio-Signature`); SignalWire sends a bearer token.

use super::{
    CallIds, Carrier, FromBot, Mark, Read, Transport, Wire, b64, check_stream_id, json_object, mark_named,
    unb64,
};
use trunkline::protocol::signature::twilio_signature;

/// Which of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Twilio,
    SignalWire,
}

pub(crate) struct Twilio {
    flavour: Flavour,
    ids: CallIds,
    params: Vec<(String, String)>,
    seq: u64,
    chunk: u64,
}

impl Twilio {
    pub(crate) fn new(ids: &CallIds, params: &[(String, String)], flavour: Flavour) -> Self {
        Self { flavour, ids: ids.clone(), params: params.to_vec(), seq: 0, chunk: 0 }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn name(&self) -> &'static str {
        match self.flavour {
            Flavour::Twilio => "Twilio",
            Flavour::SignalWire => "SignalWire",
        }
    }
}

impl Carrier for Twilio {
    fn transport(&self) -> Transport {
        Transport::WebSocket { subprotocol: None }
    }

    fn auth_headers(&self, url: &str, secret: &str) -> Result<Vec<(String, String)>, String> {
        Ok(match self.flavour {
            Flavour::Twilio => vec![("X-Twilio-Signature".into(), twilio_signature(secret, url, &[]))],
            Flavour::SignalWire => vec![("Authorization".into(), format!("Bearer {secret}"))],
        })
    }

    fn headers(&self) -> Vec<(&'static str, &'static str)> {
        match self.flavour {
            Flavour::Twilio => vec![("User-Agent", "TwilioProxy/1.1")],
            Flavour::SignalWire => vec![],
        }
    }

    fn opening(&mut self) -> Vec<Wire> {
        let version = match self.flavour {
            Flavour::Twilio => "1.0.0",
            Flavour::SignalWire => "0.2.0",
        };
        let connected = format!(r#"{{"event":"connected","protocol":"Call","version":"{version}"}}"#);
        let seq = self.next_seq();
        // Built by hand to keep the parameters in their order (as Twilio sends the TwiML's).
        let q = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{}:{}", q(k), q(v))).collect();
        let start = format!(
            r#"{{"event":"start","sequenceNumber":"{seq}","start":{{"accountSid":{},"streamSid":{},"callSid":{},"tracks":["inbound"],"customParameters":{{{}}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":{}}}"#,
            q(&self.ids.account_id),
            q(&self.ids.stream_id),
            q(&self.ids.call_id),
            params.join(","),
            q(&self.ids.stream_id),
        );
        vec![Wire::Text(connected), Wire::Text(start)]
    }

    fn media(&mut self, ulaw: &[u8], stream_ms: u64) -> Option<Wire> {
        let seq = self.next_seq();
        self.chunk += 1;
        Some(Wire::Text(format!(
            r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{stream_ms}","payload":"{}"}},"streamSid":"{}"}}"#,
            self.chunk,
            b64(ulaw),
            self.ids.stream_id
        )))
    }

    fn dtmf(&mut self, digit: char, _stream_ms: u64) -> Option<Wire> {
        let seq = self.next_seq();
        let dtmf = match self.flavour {
            Flavour::Twilio => serde_json::json!({"track": "inbound_track", "digit": digit.to_string()}),
            Flavour::SignalWire => serde_json::json!({"duration": 200, "digit": digit.to_string()}),
        };
        let msg = serde_json::json!({
            "event": "dtmf", "streamSid": self.ids.stream_id, "sequenceNumber": seq.to_string(), "dtmf": dtmf,
        });
        Some(Wire::Text(msg.to_string()))
    }

    fn hangup(&mut self) -> Option<Wire> {
        let seq = self.next_seq();
        let stop = serde_json::json!({
            "event": "stop",
            "sequenceNumber": seq.to_string(),
            "streamSid": self.ids.stream_id,
            "stop": {"accountSid": self.ids.account_id, "callSid": self.ids.call_id},
        });
        Some(Wire::Text(stop.to_string()))
    }

    fn read(&mut self, message: &Wire) -> Read {
        let map = match json_object(message, self.name()) {
            Ok(m) => m,
            Err(e) => return Read::bad(e),
        };
        let event = map.get("event").and_then(|e| e.as_str()).unwrap_or("");
        if !matches!(event, "media" | "mark" | "clear") {
            return Read::bad(format!(
                "unknown event: {}",
                super::truncate(&serde_json::Value::Object(map).to_string())
            ));
        }
        if let Err(e) = check_stream_id(&map, &["streamSid"], &self.ids.stream_id, true, event) {
            return Read::bad(e);
        }
        match event {
            "media" => {
                let payload = map.get("media").and_then(|m| m["payload"].as_str()).and_then(unb64);
                match payload.filter(|p| !p.is_empty()) {
                    Some(p) => Read::ok(FromBot::ulaw(&p)),
                    None => Read::bad("media without a base64 payload"),
                }
            }
            "mark" => mark_named(map.get("mark").and_then(|m| m["name"].as_str()), "mark without a name"),
            _ => Read::ok(FromBot::Clear),
        }
    }

    fn echo(&mut self, mark: &Mark, _cleared: bool) -> Option<Wire> {
        let seq = self.next_seq();
        let msg = serde_json::json!({
            "event": "mark",
            "sequenceNumber": seq.to_string(),
            "streamSid": self.ids.stream_id,
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

    fn carrier() -> (Twilio, String) {
        let ids = Dialect::Twilio.ids(&mut SplitMix64::new(3), None, 1);
        let sid = ids.stream_id.clone();
        (Twilio::new(&ids, &[], Flavour::Twilio), sid)
    }

    #[test]
    fn another_streams_media_or_an_unknown_event_is_a_bad_message() {
        let (mut c, sid) = carrier();
        let ok = format!(r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"//////////8="}}}}"#);
        assert_eq!(FromBot::audio_ms(&c.read(&Wire::Text(ok))), Some(1.0));
        let other = r#"{"event":"media","streamSid":"MZother","media":{"payload":"//8="}}"#;
        assert!(matches!(c.read(&Wire::Text(other.into())).what, Some(Err(_))));
        let unknown = format!(r#"{{"event":"playAudio","streamSid":"{sid}"}}"#);
        assert!(matches!(c.read(&Wire::Text(unknown)).what, Some(Err(e)) if e.contains("unknown event")));
        assert!(matches!(c.read(&Wire::Binary(vec![0; 160])).what, Some(Err(_))));
    }
}
