//! numpy's legacy `np.random.RandomState(seed)`, as far as KID needs it:
//! `choice(n, m, replace=False)`.
//!
//! torch-fidelity draws its KID subsets with `np.random.RandomState(rng_seed)` and
//! `rng.choice(n, m, replace=False)`; reproducing that stream gives the same subsets, hence the
//! same KID as torch-fidelity for the same seed. What numpy (1.17+, 2.x) does, read from
//! `numpy/random/mtrand.pyx`, `_mt19937.pyx` and `src/distributions/distributions.c`:
//!
//! ```text
//! RandomState(seed)          MT19937, init_genrand(seed) (seed in [0, 2^32))
//! choice(n, m, replace=False) = permutation(n)[:m]
//! permutation(n)             a = arange(n); for i = n-1 .. 1: j = random_interval(i); swap(a[i], a[j])
//! random_interval(max)       mask = smallest 2^k - 1 >= max; draw next_uint32 & mask until <= max
//!                            (next_uint64 = hi << 32 | lo when max > 2^32 - 1)
//! ```
//!
//! Checked against numpy's own draws in `tests/fid.rs` (the subsets recorded from
//! torch-fidelity's calls by `tools/metrics_fid_fixture.py`).

const N: usize = 624;
const M: usize = 397;

/// The MT19937 state of numpy's legacy `RandomState`.
#[derive(Debug, Clone)]
pub struct RandomState {
    mt: [u32; N],
    pos: usize,
}

impl RandomState {
    /// `np.random.RandomState(seed)` for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { mt, pos: N }
    }

    /// Regenerates the 624 words (the MT19937 twist).
    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
            let mut v = self.mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.pos = 0;
    }

    /// `next_uint32` (tempered MT19937 output).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        (hi << 32) | self.next_u32() as u64
    }

    /// numpy's `random_interval`: uniform in `[0, max]` by masked rejection.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let v = if max <= u32::MAX as u64 {
                (self.next_u32() as u64) & mask
            } else {
                self.next_u64() & mask
            };
            if v <= max {
                return v;
            }
        }
    }

    /// `permutation(n)`: the legacy Fisher-Yates shuffle of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut a: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u64) as usize;
            a.swap(i, j);
        }
        a
    }

    /// `choice(n, m, replace=False)` (requires `m <= n`; the caller checks).
    pub fn choice_without_replacement(&mut self, n: usize, m: usize) -> Vec<usize> {
        let mut p = self.permutation(n);
        p.truncate(m);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_output() {
        // The MT19937 reference (Matsumoto & Nishimura), init_genrand(5489): first outputs,
        // and the 10000th output 4123659995 (C++ std::mt19937 requirement).
        let mut r = RandomState::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        assert_eq!(r.next_u32(), 581_869_302);
        let mut r = RandomState::new(5489);
        let last = (0..10_000).map(|_| r.next_u32()).last().unwrap();
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut r = RandomState::new(2020);
        let mut p = r.permutation(1000);
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
        assert_eq!(r.choice_without_replacement(7, 3).len(), 3);
        assert!(RandomState::new(0).permutation(0).is_empty());
    }
}
