//! G.722 against a second implementation: the fixtures under `fixtures/g722/` were written by
//! `scripts/gen_g722_reference.py` with the `G722` Python package (a C implementation of ITU-T
//! G.722 that passes the ITU test vectors). Both follow the reference's fixed-point arithmetic,
//! so the codes and samples must agree bit for bit.

use trunkline::codec::{G722Decoder, G722Encoder};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/g722/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// The index of the first difference, for a readable failure.
fn first_difference<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[test]
fn encoding_matches_the_reference_bit_for_bit() {
    let pcm = samples(&fixture("input.s16le"));
    let want = fixture("codes.g722");
    let mut codes = vec![0u8; pcm.len() / 2];
    assert_eq!(G722Encoder::new().encode(&pcm, &mut codes), want.len());
    assert_eq!(first_difference(&codes, &want), None, "codes differ from the reference");
}

#[test]
fn encoding_in_20_ms_frames_gives_the_same_codes() {
    let pcm = samples(&fixture("input.s16le"));
    let want = fixture("codes.g722");
    let mut encoder = G722Encoder::new();
    let mut codes = Vec::new();
    for frame in pcm.chunks(320) {
        let mut out = [0u8; 160];
        let n = encoder.encode(frame, &mut out);
        codes.extend_from_slice(&out[..n]);
    }
    assert_eq!(first_difference(&codes, &want), None);
}

#[test]
fn decoding_matches_the_reference_bit_for_bit() {
    for (codes, decoded) in [("codes.g722", "decoded.s16le"), ("random.g722", "random_decoded.s16le")] {
        let codes = fixture(codes);
        let want = samples(&fixture(decoded));
        let mut pcm = vec![0i16; 2 * codes.len()];
        let mut decoder = G722Decoder::new();
        // In uneven pieces: the state carries across calls.
        let mut at = 0;
        for piece in codes.chunks(77) {
            at += decoder.decode(piece, &mut pcm[at..]);
        }
        assert_eq!(at, want.len());
        assert_eq!(first_difference(&pcm, &want), None, "{decoded}");
    }
}

#[test]
fn a_chirp_round_trips_within_the_codec_s_noise() {
    // The chirp part of the reference input (0.2 s, 100 Hz to 7.5 kHz over noise). G.722 at
    // 64 kbit/s codes the band below 4 kHz with 6 bits a sample and the band above with 2: the
    // sweep's lower half (up to 3.8 kHz) comes back more than 22 dB above the coding noise, the
    // whole sweep more than 15 dB, once the QMF pair's delay is accounted for. The reference's
    // own decoding of its codes is held to the same bounds.
    let pcm = samples(&fixture("input.s16le"));
    let chirp = &pcm[..3200];
    let mut codes = vec![0u8; 1600];
    G722Encoder::new().encode(chirp, &mut codes);
    let mut back = vec![0i16; 3200];
    G722Decoder::new().decode(&codes, &mut back);
    let reference = samples(&fixture("decoded.s16le"));
    for decoded in [&back[..], &reference[..3200]] {
        let low = best_snr_db(&chirp[160..1600], &decoded[160..]);
        let whole = best_snr_db(&chirp[160..3100], &decoded[160..]);
        println!("lower half {low:.1} dB, whole sweep {whole:.1} dB");
        assert!(low > 22.0, "lower half: {low:.1} dB");
        assert!(whole > 15.0, "whole sweep: {whole:.1} dB");
    }
}

/// The SNR of `b` against `a` at the delay (0 to 40 samples) that fits best, dB.
fn best_snr_db(a: &[i16], b: &[i16]) -> f64 {
    (0..40)
        .map(|delay| {
            let (mut signal, mut noise) = (0.0, 0.0);
            for (&x, &y) in a.iter().zip(&b[delay..]) {
                signal += f64::from(x).powi(2);
                noise += (f64::from(x) - f64::from(y)).powi(2);
            }
            10.0 * (signal / noise.max(1.0)).log10()
        })
        .fold(f64::MIN, f64::max)
}
