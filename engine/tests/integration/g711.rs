//! G.711 µ-law / A-law against the CPython `audioop` reference.
//!
//! `tests/fixtures/g711_reference.txt` is written by `scripts/gen_g711_reference.py`: SHA-256
//! digests of the four complete mappings plus spot values. The digests prove bit-exactness over
//! every input; the spot values are checked first so that a mismatch names the failing input.

use sha2::{Digest, Sha256};
use trunkline::codec::{
    ULAW_SILENCE, alaw_to_linear, decode_alaw, decode_ulaw, encode_alaw, encode_ulaw, linear_to_alaw,
    linear_to_ulaw, ulaw_to_linear,
};

const FIXTURE: &str = include_str!("../fixtures/g711_reference.txt");

/// SHA-256 of the µ-law decode table as little-endian i16, fixed by the specification.
const ULAW_DECODE_TABLE_SHA256: &str = "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn all_samples() -> impl Iterator<Item = i16> {
    i16::MIN..=i16::MAX
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// The digest the fixture records for `name`.
fn fixture_digest(name: &str) -> &'static str {
    FIXTURE
        .lines()
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next() == Some("sha256") && parts.next() == Some(name))
                .then(|| parts.next().expect("digest after name"))
        })
        .unwrap_or_else(|| panic!("fixture has no digest for {name}"))
}

/// The `(input, output)` spot values the fixture records for `function`.
fn fixture_spots(function: &str) -> Vec<(i32, i32)> {
    let spots: Vec<(i32, i32)> = FIXTURE
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            if parts.next() != Some(function) {
                return None;
            }
            let input = parts.next()?.parse().expect("numeric input");
            let output = parts.next()?.parse().expect("numeric output");
            Some((input, output))
        })
        .collect();
    assert!(spots.len() >= 10, "fixture has too few {function} spot values");
    spots
}

#[test]
fn ulaw_decode_table_has_the_specified_digest() {
    let table: Vec<i16> = (0..=255u8).map(ulaw_to_linear).collect();
    assert_eq!(sha256_hex(&le_bytes(&table)), ULAW_DECODE_TABLE_SHA256);
}

#[test]
fn spot_values_match_audioop() {
    for (sample, code) in fixture_spots("lin2ulaw") {
        let got = linear_to_ulaw(sample as i16);
        assert_eq!(got as i32, code, "lin2ulaw({sample})");
    }
    for (sample, code) in fixture_spots("lin2alaw") {
        let got = linear_to_alaw(sample as i16);
        assert_eq!(got as i32, code, "lin2alaw({sample})");
    }
    for (code, sample) in fixture_spots("ulaw2lin") {
        let got = ulaw_to_linear(code as u8);
        assert_eq!(got as i32, sample, "ulaw2lin({code:#04x})");
    }
    for (code, sample) in fixture_spots("alaw2lin") {
        let got = alaw_to_linear(code as u8);
        assert_eq!(got as i32, sample, "alaw2lin({code:#04x})");
    }
}

#[test]
fn full_mappings_match_audioop_digests() {
    let ulaw: Vec<u8> = all_samples().map(linear_to_ulaw).collect();
    assert_eq!(sha256_hex(&ulaw), fixture_digest("lin2ulaw"), "lin2ulaw");
    let alaw: Vec<u8> = all_samples().map(linear_to_alaw).collect();
    assert_eq!(sha256_hex(&alaw), fixture_digest("lin2alaw"), "lin2alaw");
    let ulaw_lin: Vec<i16> = (0..=255u8).map(ulaw_to_linear).collect();
    assert_eq!(sha256_hex(&le_bytes(&ulaw_lin)), fixture_digest("ulaw2lin"), "ulaw2lin");
    let alaw_lin: Vec<i16> = (0..=255u8).map(alaw_to_linear).collect();
    assert_eq!(sha256_hex(&le_bytes(&alaw_lin)), fixture_digest("alaw2lin"), "alaw2lin");
}

#[test]
fn buffer_functions_match_the_scalar_ones() {
    let samples: Vec<i16> = all_samples().collect();
    let mut codes = vec![0u8; samples.len()];
    assert_eq!(encode_ulaw(&samples, &mut codes), samples.len());
    assert!(samples.iter().zip(&codes).all(|(&s, &c)| c == linear_to_ulaw(s)));
    assert_eq!(encode_alaw(&samples, &mut codes), samples.len());
    assert!(samples.iter().zip(&codes).all(|(&s, &c)| c == linear_to_alaw(s)));

    let all_codes: Vec<u8> = (0..=255).collect();
    let mut linear = vec![0i16; 256];
    assert_eq!(decode_ulaw(&all_codes, &mut linear), 256);
    assert!(all_codes.iter().zip(&linear).all(|(&c, &s)| s == ulaw_to_linear(c)));
    assert_eq!(decode_alaw(&all_codes, &mut linear), 256);
    assert!(all_codes.iter().zip(&linear).all(|(&c, &s)| s == alaw_to_linear(c)));
}

#[test]
fn buffer_functions_process_the_shorter_length() {
    let samples = [1000i16, -1000, 0, 5];
    let mut codes = [0xAAu8; 2];
    assert_eq!(encode_ulaw(&samples, &mut codes), 2);
    assert_eq!(codes, [linear_to_ulaw(1000), linear_to_ulaw(-1000)]);
    let mut long = [0xAAu8; 6];
    assert_eq!(encode_alaw(&samples, &mut long), 4);
    assert_eq!(long[4..], [0xAA, 0xAA], "bytes past the input are untouched");

    let mut pcm = [7i16; 3];
    assert_eq!(decode_ulaw(&[0x00, 0xFF], &mut pcm), 2);
    assert_eq!(pcm, [ulaw_to_linear(0x00), 0, 7]);
    assert_eq!(decode_alaw(&[0xD5; 5], &mut pcm), 3);
    assert_eq!(decode_alaw(&[], &mut pcm), 0);
    assert_eq!(encode_ulaw(&[], &mut codes), 0);
}

#[test]
fn decoded_values_survive_a_round_trip() {
    for code in 0..=255u8 {
        let value = ulaw_to_linear(code);
        assert_eq!(ulaw_to_linear(linear_to_ulaw(value)), value, "µ-law code {code:#04x}");
        let value = alaw_to_linear(code);
        assert_eq!(alaw_to_linear(linear_to_alaw(value)), value, "A-law code {code:#04x}");
    }
}

#[test]
fn codes_other_than_negative_zero_round_trip_exactly() {
    // µ-law has two zeros (0x7F is "-0"); every other code is its own value's encoding.
    for code in (0..=255u8).filter(|&c| c != 0x7F) {
        assert_eq!(linear_to_ulaw(ulaw_to_linear(code)), code, "µ-law {code:#04x}");
    }
    // A-law has no negative zero: all 256 codes decode to distinct values.
    for code in 0..=255u8 {
        assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A-law {code:#04x}");
    }
}

#[test]
fn silence_and_extremes() {
    assert_eq!(linear_to_ulaw(0), ULAW_SILENCE);
    assert_eq!(ulaw_to_linear(ULAW_SILENCE), 0);
    assert_eq!(ulaw_to_linear(0x00), -32124);
    assert_eq!(ulaw_to_linear(0x80), 32124);
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
    assert_eq!(alaw_to_linear(0xAA), 32256);
    assert_eq!(alaw_to_linear(0x2A), -32256);
}

#[test]
fn encoding_is_monotonic_in_the_decoded_value() {
    // A larger input never decodes to a smaller value: the quantiser has no inversions.
    let mut last_u = i16::MIN;
    let mut last_a = i16::MIN;
    for s in all_samples() {
        let u = ulaw_to_linear(linear_to_ulaw(s));
        let a = alaw_to_linear(linear_to_alaw(s));
        assert!(u >= last_u && a >= last_a, "inversion at {s}");
        last_u = u;
        last_a = a;
    }
}
