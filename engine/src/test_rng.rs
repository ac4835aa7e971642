//! The seeded generator the unit tests draw their signals from: xorshift64 (13, 7, 17), which is
//! small, deterministic across platforms and good enough for test noise and placements.

/// A xorshift64 generator; the seed must not be 0.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    /// The next state, which is also the output.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next output reduced below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
