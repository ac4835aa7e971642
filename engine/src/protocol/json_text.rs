//! Writing JSON text into a caller-owned buffer without allocating: escaped strings and base64
//! payloads, for the dialects whose carriers speak JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Appends `s` to `out` as the inside of a JSON string: `"` and `\` are backslash-escaped, control
/// characters become `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, everything else (including
/// non-ASCII) is copied as UTF-8.
pub(crate) fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Why byte-wise: every byte of a multi-byte UTF-8 sequence is >= 0x80, so it never matches an
    // escape and runs of them are copied untouched.
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]],
            _ => continue,
        };
        out.extend_from_slice(&bytes[run_start..i]);
        out.extend_from_slice(short);
        run_start = i + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Appends the padded standard base64 of `data` to `out`.
pub(crate) fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    // Cannot overflow: a slice holds at most isize::MAX bytes, and 4/3 of that fits in usize.
    let encoded = base64::encoded_len(data.len(), true).expect("base64 length fits in usize");
    // Why resize then overwrite: no `unsafe` for writing into spare capacity; zeroing ~200 bytes
    // costs nothing next to the encoding, and `resize` within capacity does not allocate.
    out.resize(start + encoded, 0);
    let written = STANDARD.encode_slice(data, &mut out[start..]).expect("output sized with encoded_len");
    debug_assert_eq!(written, encoded);
}

/// Length of `payload_len` bytes in padded base64, saturating instead of overflowing.
pub(crate) fn base64_len(payload_len: usize) -> usize {
    payload_len.div_ceil(3).saturating_mul(4)
}
