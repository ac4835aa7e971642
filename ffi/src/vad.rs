//! The speech detector on its own (trunkline_vad): the classifier and speech state machine a
//! session runs, for audio that does not come through a session.

use crate::result::trunkline_result;
use crate::versioned::{self, versioned};
use crate::{guard, guard_void, try_out, try_slice};
use std::sync::Mutex;
use trunkline::vad::{Vad, VadConfig};

#[allow(non_camel_case_types)]
type size_t = usize;

/// A standalone voice activity detector. Opaque.
pub struct trunkline_vad {
    _private: [u8; 0],
}

/// Settings of a standalone VAD: the VAD settings of trunkline_session_config, by the same names.
/// Fill with trunkline_vad_config_default, then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_vad_config {
    /// sizeof(trunkline_vad_config) in the caller's header: set by trunkline_vad_config_default
    /// (see "VERSIONED CONFIGS" above).
    pub struct_size: size_t,
    /// Aggressiveness 0..=3 (default 2): how readily audio is called non-speech.
    pub vad_aggressiveness: u32,
    /// Voiced audio needed to confirm speech, ms (default 120, rounded up to 20 ms frames; at most
    /// 5000).
    pub vad_min_speech_ms: u32,
    /// Non-speech needed to end speech, ms (default 400; at most 10000).
    pub vad_hangover_ms: u32,
}

versioned!(trunkline_vad_config {
    struct_size, vad_aggressiveness, vad_min_speech_ms, vad_hangover_ms,
} bools {});

impl From<&VadConfig> for trunkline_vad_config {
    fn from(c: &VadConfig) -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            vad_aggressiveness: u32::from(c.aggressiveness),
            vad_min_speech_ms: c.min_speech_ms,
            vad_hangover_ms: c.hangover_ms,
        }
    }
}

impl trunkline_vad_config {
    /// The engine's config from a caller's (possibly older) struct at `ptr`; NULL: the defaults.
    /// INVALID_ARGUMENT for a bad `struct_size` or an aggressiveness that is not a u8 (the
    /// other ranges are the engine's to check).
    fn read(ptr: *const Self) -> Result<VadConfig, trunkline_result> {
        if ptr.is_null() {
            return Ok(VadConfig::default());
        }
        let c = versioned::read(ptr, Self::from(&VadConfig::default()))?;
        Ok(VadConfig {
            aggressiveness: u8::try_from(c.vad_aggressiveness)
                .map_err(|_| trunkline_result::InvalidArgument)?,
            min_speech_ms: c.vad_min_speech_ms,
            hangover_ms: c.vad_hangover_ms,
            ..VadConfig::default()
        })
    }
}

/// The handle: the VAD behind a lock, so that calls from several threads are serialized.
struct VadBox {
    vad: Mutex<Vad>,
}

/// Writes the default VAD settings (a session's) into `*out`, a struct of `struct_size` bytes: pass
/// sizeof(trunkline_vad_config). Only the fields that fit in it are written; `struct_size` is
/// stored in it. Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (`struct_size` smaller than a
/// size_t or larger than this library's struct). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_vad_config_default(
    out: *mut trunkline_vad_config,
    struct_size: size_t,
) -> trunkline_result {
    guard(|| versioned::write(out, struct_size, (&VadConfig::default()).into()))
}

/// Makes a standalone VAD for audio at `sample_rate` Hz: 8000, 16000, 24000 or 48000 (audio at
/// the last three is resampled to the detector's 8 kHz as a session does). `config` may be NULL
/// for the defaults. On success `*out` receives a VAD the caller owns and must free with
/// trunkline_vad_free. All its memory is allocated here: trunkline_vad_process and
/// trunkline_vad_reset allocate nothing.
///
/// Results: OK; NULL_PARAMETER (`out`); INVALID_ARGUMENT (another rate, a bad `struct_size`, a
/// setting out of range: aggressiveness over 3, min speech over 5000 ms, hangover over 10000 ms).
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_vad_new(
    config: *const trunkline_vad_config,
    sample_rate: u32,
    out: *mut *mut trunkline_vad,
) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let config = match trunkline_vad_config::read(config) {
            Ok(c) => c,
            Err(e) => return e,
        };
        match Vad::new(&config, sample_rate) {
            Ok(vad) => {
                out.set(Box::into_raw(Box::new(VadBox { vad: Mutex::new(vad) })).cast());
                trunkline_result::Ok
            }
            // A setting out of range or a rate other than those above.
            Err(_) => trunkline_result::InvalidArgument,
        }
    })
}

/// Runs `body` on the VAD behind a handle. NULL_PARAMETER for NULL; PANIC if an earlier call
/// panicked while holding it.
fn with_vad(vad: *mut trunkline_vad, body: impl FnOnce(&mut Vad) -> trunkline_result) -> trunkline_result {
    // SAFETY: a non-NULL `trunkline_vad*` is a `Box<VadBox>` from `trunkline_vad_new` that is not
    // yet freed (the header's contract).
    let Some(b) = (unsafe { vad.cast::<VadBox>().as_ref() }) else { return trunkline_result::NullParameter };
    match b.vad.lock() {
        Ok(mut v) => body(&mut v),
        Err(_) => trunkline_result::Panic,
    }
}

/// Takes the next 20 ms of audio: exactly `n_samples` = sample_rate / 50 samples (160 at 8 kHz,
/// 320 at 16 kHz, 480 at 24 kHz, 960 at 48 kHz) of mono s16 PCM at `pcm`, following the previous
/// frame. Writes the frame's speech probability to `*probability_out` and the speaking state after
/// it to `*speaking_out`.
///
/// The probability is the classifier's decision on this frame: 1.0 if it called the frame speech
/// (voiced, or continuing speech that a voiced frame began), else 0.0; the classifier compares
/// its features with thresholds and has no calibrated score. The speaking state is the hysteresis
/// a session reports as speech started and stopped: it turns true once vad_min_speech_ms of speech
/// has been voiced and false once vad_hangover_ms of non-speech has followed it.
///
/// Results: OK; NULL_PARAMETER (`vad`, `pcm`, or an out-pointer); INVALID_ARGUMENT (`n_samples`
/// is not 20 ms at the VAD's rate: nothing is taken, the outputs are not written). Allocates
/// nothing. Any thread; calls on one VAD are serialized by a lock inside the handle.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_vad_process(
    vad: *mut trunkline_vad,
    pcm: *const i16,
    n_samples: size_t,
    probability_out: *mut f32,
    speaking_out: *mut bool,
) -> trunkline_result {
    guard(|| {
        let probability_out = try_out!(probability_out);
        let speaking_out = try_out!(speaking_out);
        let pcm = try_slice!(pcm, n_samples);
        with_vad(vad, |v| match v.process(pcm) {
            Ok(frame) => {
                probability_out.set(frame.probability);
                speaking_out.set(frame.speaking);
                trunkline_result::Ok
            }
            Err(_) => trunkline_result::InvalidArgument,
        })
    })
}

/// Forgets everything the VAD learned (speech state, noise floor, resampler history), as freshly
/// made: the next frame starts a new stream. Allocates nothing. Results: OK; NULL_PARAMETER.
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_vad_reset(vad: *mut trunkline_vad) -> trunkline_result {
    guard(|| {
        with_vad(vad, |v| {
            v.reset();
            trunkline_result::Ok
        })
    })
}

/// Frees the VAD. NULL is a no-op. Must be the last call on it and must not race with other calls
/// on it.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_vad_free(vad: *mut trunkline_vad) {
    guard_void(|| {
        if !vad.is_null() {
            // SAFETY: made by `trunkline_vad_new` via Box::into_raw, freed once (contract).
            drop(unsafe { Box::from_raw(vad.cast::<VadBox>()) });
        }
    });
}

// The engine tests' allocation counter: this crate's unit-test binary gets it as its global
// allocator (it only counts, on the thread that asks).
#[cfg(test)]
#[path = "../../engine/tests/support/thread_allocations.rs"]
mod thread_allocations;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};

    use super::thread_allocations;

    fn new(config: *const trunkline_vad_config, rate: u32) -> Result<*mut trunkline_vad, trunkline_result> {
        let mut out = null_mut();
        match trunkline_vad_new(config, rate, &mut out) {
            trunkline_result::Ok => Ok(out),
            e => Err(e),
        }
    }

    fn process(vad: *mut trunkline_vad, pcm: &[i16]) -> Result<(f32, bool), trunkline_result> {
        let (mut p, mut s) = (-1.0f32, false);
        match trunkline_vad_process(vad, pcm.as_ptr(), pcm.len(), &mut p, &mut s) {
            trunkline_result::Ok => Ok((p, s)),
            e => Err(e),
        }
    }

    /// A 150 Hz pulse train with decaying harmonics, 20 ms frames at `rate`.
    fn voiced(rate: u32, frames: usize) -> Vec<i16> {
        let period = f64::from(rate) / 150.0;
        (0..frames * rate as usize / 50)
            .map(|i| {
                let phase = (i as f64 % period) / period;
                (6_000.0 * (-phase * 6.0).exp() * (2.0 * std::f64::consts::PI * phase * 5.0).cos()) as i16
            })
            .collect()
    }

    #[test]
    fn field_list_covers_the_struct() {
        versioned::assert_covers::<trunkline_vad_config>();
        #[cfg(target_pointer_width = "64")]
        versioned::assert_layouts::<trunkline_vad_config>(&[(4, 24)]);
    }

    #[test]
    fn settings_rates_and_lengths_are_checked() {
        let mut c = trunkline_vad_config::from(&VadConfig::default());
        assert_eq!(trunkline_vad_config_default(&mut c, std::mem::size_of_val(&c)), trunkline_result::Ok);
        assert_eq!((c.vad_aggressiveness, c.vad_min_speech_ms, c.vad_hangover_ms), (2, 120, 400));
        for rate in [0, 11_025, 22_050, 44_100, 96_000] {
            assert_eq!(new(&c, rate), Err(trunkline_result::InvalidArgument), "{rate}");
        }
        for (field, bad) in [(0, 4), (0, 256), (1, 5_001), (2, 10_001)] {
            let mut b = c;
            *[&mut b.vad_aggressiveness, &mut b.vad_min_speech_ms, &mut b.vad_hangover_ms][field] = bad;
            assert_eq!(new(&b, 8_000), Err(trunkline_result::InvalidArgument), "{field} = {bad}");
        }
        let mut b = c;
        b.struct_size = 0;
        assert_eq!(new(&b, 8_000), Err(trunkline_result::InvalidArgument));
        // An older caller's struct without the hangover: its default.
        b.struct_size = std::mem::offset_of!(trunkline_vad_config, vad_hangover_ms);
        b.vad_hangover_ms = 99_999;
        let v = new(&b, 8_000).unwrap();
        trunkline_vad_free(v);
        assert_eq!(trunkline_vad_new(&c, 8_000, null_mut()), trunkline_result::NullParameter);

        let v = new(null(), 16_000).unwrap();
        for wrong in [1, 160, 319, 321, 640] {
            assert_eq!(process(v, &vec![0; wrong]), Err(trunkline_result::InvalidArgument), "{wrong}");
        }
        let (mut p, mut s) = (0.0, false);
        assert_eq!(trunkline_vad_process(v, null(), 0, &mut p, &mut s), trunkline_result::InvalidArgument);
        assert_eq!(trunkline_vad_process(v, null(), 320, &mut p, &mut s), trunkline_result::NullParameter);
        let zeros = [0i16; 320];
        assert_eq!(
            trunkline_vad_process(v, zeros.as_ptr(), 320, null_mut(), &mut s),
            trunkline_result::NullParameter
        );
        assert_eq!(
            trunkline_vad_process(v, zeros.as_ptr(), 320, &mut p, null_mut()),
            trunkline_result::NullParameter
        );
        assert_eq!(
            trunkline_vad_process(null_mut(), zeros.as_ptr(), 320, &mut p, &mut s),
            trunkline_result::NullParameter
        );
        assert_eq!(trunkline_vad_reset(null_mut()), trunkline_result::NullParameter);
        assert_eq!(process(v, &zeros), Ok((0.0, false)));
        trunkline_vad_free(v);
        trunkline_vad_free(null_mut());
    }

    #[test]
    fn voiced_audio_turns_speaking_on_and_processing_allocates_nothing() {
        for rate in trunkline::vad::VAD_RATES {
            let v = new(null(), rate).unwrap();
            let len = rate as usize / 50;
            let mut pcm = vec![0i16; 10 * len];
            pcm.extend(voiced(rate, 30));
            pcm.extend(vec![0i16; 40 * len]);
            let (allocations, frames) = thread_allocations::allocations_in(|| {
                let mut frames = [(0.0f32, false); 80];
                for (slot, frame) in frames.iter_mut().zip(pcm.chunks_exact(len)) {
                    *slot = process(v, frame).unwrap();
                }
                assert_eq!(trunkline_vad_reset(v), trunkline_result::Ok);
                frames
            });
            assert_eq!(allocations, 0, "{rate} Hz");
            assert!(frames[..10].iter().all(|&f| f == (0.0, false)), "{rate} Hz");
            let on = frames.iter().position(|f| f.1).unwrap();
            assert!((15..20).contains(&on), "{rate} Hz: speaking from frame {on}");
            assert_eq!(frames[on].0, 1.0);
            let off = frames.iter().rposition(|f| f.1).unwrap() + 1;
            assert!((58..64).contains(&off), "{rate} Hz: speaking until frame {off}");
            assert!(frames[off..].iter().all(|f| f.0 == 0.0));
            trunkline_vad_free(v);
        }
    }
}
