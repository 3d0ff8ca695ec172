//! A small, fast, seedable random stream (xoshiro256** seeded by SplitMix64),
//! so that every plugin draws the same numbers for the same seed whatever
//! `rand` version it uses.

/// A seeded random stream. Equal seeds give equal streams on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SeedRng {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        SeedRng { s: [splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state)] }
    }

    /// An independent stream for (`seed`, `stream`), e.g. one per epoch.
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut state = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mixed = splitmix64(&mut state);
        SeedRng::new(mixed ^ stream)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (Lemire's unbiased method); `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SeedRng::below(0)");
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }

    /// Shuffles `items` uniformly (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = SeedRng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = SeedRng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(SeedRng::derive(7, 0).next_u64(), SeedRng::derive(7, 1).next_u64());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = SeedRng::new(1);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..1000).collect();
        SeedRng::new(3).shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }
}

/// A seeded pseudo-random permutation of `0..n` that needs O(1) memory: a
/// balanced Feistel network on the smallest even-bit power of two ≥ n, with
/// cycle-walking for values ≥ n. Orders over a billion examples stream from it.
#[derive(Debug, Clone)]
pub struct FeistelPermutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl FeistelPermutation {
    /// The permutation of `0..n` for `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut rng = SeedRng::derive(seed, 0x0FE1_57E1);
        FeistelPermutation { n, half_bits, keys: [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()] }
    }

    /// Number of elements n.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether n = 0.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn round(&self, value: u64, key: u64) -> u64 {
        let mut z = value ^ key;
        z = (z ^ (z >> 31)).wrapping_mul(0x7FB5_D329_728E_A185);
        z = (z ^ (z >> 27)).wrapping_mul(0x81DA_DEF4_BC2D_D44D);
        z ^ (z >> 33)
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (self.round(right, key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }

    /// The image of `i` (< n).
    pub fn get(&self, i: u64) -> u64 {
        assert!(i < self.n, "FeistelPermutation::get({i}) outside 0..{}", self.n);
        let mut x = self.encrypt(i);
        while x >= self.n {
            x = self.encrypt(x);
        }
        x
    }
}

#[cfg(test)]
mod feistel_tests {
    use super::*;

    #[test]
    fn it_is_a_permutation_for_awkward_sizes() {
        for n in [1u64, 2, 3, 7, 64, 65, 1000, 4097] {
            let p = FeistelPermutation::new(n, 9);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let v = p.get(i) as usize;
                assert!(!seen[v], "n = {n}: {v} twice");
                seen[v] = true;
            }
        }
    }

    #[test]
    fn it_depends_on_the_seed_and_looks_shuffled() {
        let a: Vec<u64> = (0..1000).map(|i| FeistelPermutation::new(1000, 1).get(i)).collect();
        let b: Vec<u64> = (0..1000).map(|i| FeistelPermutation::new(1000, 2).get(i)).collect();
        assert_ne!(a, b);
        let fixed = a.iter().enumerate().filter(|(i, v)| *i as u64 == **v).count();
        assert!(fixed < 10, "{fixed} fixed points");
        let huge = FeistelPermutation::new(1_000_000_000, 3);
        assert!(huge.get(999_999_999) < 1_000_000_000);
    }
}
