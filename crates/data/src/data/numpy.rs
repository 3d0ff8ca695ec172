//! The few NumPy and SciPy routines MNIST-1D's generator uses, computed in
//! the same order so that their results agree to the last bits: the legacy
//! `RandomState` (MT19937 with its `rand`, `randn`, `randint` and
//! `permutation`), `linspace`, pairwise summation, `interp` and
//! `scipy.ndimage.gaussian_filter1d` in `reflect` mode.

/// NumPy's legacy `RandomState` (`np.random.seed(s)` then its draws).
pub struct LegacyRandomState {
    key: [u32; 624],
    pos: usize,
    /// Box–Muller's second value, kept for the next `gauss`.
    cached_gauss: Option<f64>,
}

impl LegacyRandomState {
    /// `np.random.seed(seed)`: MT19937's `init_genrand`.
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; 624];
        let mut s = seed;
        for (pos, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32.wrapping_mul(s ^ (s >> 30)).wrapping_add(pos as u32 + 1);
        }
        LegacyRandomState { key, pos: 624, cached_gauss: None }
    }

    /// The next 32 random bits (MT19937 with tempering).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 624 {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// The next 624 words of state.
    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.key[i] & UPPER) | (self.key[(i + 1) % 624] & LOWER);
            let twisted = (y >> 1) ^ if y & 1 == 1 { MATRIX_A } else { 0 };
            self.key[i] = self.key[(i + 397) % 624] ^ twisted;
        }
        self.pos = 0;
    }

    /// `rand()`: a double in [0, 1) from 53 random bits.
    pub fn random_sample(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `randn()`: the legacy polar Box–Muller, two values per accepted pair.
    pub fn gauss(&mut self) -> f64 {
        if let Some(cached) = self.cached_gauss.take() {
            return cached;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// A uniform integer in 0..=max by masked rejection (`randint(0, max + 1)`,
    /// `choice(max + 1)` and the shuffle's draws, for max below 2³²).
    pub fn bounded(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        assert!(max <= u32::MAX as u64, "draws above 2³² are not needed here");
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let value = self.next_u32() as u64 & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `permutation(n)`: Fisher–Yates from the end over 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.bounded(i as u64) as usize;
            ids.swap(i, j);
        }
        ids
    }
}

/// `np.linspace(start, stop, n)`: `start + i · step`, the last exactly `stop`.
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut out: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    if let Some(last) = out.last_mut() {
        *last = stop;
    }
    out
}

/// NumPy's pairwise summation (what `sum`, `mean` and `std` use).
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |s, v| s + v);
    }
    if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            r.iter_mut().zip(chunk).for_each(|(r, v)| *r += v);
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        a[whole..].iter().for_each(|v| res += v);
        return res;
    }
    let half = n / 2;
    let half = half - half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

/// `np.interp(x, xp, fp)` for increasing `xp`, `x` within its range.
pub fn interp(x: &[f64], xp: &[f64], fp: &[f64]) -> Vec<f64> {
    let last = xp.len() - 1;
    x.iter()
        .map(|&v| {
            // The j with xp[j] <= v < xp[j + 1] (or the last point).
            let j = xp.partition_point(|&p| p <= v).saturating_sub(1);
            if j >= last || xp[j] == v {
                return fp[j.min(last)];
            }
            let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
            slope * (v - xp[j]) + fp[j]
        })
        .collect()
}

/// `scipy.ndimage.gaussian_filter1d(x, sigma)`: truncated at 4σ, the line
/// extended by reflection (d c b a | a b c d | d c b a), summed in
/// SciPy's order for a symmetric kernel.
pub fn gaussian_filter_reflect(x: &[f64], sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as usize;
    let raw: Vec<f64> =
        (0..=2 * radius).map(|i| (-0.5 / (sigma * sigma) * ((i as f64 - radius as f64).powi(2))).exp()).collect();
    let total = pairwise_sum(&raw);
    let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
    let n = x.len() as isize;
    let at = |i: isize| -> f64 {
        let period = 2 * n;
        let mut k = i.rem_euclid(period);
        if k >= n {
            k = period - 1 - k;
        }
        x[k as usize]
    };
    (0..n)
        .map(|i| {
            let mut out = x[i as usize] * weights[radius];
            for j in (1..=radius as isize).rev() {
                out += (at(i - j) + at(i + j)) * weights[radius - j as usize];
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_numpys_first_draws_for_seed_42() {
        // np.random.seed(42); np.random.randint(0, 2**32, dtype=np.uint64)
        // gives 1608637542; np.random.seed(42); np.random.rand() 0.3745401188473625.
        assert_eq!(LegacyRandomState::new(42).next_u32(), 1_608_637_542);
        assert_eq!(LegacyRandomState::new(42).random_sample(), 0.3745401188473625);
    }

    #[test]
    fn linspace_and_interp_are_numpys() {
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let xp = [0.0, 1.0, 2.0];
        assert_eq!(interp(&[0.0, 0.5, 1.5, 2.0], &xp, &[1.0, 3.0, 7.0]), vec![1.0, 2.0, 5.0, 7.0]);
    }

    #[test]
    fn the_gaussian_filter_keeps_constants_and_reflects_at_the_edges() {
        let flat = gaussian_filter_reflect(&[2.0; 20], 2.0);
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-12));
        let step: Vec<f64> = (0..20).map(|i| if i < 10 { 0.0 } else { 1.0 }).collect();
        let smooth = gaussian_filter_reflect(&step, 2.0);
        assert!(smooth[0] < 1e-4 && smooth[19] > 1.0 - 1e-4 && (smooth[9] + smooth[10] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pairwise_sum_adds_like_numpy() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64 * 0.1).collect();
        assert!((pairwise_sum(&v) - 49_950.0).abs() < 1e-9);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
    }
}
