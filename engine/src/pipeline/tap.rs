//! A listener on what the call carried, for recordings: the caller's audio as delivered, the
//! agent's frames as sent to the carrier with where the caller hears them, and where a clear cut
//! them off.
//!
//! Positions are on the delivered timeline of the caller's audio (samples at the caller's rate
//! since the stream started). Agent audio is placed where the engine's played-position model says
//! the caller hears it: the caller's audio delivered at that engine time. A clear cuts at the
//! delivered position when it happens, which is the engine's played position: audio placed at or
//! after the cut was never heard.
//!
//! Called on the worker: an implementation must not block or allocate.

use crate::protocol::AudioEncoding;

/// What the pipeline hands a recording (see the module docs).
pub trait CallTap: Send {
    /// The stream started: caller audio at `caller_rate`, agent frames at `agent_rate` in
    /// `agent_encoding` (the carrier's outbound format).
    fn started(&mut self, caller_rate: u32, agent_rate: u32, agent_encoding: AudioEncoding);
    /// Caller audio delivered at `start`.
    fn caller_audio(&mut self, start: u64, pcm: &[i16]);
    /// `len` samples of silence delivered at `start` for caller audio that never arrived.
    fn caller_silence(&mut self, start: u64, len: u64);
    /// A frame sent to the carrier, in its encoding: heard from `at`, or right after the previous
    /// frame (`None`: it was sent while the carrier still played that one).
    fn agent_frame(&mut self, at: Option<u64>, frame: &[u8]);
    /// Nothing placed at or after `at` was heard (a clear, or the end of the call).
    fn agent_cut(&mut self, at: u64);
    /// The stream ended.
    fn stopped(&mut self);
    /// Audio the recording lost (its hand-off was full), ms.
    fn dropped_ms(&self) -> u64;
}
