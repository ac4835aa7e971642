//! Tones on the line: a caller keying digits (a keypad's pair of tones), a test tone, a fax's
//! answer tone, a dial tone behind the caller.
//!
//! A tone is as periodic as a voice, so the harmonicity that finds voices finds tones too. But in
//! the spectrum a tone is one line, or two, where a voice spreads over several harmonics that
//! move with its pitch: a frame whose strongest line stands far over every line but the two
//! strongest, at the same frequency as in the frame before, is a tone's.

use crate::simd::max_of;

/// Bins either side of a spectral line's peak that hold its main lobe (the 32 ms Hann window's,
/// zero-padded to twice its length).
const LINE_HALF_WIDTH: usize = 4;
/// The same, for bins counted in a u8.
const LOBE: u8 = LINE_HALF_WIDTH as u8;

/// A frame whose strongest line stands this many times (15 dB) over every line but the two
/// strongest may be a tone's: it is when the frame before held the same line
/// ([`TONE_BEGIN_OVER_THIRD`]) at the same frequency ([`TONE_DRIFT_BINS`]).
pub(crate) const TONE_OVER_THIRD: f32 = 31.622_776;

/// How far (12 dB) the line of the frame before a tone's first must stand over its third: that
/// frame may hold the tone only in part.
const TONE_BEGIN_OVER_THIRD: f32 = 15.848_932;

/// How far (bins of 15.6 Hz: 1.6 Hz) a tone's line may move between two frames. A voice's
/// harmonics move with its pitch: of the corpus's 1,300-2,500 voiced frames per line, 2-35 held
/// a line that far over the third as the frame before did, 0-8 of them within 0.1 bin (the
/// synthetic voices' pitch can be that steady); with 0.2 bin, white noise's F1 fell by 0.008
/// and its onsets came 13 ms later at p50.
const TONE_DRIFT_BINS: f32 = 0.1;

/// Once a frame was a tone's, the same line (within a bin) standing this many times (3 dB) over
/// the third, as the frame's strongest or second strongest, goes on being it: the frame at its
/// end holds it only in part, and of a keypad's pair either tone may be the stronger.
const TONE_HOLD_OVER_THIRD: f32 = 2.0;

/// The two strongest lines of a frame's noise-whitened spectrum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Lines {
    /// Bins of the strongest line and of the second (outside the first's main lobe), counted
    /// from 1 from the spectrum's first bin; 0 for none.
    pub(crate) first: u8,
    pub(crate) second: u8,
    /// How many times each stands over the strongest bin outside both main lobes.
    pub(crate) first_over: f32,
    pub(crate) second_over: f32,
    /// The first's frequency in bins, counted as `first`, interpolated on a parabola through the
    /// log power of its peak and neighbours when it stands far enough over the third to begin a
    /// tone (its bin otherwise).
    pub(crate) position: f32,
}

impl Lines {
    /// Measures the lines of `whitened` (power over the noise floor per bin; 1 where the floor
    /// explains it) and interpolates the first's frequency on `power` (the same bins' power,
    /// which does not change from one band's floor to the next).
    pub(crate) fn measure(whitened: &[f32], power: &[f32]) -> Self {
        debug_assert!(whitened.len() == power.len() && whitened.len() < usize::from(u8::MAX));
        // Three searches for the largest bin, each outside the main lobes found before it; by
        // maxima (which vectorise) and then the bin that holds it, about three times as fast as
        // comparing bin by bin.
        let peak = max_of(whitened);
        if peak <= 0.0 {
            return Self::default();
        }
        let first = whitened.iter().position(|&w| w == peak).unwrap_or(0);
        let lobe =
            |k: usize| (k.saturating_sub(LINE_HALF_WIDTH), (k + LINE_HALF_WIDTH + 1).min(whitened.len()));
        let (lo, hi) = lobe(first);
        let next = max_of(&whitened[..lo]).max(max_of(&whitened[hi..]));
        let second = match whitened[..lo].iter().position(|&w| w == next) {
            _ if next <= 0.0 => 0,
            Some(k) => k,
            None => hi + whitened[hi..].iter().position(|&w| w == next).unwrap_or(0),
        };
        let (a, b) = if lobe(first).0 <= lobe(second).0 {
            (lobe(first), lobe(second))
        } else {
            (lobe(second), lobe(first))
        };
        let between = if b.0 > a.1 { max_of(&whitened[a.1..b.0]) } else { 0.0 };
        let third = max_of(&whitened[..a.0]).max(between).max(max_of(&whitened[a.1.max(b.1)..]));
        let over = |w: f32| if third > 0.0 { w / third } else { f32::INFINITY };
        let first_over = over(peak);
        let ln = |k: usize| power[k].max(1e-6).ln();
        let position = if first_over > TONE_BEGIN_OVER_THIRD && first > 0 && first + 1 < power.len() {
            let (a, b, c) = (ln(first - 1), ln(first), ln(first + 1));
            let d = a - 2.0 * b + c;
            first as f32 + if d < 0.0 { 0.5 * (a - c) / d } else { 0.0 }
        } else {
            first as f32
        };
        Self {
            first: (first + 1) as u8,
            second: if next > 0.0 { (second + 1) as u8 } else { 0 },
            first_over,
            second_over: if next > 0.0 { over(next) } else { 0.0 },
            position: position + 1.0,
        }
    }

    /// How far the line within `bins` of `bin` stands over the third, as the strongest or the
    /// second strongest; 0 if it is neither.
    fn over_at(&self, bin: u8, bins: u8) -> f32 {
        if near(bin, self.first, bins) {
            self.first_over
        } else if near(bin, self.second, bins) {
            self.second_over
        } else {
            0.0
        }
    }
}

/// Whether two lines' bins are within `bins` of each other (and both lines).
fn near(a: u8, b: u8, bins: u8) -> bool {
    a != 0 && b != 0 && a.abs_diff(b) <= bins
}

/// Follows a tone from frame to frame, and the line a run of speech has held (see
/// [`super::spectral`]).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Tones {
    /// The last frame's lines.
    last: Lines,
    /// The line of the tone the last frame was, 0 if none.
    tone: u8,
    /// In a run: the line every frame of it held so far, 0 if none.
    run: u8,
    /// Frames in a row of the tone (0 if the last frame was none).
    frames: u32,
}

impl Tones {
    /// Whether the frame with `lines` is a tone's.
    pub(crate) fn is_tone(&mut self, lines: Lines) -> bool {
        let held = lines.over_at(self.tone, 1) > TONE_HOLD_OVER_THIRD;
        let begins = near(self.last.first, lines.first, 1)
            && (lines.position - self.last.position).abs() <= TONE_DRIFT_BINS
            && self.last.first_over > TONE_BEGIN_OVER_THIRD
            && lines.first_over > TONE_OVER_THIRD;
        if !held {
            self.tone = if begins { lines.first } else { 0 };
        }
        self.last = lines;
        self.frames = if held || begins { self.frames.saturating_add(1) } else { 0 };
        held || begins
    }

    /// Whether the last frame was a tone's.
    pub(crate) fn in_tone(&self) -> bool {
        self.tone != 0
    }

    /// Frames in a row the tone has lasted, up to the last one (0 if the last frame was none).
    pub(crate) fn held_for(&self) -> u32 {
        self.frames
    }

    /// Whether the current run, every frame of which held a line within the main lobe of one
    /// the frame with `lines` holds, was this tone's (its first frames, heard before the line
    /// was seen twice; the first may hold it in part, its peak spread a bin or two).
    pub(crate) fn run_was_the_tone(&self, lines: &Lines) -> bool {
        lines.over_at(self.run, LOBE) > 0.0
    }

    /// Follows the line of the current run: `started` on its first frame.
    pub(crate) fn run_goes_on(&mut self, lines: &Lines, started: bool) {
        if started {
            self.run = lines.first;
        } else if lines.over_at(self.run, LOBE) <= 0.0 {
            self.run = 0;
        }
    }

    /// The last frame's lines.
    #[cfg(test)]
    pub(crate) fn last(&self) -> Lines {
        self.last
    }

    /// Forgets the frames before: a gap in the stream, or a new one.
    pub(crate) fn forget(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whitened spectrum of noise at 1 with `peaks` (bin, height) as three-bin lobes.
    fn spectrum(peaks: &[(usize, f32)]) -> Vec<f32> {
        let mut w = vec![1.0f32; 208];
        for &(k, h) in peaks {
            w[k] = h;
            w[k - 1] = h / 2.0;
            w[k + 1] = h / 2.0;
        }
        w
    }

    /// [`Lines::measure`]'s three searches done plainly, bin by bin.
    fn strongest_plainly(whitened: &[f32]) -> (usize, f32, usize, f32, f32) {
        let strongest_outside = |skip: &[usize]| {
            let mut best = (0, 0.0f32);
            for (k, &w) in whitened.iter().enumerate() {
                if w > best.1 && skip.iter().all(|&s| k.abs_diff(s) > LINE_HALF_WIDTH) {
                    best = (k, w);
                }
            }
            best
        };
        let (first, peak) = strongest_outside(&[]);
        let (second, next) = strongest_outside(&[first]);
        let (_, third) = strongest_outside(&[first, second]);
        (first, peak, second, next, third)
    }

    #[test]
    fn the_lines_are_those_a_plain_search_finds() {
        let mut rng = crate::test_rng::XorShift(5);
        for case in 0..2_000 {
            // Noise, with up to three peaks anywhere (at the edges too, and close together).
            let mut w: Vec<f32> = (0..208).map(|_| rng.below(1_000) as f32 / 500.0).collect();
            for _ in 0..case % 4 {
                let k = rng.below(208) as usize;
                w[k] = 10.0 + rng.below(10_000) as f32;
            }
            if case % 50 == 0 {
                w.iter_mut().for_each(|v| *v = 0.0);
            }
            let l = Lines::measure(&w, &w);
            let (first, peak, second, next, third) = strongest_plainly(&w);
            if peak <= 0.0 {
                assert_eq!(l, Lines::default(), "case {case}");
                continue;
            }
            let over = |v: f32| if third > 0.0 { v / third } else { f32::INFINITY };
            assert_eq!(l.first, (first + 1) as u8, "case {case}");
            assert_eq!(l.first_over, over(peak), "case {case}");
            assert_eq!(l.second, if next > 0.0 { (second + 1) as u8 } else { 0 }, "case {case}");
            assert_eq!(l.second_over, if next > 0.0 { over(next) } else { 0.0 }, "case {case}");
        }
    }

    #[test]
    fn one_or_two_lines_stand_over_the_third_a_comb_of_harmonics_does_not() {
        let tone = spectrum(&[(60, 1_000.0)]);
        let l = Lines::measure(&tone, &tone);
        assert_eq!((l.first, l.first_over), (61, 1_000.0), "{l:?}");
        assert!((l.position - 61.0).abs() < 1e-4, "a symmetric lobe peaks at its bin: {l:?}");
        let pair = spectrum(&[(50, 800.0), (90, 1_000.0)]);
        let l = Lines::measure(&pair, &pair);
        assert_eq!((l.first, l.second, l.second_over), (91, 51, 800.0), "{l:?}");
        // A voice's harmonics, 9 bins apart and falling slowly: the third is near the first.
        let harmonics: Vec<(usize, f32)> =
            (1..20).map(|h| (9 * h, 1_000.0 / (1.0 + h as f32 / 10.0))).collect();
        let voice = spectrum(&harmonics);
        let l = Lines::measure(&voice, &voice);
        assert!(l.first_over < 2.0, "{l:?}");
        // Nothing over the floor: no second line.
        assert_eq!(Lines::measure(&[0.0; 208], &[0.0; 208]), Lines::default());
    }

    #[test]
    fn a_line_held_at_one_frequency_is_a_tone_until_it_fades() {
        let mut tones = Tones::default();
        let at = |bin: u8, over: f32, position: f32| Lines {
            first: bin,
            second: 20,
            first_over: over,
            second_over: 1.5,
            position,
        };
        // The first frame cannot tell; the second at the same frequency can.
        assert!(!tones.is_tone(at(61, 40.0, 61.02)));
        assert!(tones.is_tone(at(61, 40.0, 61.05)));
        // Held while it stands 3 dB over the third, wherever within a bin.
        assert!(tones.is_tone(at(62, 3.0, 61.7)));
        assert!(!tones.is_tone(at(62, 1.5, 61.7)));
        // A line that moves more than 0.1 bin between frames (a voice's harmonic) is none.
        assert!(!tones.is_tone(at(40, 40.0, 40.0)));
        assert!(!tones.is_tone(at(40, 40.0, 40.2)));
    }
}
