//! Plug-in information quantities, in bits, of hard predictions on held-out
//! points: the empirical joint table of (F, Y, L) and its entropies.
//!
//! With p the empirical distribution over n points,
//!
//! - I(F;Y)   = H(F) + H(Y) − H(F,Y)
//! - I(F;Y|L) = H(F,L) + H(Y,L) − H(F,Y,L) − H(L)
//! - μ_Y(F;L) = I(F;Y) − I(F;Y|L)   (can be negative)
//!
//! Values are class ids in `0..k`; any number of classes, binary included.

/// The empirical joint counts of three discrete variables (F, Y, L) over `n`
/// points, each with values in `0..k`: one pass over the data, k³ cells.
#[derive(Debug, Clone, PartialEq)]
pub struct JointCounts {
    k: usize,
    n: u64,
    /// Cell `(f·k + y)·k + l`.
    counts: Vec<u64>,
}

/// The four curves of the paper's plot at one checkpoint, in bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Information {
    /// I(F;Y): what F's predictions tell about the labels.
    pub i_fy: f64,
    /// I(F;Y|L): what F tells about Y beyond what L does.
    pub i_fy_given_l: f64,
    /// μ_Y(F;L) = I(F;Y) − I(F;Y|L): the part of F's performance L explains.
    pub mu: f64,
    /// I(L;Y): the reference's own performance.
    pub i_ly: f64,
}

impl Information {
    /// (I(F;Y), I(F;Y|L), μ, I(L;Y)), as a saved state keeps them.
    pub fn to_array(&self) -> [f64; 4] {
        [self.i_fy, self.i_fy_given_l, self.mu, self.i_ly]
    }

    /// From [`Information::to_array`]'s order.
    pub fn from_array([i_fy, i_fy_given_l, mu, i_ly]: [f64; 4]) -> Self {
        Information { i_fy, i_fy_given_l, mu, i_ly }
    }
}

/// Which variable of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The network's predictions F.
    F,
    /// The labels Y.
    Y,
    /// The reference's predictions L.
    L,
}

impl JointCounts {
    /// Counts the triples `(f[i], y[i], l[i])`. The three slices must have the
    /// same length, at least 1, and hold values in `0..=255`; k is one more
    /// than the largest value.
    pub fn new(f: &[i64], y: &[i64], l: &[i64]) -> Result<Self, String> {
        if f.len() != y.len() || f.len() != l.len() {
            return Err(format!("F, Y and L differ in length ({}, {}, {})", f.len(), y.len(), l.len()));
        }
        if f.is_empty() {
            return Err("no points to estimate from".into());
        }
        let mut k = 0usize;
        for (name, values) in [("F", f), ("Y", y), ("L", l)] {
            for &v in values {
                if !(0..=255).contains(&v) {
                    return Err(format!("{name} holds {v}; class ids must be in 0..=255"));
                }
                k = k.max(v as usize + 1);
            }
        }
        let mut counts = vec![0u64; k * k * k];
        for ((&a, &b), &c) in f.iter().zip(y).zip(l) {
            counts[(a as usize * k + b as usize) * k + c as usize] += 1;
        }
        Ok(JointCounts { k, n: f.len() as u64, counts })
    }

    /// Number of points n.
    pub fn points(&self) -> u64 {
        self.n
    }

    /// Counts of the marginal over `vars` (1 to 3 distinct variables), indexed
    /// in the order F, Y, L of the kept ones.
    fn marginal(&self, vars: &[Var]) -> Vec<u64> {
        let k = self.k;
        let keep = |v: Var| vars.contains(&v);
        let mut out = vec![0u64; k.pow(vars.len() as u32)];
        for f in 0..k {
            for y in 0..k {
                for l in 0..k {
                    let c = self.counts[(f * k + y) * k + l];
                    if c == 0 {
                        continue;
                    }
                    let mut index = 0;
                    for (v, value) in [(Var::F, f), (Var::Y, y), (Var::L, l)] {
                        if keep(v) {
                            index = index * k + value;
                        }
                    }
                    out[index] += c;
                }
            }
        }
        out
    }

    /// Plug-in entropy H(vars) in bits.
    pub fn entropy(&self, vars: &[Var]) -> f64 {
        let n = self.n as f64;
        -self.marginal(vars).into_iter().filter(|&c| c > 0).map(|c| c as f64 / n).map(|p| p * p.log2()).sum::<f64>()
    }

    /// I(A;B) = H(A) + H(B) − H(A,B).
    pub fn mutual_information(&self, a: Var, b: Var) -> f64 {
        self.entropy(&[a]) + self.entropy(&[b]) - self.entropy(&ordered(&[a, b]))
    }

    /// I(A;B|C) = H(A,C) + H(B,C) − H(A,B,C) − H(C).
    pub fn conditional_mutual_information(&self, a: Var, b: Var, c: Var) -> f64 {
        self.entropy(&ordered(&[a, c])) + self.entropy(&ordered(&[b, c]))
            - self.entropy(&[Var::F, Var::Y, Var::L])
            - self.entropy(&[c])
    }

    /// The four quantities of the paper's plot.
    pub fn information(&self) -> Information {
        let i_fy = self.mutual_information(Var::F, Var::Y);
        let i_fy_given_l = self.conditional_mutual_information(Var::F, Var::Y, Var::L);
        Information { i_fy, i_fy_given_l, mu: i_fy - i_fy_given_l, i_ly: self.mutual_information(Var::L, Var::Y) }
    }
}

/// `vars` in the table's order F, Y, L (the marginal's indexing follows it).
fn ordered(vars: &[Var]) -> Vec<Var> {
    [Var::F, Var::Y, Var::L].into_iter().filter(|v| vars.contains(v)).collect()
}

/// The estimates for predictions `f`, labels `y` and reference predictions `l`.
pub fn information(f: &[i64], y: &[i64], l: &[i64]) -> Result<Information, String> {
    Ok(JointCounts::new(f, y, l)?.information())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::SeedRng;

    const EPS: f64 = 1e-12;

    /// A second computation, straight from the definitions as sums of
    /// p·log(p/(q·r)) over the points' empirical distribution, sharing no code
    /// with the entropy formulas above.
    fn by_definition(f: &[i64], y: &[i64], l: &[i64]) -> (f64, f64) {
        use std::collections::HashMap;
        let n = f.len() as f64;
        let mut c3: HashMap<(i64, i64, i64), f64> = HashMap::new();
        let (mut cfy, mut cfl, mut cyl) = (HashMap::new(), HashMap::new(), HashMap::new());
        let (mut cf, mut cy, mut cl) = (HashMap::new(), HashMap::new(), HashMap::new());
        for i in 0..f.len() {
            *c3.entry((f[i], y[i], l[i])).or_default() += 1.0;
            *cfy.entry((f[i], y[i])).or_insert(0.0) += 1.0;
            *cfl.entry((f[i], l[i])).or_insert(0.0) += 1.0;
            *cyl.entry((y[i], l[i])).or_insert(0.0) += 1.0;
            *cf.entry(f[i]).or_insert(0.0) += 1.0;
            *cy.entry(y[i]).or_insert(0.0) += 1.0;
            *cl.entry(l[i]).or_insert(0.0) += 1.0;
        }
        let i_fy: f64 = cfy.iter().map(|(&(a, b), &c)| c / n * ((c * n) / (cf[&a] * cy[&b])).log2()).sum();
        let i_fy_l: f64 =
            c3.iter().map(|(&(a, b, z), &c)| c / n * ((c * cl[&z]) / (cfl[&(a, z)] * cyl[&(b, z)])).log2()).sum();
        (i_fy, i_fy_l)
    }

    fn random(n: usize, k: i64, seed: u64) -> Vec<i64> {
        let mut rng = SeedRng::new(seed);
        (0..n).map(|_| rng.below(k as u64) as i64).collect()
    }

    /// Y, and predictions that agree with Y with probability `p` (else random).
    fn noisy_copy(y: &[i64], k: i64, p: f64, seed: u64) -> Vec<i64> {
        let mut rng = SeedRng::new(seed);
        y.iter().map(|&v| if rng.next_f64() < p { v } else { rng.below(k as u64) as i64 }).collect()
    }

    #[test]
    fn hand_computed_tables() {
        // F = Y on a balanced binary task: I(F;Y) = H(Y) = 1 bit.
        let y = [0, 0, 1, 1];
        let info = information(&y, &y, &[0, 0, 0, 0]).unwrap();
        assert!((info.i_fy - 1.0).abs() < EPS && (info.i_fy_given_l - 1.0).abs() < EPS);
        assert!(info.mu.abs() < EPS && info.i_ly.abs() < EPS, "a constant L explains nothing");
        // F right 3 times in 4: joint (0,0)=3/8,(0,1)=1/8,(1,0)=1/8,(1,1)=3/8,
        // I = 1 − H_b(1/4) = 1 − 0.811278124459133 bits.
        let y: Vec<i64> = vec![0, 0, 0, 0, 1, 1, 1, 1];
        let f: Vec<i64> = vec![0, 0, 0, 1, 1, 1, 1, 0];
        let info = information(&f, &y, &f).unwrap();
        assert!((info.i_fy - (1.0 - 0.811_278_124_459_132_9)).abs() < 1e-12, "{info:?}");
        // Three classes, F independent of Y within the table: I = 0.
        let f = [0, 1, 2, 0, 1, 2, 0, 1, 2];
        let y = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        assert!(information(&f, &y, &f).unwrap().i_fy.abs() < EPS);
        // Conditional: F = Y xor L with L, Y fair independent bits: I(F;Y) = 0
        // but I(F;Y|L) = 1 bit, so μ = −1 (L "explains" negatively).
        let l = [0, 0, 1, 1];
        let y = [0, 1, 0, 1];
        let f = [0, 1, 1, 0];
        let info = information(&f, &y, &l).unwrap();
        assert!(info.i_fy.abs() < EPS && (info.i_fy_given_l - 1.0).abs() < EPS && (info.mu + 1.0).abs() < EPS);
    }

    #[test]
    fn identities_hold_on_random_predictions() {
        for (seed, k) in [(1u64, 2i64), (2, 3), (3, 10)] {
            let n = 5000;
            let y = random(n, k, seed);
            let l = noisy_copy(&y, k, 0.6, seed + 10);
            let f = noisy_copy(&l, k, 0.7, seed + 20);
            let t = JointCounts::new(&f, &y, &l).unwrap();
            // F = L: nothing beyond L, and μ = I(L;Y).
            let same = JointCounts::new(&l, &y, &l).unwrap().information();
            assert!(same.i_fy_given_l.abs() < 1e-12 && (same.mu - same.i_ly).abs() < 1e-12);
            // μ is symmetric in F and L.
            let swapped = JointCounts::new(&l, &y, &f).unwrap().information();
            assert!((t.information().mu - swapped.mu).abs() < 1e-12);
            // μ = I(F;L) − I(F;L|Y) (interaction information).
            let other = t.mutual_information(Var::F, Var::L) - t.conditional_mutual_information(Var::F, Var::L, Var::Y);
            assert!((t.information().mu - other).abs() < 1e-12);
            // Mutual information is non-negative, and at most the entropies.
            let info = t.information();
            assert!(info.i_fy >= -1e-12 && info.i_fy <= t.entropy(&[Var::Y]) + 1e-12);
        }
    }

    #[test]
    fn agrees_with_the_definition_to_1e_9() {
        for (seed, k, n) in [(4u64, 2i64, 1000usize), (5, 10, 20_000), (6, 7, 333)] {
            let y = random(n, k, seed);
            let l = noisy_copy(&y, k, 0.5, seed + 1);
            let f = noisy_copy(&y, k, 0.8, seed + 2);
            let info = information(&f, &y, &l).unwrap();
            let (i_fy, i_fy_l) = by_definition(&f, &y, &l);
            assert!((info.i_fy - i_fy).abs() < 1e-9, "{} vs {i_fy}", info.i_fy);
            assert!((info.i_fy_given_l - i_fy_l).abs() < 1e-9, "{} vs {i_fy_l}", info.i_fy_given_l);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(information(&[0, 1], &[0], &[0, 1]).unwrap_err().contains("differ in length"));
        assert!(information(&[], &[], &[]).unwrap_err().contains("no points"));
        assert!(information(&[0, -1], &[0, 1], &[0, 1]).unwrap_err().contains("F holds -1"));
    }
}
