//! The streaming resampler with arbitrary input and arbitrary chunkings: for every supported
//! conversion, the output is the same whatever the chunking (one call, or many calls of any sizes,
//! including empty ones), the total count is exactly `floor(N × to / from)` after N inputs, and
//! no call writes more than `max_output_len`.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use trunkline::resample::{SUPPORTED_RATES, StreamResampler, is_supported};

#[derive(Arbitrary, Debug)]
struct Input {
    from: u8,
    to: u8,
    samples: Vec<i16>,
    chunks: Vec<u16>,
}

fn run(r: &mut StreamResampler, input: &[i16], chunks: &mut dyn Iterator<Item = usize>) -> Vec<i16> {
    let mut out = Vec::new();
    let mut buf = vec![0i16; r.max_output_len(input.len().max(4096))];
    let mut rest = input;
    let mut fed = 0u64;
    while !rest.is_empty() {
        let n = chunks.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        let written = r.process(chunk, &mut buf).unwrap();
        assert!(written <= r.max_output_len(chunk.len()));
        out.extend_from_slice(&buf[..written]);
        fed += n as u64;
        assert_eq!(
            out.len() as u64,
            fed * u64::from(r.output_rate()) / u64::from(r.input_rate()),
            "output count after {fed} samples"
        );
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let from = SUPPORTED_RATES[usize::from(input.from) % SUPPORTED_RATES.len()];
    let to = SUPPORTED_RATES[usize::from(input.to) % SUPPORTED_RATES.len()];
    if !is_supported(from, to) {
        assert!(StreamResampler::new(from, to).is_err());
        return;
    }
    let samples = &input.samples[..input.samples.len().min(20_000)];
    let mut whole = StreamResampler::new(from, to).unwrap();
    let reference = run(&mut whole, samples, &mut std::iter::empty());
    let mut pieces = StreamResampler::new(from, to).unwrap();
    let mut sizes = input.chunks.iter().map(|&c| usize::from(c % 3000)).chain(std::iter::repeat(997));
    let chunked = run(&mut pieces, samples, &mut sizes);
    assert_eq!(reference, chunked, "chunking changed the output ({from} -> {to} Hz)");
    // After a reset, the same input gives the same output again.
    pieces.reset();
    let again = run(&mut pieces, samples, &mut std::iter::empty());
    assert_eq!(reference, again, "reset did not start over");
});
