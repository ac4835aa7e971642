//! The Vonage Voice API WebSocket dialect against Vonage's documented messages, then whole calls
//! through a session.
//!
//! Fixtures (engine/tests/fixtures/vonage/), each from Vonage's WebSockets guide for the Voice
//! API unless said otherwise: `connected.json` is its first-message example (the `headers` of
//! its NCCO example flattened beside `content-type`), `dtmf.json` its key-press example;
//! `cleared.json`, `notify.json` (the echo) and `notify_action.json` (the app's `notify`) are
//! the shapes of Vonage's AsyncAPI description of the socket, `clear.json` the clear action of
//! the guide. Expectations are built here from those texts (audio from sample values encoded by
//! hand, written messages re-read with `serde_json::Value`), never read back from the dialect.
//! Allocations are counted per thread (the
//! test binary's allocator: `thread_allocations`).

use std::borrow::Cow;
use std::time::Duration;

use serde_json::json;
use trunkline::protocol::vonage::VonageDialect;
use trunkline::protocol::{
    AudioEncoding, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat, MediaFrame,
    MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, Event, Session, SessionConfig};

use crate::thread_allocations::allocations_in;

use crate::dialect_session::{events, open_with, read_all_into};
use crate::wire::{json_of, l16, params, ramp};

// ---------------------------------------------------------------------------------------------
// Helpers

const CONNECTED: &str = include_str!("../fixtures/vonage/connected.json");
const DTMF: &str = include_str!("../fixtures/vonage/dtmf.json");
const CLEARED: &str = include_str!("../fixtures/vonage/cleared.json");
const NOTIFY: &str = include_str!("../fixtures/vonage/notify.json");
const CLEAR_ACTION: &str = include_str!("../fixtures/vonage/clear.json");
const NOTIFY_ACTION: &str = include_str!("../fixtures/vonage/notify_action.json");

fn parse_with<'a>(
    dialect: &mut VonageDialect,
    message: &'a [u8],
    kind: MessageKind,
) -> Result<Inbound<'a>, ProtocolError> {
    dialect.parse(message, kind, &mut PayloadBuffer::with_limit(2048))
}

fn text(message: &str) -> Result<Inbound<'_>, ProtocolError> {
    parse_with(&mut VonageDialect::new(), message.as_bytes(), MessageKind::Text)
}

fn start_of(message: &str) -> StreamStart {
    match text(message) {
        Ok(Inbound::Start(start)) => *start,
        other => panic!("{other:?}"),
    }
}

fn mark(name: &str) -> Inbound<'static> {
    Inbound::Mark { sequence: None, name: Cow::Owned(name.to_owned()), said: MarkSaid::Nothing }
}

fn notify_echo(name: &str) -> String {
    json!({"event": "websocket:notify", "payload": {"mark": name}}).to_string()
}

const MEDIA: Inbound<'static> =
    Inbound::Media(MediaFrame { sequence: None, chunk: None, timestamp_ms: 0, track: Track::Inbound });

// ---------------------------------------------------------------------------------------------
// Fixtures and every message kind

#[test]
fn capabilities_are_binary_audio_without_timestamps_in_20_ms_frames_with_notify_marks_and_a_clear() {
    let caps = VonageDialect::new().capabilities();
    assert_eq!(caps.framing, Framing::Messages);
    assert!(!caps.timestamps);
    assert_eq!(caps.frame_ms, 20);
    // 1024 messages of 20 ms: the smaller of the two buffer sizes Vonage has documented.
    assert!(caps.max_lead_ms.is_some_and(|ms| ms <= 1024 * 20));
    assert_eq!(caps.confirmation, Confirmation::Echo { on_clear: false });
    assert_eq!(caps.clear, ClearKind::Message);
}

#[test]
fn connected_fixture_starts_a_16_khz_stream_with_the_headers_as_custom_parameters() {
    let start = start_of(CONNECTED);
    assert_eq!(
        start,
        StreamStart {
            sequence: None,
            account_id: String::new(),
            stream_id: String::new(),
            call_id: String::new(),
            tracks: vec![Track::Inbound],
            custom_parameters: params(&[("language", "en-GB"), ("caller-id", "447700900123")]),
            media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 },
        }
    );
}

#[test]
fn a_uuid_header_names_the_call_and_every_header_is_kept_in_order() {
    let start = start_of(
        r#"{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","event":"websocket:connected",
            "content-type":"audio/l16;rate=8000","b":"2","a":1.50,"flag":true,"none":null,
            "user":{"z":1,"a":[1,2]},"a":"again"}"#,
    );
    assert_eq!(start.call_id, "63f61863-4a51-4f6b-86e1-46edebcf9356");
    assert_eq!(start.stream_id, start.call_id);
    assert_eq!(start.media_format.sample_rate, 8_000);
    assert_eq!(
        start.custom_parameters,
        params(&[
            ("uuid", "63f61863-4a51-4f6b-86e1-46edebcf9356"),
            ("b", "2"),
            ("a", "1.5"),
            ("flag", "true"),
            ("none", "null"),
            ("user", r#"{"a":[1,2],"z":1}"#),
            ("a", "again"),
        ])
    );
}

#[test]
fn content_types_and_rates() {
    let rate = |ct: &str| {
        text(&json!({"event": "websocket:connected", "content-type": ct}).to_string()).map(|i| match i {
            Inbound::Start(s) => (s.media_format.sample_rate, s.media_format.channels),
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(rate("audio/l16;rate=16000"), Ok((16_000, 1)));
    assert_eq!(rate("audio/l16;rate=8000"), Ok((8_000, 1)));
    assert_eq!(rate("AUDIO/L16; rate=24000"), Ok((24_000, 1)));
    assert_eq!(rate("audio/l16;rate=\"16000\";channels=1"), Ok((16_000, 1)));
    // Another codec: the stream does not start.
    assert_eq!(rate("audio/pcmu;rate=8000"), Err(ProtocolError::UnsupportedFormat));
    assert_eq!(rate("audio/opus"), Err(ProtocolError::UnsupportedFormat));
    for bad in
        ["audio/l16", "audio/l16;rate=", "audio/l16;rate=0", "audio/l16;rate=16k", "audio/l16;rate=-8000"]
    {
        assert_eq!(rate(bad), Err(ProtocolError::WrongType("content-type")), "{bad}");
    }
    let missing = r#"{"event":"websocket:connected","language":"en-GB"}"#;
    assert_eq!(text(missing), Err(ProtocolError::MissingField("content-type")));
    let null = r#"{"event":"websocket:connected","content-type":null}"#;
    assert_eq!(text(null), Err(ProtocolError::MissingField("content-type")));
    let null_uuid = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000","uuid":null}"#;
    assert_eq!(start_of(null_uuid).call_id, "");
    let number = r#"{"event":"websocket:connected","content-type":16000}"#;
    assert_eq!(text(number), Err(ProtocolError::WrongType("content-type")));
    let twice = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000","content-type":"audio/l16;rate=8000"}"#;
    assert_eq!(text(twice), Err(ProtocolError::MalformedJson));
    let uuid = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=8000","uuid":7}"#;
    assert_eq!(text(uuid), Err(ProtocolError::WrongType("uuid")));
}

#[test]
fn on_start_answers_in_the_callers_format_and_refuses_rates_it_cannot_write() {
    for rate in [8_000, 16_000, 24_000] {
        let mut dialect = VonageDialect::new();
        let mut start = start_of(CONNECTED);
        start.media_format.sample_rate = rate;
        assert_eq!(
            dialect.on_start(&start),
            Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 })
        );
    }
    for rate in [11_025, 32_000, 44_100, 48_000] {
        let mut start = start_of(CONNECTED);
        start.media_format.sample_rate = rate;
        assert_eq!(VonageDialect::new().on_start(&start), Err(ProtocolError::UnsupportedFormat), "{rate}");
    }
}

#[test]
fn dtmf_fixture_and_its_variants() {
    // The example's duration is a number of ms: 260.
    assert_eq!(text(DTMF), Ok(Inbound::Dtmf { sequence: None, digit: b'5', duration_ms: Some(260) }));
    for digit in "0123456789*#ABCD".chars() {
        let message = json!({"event": "websocket:dtmf", "digit": digit.to_string(), "duration": 100});
        let expected = Inbound::Dtmf { sequence: None, digit: digit as u8, duration_ms: Some(100) };
        assert_eq!(text(&message.to_string()), Ok(expected));
    }
    // The variants some integrations send: `dtmf.digit`, or `dtmf` as the digit.
    let nested = r##"{"event":"websocket:dtmf","dtmf":{"digit":"#","duration":"260"}}"##;
    assert_eq!(text(nested), Ok(Inbound::Dtmf { sequence: None, digit: b'#', duration_ms: Some(260) }));
    // A duration that is no number costs the key press nothing; a fraction is rounded.
    let odd = r#"{"event":"websocket:dtmf","digit":"3","duration":"long"}"#;
    assert_eq!(text(odd), Ok(Inbound::Dtmf { sequence: None, digit: b'3', duration_ms: None }));
    let fraction = r#"{"event":"websocket:dtmf","digit":"3","duration":259.6}"#;
    assert_eq!(text(fraction), Ok(Inbound::Dtmf { sequence: None, digit: b'3', duration_ms: Some(260) }));
    let flat = r#"{"event":"websocket:dtmf","dtmf":"7"}"#;
    assert_eq!(text(flat), Ok(Inbound::Dtmf { sequence: None, digit: b'7', duration_ms: None }));
    // `digit` wins over `dtmf`.
    let both = r#"{"event":"websocket:dtmf","dtmf":"7","digit":"8"}"#;
    assert_eq!(text(both), Ok(Inbound::Dtmf { sequence: None, digit: b'8', duration_ms: None }));
    for (message, error) in [
        (r#"{"event":"websocket:dtmf"}"#, ProtocolError::MissingField("digit")),
        (r#"{"event":"websocket:dtmf","dtmf":{}}"#, ProtocolError::MissingField("digit")),
        (r#"{"event":"websocket:dtmf","digit":5}"#, ProtocolError::WrongType("digit")),
        (r#"{"event":"websocket:dtmf","digit":"55"}"#, ProtocolError::WrongType("digit")),
        (r#"{"event":"websocket:dtmf","digit":"e"}"#, ProtocolError::WrongType("digit")),
        (r#"{"event":"websocket:dtmf","digit":""}"#, ProtocolError::WrongType("digit")),
        (r#"{"event":"websocket:dtmf","dtmf":[5]}"#, ProtocolError::WrongType("digit")),
    ] {
        assert_eq!(text(message), Err(error), "{message}");
    }
}

#[test]
fn notify_echoes_are_marks_named_by_the_payload_this_dialect_wrote() {
    assert_eq!(text(&notify_echo("end-of-reply")), Ok(mark("end-of-reply")));
    assert_eq!(text(&notify_echo("")), Ok(mark("")));
    assert_eq!(text(&notify_echo("a \"quoted\" \\ name ✓")), Ok(mark("a \"quoted\" \\ name ✓")));
    // The guide's echo carries an application's own payload: not a notify this dialect wrote.
    assert_eq!(text(NOTIFY), Err(ProtocolError::MissingField("payload.mark")));
    for (message, error) in [
        (r#"{"event":"websocket:notify"}"#, ProtocolError::MissingField("payload")),
        (r#"{"event":"websocket:notify","payload":null}"#, ProtocolError::MissingField("payload")),
        (r#"{"event":"websocket:notify","payload":"m"}"#, ProtocolError::WrongType("payload")),
        (r#"{"event":"websocket:notify","payload":{"mark":1}}"#, ProtocolError::WrongType("payload.mark")),
    ] {
        assert_eq!(text(message), Err(error), "{message}");
    }
}

#[test]
fn cleared_fixture_is_reported_as_connected() {
    assert_eq!(text(CLEARED), Ok(Inbound::Notice));
}

#[test]
fn binary_frames_are_the_callers_audio_byte_for_byte() {
    let mut dialect = VonageDialect::new();
    let mut payload = PayloadBuffer::with_limit(640);
    for len in [2, 320, 640] {
        let frame = l16(&ramp(len / 2, 0));
        assert_eq!(dialect.parse(&frame, MessageKind::Binary, &mut payload), Ok(MEDIA));
        assert_eq!(payload.as_slice(), frame.as_slice());
    }
    for (frame, error) in [
        (vec![], ProtocolError::MissingField("audio")),
        (vec![0; 641], ProtocolError::OddPayloadLength),
        (vec![0; 3], ProtocolError::OddPayloadLength),
        (vec![0; 642], ProtocolError::PayloadTooLarge),
    ] {
        assert_eq!(dialect.parse(&frame, MessageKind::Binary, &mut payload), Err(error), "{}", frame.len());
        assert!(payload.as_slice().is_empty(), "the payload is cleared on error");
    }
}

#[test]
fn audio_dtmf_and_mark_echoes_parse_without_allocating() {
    let mut dialect = VonageDialect::new();
    let mut payload = PayloadBuffer::with_limit(2048);
    let frame = l16(&ramp(320, 0));
    let echo = notify_echo("trunkline-sync-12");
    // Warm up (thread-locals, lazy statics), then count.
    let _ = dialect.parse(&frame, MessageKind::Binary, &mut payload);
    let _ = dialect.parse(echo.as_bytes(), MessageKind::Text, &mut payload);
    let (n, parsed) = allocations_in(|| dialect.parse(&frame, MessageKind::Binary, &mut payload).is_ok());
    assert!(parsed);
    assert_eq!(n, 0, "a binary frame");
    let (n, parsed) = allocations_in(|| {
        matches!(
            dialect.parse(echo.as_bytes(), MessageKind::Text, &mut payload),
            Ok(Inbound::Mark { name: Cow::Borrowed(_), .. })
        )
    });
    assert!(parsed);
    assert_eq!(n, 0, "a notify echo");
    let (n, parsed) =
        allocations_in(|| dialect.parse(DTMF.as_bytes(), MessageKind::Text, &mut payload).is_ok());
    assert!(parsed);
    assert_eq!(n, 0, "a key press");
}

#[test]
fn malformed_and_unknown_text() {
    for message in [
        &b"not json"[..],
        b"{\"event\":\"websocket:dtmf\"",
        b"{\"event\":\"websocket:cleared\"} {}",
        b"[\"websocket:cleared\"]",
        b"\"websocket:cleared\"",
        b"{\"event\":\"websocket:cleared\",\"event\":\"websocket:cleared\"}",
        b"{\"event\":\"websocket:dtmf\",\"digit\":\"1\",\"digit\":\"2\"}",
        b"{\"event\":\"websocket:cleared\"\xff}",
        b"\xff\xfe",
    ] {
        let shown = String::from_utf8_lossy(message);
        assert_eq!(
            parse_with(&mut VonageDialect::new(), message, MessageKind::Text),
            Err(ProtocolError::MalformedJson),
            "{shown}"
        );
    }
    assert_eq!(text("{}"), Err(ProtocolError::MissingField("event")));
    assert_eq!(text(r#"{"event":null}"#), Err(ProtocolError::MissingField("event")));
    assert_eq!(text(r#"{"event":1}"#), Err(ProtocolError::WrongType("event")));
    assert_eq!(text(r#"{"event":"websocket:disconnected"}"#), Err(ProtocolError::UnknownEvent));
    assert_eq!(text(r#"{"event":"connected"}"#), Err(ProtocolError::UnknownEvent));
    // Fields not read may hold anything, nested at any depth: they are skipped, not recursed into.
    let deep = format!(r#"{{"x":{}1{},"event":"websocket:cleared"}}"#, "[".repeat(1000), "]".repeat(1000));
    assert_eq!(text(&deep), Ok(Inbound::Notice));
    // `websocket:connected` keeps every field: nesting over 128 is refused.
    let deep = format!(
        r#"{{"event":"websocket:connected","content-type":"audio/l16;rate=8000","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(text(&deep), Err(ProtocolError::MalformedJson));
}

#[test]
fn the_quick_look_sees_the_start_and_never_audio() {
    let dialect = VonageDialect::new();
    assert!(dialect.may_start_or_stop(CONNECTED.as_bytes(), MessageKind::Text));
    assert!(!dialect.may_start_or_stop(DTMF.as_bytes(), MessageKind::Text));
    assert!(!dialect.may_start_or_stop(b"websocket:connected", MessageKind::Binary));
    assert!(!dialect.may_start_or_stop(&[0; 640], MessageKind::Binary));
}

// ---------------------------------------------------------------------------------------------
// Writers

#[test]
fn write_media_is_the_audio_itself_in_a_binary_frame() {
    let dialect = VonageDialect::new();
    let mut out = vec![9; 7];
    for len in [0, 2, 320, 640, 960] {
        let audio: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        assert_eq!(dialect.write_media(&audio, &mut out), MessageKind::Binary);
        assert_eq!(out, audio);
        assert_eq!(dialect.max_media_message_len(len), len);
    }
}

#[test]
fn write_mark_and_clear_are_exactly_the_actions_vonage_takes() {
    let dialect = VonageDialect::new();
    let mut out = Vec::new();
    assert_eq!(dialect.write_clear(&mut out), MessageKind::Text);
    assert_eq!(json_of(&out), json_of(CLEAR_ACTION.as_bytes()));
    for name in ["m1", "", "trunkline-sync-3", "quote \" backslash \\ newline \n tab \t nul \u{0} é 😀"] {
        assert_eq!(dialect.write_mark(name, &mut out), MessageKind::Text);
        let written = json_of(&out);
        assert_eq!(written, json!({"action": "notify", "payload": {"mark": name}}));
        // The same shape as the app's `notify` in Vonage's description, payload aside.
        let documented = json_of(NOTIFY_ACTION.as_bytes());
        assert_eq!(written["action"], documented["action"]);
        assert!(written["payload"].is_object() && documented["payload"].is_object());
        // What Vonage echoes (the payload, verbatim) parses back to the same name.
        let echo = json!({"event": "websocket:notify", "payload": written["payload"]}).to_string();
        assert_eq!(text(&echo), Ok(mark(name)));
    }
}

// ---------------------------------------------------------------------------------------------
// Whole calls through a session (inline engine on a manual clock)

const RATE: u32 = 16_000;
/// One 20 ms frame of 16 kHz L16.
const FRAME_BYTES: usize = 640;

fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    open_with(clock, config, VonageDialect::new())
}

fn outbound(s: &mut Session) -> Vec<(MessageKind, Vec<u8>)> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| s.next_outbound(&mut buf).map(|kind| (kind, buf.clone()))).collect()
}

#[test]
fn caller_audio_reaches_a_16_khz_agent_untouched_in_arrival_order() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    s.push(CONNECTED.as_bytes(), MessageKind::Text).unwrap();
    let audio = ramp(50 * 320, 0);
    let mut received = Vec::new();
    for (i, frame) in audio.chunks(320).enumerate() {
        s.push(&l16(frame), MessageKind::Binary).unwrap();
        if i == 24 {
            s.push(DTMF.as_bytes(), MessageKind::Text).unwrap();
        }
        read_all_into(&mut s, &mut received);
    }
    // 16 kHz in, 16 kHz to the agent: the samples themselves, in order, none lost or added.
    assert_eq!(received, audio);
    s.end_stream().unwrap();
    let evs = events(&mut s);
    let Event::Started(start) = &evs[0] else { panic!("{evs:?}") };
    assert_eq!(start.custom_parameters, params(&[("language", "en-GB"), ("caller-id", "447700900123")]));
    assert_eq!(
        start.media_format,
        MediaFormat { encoding: AudioEncoding::L16, sample_rate: RATE, channels: 1 }
    );
    // Stream time counts the audio received: 25 frames of 20 ms before the key press.
    assert!(evs.contains(&Event::Dtmf { digit: '5', stream_ms: 500, duration_ms: Some(260) }), "{evs:?}");
    assert_eq!(evs.last(), Some(&Event::Stopped), "the socket closing ends the call");
    assert!(!evs.iter().any(|e| matches!(e, Event::ProtocolError { .. })), "{evs:?}");
    let stats = s.stats();
    assert_eq!((stats.media_frames_in, stats.protocol_errors), (50, 0));
    assert_eq!(stats.inbound_samples, audio.len() as u64);
}

#[test]
fn bad_frames_are_refused_and_the_call_goes_on() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig { agent_rate: RATE, ..Default::default() });
    s.push(&l16(&ramp(320, 0)), MessageKind::Binary).unwrap();
    s.push(CONNECTED.as_bytes(), MessageKind::Text).unwrap();
    s.push(&[1, 2, 3], MessageKind::Binary).unwrap();
    s.push(CONNECTED.as_bytes(), MessageKind::Text).unwrap();
    s.push(NOTIFY.as_bytes(), MessageKind::Text).unwrap();
    s.push(notify_echo("never-sent").as_bytes(), MessageKind::Text).unwrap();
    let good = ramp(320, 0);
    s.push(&l16(&good), MessageKind::Binary).unwrap();
    let mut received = Vec::new();
    read_all_into(&mut s, &mut received);
    assert_eq!(received, good);
    let errors: Vec<_> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            Event::ProtocolError { error } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            ProtocolError::MediaBeforeStart,
            ProtocolError::OddPayloadLength,
            ProtocolError::DuplicateStart,
            ProtocolError::MissingField("payload.mark"),
            ProtocolError::UnknownMark,
        ]
    );
}

/// The carrier's side of marks: Vonage echoes a `notify` once the audio before it has played.
/// Here the echo comes as soon as the engine's clock has played the audio sent before it.
struct FakeVonage {
    /// Audio received, bytes.
    audio: Vec<u8>,
    /// Marks received and not echoed yet, with the audio length (bytes) before them.
    pending: Vec<(String, usize)>,
}

impl FakeVonage {
    fn receive(&mut self, messages: Vec<(MessageKind, Vec<u8>)>, frame_bytes: usize) {
        for (kind, bytes) in messages {
            match kind {
                MessageKind::Binary => {
                    assert_eq!(bytes.len(), frame_bytes, "every audio message is exactly 20 ms");
                    self.audio.extend_from_slice(&bytes);
                }
                MessageKind::Text => {
                    let v = json_of(&bytes);
                    assert_eq!(v["action"], "notify", "{v}");
                    let name = v["payload"]["mark"].as_str().expect("a mark name").to_owned();
                    self.pending.push((name, self.audio.len()));
                }
            }
        }
    }

    /// The echoes due once `played` bytes of audio have played.
    fn due(&mut self, played: usize) -> Vec<String> {
        let (due, later) = self.pending.drain(..).partition(|(_, at)| *at <= played);
        self.pending = later;
        due.into_iter().map(|(name, _)| notify_echo(&name)).collect()
    }
}

#[test]
fn agent_audio_goes_out_in_exact_640_byte_frames_and_marks_play_when_vonage_echoes_them() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: RATE, agent_rate: RATE, lead_ms: 60, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(CONNECTED.as_bytes(), MessageKind::Text).unwrap();
    // 610 ms of agent audio at the carrier's rate, then a mark.
    let reply: Vec<i16> = (0..9_760).map(|i| ((i * 11) % 6000) as i16 - 3000).collect();
    assert_eq!(s.play(&reply, RATE).unwrap(), reply.len());
    s.mark("end-of-reply").unwrap();

    let mut vonage = FakeVonage { audio: Vec::new(), pending: Vec::new() };
    let mut played = None;
    let mut sync_marks = 0;
    for step in 0..60u64 {
        let sent = outbound(&mut s);
        sync_marks += sent
            .iter()
            .filter(|(k, b)| {
                *k == MessageKind::Text
                    && json_of(b)["payload"]["mark"].as_str().unwrap().starts_with("trunkline-sync-")
            })
            .count();
        vonage.receive(sent, FRAME_BYTES);
        // Paced: never more than the lead (60 ms, three frames) ahead of the clock.
        assert!(vonage.audio.len() / FRAME_BYTES <= (step + 3) as usize, "at {} ms", step * 20);
        let played_bytes = (step as usize * FRAME_BYTES).min(vonage.audio.len());
        for echo in vonage.due(played_bytes) {
            s.push(echo.as_bytes(), MessageKind::Text).unwrap();
        }
        for e in events(&mut s) {
            match e {
                Event::MarkPlayed { name, played_ms } => {
                    assert_eq!(name, "end-of-reply");
                    played = Some((played_ms, step * 20));
                }
                Event::Started(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    // The audio itself, bit-exact, the last frame padded with silence to a whole 20 ms.
    assert_eq!(vonage.audio.len(), 31 * FRAME_BYTES);
    assert_eq!(&vonage.audio[..reply.len() * 2], l16(&reply).as_slice());
    assert!(vonage.audio[reply.len() * 2..].iter().all(|&b| b == 0));
    // Reported at its echo, with its position in the utterance: the reply's 610 ms, not the
    // padding after it.
    let (played_ms, at_ms) = played.expect("the mark is reported played");
    assert_eq!(played_ms, 610);
    assert!((620..=660).contains(&at_ms), "reported at {at_ms} ms");
    assert!(sync_marks > 0, "the engine's hidden marks went out as notifies too");
    let stats = s.stats();
    assert_eq!((stats.frames_out, stats.marks_sent, stats.marks_played), (31, 1, 1));
}

#[test]
fn an_8_khz_call_takes_320_byte_frames() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: 8_000, agent_rate: 8_000, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(CONNECTED.replace("rate=16000", "rate=8000").as_bytes(), MessageKind::Text).unwrap();
    let reply = ramp(800, 0);
    s.play(&reply, 8_000).unwrap();
    let mut vonage = FakeVonage { audio: Vec::new(), pending: Vec::new() };
    for _ in 0..10 {
        vonage.receive(outbound(&mut s), 320);
        clock.advance(Duration::from_millis(20));
        s.read_audio(&mut [0; 16]);
    }
    assert_eq!(vonage.audio, l16(&reply));
}

#[test]
fn an_interrupt_sends_the_clear_and_reports_unreached_marks_cleared_at_once() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: RATE, lead_ms: 60, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(CONNECTED.as_bytes(), MessageKind::Text).unwrap();
    s.play(&vec![1000i16; 640], RATE).unwrap(); // 40 ms
    s.mark("sent").unwrap();
    s.play(&vec![1000i16; 16_000], RATE).unwrap(); // one second
    s.mark("queued").unwrap();
    let sent = outbound(&mut s);
    let kinds: Vec<_> = sent.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [MessageKind::Binary, MessageKind::Binary, MessageKind::Text, MessageKind::Binary]);
    assert_eq!(json_of(&sent[2].1), json!({"action": "notify", "payload": {"mark": "sent"}}));
    events(&mut s);

    clock.advance(Duration::from_millis(20));
    s.interrupt().unwrap();
    let sent = outbound(&mut s);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, MessageKind::Text);
    assert_eq!(json_of(&sent[0].1), json_of(CLEAR_ACTION.as_bytes()));
    // Vonage is not relied on to echo what it drops: the mark the caller had not reached (due at
    // 40 ms, the clear at 20 ms) is reported cleared now, like the one never sent.
    let evs = events(&mut s);
    assert_eq!(evs[0], Event::Interrupted { played_ms: 20 });
    let mut cleared: Vec<_> = evs[1..]
        .iter()
        .map(|e| match e {
            Event::MarkCleared { name } => name.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    cleared.sort_unstable();
    assert_eq!(cleared, ["queued", "sent"]);
    // Vonage's acknowledgement changes nothing and is not reported.
    s.push(CLEARED.as_bytes(), MessageKind::Text).unwrap();
    assert_eq!(events(&mut s), []);
    // Should Vonage echo the dropped notify after all, it is refused, never reported as played.
    s.push(notify_echo("sent").as_bytes(), MessageKind::Text).unwrap();
    assert_eq!(events(&mut s), [Event::ProtocolError { error: ProtocolError::UnknownMark }]);
    assert_eq!(s.stats().clears_sent, 1);
}

#[test]
fn the_socket_closing_ends_the_call_and_clears_pending_marks() {
    let clock = ManualClock::new();
    let config = SessionConfig { play_rate: RATE, ..Default::default() };
    let (_engine, mut s) = open(&clock, &config);
    s.push(CONNECTED.as_bytes(), MessageKind::Text).unwrap();
    s.play(&[500; 320], RATE).unwrap();
    s.mark("pending").unwrap();
    outbound(&mut s);
    s.end_stream().unwrap();
    let evs = events(&mut s);
    assert!(matches!(evs[0], Event::Started(_)), "{evs:?}");
    assert_eq!(evs[1..], [Event::MarkCleared { name: "pending".into() }, Event::Stopped]);
    s.push(&l16(&ramp(320, 0)), MessageKind::Binary).unwrap();
    assert_eq!(events(&mut s), [Event::ProtocolError { error: ProtocolError::AfterStop }]);
}

#[test]
fn a_codec_the_engine_does_not_convert_never_starts_the_stream() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &SessionConfig::default());
    s.push(
        r#"{"event":"websocket:connected","content-type":"audio/opus;rate=48000"}"#.as_bytes(),
        MessageKind::Text,
    )
    .unwrap();
    s.push(CONNECTED.replace("16000", "44100").as_bytes(), MessageKind::Text).unwrap();
    s.push(&[0; 640], MessageKind::Binary).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::ProtocolError { error: ProtocolError::UnsupportedFormat },
            Event::ProtocolError { error: ProtocolError::UnsupportedFormat },
            Event::ProtocolError { error: ProtocolError::MediaBeforeStart },
        ]
    );
}
