//! A small seeded generator (SplitMix64): deterministic jitter and call ids without a dependency.

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough for test
/// schedules and identifiers (not for anything secret).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for stream `index` of a run seeded with `seed` (independent per call).
    pub(crate) fn for_call(seed: u64, index: usize) -> Self {
        let mut base = Self(seed ^ (index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Self(base.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        if max == 0 { 0 } else { self.next_u64() % (max + 1) }
    }

    /// A Twilio-style identifier: `prefix` and 32 lowercase hex digits.
    pub(crate) fn sid(&mut self, prefix: &str) -> String {
        format!("{prefix}{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_repeat_for_a_seed_and_differ_between_calls() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = SplitMix64::for_call(7, 0);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = SplitMix64::for_call(7, 0);
                move |_| r.next_u64()
            })
            .collect();
        let c = SplitMix64::for_call(7, 1).next_u64();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
        let sid = SplitMix64::new(1).sid("MZ");
        assert_eq!(sid.len(), 34);
        assert!(sid[2..].chars().all(|ch| ch.is_ascii_hexdigit()));
        let mut r = SplitMix64::new(3);
        assert!((0..1000).all(|_| r.up_to(5) <= 5));
        assert_eq!(r.up_to(0), 0);
    }
}
