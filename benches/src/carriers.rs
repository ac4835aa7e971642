//! Every dialect's call as its carrier sends it: the messages that set the stream up, then the
//! speech fixture as that carrier's media messages, in the format and chunk size it uses by
//! default (the shapes of the fixtures in `engine/tests/fixtures/<carrier>/`).
//!
//! | dialect | caller audio | one media message |
//! |---|---|---|
//! | twilio, telnyx, plivo | µ-law 8 kHz | JSON text, base64, 20 ms |
//! | telnyx;codec=G722 | G.722 (16 kHz audio, 160 B) | JSON text, base64, 20 ms |
//! | telnyx;codec=OPUS | Opus 16 kHz (one 20 ms packet) | JSON text, base64, 20 ms |
//! | signalwire | L16 24 kHz | JSON text, base64, 20 ms |
//! | exotel | L16 8 kHz | JSON text, base64, 100 ms (Exotel's chunk) |
//! | vonage, jambonz | L16 16 kHz | a binary frame, 20 ms |
//! | audiosocket | L16 8 kHz | a `0x10` message of the TCP stream, 20 ms |

use crate::{CONNECTED, SPEECH_ULAW, speech_messages, speech_pcm, start_message};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use trunkline::protocol::MessageKind;

/// One message as the host pushes it.
#[derive(Debug, Clone)]
pub struct Message {
    /// A text or binary frame (for AudioSocket: a chunk of the TCP stream, pushed as binary).
    pub kind: MessageKind,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Message {
    fn text(s: String) -> Self {
        Self { kind: MessageKind::Text, bytes: s.into_bytes() }
    }

    fn binary(bytes: Vec<u8>) -> Self {
        Self { kind: MessageKind::Binary, bytes }
    }
}

/// One carrier's call: the setup messages, then the caller's speech as media messages.
#[derive(Debug, Clone)]
pub struct CarrierCall {
    /// The dialect's name (see `trunkline::protocol::DIALECTS`).
    pub dialect: &'static str,
    /// Everything before the first media message of the speech: after these the stream has
    /// started. (AudioSocket's stream starts at its first audio message: 20 ms of silence here,
    /// which the session delivers in front of the next one.)
    pub setup: Vec<Message>,
    /// The speech fixture, one message per chunk.
    pub media: Vec<Message>,
    /// The 20 ms frames of audio in each media message.
    pub frames_per_media: usize,
    /// The caller audio's rate, Hz.
    pub rate: u32,
}

/// The call `dialect` makes, or `None` for a name this module does not know.
pub fn call(dialect: &str) -> Option<CarrierCall> {
    Some(match dialect {
        "twilio" => twilio(),
        "telnyx" => telnyx(),
        CODED_CALLS_G722 => telnyx_coded(CODED_CALLS_G722, "G722"),
        CODED_CALLS_OPUS => telnyx_coded(CODED_CALLS_OPUS, "OPUS"),
        "plivo" => plivo(),
        "vonage" => vonage(),
        "exotel" => exotel(),
        "signalwire" => signalwire(),
        "audiosocket" => audiosocket(),
        "jambonz" => jambonz(),
        _ => return None,
    })
}

/// The speech fixture as 16-bit little-endian PCM at `rate` (8 kHz, or raised to a multiple of
/// it by linear interpolation), cut into chunks of `frames` × 20 ms.
fn l16_chunks(rate: u32, frames: usize) -> Vec<Vec<u8>> {
    let pcm = upsample(&speech_pcm(), (rate / 8000) as usize);
    let per_chunk = rate as usize / 50 * frames;
    pcm.chunks_exact(per_chunk).map(|c| c.iter().flat_map(|s| s.to_le_bytes()).collect()).collect()
}

/// `pcm` at `factor` times its rate, each new sample on the line between its neighbours.
fn upsample(pcm: &[i16], factor: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(pcm.len() * factor);
    for (i, &a) in pcm.iter().enumerate() {
        let b = i32::from(*pcm.get(i + 1).unwrap_or(&a));
        for k in 0..factor {
            let step = (b - i32::from(a)) * k as i32 / factor as i32;
            out.push((i32::from(a) + step) as i16);
        }
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn twilio() -> CarrierCall {
    let media = speech_messages().into_iter().map(Message::text).collect();
    let setup = vec![Message::text(CONNECTED.to_owned()), Message::text(start_message())];
    CarrierCall { dialect: "twilio", setup, media, frames_per_media: 1, rate: 8000 }
}

fn signalwire() -> CarrierCall {
    const SID: &str = "7d56cc11-536d-4a45-b4fb-ed3d55be843b";
    let setup = vec![
        Message::text(r#"{"event":"connected","protocol":"Call","version":"0.2.0"}"#.to_owned()),
        Message::text(format!(
            r#"{{"event":"start","sequenceNumber":"1","start":{{"streamSid":"{SID}","accountSid":"b08dacad-2f6c-4de1-93d6-cc732e0c69c5","callSid":"76ac3c36-56da-4a3e-a0d6-b5f8df6da9ad","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-l16","sampleRate":24000,"channels":1}}}}}}"#
        )),
    ];
    let media = l16_chunks(24_000, 1)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Message::text(format!(
                r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}},"streamSid":"{SID}"}}"#,
                i + 2,
                i + 1,
                i * 20,
                b64(c)
            ))
        })
        .collect();
    CarrierCall { dialect: "signalwire", setup, media, frames_per_media: 1, rate: 24_000 }
}

fn telnyx() -> CarrierCall {
    const ID: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";
    let setup = vec![
        Message::text(r#"{"event":"connected","version":"1.0.0"}"#.to_owned()),
        Message::text(format!(
            r#"{{"event":"start","sequence_number":"1","stream_id":"{ID}","start":{{"user_id":"3E6F995F-85F7-4705-9741-53B116D28237","call_control_id":"v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ","call_session_id":"ff55a038-6f5d-11ef-9692-02420aeffb1f","from":"+13122010094","to":"+13122123456","custom_parameters":{{"customer_id":"customer_123"}},"media_format":{{"encoding":"PCMU","sample_rate":8000,"channels":1}}}}}}"#
        )),
    ];
    let media = SPEECH_ULAW
        .chunks_exact(160)
        .enumerate()
        .map(|(i, c)| {
            Message::text(format!(
                r#"{{"event":"media","sequence_number":"{}","stream_id":"{ID}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}}}}"#,
                i + 2,
                i + 1,
                i * 20,
                b64(c)
            ))
        })
        .collect();
    CarrierCall { dialect: "telnyx", setup, media, frames_per_media: 1, rate: 8000 }
}

/// Telnyx's calls in a stateful codec, by the dialect spec that sends the same codec back.
const CODED_CALLS_G722: &str = "telnyx;codec=G722";
const CODED_CALLS_OPUS: &str = "telnyx;codec=OPUS";
/// The calls beyond one per dialect: Telnyx's G.722 and Opus, both ways.
pub const CODED_CALLS: [&str; 2] = [CODED_CALLS_G722, CODED_CALLS_OPUS];

/// Telnyx in `encoding` (`G722`: 160 B a frame; `OPUS`: 16 kHz, a packet a frame): the speech
/// raised to 16 kHz and coded by the engine's own encoders (what is timed is the decoding).
fn telnyx_coded(dialect: &'static str, encoding: &str) -> CarrierCall {
    const ID: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";
    let setup = vec![
        Message::text(r#"{"event":"connected","version":"1.0.0"}"#.to_owned()),
        Message::text(format!(
            r#"{{"event":"start","sequence_number":"1","stream_id":"{ID}","start":{{"call_control_id":"v3:bench","media_format":{{"encoding":"{encoding}","sample_rate":16000,"channels":1}}}}}}"#
        )),
    ];
    let pcm = upsample(&speech_pcm(), 2);
    let mut g722 = trunkline::codec::G722Encoder::new();
    let mut opus = trunkline::codec::carrier_opus::CarrierOpusEncoder::new(16_000).expect("an Opus encoder");
    let media = pcm
        .chunks_exact(320)
        .enumerate()
        .map(|(i, frame)| {
            let mut coded = vec![0u8; 1500];
            let n = if encoding == "G722" {
                g722.encode(frame, &mut coded)
            } else {
                opus.encode(frame, &mut coded).expect("a 20 ms frame")
            };
            Message::text(format!(
                r#"{{"event":"media","sequence_number":"{}","stream_id":"{ID}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}}}}"#,
                i + 2,
                i + 1,
                i * 20,
                b64(&coded[..n])
            ))
        })
        .collect();
    CarrierCall { dialect, setup, media, frames_per_media: 1, rate: 16_000 }
}

fn plivo() -> CarrierCall {
    const ID: &str = "87654321-4321-4321-4321-cba987654321";
    const HEADERS: &str = "userId=12345;sessionId=abc-xyz";
    let setup = vec![Message::text(format!(
        r#"{{"event":"start","sequenceNumber":1,"start":{{"callId":"12345678-1234-1234-1234-123456789abc","streamId":"{ID}","accountId":"MAXXXXXXXXXXXXXXXXXX","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000}}}},"extra_headers":"{HEADERS}"}}"#
    ))];
    // Plivo stamps media with the wall clock's Unix ms.
    let media = SPEECH_ULAW
        .chunks_exact(160)
        .enumerate()
        .map(|(i, c)| {
            Message::text(format!(
                r#"{{"event":"media","sequenceNumber":{},"streamId":"{ID}","media":{{"track":"inbound","timestamp":"{}","chunk":{},"payload":"{}"}},"extra_headers":"{HEADERS}"}}"#,
                i + 2,
                1_705_312_200_000 + i as u64 * 20,
                i + 1,
                b64(c)
            ))
        })
        .collect();
    CarrierCall { dialect: "plivo", setup, media, frames_per_media: 1, rate: 8000 }
}

fn exotel() -> CarrierCall {
    const SID: &str = "MZxxxxxxxxxxxxxxxxxxxxxxxx";
    const FRAMES: usize = 5;
    let setup = vec![
        Message::text(r#"{"event":"connected"}"#.to_owned()),
        Message::text(format!(
            r#"{{"event":"start","sequence_number":"1","stream_sid":"{SID}","start":{{"stream_sid":"{SID}","call_sid":"CAxxxxxxxxxxxxxxxxxxxxxxxx","account_sid":"ACxxxxxxxxxxxxxxxxxxxxxxxx","from":"+919876543210","to":"+918047491899","custom_parameters":{{"key1":"value1"}},"media_format":{{"encoding":"audio/x-raw","sample_rate":"8000","bit_rate":"16"}}}}}}"#
        )),
    ];
    let media = l16_chunks(8000, FRAMES)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Message::text(format!(
                r#"{{"event":"media","sequence_number":"{}","stream_sid":"{SID}","media":{{"chunk":"{}","timestamp":"{}","payload":"{}"}}}}"#,
                i + 2,
                i + 1,
                i * 20 * FRAMES,
                b64(c)
            ))
        })
        .collect();
    CarrierCall { dialect: "exotel", setup, media, frames_per_media: FRAMES, rate: 8000 }
}

fn vonage() -> CarrierCall {
    let setup = vec![Message::text(
        r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","language":"en-GB","caller-id":"447700900123"}"#
            .to_owned(),
    )];
    let media = l16_chunks(16_000, 1).into_iter().map(Message::binary).collect();
    CarrierCall { dialect: "vonage", setup, media, frames_per_media: 1, rate: 16_000 }
}

fn jambonz() -> CarrierCall {
    let setup = vec![Message::text(
        r#"{"sampleRate":16000,"mixType":"mono","callSid":"b8c3c9e1-4a0e-4c4b-9a33-2f5d2a1b7c10","direction":"inbound","from":"15083084809","to":"15085551212","accountSid":"9351f46a-678c-43f5-b8a6-d4eb58d131af","tenant":"acme"}"#
            .to_owned(),
    )];
    let media = l16_chunks(16_000, 1).into_iter().map(Message::binary).collect();
    CarrierCall { dialect: "jambonz", setup, media, frames_per_media: 1, rate: 16_000 }
}

/// An AudioSocket message: type, big-endian length, value.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(value.len()).expect("an AudioSocket value fits 16 bits");
    let mut out = Vec::with_capacity(3 + value.len());
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn audiosocket() -> CarrierCall {
    let uuid: Vec<u8> = (0u8..16).collect();
    let setup = vec![Message::binary(tlv(0x01, &uuid)), Message::binary(tlv(0x10, &[0u8; 320]))];
    let media = l16_chunks(8000, 1).iter().map(|c| Message::binary(tlv(0x10, c))).collect();
    CarrierCall { dialect: "audiosocket", setup, media, frames_per_media: 1, rate: 8000 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline::SessionConfig;
    use trunkline::pipeline::SessionPipeline;
    use trunkline::protocol::dialect_by_name;

    #[test]
    fn every_dialect_has_a_call() {
        for name in trunkline::protocol::DIALECTS {
            let call = call(name).unwrap_or_else(|| panic!("no call for {name}"));
            assert_eq!(call.dialect, *name);
            // The whole fixture in whole chunks: 10.6 s.
            let ms = call.media.len() * call.frames_per_media * 20;
            assert!((10_000..=10_700).contains(&ms), "{name}: {ms} ms");
        }
    }

    /// Every call's setup and media through a pipeline at the carrier's own rate (nothing
    /// resampled): the caller audio is exactly the speech the messages were made from.
    #[test]
    fn every_call_is_accepted_and_delivers_its_speech() {
        for name in trunkline::protocol::DIALECTS {
            let call = call(name).unwrap();
            let config = SessionConfig { agent_rate: call.rate, ..Default::default() };
            let mut p = SessionPipeline::new(&config, dialect_by_name(name).unwrap()).unwrap();
            let mut audio = Vec::new();
            for m in call.setup.iter().chain(&call.media) {
                p.handle_message(&m.bytes, m.kind, 0, 0, &mut |pcm| audio.extend_from_slice(pcm));
            }
            let stats = p.counters();
            assert_eq!(
                (stats.protocol_errors, stats.messages_in),
                (0, (call.setup.len() + call.media.len()) as u64)
            );
            let mut expected = upsample(&speech_pcm(), (call.rate / 8000) as usize);
            expected.truncate(call.media.len() * call.frames_per_media * call.rate as usize / 50);
            if *name == "audiosocket" {
                // The setup's first audio message: 20 ms of silence in front.
                expected.splice(0..0, [0; 160]);
            }
            assert_eq!(audio.len(), expected.len(), "{name}");
            assert!(audio == expected, "{name}: the caller audio differs from the speech sent");
        }
    }

    #[test]
    fn upsampling_keeps_the_samples_and_interpolates_between_them() {
        assert_eq!(upsample(&[0, 300, -300], 3), [0, 100, 200, 300, 100, -100, -300, -300, -300]);
    }
}
