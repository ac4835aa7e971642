//! What the caller does: a sequence of steps (talk, pause, wait for the bot, interrupt it, press
//! a key), and the cursor that turns it into one 20 ms frame at a time as the call runs.
//!
//! The caller streams audio for the whole call, like a phone line: between utterances it sends the
//! line's idle noise ([`super::CallOptions::line_noise_dbfs`]; silence, in the step names). Steps that wait on the bot decide frame by frame from what the simulated carrier has
//! played so far, so the same script works against a fast bot and a slow one.

use super::audio::{CallerAudio, FRAME_BYTES, FRAME_MS, LineNoise};
use std::time::{Duration, Instant};

/// One thing the caller does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Plays a clip (its speech segments are the caller's utterances).
    Say(CallerAudio),
    /// Sends silence for this long (rounded up to 20 ms frames).
    Silence(Duration),
    /// Sends a `dtmf` message (takes no stream time).
    Dtmf(char),
    /// Sends silence until the bot's reply to the caller's last utterance starts (its first
    /// audio frame arrives), or `timeout`.
    WaitForReply {
        /// Longest wait.
        timeout: Duration,
    },
    /// Sends silence until the bot has replied and then been silent (nothing left to play) for
    /// `quiet`, or `timeout`.
    WaitForReplyEnd {
        /// Silence after the reply that ends the wait.
        quiet: Duration,
        /// Longest wait.
        timeout: Duration,
    },
    /// Barge-in: waits for the bot's reply to start, lets it play for `after`, then plays `audio`
    /// over it. If no reply comes within `timeout`, plays `audio` anyway.
    Interrupt {
        /// How long the bot talks before the caller cuts in.
        after: Duration,
        /// What the caller says.
        audio: CallerAudio,
        /// Longest wait for the reply.
        timeout: Duration,
    },
}

/// A caller's script: built step by step, shared by every simulated call.
///
/// ```
/// use std::time::Duration;
/// use trunkline_callsim::{CallerAudio, Script};
/// let question = CallerAudio::silence(Duration::from_millis(200)); // or CallerAudio::load(...)
/// let script = Script::new()
///     .say(question.clone())
///     .wait_for_reply(Duration::from_secs(5))
///     .interrupt(Duration::from_millis(800), question)
///     .wait_for_reply_end(Duration::from_secs(5));
/// assert_eq!(script.steps().len(), 4);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Script {
    steps: Vec<Step>,
    /// Keys pressed at fixed stream times (ms), sorted.
    timed_dtmf: Vec<(u64, char)>,
}

/// Default wait for a reply in the builder methods that do not take one.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after a reply that [`Script::wait_for_reply_end`] takes as its end.
pub const DEFAULT_REPLY_QUIET: Duration = Duration::from_millis(500);

impl Script {
    /// An empty script (the call connects, starts and stops).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a step.
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// The caller plays `audio`.
    pub fn say(self, audio: CallerAudio) -> Self {
        self.step(Step::Say(audio))
    }

    /// The caller is silent for `duration`.
    pub fn silence(self, duration: Duration) -> Self {
        self.step(Step::Silence(duration))
    }

    /// The caller presses `digit` (between the steps before and after it).
    pub fn dtmf(self, digit: char) -> Self {
        self.step(Step::Dtmf(digit))
    }

    /// The caller presses `digit` at stream time `stream_ms` (sent at the first 20 ms frame
    /// boundary at or after it), whatever step is running; if the script ends first, never.
    pub fn dtmf_at(mut self, stream_ms: u64, digit: char) -> Self {
        let pos = self.timed_dtmf.partition_point(|d| d.0 <= stream_ms);
        self.timed_dtmf.insert(pos, (stream_ms, digit));
        self
    }

    /// Silence until the bot's reply starts (at most `timeout`).
    pub fn wait_for_reply(self, timeout: Duration) -> Self {
        self.step(Step::WaitForReply { timeout })
    }

    /// Silence until the bot has replied and gone quiet for [`DEFAULT_REPLY_QUIET`] (at most
    /// `timeout`).
    pub fn wait_for_reply_end(self, timeout: Duration) -> Self {
        self.step(Step::WaitForReplyEnd { quiet: DEFAULT_REPLY_QUIET, timeout })
    }

    /// The caller cuts in `after` the bot's reply started, saying `audio` (the reply is waited
    /// for up to [`DEFAULT_REPLY_TIMEOUT`]).
    pub fn interrupt(self, after: Duration, audio: CallerAudio) -> Self {
        self.step(Step::Interrupt { after, audio, timeout: DEFAULT_REPLY_TIMEOUT })
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The longest the script can run, ms, if every wait times out.
    pub fn max_duration_ms(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Say(a) => a.duration_ms() + FRAME_MS,
                Step::Silence(d) => d.as_millis() as u64 + FRAME_MS,
                Step::Dtmf(_) => 0,
                Step::WaitForReply { timeout } | Step::WaitForReplyEnd { timeout, .. } => {
                    timeout.as_millis() as u64 + FRAME_MS
                }
                Step::Interrupt { after, audio, timeout } => {
                    (*timeout + *after).as_millis() as u64 + audio.duration_ms() + 2 * FRAME_MS
                }
            })
            .sum()
    }
}

/// What the carrier side knows when the cursor picks the next frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyView {
    pub(crate) now: Instant,
    /// When the bot's reply to the caller's last utterance started (its first frame arrived).
    pub(crate) reply_start: Option<Instant>,
    /// When the carrier's buffer ran empty (`None` while bot audio is playing).
    pub(crate) silent_since: Option<Instant>,
}

/// Something in the caller's stream at a stream time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerMark {
    SpeechStart,
    SpeechEnd,
}

/// One frame of the caller's stream and what comes with it.
#[derive(Debug)]
pub(crate) struct FrameOut {
    /// The frame's audio; `None` once the script is over (what its last steps did still comes
    /// with it: a final key press, a final wait's timeout).
    pub(crate) payload: Option<[u8; FRAME_BYTES]>,
    /// Speech onsets and ends that this frame starts (a clip's whole list, when it begins), at
    /// stream ms.
    pub(crate) speech: Vec<(u64, CallerMark)>,
    /// Keys pressed just before this frame.
    pub(crate) dtmf: Vec<char>,
    /// Waits that gave up just before this frame.
    pub(crate) timeouts: Vec<&'static str>,
}

enum Progress {
    Fresh,
    Playing { offset: usize },
    Silent { frames_left: u64 },
    Waiting { since: Instant },
}

/// Walks a script one frame at a time.
pub(crate) struct ScriptCursor<'a> {
    steps: &'a [Step],
    timed_dtmf: &'a [(u64, char)],
    index: usize,
    progress: Progress,
    /// What fills the stream where the script plays no audio.
    line: LineNoise,
}

impl<'a> ScriptCursor<'a> {
    pub(crate) fn new(script: &'a Script, line: LineNoise) -> Self {
        Self {
            steps: &script.steps,
            timed_dtmf: &script.timed_dtmf,
            index: 0,
            progress: Progress::Fresh,
            line,
        }
    }

    fn advance(&mut self) {
        self.index += 1;
        self.progress = Progress::Fresh;
    }

    /// The frame starting at stream time `stream_ms` and what comes with it; without a payload
    /// when the script is over.
    pub(crate) fn next_frame(&mut self, stream_ms: u64, view: &ReplyView) -> FrameOut {
        let mut out = FrameOut { payload: None, speech: vec![], dtmf: vec![], timeouts: vec![] };
        let mut payload = [0; FRAME_BYTES];
        self.line.fill(&mut payload);
        let due = self.timed_dtmf.partition_point(|d| d.0 <= stream_ms);
        out.dtmf.extend(self.timed_dtmf[..due].iter().map(|d| d.1));
        self.timed_dtmf = &self.timed_dtmf[due..];
        loop {
            let Some(step) = self.steps.get(self.index) else {
                // Keys and timeouts the last steps produced are delivered even with no frame.
                return out;
            };
            match (step, &mut self.progress) {
                (Step::Dtmf(d), _) => {
                    out.dtmf.push(*d);
                    self.advance();
                }
                (Step::Say(audio), Progress::Fresh) => {
                    self.progress = Progress::Playing { offset: 0 };
                    push_speech(&mut out, audio, stream_ms);
                }
                (Step::Say(audio) | Step::Interrupt { audio, .. }, Progress::Playing { offset }) => {
                    let data = audio.ulaw();
                    if *offset >= data.len() {
                        self.advance();
                        continue;
                    }
                    let end = (*offset + FRAME_BYTES).min(data.len());
                    payload[..end - *offset].copy_from_slice(&data[*offset..end]);
                    *offset = end;
                    out.payload = Some(payload);
                    return out;
                }
                (Step::Silence(d), Progress::Fresh) => {
                    let frames = (d.as_millis() as u64).div_ceil(FRAME_MS);
                    self.progress = Progress::Silent { frames_left: frames };
                }
                (Step::Silence(_), Progress::Silent { frames_left }) => {
                    if *frames_left == 0 {
                        self.advance();
                        continue;
                    }
                    *frames_left -= 1;
                    out.payload = Some(payload);
                    return out;
                }
                (
                    Step::WaitForReply { .. } | Step::WaitForReplyEnd { .. } | Step::Interrupt { .. },
                    Progress::Fresh,
                ) => {
                    self.progress = Progress::Waiting { since: view.now };
                }
                (Step::WaitForReply { timeout }, Progress::Waiting { since }) => {
                    if view.reply_start.is_some() {
                        self.advance();
                        continue;
                    }
                    if view.now.duration_since(*since) >= *timeout {
                        out.timeouts.push("wait for reply");
                        self.advance();
                        continue;
                    }
                    out.payload = Some(payload);
                    return out;
                }
                (Step::WaitForReplyEnd { quiet, timeout }, Progress::Waiting { since }) => {
                    let quiet_enough =
                        view.silent_since.is_some_and(|s| view.now.duration_since(s) >= *quiet);
                    if view.reply_start.is_some() && quiet_enough {
                        self.advance();
                        continue;
                    }
                    if view.now.duration_since(*since) >= *timeout {
                        out.timeouts.push("wait for the reply to end");
                        self.advance();
                        continue;
                    }
                    out.payload = Some(payload);
                    return out;
                }
                (Step::Interrupt { after, audio, timeout }, Progress::Waiting { since }) => {
                    let due = view.reply_start.is_some_and(|start| view.now >= start + *after);
                    let gave_up = view.reply_start.is_none() && view.now.duration_since(*since) >= *timeout;
                    if !(due || gave_up) {
                        out.payload = Some(payload);
                        return out;
                    }
                    if gave_up {
                        out.timeouts.push("wait for a reply to interrupt");
                    }
                    self.progress = Progress::Playing { offset: 0 };
                    push_speech(&mut out, audio, stream_ms);
                }
                // Unreachable combinations (a step only ever has its own kinds of progress).
                (_, _) => self.advance(),
            }
        }
    }
}

fn push_speech(out: &mut FrameOut, audio: &CallerAudio, stream_ms: u64) {
    for s in audio.speech() {
        out.speech.push((stream_ms + s.start_ms, CallerMark::SpeechStart));
        out.speech.push((stream_ms + s.end_ms, CallerMark::SpeechEnd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::SpeechSegment;
    use trunkline::codec::ULAW_SILENCE;

    fn digital() -> LineNoise {
        LineNoise::new(None, 0)
    }

    fn view(now: Instant, reply_start: Option<Instant>, silent_since: Option<Instant>) -> ReplyView {
        ReplyView { now, reply_start, silent_since }
    }

    #[test]
    fn frames_follow_the_script_and_waits_follow_the_bot() {
        let t0 = Instant::now();
        let clip =
            CallerAudio::from_ulaw(vec![0x11; 400]).with_speech([SpeechSegment { start_ms: 10, end_ms: 45 }]);
        let script = Script::new()
            .say(clip.clone())
            .dtmf('5')
            .silence(Duration::from_millis(30))
            .wait_for_reply(Duration::from_secs(1))
            .interrupt(Duration::from_millis(40), clip);
        let mut c = ScriptCursor::new(&script, digital());
        let at = |ms: u64| t0 + Duration::from_millis(ms);

        let f = c.next_frame(0, &view(at(0), None, None));
        assert_eq!(f.payload, Some([0x11; 160]));
        assert_eq!(f.speech, [(10, CallerMark::SpeechStart), (45, CallerMark::SpeechEnd)]);
        assert_eq!(c.next_frame(20, &view(at(20), None, None)).payload, Some([0x11; 160]));
        let last = c.next_frame(40, &view(at(40), None, None)).payload.unwrap();
        assert_eq!(&last[..80], &[0x11; 80]);
        assert_eq!(&last[80..], &[ULAW_SILENCE; 80], "a short last frame is padded with silence");
        // The key is pressed before the silence's first frame; 30 ms of silence is two frames.
        let f = c.next_frame(60, &view(at(60), None, None));
        assert_eq!((f.dtmf.as_slice(), f.payload), (&['5'][..], Some([ULAW_SILENCE; 160])));
        assert!(c.next_frame(80, &view(at(80), None, None)).dtmf.is_empty());
        // Waiting: silence until the reply starts...
        for ms in [100, 120, 140] {
            assert_eq!(c.next_frame(ms, &view(at(ms), None, None)).payload, Some([ULAW_SILENCE; 160]));
        }
        // ...then the interrupt waits `after` past the reply's start, then talks.
        let reply = Some(at(150));
        assert!(c.next_frame(160, &view(at(160), reply, None)).speech.is_empty());
        assert!(c.next_frame(180, &view(at(180), reply, None)).speech.is_empty());
        let f = c.next_frame(200, &view(at(200), reply, None));
        assert_eq!(f.speech, [(210, CallerMark::SpeechStart), (245, CallerMark::SpeechEnd)]);
        assert_eq!(f.payload, Some([0x11; 160]));
        c.next_frame(220, &view(at(220), reply, None));
        c.next_frame(240, &view(at(240), reply, None));
        assert!(c.next_frame(260, &view(at(260), reply, None)).payload.is_none(), "the script is over");
    }

    #[test]
    fn timed_keys_go_at_the_first_frame_boundary_at_or_after_them() {
        let t0 = Instant::now();
        let script = Script::new()
            .silence(Duration::from_millis(100))
            .dtmf_at(45, '2')
            .dtmf_at(0, '1')
            .dtmf_at(40, '#');
        let mut c = ScriptCursor::new(&script, digital());
        let keys: Vec<Vec<char>> = (0..5).map(|k| c.next_frame(k * 20, &view(t0, None, None)).dtmf).collect();
        assert_eq!(keys, [vec!['1'], vec![], vec!['#'], vec!['2'], vec![]]);
    }

    #[test]
    fn waits_time_out_and_the_reply_end_needs_quiet() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let script = Script::new().wait_for_reply(Duration::from_millis(40)).step(Step::WaitForReplyEnd {
            quiet: Duration::from_millis(100),
            timeout: Duration::from_secs(9),
        });
        let mut c = ScriptCursor::new(&script, digital());
        assert!(c.next_frame(0, &view(at(0), None, None)).timeouts.is_empty());
        assert!(c.next_frame(20, &view(at(20), None, None)).timeouts.is_empty());
        assert_eq!(c.next_frame(40, &view(at(40), None, None)).timeouts, ["wait for reply"]);
        let reply = Some(at(50));
        assert!(c.next_frame(60, &view(at(60), reply, None)).payload.is_some(), "still playing");
        assert!(
            c.next_frame(300, &view(at(300), reply, Some(at(250)))).payload.is_some(),
            "quiet for only 50 ms"
        );
        assert!(c.next_frame(360, &view(at(360), reply, Some(at(250)))).payload.is_none());
        assert!(script.max_duration_ms() >= 9040);
    }

    #[test]
    fn a_final_key_press_and_a_final_timeout_come_with_the_end_of_the_script() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let script = Script::new()
            .silence(Duration::from_millis(20))
            .dtmf('#')
            .wait_for_reply_end(Duration::from_millis(40));
        let mut c = ScriptCursor::new(&script, digital());
        assert!(c.next_frame(0, &view(at(0), None, None)).payload.is_some());
        let f = c.next_frame(20, &view(at(20), None, None));
        assert_eq!((f.dtmf, f.payload.is_some()), (vec!['#'], true), "the key, then the wait's first frame");
        assert!(c.next_frame(40, &view(at(40), None, None)).payload.is_some());
        let end = c.next_frame(60, &view(at(60), None, None));
        assert_eq!((end.timeouts, end.payload), (vec!["wait for the reply to end"], None));

        let ends_on_a_key = Script::new().silence(Duration::from_millis(20)).dtmf('#');
        let mut c = ScriptCursor::new(&ends_on_a_key, digital());
        assert!(c.next_frame(0, &view(at(0), None, None)).dtmf.is_empty());
        let end = c.next_frame(20, &view(at(20), None, None));
        assert_eq!((end.dtmf, end.payload), (vec!['#'], None));
    }
}
