//! Asterisk AudioSocket: a plain TCP connection Asterisk opens to the application.
//!
//! Both ways a byte stream of messages, each a type byte, a big-endian 16-bit length and the
//! payload. Asterisk sends the call's UUID (`0x01`, 16 bytes), then one `0x10` message of 16-bit
//! little-endian PCM at 8 kHz per 20 ms, key presses as `0x03` (one ASCII digit), and hangs up
//! with `0x00` (or just closes). The application sends `0x10` audio, which Asterisk writes into
//! the call as it arrives: there is no buffer, no clear and no mark, so the application must pace
//! its audio; audio that arrives further ahead of real time than a paced sender keeps is an
//! overrun (it cannot be taken back, and delays barge-in). No authentication.

use super::{CallIds, Carrier, FromBot, Mark, PlayoutKind, Read, Transport, Wire, ulaw_to_l16le};

const HANGUP: u8 = 0x00;
const UUID: u8 = 0x01;
const DTMF: u8 = 0x03;
const AUDIO_8K: u8 = 0x10;
const ERROR: u8 = 0xff;
/// Bytes of a message's header.
pub(crate) const HEADER_LEN: usize = 3;
/// How far ahead of real time the bot's audio may arrive: two 20 ms frames (what a paced sender
/// keeps in flight) and one more of slack for the network and this task's scheduling.
const MAX_LEAD_MS: f64 = 60.0;

pub(crate) struct AudioSocket {
    uuid: [u8; 16],
}

/// The length of the message starting `bytes`, once its header is there.
pub(crate) fn message_len(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= HEADER_LEN).then(|| HEADER_LEN + usize::from(u16::from_be_bytes([bytes[1], bytes[2]])))
}

fn message(kind: u8, payload: &[u8]) -> Wire {
    let len = u16::try_from(payload.len()).expect("callsim's messages are short");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(kind);
    out.extend(len.to_be_bytes());
    out.extend(payload);
    Wire::Binary(out)
}

impl AudioSocket {
    pub(crate) fn new(ids: &CallIds) -> Self {
        let hex: Vec<u8> = ids
            .call_id
            .chars()
            .filter_map(|c| c.to_digit(16))
            .map(|d| d as u8)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|p| p[0] << 4 | p.get(1).copied().unwrap_or(0))
            .collect();
        let mut uuid = [0u8; 16];
        for (dst, src) in uuid.iter_mut().zip(hex) {
            *dst = src;
        }
        Self { uuid }
    }
}

impl Carrier for AudioSocket {
    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    fn auth_headers(&self, _url: &str, _secret: &str) -> Result<Vec<(String, String)>, String> {
        Err("AudioSocket has no authentication (firewall it instead)".into())
    }

    fn opening(&mut self) -> Vec<Wire> {
        vec![message(UUID, &self.uuid)]
    }

    fn media(&mut self, ulaw: &[u8], _stream_ms: u64) -> Option<Wire> {
        Some(message(AUDIO_8K, &ulaw_to_l16le(ulaw)))
    }

    fn dtmf(&mut self, digit: char, _stream_ms: u64) -> Option<Wire> {
        u8::try_from(digit).ok().map(|d| message(DTMF, &[d]))
    }

    fn hangup(&mut self) -> Option<Wire> {
        Some(message(HANGUP, &[]))
    }

    fn read(&mut self, message: &Wire) -> Read {
        let Wire::Binary(bytes) = message else {
            return Read::bad("text on a TCP stream");
        };
        let Some(len) = message_len(bytes).filter(|l| *l == bytes.len()) else {
            return Read::bad("a message cut short");
        };
        let payload = &bytes[HEADER_LEN..len];
        match bytes[0] {
            AUDIO_8K if payload.is_empty() => Read::bad("audio message without audio"),
            AUDIO_8K => {
                let rule = (payload.len() % 2 != 0).then(|| {
                    format!("audio message of {} B (16-bit PCM takes an even length)", payload.len())
                });
                Read::ok(FromBot::l16(payload)).violation(rule)
            }
            HANGUP => Read::ok(FromBot::Hangup),
            kind @ 0x11..=0x18 => Read::bad(format!("audio type {kind:#04x} on an 8 kHz (0x10) stream")),
            kind @ (UUID | DTMF | ERROR) => Read::bad(format!("type {kind:#04x}, which only Asterisk sends")),
            kind => Read::bad(format!("unknown type {kind:#04x}")),
        }
    }

    fn echo(&mut self, _mark: &Mark, _cleared: bool) -> Option<Wire> {
        None
    }

    fn playout(&self) -> PlayoutKind {
        PlayoutKind::OnArrival { max_lead_ms: MAX_LEAD_MS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Dialect;
    use crate::rng::SplitMix64;

    #[test]
    fn messages_are_type_length_value_and_odd_audio_is_a_violation() {
        let ids = Dialect::AudioSocket.ids(&mut SplitMix64::new(3), None, 1);
        let mut c = AudioSocket::new(&ids);
        let Wire::Binary(open) = &c.opening()[0] else { panic!() };
        let hex: String = open[3..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!((open[..3].to_vec(), hex), (vec![0x01, 0x00, 0x10], ids.call_id.replace('-', "")));
        assert_eq!(c.dtmf('5', 0), Some(Wire::Binary(vec![0x03, 0x00, 0x01, b'5'])));
        assert_eq!(c.hangup(), Some(Wire::Binary(vec![0, 0, 0])));
        let Some(Wire::Binary(audio)) = c.media(&[0xFF; 160], 0) else { panic!() };
        assert_eq!((audio.len(), &audio[..3]), (323, &[0x10, 0x01, 0x40][..]));
        let odd = c.read(&message(AUDIO_8K, &[0; 319]));
        assert_eq!(odd.violations.len(), 1);
        assert!(c.read(&message(AUDIO_8K, &[0; 320])).violations.is_empty());
        assert!(matches!(c.read(&message(0x12, &[0; 640])).what, Some(Err(_))));
        assert_eq!(c.read(&message(HANGUP, &[])).what, Some(Ok(FromBot::Hangup)));
    }
}
