//! A small, seedable random number generator with a stable stream.
//!
//! Augmentation must reproduce a sample exactly from a seed, on any machine, with any number of
//! loader workers and across crate upgrades. That rules out generators whose output may change
//! between releases, so this is xoshiro256++ (Blackman and Vigna) seeded through SplitMix64,
//! written out here in a few lines. [`SampleRng::for_sample`] derives an independent stream per
//! `(seed, epoch, index)`, which is what makes a sample independent of which worker draws it.

/// xoshiro256++ with helpers for the distributions augmentation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRng {
    state: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SampleRng {
    /// A generator seeded from one `u64`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let state = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Self { state }
    }

    /// The stream for sample `index` in `epoch` of a run seeded with `seed`.
    pub fn for_sample(seed: u64, epoch: u64, index: u64) -> Self {
        let mut x = seed;
        let a = splitmix64(&mut x);
        let mut y = a ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let b = splitmix64(&mut y);
        let mut z = b ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        Self::new(splitmix64(&mut z))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[low, high)` (or exactly `low` when `high <= low`).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        if high <= low {
            return low;
        }
        low + (high - low) * self.unit()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0, "below(0)");
        let n = n.max(1) as u64;
        // Lemire's multiply-shift with rejection.
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }

    /// The generator's state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.state
    }

    /// A generator restored from [`SampleRng::state`].
    pub fn from_state(state: [u64; 4]) -> Self {
        Self { state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| SampleRng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = SampleRng::for_sample(1, 0, 5);
        let mut y = SampleRng::for_sample(1, 1, 5);
        let mut z = SampleRng::for_sample(1, 0, 6);
        let (x, y, z) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert!(x != y && x != z && y != z);
    }

    #[test]
    fn distributions_stay_in_range_and_cover_it() {
        let mut rng = SampleRng::new(42);
        let mut counts = [0usize; 3];
        let mut sum = 0.0;
        for _ in 0..30_000 {
            let u = rng.uniform(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&u));
            sum += rng.unit();
            counts[rng.below(3)] += 1;
        }
        assert!(
            (sum / 30_000.0 - 0.5).abs() < 0.01,
            "mean {}",
            sum / 30_000.0
        );
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
        assert!((2_300..2_700).contains(&hits), "{hits}");
    }

    #[test]
    fn state_round_trips() {
        let mut rng = SampleRng::new(3);
        rng.next_u64();
        let mut copy = SampleRng::from_state(rng.state());
        assert_eq!(rng.next_u64(), copy.next_u64());
    }
}
