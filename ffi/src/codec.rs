//! Stateless G.711 helpers for hosts that handle raw audio themselves.

use crate::result::trunkline_result;
use crate::{guard, try_slice, try_slice_mut};
use trunkline::codec;

macro_rules! g711_export {
    ($(#[$doc:meta])* $name:ident, $in:ty, $out:ty, $f:path) => {
        $(#[$doc])*
        /// `output_capacity` must be at least `len`. Results: OK; NULL_PARAMETER;
        /// BUFFER_TOO_SMALL. Any thread.
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(input: *const $in, len: usize, output: *mut $out, output_capacity: usize) -> trunkline_result {
            guard(|| {
                let input = try_slice!(input, len);
                if output_capacity < len {
                    return trunkline_result::BufferTooSmall;
                }
                let output = try_slice_mut!(output, output_capacity);
                $f(input, output);
                trunkline_result::Ok
            })
        }
    };
}

g711_export!(
    /// Decodes `len` G.711 µ-law bytes into s16 samples.
    trunkline_ulaw_decode, u8, i16, codec::decode_ulaw
);
g711_export!(
    /// Encodes `len` s16 samples into G.711 µ-law bytes.
    trunkline_ulaw_encode, i16, u8, codec::encode_ulaw
);
g711_export!(
    /// Decodes `len` G.711 A-law bytes into s16 samples.
    trunkline_alaw_decode, u8, i16, codec::decode_alaw
);
g711_export!(
    /// Encodes `len` s16 samples into G.711 A-law bytes.
    trunkline_alaw_encode, i16, u8, codec::encode_alaw
);
