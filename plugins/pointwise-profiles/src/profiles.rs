//! Pointwise profiles of a population of m models on n points.
//!
//! Scores come as the host gives them: an m × n matrix, row i the scores
//! a_z(θ_i) of model i on every point z. Statistics are accumulated row by
//! row (no transpose), in parallel over blocks of points.

use rayon::prelude::*;

/// A population's scores: `models` rows of `points` values, row-major.
#[derive(Debug, Clone, Copy)]
pub struct ScoreMatrix<'a> {
    /// Number of models m.
    pub models: usize,
    /// Number of points n.
    pub points: usize,
    /// a_z(θ_i) at `i * points + z`.
    pub scores: &'a [f32],
}

impl<'a> ScoreMatrix<'a> {
    /// Wraps `scores` (m × n); `None` if the length is not `models * points`.
    pub fn new(models: usize, points: usize, scores: &'a [f32]) -> Option<Self> {
        (models * points == scores.len()).then_some(ScoreMatrix { models, points, scores })
    }

    /// The scores of model `i` on every point.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.scores[i * self.points..(i + 1) * self.points]
    }

    /// Mean score of each of `rows` over `points` (all points when `None`):
    /// with correctness scores, the accuracy of each model.
    pub fn row_means(&self, rows: &[usize], points: Option<&[usize]>) -> Vec<f64> {
        rows.iter()
            .map(|&i| {
                let row = self.row(i);
                match points {
                    None => row.iter().map(|&v| v as f64).sum::<f64>() / self.points.max(1) as f64,
                    Some(p) => p.iter().map(|&z| row[z] as f64).sum::<f64>() / p.len().max(1) as f64,
                }
            })
            .collect()
    }
}

/// Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation,
/// relative error below 1.2e-9), with p clamped to [1e-6, 1 − 1e-6].
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Ranks of `values` from 1, ties sharing their mean rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

/// How one point's score moves with global accuracy across the models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointStats {
    /// Mean score over the models, E[a_z].
    pub mean: f64,
    /// Pearson correlation of a_z with A (0 when a_z is constant).
    pub pearson: f64,
    /// Spearman rank correlation of a_z with A (0 when a_z is constant).
    pub spearman: f64,
    /// Least-squares slope of a_z against A.
    pub slope: f64,
    /// Whether a_z is the same for every model (its correlations are undefined).
    pub constant: bool,
}

/// Per-point statistics of `rows` of `matrix` against `x` (one value per
/// row: A(θ), or Φ⁻¹(A) on probit scale). Pearson and slope come from
/// running sums over rows; Spearman ranks x once and, for scores that are not
/// all 0/1, ranks each point's scores.
pub fn point_stats(matrix: &ScoreMatrix, rows: &[usize], x: &[f64]) -> Vec<PointStats> {
    assert_eq!(rows.len(), x.len(), "one x per row");
    let m = rows.len() as f64;
    let n = matrix.points;
    if rows.is_empty() {
        return vec![PointStats { mean: 0.0, pearson: 0.0, spearman: 0.0, slope: 0.0, constant: true }; n];
    }
    let centred = |v: &[f64]| -> (Vec<f64>, f64) {
        let mean = v.iter().sum::<f64>() / m;
        let c: Vec<f64> = v.iter().map(|a| a - mean).collect();
        let ss = c.iter().map(|a| a * a).sum::<f64>();
        (c, ss)
    };
    let (xc, sxx) = centred(x);
    let (rc, srr) = centred(&ranks(x));
    let binary = rows.iter().all(|&i| matrix.row(i).iter().all(|&v| v == 0.0 || v == 1.0));
    const BLOCK: usize = 4096;
    let mut out = vec![PointStats { mean: 0.0, pearson: 0.0, spearman: 0.0, slope: 0.0, constant: true }; n];
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(b, block)| {
        let start = b * BLOCK;
        let len = block.len();
        // Σa, Σa², Σ(x−x̄)a and Σ(r−r̄)a for each point of the block.
        let (mut sa, mut saa, mut sxa, mut sra) = (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        for (k, &i) in rows.iter().enumerate() {
            let row = &matrix.row(i)[start..start + len];
            let (xk, rk) = (xc[k], rc[k]);
            for j in 0..len {
                let a = row[j] as f64;
                sa[j] += a;
                saa[j] += a * a;
                sxa[j] += xk * a;
                sra[j] += rk * a;
            }
        }
        let mut column = Vec::new();
        for j in 0..len {
            let mean = sa[j] / m;
            let saa_c = (saa[j] - sa[j] * mean).max(0.0);
            let constant = saa_c <= 1e-12 * m.max(1.0);
            let pearson = if constant || sxx == 0.0 { 0.0 } else { sxa[j] / (sxx * saa_c).sqrt() };
            let slope = if sxx == 0.0 { 0.0 } else { sxa[j] / sxx };
            let spearman = if constant || srr == 0.0 {
                0.0
            } else if binary {
                // Ranks of 0/1 values are an affine map of them: ρ = corr(rank x, a).
                sra[j] / (srr * saa_c).sqrt()
            } else {
                column.clear();
                column.extend(rows.iter().map(|&i| matrix.row(i)[start + j] as f64));
                let (ra, sra_a) = centred(&ranks(&column));
                let cross: f64 = ra.iter().zip(&rc).map(|(a, r)| a * r).sum();
                cross / (srr * sra_a).sqrt()
            };
            block[j] = PointStats { mean, pearson, spearman, slope, constant };
        }
    });
    out
}

/// Profiles A ↦ E[a_z | A] of every point: the models of `rows` grouped
/// into equal-width bins of x; empty bins are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedProfiles {
    /// The centre of each bin.
    pub centres: Vec<f64>,
    /// Models in each bin.
    pub counts: Vec<usize>,
    /// For each bin, E[a_z | x in the bin] for every point z.
    pub means: Vec<Vec<f64>>,
}

impl BinnedProfiles {
    /// Bins the models of `rows` (x: one value each) into `bins` bins.
    pub fn new(matrix: &ScoreMatrix, rows: &[usize], x: &[f64], bins: usize) -> Self {
        let (lo, hi) = x.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let bins = bins.max(1);
        let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
        let mut sums = vec![vec![0.0; matrix.points]; bins];
        let mut counts = vec![0usize; bins];
        for (k, &i) in rows.iter().enumerate() {
            let b = (((x[k] - lo) / width) as usize).min(bins - 1);
            counts[b] += 1;
            for (sum, &a) in sums[b].iter_mut().zip(matrix.row(i)) {
                *sum += a as f64;
            }
        }
        let mut out = BinnedProfiles { centres: vec![], counts: vec![], means: vec![] };
        for (b, (mut sum, count)) in sums.into_iter().zip(counts).enumerate().filter(|(_, (_, c))| *c > 0) {
            sum.iter_mut().for_each(|v| *v /= count as f64);
            out.centres.push(lo + (b as f64 + 0.5) * width);
            out.counts.push(count);
            out.means.push(sum);
        }
        out
    }

    /// The profile of point `z`: (bin centre, E[a_z | bin]) per non-empty bin.
    pub fn of(&self, z: usize) -> Vec<(f64, f64)> {
        self.centres.iter().zip(&self.means).map(|(&c, m)| (c, m[z])).collect()
    }

    /// The mean profile of `points`.
    pub fn mean_of(&self, points: &[usize]) -> Vec<(f64, f64)> {
        let k = points.len().max(1) as f64;
        self.centres.iter().zip(&self.means).map(|(&c, m)| (c, points.iter().map(|&z| m[z]).sum::<f64>() / k)).collect()
    }
}

/// The taxonomy of points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointClass {
    /// a_z rises with global accuracy (correlation at least the compatible threshold).
    Compatible,
    /// a_z hardly moves with global accuracy (between the thresholds, or constant).
    Incompatible,
    /// a_z falls as global accuracy rises (correlation at most the negative threshold).
    Negative,
}

impl PointClass {
    /// All classes, in report order.
    pub const ALL: [PointClass; 3] = [PointClass::Compatible, PointClass::Incompatible, PointClass::Negative];

    /// The class's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PointClass::Compatible => "compatible",
            PointClass::Incompatible => "incompatible",
            PointClass::Negative => "negative",
        }
    }
}

/// Which correlation the taxonomy and the selection use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correlation {
    /// Pearson's r.
    Pearson,
    /// Spearman's ρ.
    Spearman,
}

impl Correlation {
    /// Parses `pearson` or `spearman`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pearson" => Some(Correlation::Pearson),
            "spearman" => Some(Correlation::Spearman),
            _ => None,
        }
    }

    /// This correlation of a point.
    pub fn of(self, s: &PointStats) -> f64 {
        match self {
            Correlation::Pearson => s.pearson,
            Correlation::Spearman => s.spearman,
        }
    }
}

/// Thresholds of the taxonomy (the paper does not give its values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taxonomy {
    /// The correlation used.
    pub correlation: Correlation,
    /// Compatible: correlation ≥ this.
    pub compatible: f64,
    /// Negative: correlation ≤ this.
    pub negative: f64,
}

impl Taxonomy {
    /// The class of a point; constant points are incompatible.
    pub fn classify(&self, s: &PointStats) -> PointClass {
        let r = self.correlation.of(s);
        if s.constant {
            PointClass::Incompatible
        } else if r >= self.compatible {
            PointClass::Compatible
        } else if r <= self.negative {
            PointClass::Negative
        } else {
            PointClass::Incompatible
        }
    }
}

/// Splits training runs into a selection half and a held-out half: the
/// members (row indices) of each. Whole runs go to one side, so no
/// checkpoint of a held-out run informs the selection. Deterministic given
/// `shuffle` (a permutation of the distinct runs, e.g. seeded).
pub fn split_by_run(runs: &[i64], shuffle: impl FnOnce(&mut [i64])) -> (Vec<usize>, Vec<usize>) {
    let mut distinct: Vec<i64> = runs.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    shuffle(&mut distinct);
    let selection: std::collections::HashSet<i64> = distinct[..distinct.len().div_ceil(2)].iter().copied().collect();
    let (mut chosen, mut held) = (vec![], vec![]);
    for (i, r) in runs.iter().enumerate() {
        if selection.contains(r) {
            chosen.push(i);
        } else {
            held.push(i);
        }
    }
    (chosen, held)
}

/// The NEG subset: for each class, up to `per_class` points whose
/// correlation (on the selection models' statistics `stats`) is below
/// `max_correlation`, most negative first; ties go to the lower point id.
pub fn select_negative(
    stats: &[PointStats],
    labels: &[i64],
    correlation: Correlation,
    max_correlation: f64,
    per_class: usize,
) -> Vec<usize> {
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut chosen = Vec::new();
    for c in classes {
        let mut candidates: Vec<usize> = (0..stats.len())
            .filter(|&z| labels[z] == c && !stats[z].constant && correlation.of(&stats[z]) < max_correlation)
            .collect();
        candidates.sort_by(|&a, &b| correlation.of(&stats[a]).total_cmp(&correlation.of(&stats[b])).then(a.cmp(&b)));
        chosen.extend(candidates.into_iter().take(per_class));
    }
    chosen.sort_unstable();
    chosen
}

/// Pearson correlation and least-squares slope of y against x.
pub fn line_fit(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let r = if sxx > 0.0 && syy > 0.0 { sxy / (sxx * syy).sqrt() } else { 0.0 };
    (r, if sxx > 0.0 { sxy / sxx } else { 0.0 })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tessera_sdk::SeedRng;

    /// A planted population: m models with accuracies spread over [0.3, 0.9];
    /// points 0..k are compatible (right with probability A), k..2k flat
    /// (probability 0.5 whatever A), 2k..3k negative (probability 1.3 − A).
    pub(crate) fn planted(m: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<f64>, usize) {
        let n = 3 * k;
        let mut rng = SeedRng::new(seed);
        let accuracy: Vec<f64> = (0..m).map(|i| 0.3 + 0.6 * i as f64 / (m - 1) as f64).collect();
        let mut scores = vec![0f32; m * n];
        for (i, &a) in accuracy.iter().enumerate() {
            for z in 0..n {
                let p = match z / k {
                    0 => a,
                    1 => 0.5,
                    _ => 1.3 - a,
                };
                scores[i * n + z] = (rng.next_f64() < p) as u8 as f32;
            }
        }
        (scores, accuracy, n)
    }

    #[test]
    fn planted_compatible_flat_and_negative_points_are_recovered() {
        let (m, k) = (1000, 50);
        let (scores, accuracy, n) = planted(m, k, 1);
        let matrix = ScoreMatrix::new(m, n, &scores).unwrap();
        let rows: Vec<usize> = (0..m).collect();
        let stats = point_stats(&matrix, &rows, &accuracy);
        for correlation in [Correlation::Pearson, Correlation::Spearman] {
            let taxonomy = Taxonomy { correlation, compatible: 0.2, negative: -0.2 };
            let classes: Vec<PointClass> = stats.iter().map(|s| taxonomy.classify(s)).collect();
            assert!(classes[..k].iter().all(|&c| c == PointClass::Compatible), "{correlation:?}");
            assert!(classes[k..2 * k].iter().all(|&c| c == PointClass::Incompatible), "{correlation:?}");
            assert!(classes[2 * k..].iter().all(|&c| c == PointClass::Negative), "{correlation:?}");
        }
        // The slopes recover the planted ones (+1, 0, −1) and the profile of a
        // negative point falls from bin to bin.
        let mean_slope =
            |r: std::ops::Range<usize>| stats[r.clone()].iter().map(|s| s.slope).sum::<f64>() / r.len() as f64;
        assert!((mean_slope(0..k) - 1.0).abs() < 0.1);
        assert!(mean_slope(k..2 * k).abs() < 0.1);
        assert!((mean_slope(2 * k..n) + 1.0).abs() < 0.1);
        let profiles = BinnedProfiles::new(&matrix, &rows, &accuracy, 3);
        assert_eq!(profiles.counts.iter().sum::<usize>(), m);
        let profile = profiles.of(2 * k);
        assert_eq!(profile.len(), 3);
        assert!(profile[0].1 > profile[2].1 + 0.3, "{profile:?}");
        // A bin's value is the mean over its models; a class's, over its points too.
        let in_first: Vec<usize> = (0..m).filter(|&i| accuracy[i] < 0.3 + 0.6 / 3.0).collect();
        let direct = in_first.iter().map(|&i| scores[i * n + 2 * k] as f64).sum::<f64>() / in_first.len() as f64;
        assert!((profile[0].1 - direct).abs() < 1e-12);
        let class = profiles.mean_of(&[0, 1]);
        assert!((class[0].1 - (profiles.of(0)[0].1 + profiles.of(1)[0].1) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn correlations_match_their_definitions() {
        let (m, n) = (37, 5);
        let mut rng = SeedRng::new(3);
        let scores: Vec<f32> = (0..m * n).map(|_| rng.next_f64() as f32).collect();
        let x: Vec<f64> = (0..m).map(|_| rng.next_f64()).collect();
        let matrix = ScoreMatrix::new(m, n, &scores).unwrap();
        let rows: Vec<usize> = (0..m).collect();
        let stats = point_stats(&matrix, &rows, &x);
        for z in 0..n {
            let a: Vec<f64> = (0..m).map(|i| scores[i * n + z] as f64).collect();
            let (r, slope) = line_fit(&x, &a);
            let (rho, _) = line_fit(&ranks(&x), &ranks(&a));
            assert!((stats[z].pearson - r).abs() < 1e-9);
            assert!((stats[z].slope - slope).abs() < 1e-9);
            assert!((stats[z].spearman - rho).abs() < 1e-9);
        }
        // A subset of rows uses only those rows.
        let half: Vec<usize> = (0..m).step_by(2).collect();
        let hx: Vec<f64> = half.iter().map(|&i| x[i]).collect();
        let a: Vec<f64> = half.iter().map(|&i| scores[i * n] as f64).collect();
        assert!((point_stats(&matrix, &half, &hx)[0].pearson - line_fit(&hx, &a).0).abs() < 1e-9);
        // Binary scores take the shortcut; it agrees with ranking them.
        let binary: Vec<f32> = scores.iter().map(|&v| (v > 0.5) as u8 as f32).collect();
        let bm = ScoreMatrix::new(m, n, &binary).unwrap();
        let a: Vec<f64> = (0..m).map(|i| binary[i * n + 1] as f64).collect();
        let (rho, _) = line_fit(&ranks(&x), &ranks(&a));
        assert!((point_stats(&bm, &rows, &x)[1].spearman - rho).abs() < 1e-9);
    }

    #[test]
    fn constant_points_and_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let scores = vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0];
        let matrix = ScoreMatrix::new(3, 2, &scores).unwrap();
        let stats = point_stats(&matrix, &[0, 1, 2], &[0.1, 0.2, 0.3]);
        assert!(stats[0].constant && stats[0].pearson == 0.0 && stats[0].mean == 1.0);
        assert!(!stats[1].constant && stats[1].pearson > 0.8);
        let taxonomy = Taxonomy { correlation: Correlation::Pearson, compatible: 0.5, negative: -0.5 };
        assert_eq!(taxonomy.classify(&stats[0]), PointClass::Incompatible);
    }

    #[test]
    fn probit_inverts_the_normal_cdf() {
        for (p, z) in [(0.5, 0.0), (0.975, 1.959963985), (0.1, -1.281551566), (0.001, -3.090232306)] {
            assert!((probit(p) - z).abs() < 1e-6, "{p}");
        }
        assert!(probit(0.0).is_finite() && probit(1.0).is_finite());
    }

    #[test]
    fn runs_split_whole_and_the_neg_subset_is_class_balanced() {
        let runs = [0, 0, 1, 1, 2, 2, 3, 3, 4];
        let (a, b) = split_by_run(&runs, |r| r.reverse());
        assert_eq!((a.clone(), b.clone()), (vec![4, 5, 6, 7, 8], vec![0, 1, 2, 3]));
        let stat = |r: f64| PointStats { mean: 0.5, pearson: r, spearman: r, slope: r, constant: false };
        let stats = [stat(-0.5), stat(-0.9), stat(0.3), stat(-0.7), stat(-0.1), stat(-0.8)];
        let labels = [0, 0, 0, 1, 1, 1];
        assert_eq!(select_negative(&stats, &labels, Correlation::Pearson, 0.0, 2), vec![0, 1, 3, 5]);
        assert_eq!(select_negative(&stats, &labels, Correlation::Pearson, -0.75, 5), vec![1, 5]);
    }
}
