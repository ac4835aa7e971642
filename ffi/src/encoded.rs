//! Encoded agent audio: Ogg Opus streams and raw Opus packets, decoded on the calling thread.

use crate::result::trunkline_result;
use crate::session::{trunkline_session, with_open_session};
use crate::{guard, try_out, try_slice};
use trunkline::EncodedAudio;

#[allow(non_camel_case_types)]
type size_t = usize;

/// trunkline_session_play_encoded's `codec`: an Ogg Opus stream, fed in chunks of any size as it
/// arrives (`rate` ignored).
pub const TRUNKLINE_CODEC_OGG_OPUS: u32 = 0;
/// trunkline_session_play_encoded's `codec`: one raw Opus packet per call, from a stream encoded
/// at `rate` Hz (8000, 12000, 16000, 24000 or 48000).
pub const TRUNKLINE_CODEC_OPUS: u32 = 1;

/// Queues encoded agent audio, decoded on the calling thread to mono PCM and then queued as by
/// trunkline_session_play (paced, marked, cleared like PCM). `codec`: TRUNKLINE_CODEC_OGG_OPUS
/// (an Ogg Opus stream given in chunks as it arrives, pages split anywhere; `rate` ignored) or
/// TRUNKLINE_CODEC_OPUS (one raw packet per call, `rate` its stream's encoding rate).
/// `*out_taken` receives the bytes of `data` taken: keep the rest and retry later. Decoded audio
/// that did not fit is kept and played first on the next call; until it has gone in, nothing
/// new is taken (FULL). `len` 0 (`data` may then be NULL) only plays that audio: OK once none is
/// left.
///
/// Results: OK; FULL (nothing taken); BAD_AUDIO (corrupt, truncated or unsupported: the stream
/// was dropped and counted in `encoded_audio_errors`; the next bytes start a new stream);
/// NULL_PARAMETER; INVALID_ARGUMENT (`codec`, `rate`); CLOSED; FAILED. An interrupt drops the
/// stream being played (start the next reply with a new one). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_play_encoded(
    session: *mut trunkline_session,
    codec: u32,
    data: *const u8,
    len: size_t,
    rate: u32,
    out_taken: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_taken = try_out!(out_taken);
        let data = try_slice!(data, len);
        let codec = match codec {
            TRUNKLINE_CODEC_OGG_OPUS => EncodedAudio::OggOpus,
            TRUNKLINE_CODEC_OPUS => EncodedAudio::Opus { rate },
            _ => return trunkline_result::InvalidArgument,
        };
        with_open_session(session, |s| match s.play_encoded(data, codec) {
            Ok(n) => {
                out_taken.set(n);
                trunkline_result::Ok
            }
            Err(e) => e.into(),
        })
    })
}

/// The encoded input is over (the end of a reply's stream): plays what
/// trunkline_session_play_encoded still holds, checks the Ogg stream ended on a page boundary,
/// and forgets it (the next bytes start a new stream). Results: OK; FULL (decoded audio still
/// waits for room: call again); BAD_AUDIO (the stream was truncated; counted); NULL_PARAMETER;
/// CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_end_encoded(session: *mut trunkline_session) -> trunkline_result {
    guard(|| {
        with_open_session(session, |s| match s.end_encoded() {
            Ok(()) => trunkline_result::Ok,
            Err(e) => e.into(),
        })
    })
}
