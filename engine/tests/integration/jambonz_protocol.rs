//! The jambonz `listen`/`stream` dialect (mod_audio_fork underneath) against the documented
//! messages, then whole calls through a session.
//!
//! Fixtures (engine/tests/fixtures/jambonz/): `metadata.json` is the first-message example of
//! jambonz's `listen` verb documentation, literally (its `…` included); `metadata_call.json` is
//! built from the call attributes the `listen` task merges into the metadata (with a
//! `customerData` object and an application `metadata` field), with made-up values;
//! `dtmf.json` is the key press the `listen` task sends with `passDtmf`; `mark_playout.json`
//! and `mark_cleared.json` are the mark acknowledgements of mod_audio_fork's README;
//! `mark.json` and `kill_audio.json` are the mark and `killAudio` commands of the same README.
//! Expectations are built here (audio from sample values encoded by hand, written messages
//! re-read with `serde_json::Value`, echoes spelled as the module writes them), never read back
//! from the dialect. Allocations are counted per thread (the
//! test binary's allocator: `thread_allocations`).

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Value, json};
use trunkline::protocol::jambonz::JambonzDialect;
use trunkline::protocol::{
    AudioEncoding, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat, MediaFrame,
    MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, Event, Session, SessionConfig};

use crate::thread_allocations::allocations_in;

use crate::dialect_session::{errors, events, open_with, read_all_into};
use crate::wire::{json_of, l16, params, ramp};

// ---------------------------------------------------------------------------------------------
// Helpers

const METADATA: &str = include_str!("../fixtures/jambonz/metadata.json");
const METADATA_CALL: &str = include_str!("../fixtures/jambonz/metadata_call.json");
const DTMF: &str = include_str!("../fixtures/jambonz/dtmf.json");
const MARK_PLAYOUT: &str = include_str!("../fixtures/jambonz/mark_playout.json");
const MARK_CLEARED: &str = include_str!("../fixtures/jambonz/mark_cleared.json");
const MARK_COMMAND: &str = include_str!("../fixtures/jambonz/mark.json");
const KILL_AUDIO: &str = include_str!("../fixtures/jambonz/kill_audio.json");

/// A dialect that has accepted `METADATA` (so text frames are no longer metadata).
fn started() -> JambonzDialect {
    let mut dialect = JambonzDialect::new();
    let Ok(Inbound::Start(start)) = parse_with(&mut dialect, METADATA.as_bytes(), MessageKind::Text) else {
        panic!("the metadata starts the stream")
    };
    dialect.on_start(&start).expect("16 kHz is written");
    dialect
}

fn parse_with<'a>(
    dialect: &mut JambonzDialect,
    message: &'a [u8],
    kind: MessageKind,
) -> Result<Inbound<'a>, ProtocolError> {
    dialect.parse(message, kind, &mut PayloadBuffer::with_limit(2048))
}

/// A message after the metadata.
fn text(message: &str) -> Result<Inbound<'_>, ProtocolError> {
    parse_with(&mut started(), message.as_bytes(), MessageKind::Text)
}

fn metadata(message: &str) -> Result<StreamStart, ProtocolError> {
    match parse_with(&mut JambonzDialect::new(), message.as_bytes(), MessageKind::Text)? {
        Inbound::Start(start) => Ok(*start),
        other => panic!("{other:?}"),
    }
}

fn mark(name: &str, said: MarkSaid) -> Inbound<'static> {
    Inbound::Mark { sequence: None, name: Cow::Owned(name.to_owned()), said }
}

/// The echo exactly as mod_audio_fork writes it: the name put between quotes as it is.
fn module_echo(wire_name: &str, event: &str) -> String {
    format!("{{\"type\": \"mark\", \"data\": {{\"name\":\"{wire_name}\", \"event\": \"{event}\"}}}}")
}

const MEDIA: Inbound<'static> =
    Inbound::Media(MediaFrame { sequence: None, chunk: None, timestamp_ms: 0, track: Track::Inbound });

// ---------------------------------------------------------------------------------------------
// Fixtures and every message kind

#[test]
fn capabilities_are_binary_audio_without_timestamps_with_labelled_mark_echoes_and_a_clear() {
    let caps = JambonzDialect::new().capabilities();
    assert_eq!(caps.framing, Framing::Messages);
    assert!(!caps.timestamps);
    assert_eq!(caps.frame_ms, 20);
    assert_eq!(caps.max_lead_ms, None);
    assert_eq!(caps.confirmation, Confirmation::Echo { on_clear: true });
    assert_eq!(caps.clear, ClearKind::Message);
}

#[test]
fn metadata_fixture_starts_the_stream_with_every_field_as_custom_parameters() {
    assert_eq!(
        metadata(METADATA),
        Ok(StreamStart {
            sequence: None,
            account_id: String::new(),
            stream_id: "…".to_owned(),
            call_id: "…".to_owned(),
            tracks: vec![Track::Inbound],
            custom_parameters: params(&[
                ("sampleRate", "16000"),
                ("mixType", "mono"),
                ("callSid", "…"),
                ("from", "+1…"),
                ("to", "+1…"),
                ("direction", "inbound"),
                ("tenant", "acme"),
            ]),
            media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 },
        })
    );
}

#[test]
fn call_attributes_become_ids_and_custom_parameters_in_order() {
    let start = metadata(METADATA_CALL).unwrap();
    assert_eq!(start.call_id, "b8c3c9e1-4a0e-4c4b-9a33-2f5d2a1b7c10");
    assert_eq!(start.stream_id, start.call_id);
    assert_eq!(start.account_id, "9351f46a-678c-43f5-b8a6-d4eb58d131af");
    assert_eq!(
        start.media_format,
        MediaFormat { encoding: AudioEncoding::L16, sample_rate: 8_000, channels: 1 }
    );
    assert_eq!(start.tracks, [Track::Inbound], "mixed: both parties in one channel");
    // Every field, in the order sent; JSON values that are not strings as their compact text.
    let expected: Vec<(String, String)> = {
        let v: Value = serde_json::from_str(METADATA_CALL).unwrap();
        let order = [
            "sampleRate",
            "mixType",
            "callSid",
            "direction",
            "from",
            "to",
            "callId",
            "sipStatus",
            "sipReason",
            "callStatus",
            "accountSid",
            "traceId",
            "applicationSid",
            "fsSipAddress",
            "customerData",
            "tenant",
        ];
        order
            .iter()
            .map(|k| (k.to_string(), v[k].as_str().map_or_else(|| v[k].to_string(), str::to_owned)))
            .collect()
    };
    assert_eq!(start.custom_parameters, expected);
    assert!(start.custom_parameters.contains(&("sipStatus".into(), "200".into())));
    assert!(start.custom_parameters.contains(&("customerData".into(), r#"{"a":"x","z":1}"#.into())));
}

#[test]
fn metadata_fields_and_their_errors() {
    let base = |extra: &str| format!(r#"{{"sampleRate":8000{extra}}}"#);
    let format =
        |m: &str| metadata(m).map(|s| (s.media_format.sample_rate, s.media_format.channels, s.tracks));
    assert_eq!(format(&base("")), Ok((8_000, 1, vec![Track::Inbound])));
    assert_eq!(format(r#"{"sampleRate":"24000"}"#), Ok((24_000, 1, vec![Track::Inbound])));
    assert_eq!(format(&base(r#","mixType":"mixed""#)), Ok((8_000, 1, vec![Track::Inbound])));
    assert_eq!(
        format(&base(r#","mixType":"stereo""#)),
        Ok((8_000, 2, vec![Track::Inbound, Track::Outbound]))
    );
    // A rate the engine does not convert still parses (on_start or the session refuses it).
    assert_eq!(format(r#"{"sampleRate":64000}"#), Ok((64_000, 1, vec![Track::Inbound])));
    for (message, error) in [
        (r#"{"mixType":"mono"}"#.to_owned(), ProtocolError::MissingField("sampleRate")),
        (r#"{"sampleRate":null}"#.to_owned(), ProtocolError::MissingField("sampleRate")),
        (r#"{"sampleRate":0}"#.to_owned(), ProtocolError::WrongType("sampleRate")),
        (r#"{"sampleRate":-8000}"#.to_owned(), ProtocolError::WrongType("sampleRate")),
        (r#"{"sampleRate":8000.5}"#.to_owned(), ProtocolError::WrongType("sampleRate")),
        (r#"{"sampleRate":"8k"}"#.to_owned(), ProtocolError::WrongType("sampleRate")),
        (r#"{"sampleRate":4294967296}"#.to_owned(), ProtocolError::WrongType("sampleRate")),
        (base(r#","mixType":"quad""#), ProtocolError::WrongType("mixType")),
        (base(r#","mixType":1"#), ProtocolError::WrongType("mixType")),
        (base(r#","callSid":7"#), ProtocolError::WrongType("callSid")),
        (base(r#","accountSid":{}"#), ProtocolError::WrongType("accountSid")),
        (base(r#","sampleRate":8000"#), ProtocolError::MalformedJson),
        (base(r#","callSid":"a","callSid":"b""#), ProtocolError::MalformedJson),
        ("[8000]".to_owned(), ProtocolError::MalformedJson),
        (base(&format!(r#","deep":{}1{}"#, "[".repeat(200), "]".repeat(200))), ProtocolError::MalformedJson),
        ("sampleRate=8000".to_owned(), ProtocolError::MalformedJson),
    ] {
        assert_eq!(metadata(&message), Err(error), "{message}");
    }
    // The application's own metadata may hold anything, a `type` or an `event` included.
    let start = metadata(&base(r#","type":"sales","event":"dtmf""#)).unwrap();
    assert_eq!(
        start.custom_parameters,
        params(&[("sampleRate", "8000"), ("type", "sales"), ("event", "dtmf")])
    );
}

#[test]
fn on_start_answers_at_the_callers_rate_or_the_one_given() {
    let l16 = |rate| Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 });
    for rate in [8_000, 16_000, 24_000, 48_000] {
        let start = metadata(&format!(r#"{{"sampleRate":{rate},"mixType":"stereo"}}"#)).unwrap();
        assert_eq!(JambonzDialect::new().on_start(&start), l16(rate));
    }
    let start = metadata(r#"{"sampleRate":64000}"#).unwrap();
    assert_eq!(JambonzDialect::new().on_start(&start), Err(ProtocolError::UnsupportedFormat));
    assert_eq!(JambonzDialect::with_playback_rate(16_000).on_start(&start), l16(16_000));
    let start = metadata(r#"{"sampleRate":8000}"#).unwrap();
    assert_eq!(
        JambonzDialect::with_playback_rate(11_025).on_start(&start),
        Err(ProtocolError::UnsupportedFormat)
    );
}

#[test]
fn until_a_start_is_accepted_every_text_frame_is_metadata() {
    let mut dialect = JambonzDialect::new();
    assert_eq!(
        parse_with(&mut dialect, DTMF.as_bytes(), MessageKind::Text),
        Err(ProtocolError::MissingField("sampleRate"))
    );
    assert!(matches!(
        parse_with(&mut dialect, METADATA.as_bytes(), MessageKind::Text),
        Ok(Inbound::Start(_))
    ));
    // Not accepted yet (on_start not run): still metadata.
    assert!(matches!(
        parse_with(&mut dialect, METADATA.as_bytes(), MessageKind::Text),
        Ok(Inbound::Start(_))
    ));
    let mut dialect = started();
    assert_eq!(
        parse_with(&mut dialect, METADATA.as_bytes(), MessageKind::Text),
        Err(ProtocolError::MissingField("type"))
    );
}

#[test]
fn dtmf_fixture_and_every_digit() {
    // The example's duration, 1600, is in samples at 8 kHz: 200 ms.
    assert_eq!(text(DTMF), Ok(Inbound::Dtmf { sequence: None, digit: b'5', duration_ms: Some(200) }));
    for digit in "0123456789*#ABCD".chars() {
        let message = json!({"event": "dtmf", "dtmf": digit.to_string(), "duration": "1600"}).to_string();
        let expected = Inbound::Dtmf { sequence: None, digit: digit as u8, duration_ms: Some(200) };
        assert_eq!(text(&message), Ok(expected));
    }
    for (message, error) in [
        (r#"{"event":"dtmf"}"#, ProtocolError::MissingField("dtmf")),
        (r#"{"event":"dtmf","dtmf":5}"#, ProtocolError::WrongType("dtmf")),
        (r#"{"event":"dtmf","dtmf":"55"}"#, ProtocolError::WrongType("dtmf")),
        (r#"{"event":"dtmf","dtmf":"x"}"#, ProtocolError::WrongType("dtmf")),
        (r#"{"event":"transcription"}"#, ProtocolError::UnknownEvent),
        (r#"{"event":1}"#, ProtocolError::WrongType("event")),
    ] {
        assert_eq!(text(message), Err(error), "{message}");
    }
}

#[test]
fn mark_echoes_of_both_labels_are_marks_with_the_label() {
    assert_eq!(text(MARK_PLAYOUT), Ok(mark("m1", MarkSaid::Played)));
    assert_eq!(text(MARK_CLEARED), Ok(mark("m1", MarkSaid::Cleared)));
    assert_eq!(text(r#"{"type":"mark","data":{"name":"m1"}}"#), Ok(mark("m1", MarkSaid::Nothing)));
    assert_eq!(
        text(&module_echo("trunkline-sync-4", "playout")),
        Ok(mark("trunkline-sync-4", MarkSaid::Played))
    );
    for (message, error) in [
        (r#"{"type":"mark"}"#, ProtocolError::MissingField("data")),
        (r#"{"type":"mark","data":"m1"}"#, ProtocolError::WrongType("data")),
        (r#"{"type":"mark","data":{}}"#, ProtocolError::MissingField("data.name")),
        (r#"{"type":"mark","data":{"name":1}}"#, ProtocolError::WrongType("data.name")),
        (r#"{"type":"mark","data":{"name":"m1","event":"played"}}"#, ProtocolError::WrongType("data.event")),
        (r#"{"type":"mark","data":{"name":"m1","event":true}}"#, ProtocolError::WrongType("data.event")),
        (r#"{"type":"mark","data":{"name":"50%"}}"#, ProtocolError::WrongType("data.name")),
        (r#"{"type":"playDone","data":{"id":"1"}}"#, ProtocolError::UnknownEvent),
        (r#"{"type":["mark"]}"#, ProtocolError::WrongType("type")),
        (r#"{"type":"mark","event":"dtmf","dtmf":"1","data":{}}"#, ProtocolError::MissingField("data.name")),
        (r#"{}"#, ProtocolError::MissingField("type")),
        (r#"{"type":"mark","data":{"name":"a","name":"b"}}"#, ProtocolError::MalformedJson),
        ("{\"type\":\"mark\"", ProtocolError::MalformedJson),
    ] {
        assert_eq!(text(message), Err(error), "{message}");
    }
}

#[test]
fn binary_frames_are_the_callers_audio_byte_for_byte() {
    let mut dialect = started();
    let mut payload = PayloadBuffer::with_limit(640);
    let frame = l16(&ramp(320, 0));
    assert_eq!(dialect.parse(&frame, MessageKind::Binary, &mut payload), Ok(MEDIA));
    assert_eq!(payload.as_slice(), frame.as_slice());
    for (frame, error) in [
        (vec![], ProtocolError::MissingField("audio")),
        (vec![0; 639], ProtocolError::OddPayloadLength),
        (vec![0; 642], ProtocolError::PayloadTooLarge),
    ] {
        assert_eq!(dialect.parse(&frame, MessageKind::Binary, &mut payload), Err(error));
        assert!(payload.as_slice().is_empty());
    }
}

#[test]
fn audio_key_presses_and_mark_echoes_parse_without_allocating() {
    let mut dialect = started();
    let mut payload = PayloadBuffer::with_limit(2048);
    let frame = l16(&ramp(320, 0));
    let echo = module_echo("trunkline-sync-9", "playout");
    let _ = dialect.parse(echo.as_bytes(), MessageKind::Text, &mut payload);
    for (what, message, kind) in [
        ("audio", &frame[..], MessageKind::Binary),
        ("a mark echo", echo.as_bytes(), MessageKind::Text),
        ("a key press", DTMF.as_bytes(), MessageKind::Text),
    ] {
        let (n, ok) = allocations_in(|| dialect.parse(message, kind, &mut payload).is_ok());
        assert!(ok, "{what}");
        assert_eq!(n, 0, "{what}");
    }
}

#[test]
fn the_quick_look_sees_text_until_the_start_and_nothing_after() {
    let mut dialect = JambonzDialect::new();
    assert!(dialect.may_start_or_stop(METADATA.as_bytes(), MessageKind::Text));
    assert!(!dialect.may_start_or_stop(&[0; 640], MessageKind::Binary));
    let Ok(Inbound::Start(start)) = parse_with(&mut dialect, METADATA.as_bytes(), MessageKind::Text) else {
        panic!()
    };
    dialect.on_start(&start).unwrap();
    assert!(!dialect.may_start_or_stop(MARK_PLAYOUT.as_bytes(), MessageKind::Text));
}

// ---------------------------------------------------------------------------------------------
// Writers

#[test]
fn write_mark_and_clear_are_exactly_the_commands_mod_audio_fork_takes() {
    let dialect = started();
    let mut out = Vec::new();
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(KILL_AUDIO.as_bytes()));
    assert_eq!(dialect.write_mark("m1", &mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(MARK_COMMAND.as_bytes()));
}

#[test]
fn mark_names_survive_the_modules_unescaped_echo() {
    let dialect = started();
    let mut out = Vec::new();
    for name in ["m1", "", "say \"hi\" \\o/ 100%", "line\nbreak\ttab\u{1}", "é€😀", "%41"] {
        dialect.write_mark(name, &mut out);
        let written = json_of(&out);
        assert_eq!(written["type"], "mark");
        let wire_name = written["data"]["name"].as_str().expect("a string name");
        // The module parses the command, then writes the name back between quotes unescaped.
        for (event, said) in [("playout", MarkSaid::Played), ("cleared", MarkSaid::Cleared)] {
            let echo = module_echo(wire_name, event);
            assert_eq!(text(&echo), Ok(mark(name, said)), "{echo}");
        }
    }
}

#[test]
fn write_media_is_the_audio_with_the_modules_marker_value_avoided() {
    let dialect = started();
    let mut out = Vec::new();
    let pcm = [0i16, -1, 1, -1, -2, i16::MIN, i16::MAX, -256, 255];
    assert_eq!(dialect.write_media(&l16(&pcm), &mut out), MessageKind::Binary);
    assert_eq!(out, l16(&[0, -2, 1, -2, -2, i16::MIN, i16::MAX, -256, 255]));
    let frame = l16(&ramp(320, 0));
    dialect.write_media(&frame, &mut out);
    assert_eq!(out, frame, "a frame without -1 goes out untouched");
    assert_eq!(dialect.max_media_message_len(640), 640);
}

// ---------------------------------------------------------------------------------------------
// Whole calls through a session (inline engine on a manual clock)

const RATE: u32 = 16_000;
const FRAME_BYTES: usize = 640;

fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    open_with(clock, config, JambonzDialect::new())
}

fn outbound(s: &mut Session) -> Vec<(MessageKind, Vec<u8>)> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| s.next_outbound(&mut buf).map(|kind| (kind, buf.clone()))).collect()
}

#[test]
fn caller_audio_reaches_a_16_khz_agent_untouched_in_arrival_order() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    s.push(METADATA.as_bytes(), MessageKind::Text).unwrap();
    let audio = ramp(50 * 320, 0);
    let mut received = Vec::new();
    for (i, frame) in audio.chunks(320).enumerate() {
        s.push(&l16(frame), MessageKind::Binary).unwrap();
        if i == 9 {
            s.push(DTMF.as_bytes(), MessageKind::Text).unwrap();
        }
        read_all_into(&mut s, &mut received);
    }
    assert_eq!(received, audio);
    s.end_stream().unwrap();
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!(start.call_id, "…");
    assert_eq!(start.custom_parameters.last(), Some(&("tenant".to_owned(), "acme".to_owned())));
    assert!(evs.contains(&Event::Dtmf { digit: '5', stream_ms: 200, duration_ms: Some(200) }), "{evs:?}");
    assert_eq!(evs.last(), Some(&Event::Stopped), "the socket closing ends the call");
    assert!(errors(&evs).is_empty(), "{evs:?}");
    assert_eq!(s.stats().media_frames_in, 50);
}

/// mod_audio_fork writes whatever it buffered since its last write: 20 ms as a rule, 40-80 ms
/// after a text write or a busy service loop, more after a stall. With the default limits (2 KiB
/// of audio) 80 ms at 16 kHz was refused.
#[test]
fn audio_the_module_batched_into_one_message_is_taken_whole() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    s.push(METADATA.as_bytes(), MessageKind::Text).unwrap();
    // 20 ms, 80 ms, 40 ms, 240 ms (the most a message may hold at 16 kHz), 20 ms.
    let lengths = [320, 1280, 640, 3840, 320];
    let audio = ramp(lengths.iter().sum(), 3);
    let mut received = Vec::new();
    let mut at = 0;
    for n in lengths {
        s.push(&l16(&audio[at..at + n]), MessageKind::Binary).unwrap();
        at += n;
        read_all_into(&mut s, &mut received);
    }
    let evs = events(&mut s);
    assert!(errors(&evs).is_empty(), "{evs:?}");
    assert_eq!(received.len(), audio.len(), "every sample");
    assert!(received == audio, "in order, untouched");
    // A message longer than that is refused and reported; the stream goes on.
    s.push(&l16(&ramp(3841, 4)), MessageKind::Binary).unwrap();
    let after = ramp(320, 5);
    s.push(&l16(&after), MessageKind::Binary).unwrap();
    let mut tail = Vec::new();
    read_all_into(&mut s, &mut tail);
    assert_eq!(tail, after);
    let evs = events(&mut s);
    assert_eq!(errors(&evs), [ProtocolError::PayloadTooLarge], "{evs:?}");
}

/// mod_audio_fork keeps the metadata in an 8 KiB buffer, and jambonz fills it with the call's
/// attributes and the application's `metadata`: a start of 8191 bytes (the buffer less its NUL)
/// was refused for its size by the default limits, and the call never started.
#[test]
fn the_largest_metadata_the_module_sends_starts_the_call() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    let head = r#"{"sampleRate": 16000, "callSid": "CA1", "note": ""#;
    let filler = "x".repeat(8_191 - head.len() - 2);
    let metadata = format!("{head}{filler}\"}}");
    assert_eq!(metadata.len(), 8_191);
    assert!(metadata.len() > SessionConfig::default().max_message_bytes);
    s.push(metadata.as_bytes(), MessageKind::Text).unwrap();
    let audio = ramp(320, 6);
    s.push(&l16(&audio), MessageKind::Binary).unwrap();
    let mut received = Vec::new();
    read_all_into(&mut s, &mut received);
    let evs = events(&mut s);
    assert!(errors(&evs).is_empty(), "{:?}", errors(&evs));
    let Event::Started(start) = &evs[0] else { panic!("no start: {:?}", errors(&evs)) };
    assert_eq!(start.call_id, "CA1");
    assert_eq!(start.custom_parameters.last(), Some(&("note".to_owned(), filler)));
    assert_eq!(received, audio, "the audio after it is delivered");
}

/// mod_audio_fork's side of marks: a mark is queued ahead of the next audio it receives (one
/// with no audio after it waits for some), echoed `playout` once playout reaches it, `cleared`
/// when `killAudio` drops it; names are echoed as they came, unescaped.
struct FakeModule {
    audio: Vec<u8>,
    /// Marks queued, with the audio position they sit at.
    pending: Vec<(String, usize)>,
    /// Marks waiting for the next audio.
    waiting: Vec<String>,
    kills: usize,
}

impl FakeModule {
    fn new() -> Self {
        Self { audio: Vec::new(), pending: Vec::new(), waiting: Vec::new(), kills: 0 }
    }

    /// Takes what the engine sent; returns the echoes a `killAudio` among it caused.
    fn receive(&mut self, messages: Vec<(MessageKind, Vec<u8>)>, frame_bytes: usize) -> Vec<String> {
        let mut echoes = Vec::new();
        for (kind, bytes) in messages {
            if kind == MessageKind::Binary {
                assert_eq!(bytes.len(), frame_bytes, "every audio message is exactly 20 ms");
                let at = self.audio.len();
                self.pending.extend(self.waiting.drain(..).map(|name| (name, at)));
                self.audio.extend_from_slice(&bytes);
                continue;
            }
            let v = json_of(&bytes);
            match v["type"].as_str() {
                Some("mark") => {
                    self.waiting.push(v["data"]["name"].as_str().unwrap().to_owned());
                }
                Some("killAudio") => {
                    self.kills += 1;
                    let dropped = self.pending.drain(..).map(|(name, _)| name).chain(self.waiting.drain(..));
                    echoes.extend(dropped.map(|name| module_echo(&name, "cleared")).collect::<Vec<_>>());
                }
                other => panic!("unexpected command {other:?}"),
            }
        }
        echoes
    }

    fn due(&mut self, played: usize) -> Vec<String> {
        let (due, later) = self.pending.drain(..).partition(|(_, at)| *at <= played);
        self.pending = later;
        due.into_iter().map(|(name, _)| module_echo(&name, "playout")).collect()
    }
}

#[test]
fn agent_audio_goes_out_in_20_ms_binary_frames_and_marks_play_when_the_module_echoes_them() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: RATE, lead_ms: 60, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(METADATA.as_bytes(), MessageKind::Text).unwrap();
    // 610 ms of agent audio holding the module's marker value, then a mark whose name needs
    // JSON escapes.
    let mut reply: Vec<i16> = (0..9_760).map(|i| ((i * 11) % 6000) as i16 - 3000).collect();
    for i in (0..reply.len()).step_by(97) {
        reply[i] = -1;
    }
    s.play(&reply, RATE).unwrap();
    s.mark("end of \"reply\"").unwrap();

    let mut module = FakeModule::new();
    let mut played = None;
    for step in 0..60u64 {
        assert!(module.receive(outbound(&mut s), FRAME_BYTES).is_empty());
        assert!(module.audio.len() / FRAME_BYTES <= (step + 3) as usize, "paced to the lead");
        let played_bytes = (step as usize * FRAME_BYTES).min(module.audio.len());
        for echo in module.due(played_bytes) {
            s.push(echo.as_bytes(), MessageKind::Text).unwrap();
        }
        for e in events(&mut s) {
            match e {
                Event::MarkPlayed { name, played_ms } => {
                    assert_eq!(name, "end of \"reply\"");
                    played = Some((played_ms, step * 20));
                }
                Event::Started(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    // The audio, -1 written as -2, the last frame padded with silence; then a frame of silence
    // after the mark, which the module holds until audio comes.
    let expected: Vec<i16> = reply.iter().map(|&x| if x == -1 { -2 } else { x }).collect();
    assert_eq!(module.audio.len(), 32 * FRAME_BYTES);
    assert_eq!(&module.audio[..expected.len() * 2], l16(&expected).as_slice());
    assert!(module.audio[expected.len() * 2..].iter().all(|&b| b == 0));
    let (played_ms, at_ms) = played.expect("the mark is reported played");
    // Its position is the reply's 610 ms, padding left out; heard once the padded frame played.
    assert_eq!(played_ms, 610);
    assert!((620..=660).contains(&at_ms), "reported at {at_ms} ms");
    let stats = s.stats();
    assert_eq!((stats.frames_out, stats.marks_played, stats.protocol_errors), (32, 1, 0));
    assert!(stats.sync_marks_sent > 0);
}

#[test]
fn every_play_rate_reaches_a_48_khz_stream() {
    // A 48 kHz stream takes 22.05 and 44.1 kHz audio (a TTS's native rate) as well as the others:
    // a second of each goes out as 50 frames of 20 ms, none of it flushed.
    for play_rate in trunkline::pipeline::PLAY_RATES {
        let clock = ManualClock::new();
        let config = SessionConfig { play_rate, agent_rate: 48_000, lead_ms: 60, ..Default::default() };
        let (_engine, mut s) = open(&clock, &config);
        s.push(br#"{"sampleRate":48000}"#, MessageKind::Text).unwrap();
        let tone: Vec<i16> = (0..play_rate as usize)
            .map(|i| {
                (8_000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / f64::from(play_rate)).sin())
                    as i16
            })
            .collect();
        let mut played = 0;
        let mut frames = 0;
        for _ in 0..100 {
            played += s.play(&tone[played..], play_rate).unwrap();
            frames += outbound(&mut s).iter().filter(|(kind, _)| *kind == MessageKind::Binary).count();
            clock.advance(Duration::from_millis(20));
            s.read_audio(&mut [0; 2048]);
        }
        let stats = s.stats();
        assert_eq!((played, stats.flushed_samples), (tone.len(), 0), "{play_rate} Hz");
        assert!((50..=51).contains(&frames), "{play_rate} Hz: {frames} frames");
    }
}

/// A started call (a 60 ms lead) playing 40 ms of audio and then a mark, "sent".
fn started_with_a_mark_after_40_ms(clock: &ManualClock) -> (Engine, Session) {
    let config = SessionConfig { play_rate: RATE, lead_ms: 60, ..Default::default() };
    let (engine, mut s) = open(clock, &config);
    s.push(METADATA.as_bytes(), MessageKind::Text).unwrap();
    s.play(&vec![1000i16; 640], RATE).unwrap(); // 40 ms
    s.mark("sent").unwrap();
    (engine, s)
}

#[test]
fn an_interrupt_sends_kill_audio_and_the_cleared_echoes_report_marks_cleared() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_with_a_mark_after_40_ms(&clock);
    s.play(&vec![1000i16; 16_000], RATE).unwrap(); // one second
    s.mark("queued").unwrap();
    let mut module = FakeModule::new();
    assert!(module.receive(outbound(&mut s), FRAME_BYTES).is_empty());
    assert_eq!(module.pending.len(), 1);
    events(&mut s);

    clock.advance(Duration::from_millis(20));
    s.interrupt().unwrap();
    let sent = outbound(&mut s);
    assert_eq!(sent.len(), 1);
    assert_eq!(json_of(&sent[0].1), json_of(KILL_AUDIO.as_bytes()));
    // The mark never sent is cleared at once; the one the module holds when its echo says so.
    assert_eq!(
        events(&mut s),
        [Event::Interrupted { played_ms: 20 }, Event::MarkCleared { name: "queued".into() }]
    );
    let echoes = module.receive(sent, FRAME_BYTES);
    assert_eq!(echoes, [module_echo("sent", "cleared")]);
    for echo in echoes {
        s.push(echo.as_bytes(), MessageKind::Text).unwrap();
    }
    assert_eq!(events(&mut s), [Event::MarkCleared { name: "sent".into() }]);
    assert_eq!((module.kills, s.stats().clears_sent), (1, 1));
}

/// The module says which of its marks played: its word is taken over the playout model's. Here
/// the model has the first mark played (its 40 ms went out 60 ms ago, and no sync mark has
/// measured the module's buffer yet), but the module had not played it: the kill's echo labels
/// it cleared, and so it is reported.
#[test]
fn the_modules_cleared_label_is_taken_over_the_playout_model() {
    let clock = ManualClock::new();
    let (_engine, mut s) = started_with_a_mark_after_40_ms(&clock);
    s.play(&vec![1000i16; 16_000], RATE).unwrap();
    let mut module = FakeModule::new();
    assert!(module.receive(outbound(&mut s), FRAME_BYTES).is_empty());
    events(&mut s);
    clock.advance(Duration::from_millis(60));
    s.read_audio(&mut [0; 16]);
    assert!(module.receive(outbound(&mut s), FRAME_BYTES).is_empty(), "the module played nothing yet");
    s.interrupt().unwrap();
    assert_eq!(events(&mut s), [Event::Interrupted { played_ms: 60 }]);
    let echoes = module.receive(outbound(&mut s), FRAME_BYTES);
    assert_eq!(echoes, [module_echo("sent", "cleared")]);
    s.push(echoes[0].as_bytes(), MessageKind::Text).unwrap();
    assert_eq!(events(&mut s), [Event::MarkCleared { name: "sent".into() }]);
    let stats = s.stats();
    assert_eq!((stats.marks_played, stats.marks_cleared), (0, 1));
}

#[test]
fn a_playback_rate_unlike_the_callers_is_written_at_that_rate() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: 8_000, agent_rate: RATE, ..Default::default() };
    let (_engine, mut s) = open_with(&clock, &config, JambonzDialect::with_playback_rate(8_000));
    s.push(METADATA.as_bytes(), MessageKind::Text).unwrap();
    let reply = ramp(480, 0);
    s.play(&reply, 8_000).unwrap();
    let mut module = FakeModule::new();
    module.receive(outbound(&mut s), 320);
    assert_eq!(module.audio, l16(&reply));
}

#[test]
fn stereo_starts_the_stream_and_refuses_its_audio() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig::default());
    s.push(METADATA.replace("mono", "stereo").as_bytes(), MessageKind::Text).unwrap();
    s.push(&[0; 1280], MessageKind::Binary).unwrap();
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!(start.media_format.channels, 2);
    assert_eq!(errors(&evs), [ProtocolError::UnsupportedFormat, ProtocolError::UnsupportedFormat]);
}

#[test]
fn a_rate_the_engine_cannot_write_back_refuses_the_stream() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig::default());
    s.push(br#"{"sampleRate":64000,"callSid":"c"}"#, MessageKind::Text).unwrap();
    s.push(&[0; 640], MessageKind::Binary).unwrap();
    assert_eq!(errors(&events(&mut s)), [ProtocolError::UnsupportedFormat, ProtocolError::MediaBeforeStart]);
}
