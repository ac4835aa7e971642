//! The worker → host caller-audio ring, in the agent's format: `i16` samples for a PCM agent, a
//! byte per sample for a G.711 one (half the memory for the same milliseconds, and the codes
//! kept exactly as the pipeline gave them).
//!
//! Both ends count in samples, whichever the format, so the hold policy and the host's
//! `audio_available` mean the same thing for every agent.

use crate::codec::{G711, encode_l16};
use crate::config::SessionConfig;
use crate::pipeline::AgentAudio;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Samples converted at a time when a read or write has to change the format (on the stack).
const PIECE: usize = 256;

/// The worker's end.
pub(crate) enum AgentProd {
    Pcm(HeapProd<i16>),
    G711(HeapProd<u8>),
}

/// The host's end.
pub(crate) enum AgentCons {
    Pcm(HeapCons<i16>),
    G711(HeapCons<u8>, G711),
}

/// A ring holding `agent_ring_ms` of caller audio at the agent rate (at least 1024 samples).
pub(crate) fn agent_ring(config: &SessionConfig) -> (AgentProd, AgentCons) {
    let samples = (config.agent_rate as usize * config.agent_ring_ms as usize / 1000).max(1024);
    match config.agent_format.g711() {
        None => {
            let (p, c) = HeapRb::<i16>::new(samples).split();
            (AgentProd::Pcm(p), AgentCons::Pcm(c))
        }
        Some(law) => {
            let (p, c) = HeapRb::<u8>::new(samples).split();
            (AgentProd::G711(p), AgentCons::G711(c, law))
        }
    }
}

impl AgentProd {
    /// Appends as much of `audio` as fits; returns the samples taken.
    pub(crate) fn push(&mut self, audio: AgentAudio<'_>) -> usize {
        match (self, audio) {
            (Self::Pcm(ring), AgentAudio::Pcm(pcm)) => ring.push_slice(pcm),
            (Self::G711(ring), AgentAudio::G711(codes)) => ring.push_slice(codes),
            // The pipeline was built with the same format as the ring: a bug, counted as dropped.
            _ => {
                debug_assert!(false, "caller audio in the agent ring's format");
                0
            }
        }
    }

    /// Free room, samples.
    pub(crate) fn vacant_len(&self) -> usize {
        match self {
            Self::Pcm(r) => r.vacant_len(),
            Self::G711(r) => r.vacant_len(),
        }
    }

    /// Audio waiting for the host, samples.
    pub(crate) fn occupied_len(&self) -> usize {
        match self {
            Self::Pcm(r) => r.occupied_len(),
            Self::G711(r) => r.occupied_len(),
        }
    }
}

impl AgentCons {
    /// Audio waiting, samples.
    pub(crate) fn occupied_len(&self) -> usize {
        match self {
            Self::Pcm(r) => r.occupied_len(),
            Self::G711(r, _) => r.occupied_len(),
        }
    }

    /// Takes caller audio as samples (G.711 decoded); returns the samples written.
    pub(crate) fn pop_pcm(&mut self, out: &mut [i16]) -> usize {
        match self {
            Self::Pcm(r) => r.pop_slice(out),
            Self::G711(r, law) => {
                let mut codes = [0u8; PIECE];
                let mut done = 0;
                while done < out.len() {
                    let want = (out.len() - done).min(PIECE);
                    let n = r.pop_slice(&mut codes[..want]);
                    done += law.decode(&codes[..n], &mut out[done..]);
                    if n < want {
                        break;
                    }
                }
                done
            }
        }
    }

    /// Takes caller audio as bytes in the agent's format (s16le samples, whole ones only, or
    /// G.711 codes as they are); returns the bytes written.
    pub(crate) fn pop_bytes(&mut self, out: &mut [u8]) -> usize {
        match self {
            Self::G711(r, _) => r.pop_slice(out),
            Self::Pcm(r) => {
                let mut pcm = [0i16; PIECE];
                let mut done = 0;
                while out.len() - done >= 2 {
                    let want = ((out.len() - done) / 2).min(PIECE);
                    let n = r.pop_slice(&mut pcm[..want]);
                    done += 2 * encode_l16(&pcm[..n], &mut out[done..]);
                    if n < want {
                        break;
                    }
                }
                done
            }
        }
    }
}
