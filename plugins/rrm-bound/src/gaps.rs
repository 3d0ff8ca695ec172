//! The RRM decomposition and the complexity estimators of Theorem II.

use std::collections::BTreeMap;

/// The accuracies of the decomposition and what follows from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaps {
    /// Clean run, training set.
    pub train: f64,
    /// Noisy run, whole training set, against the clean labels.
    pub train_eta: f64,
    /// Noisy run, flipped points, against their clean labels.
    pub ntrain_eta: f64,
    /// Clean run, test set.
    pub test: f64,
    /// Train − Train_η.
    pub robustness: f64,
    /// Train_η − NTrain_η.
    pub memorization: f64,
    /// NTrain_η − Test.
    pub rationality: f64,
    /// Train − Test.
    pub generalization: f64,
    /// robustness + memorization + max(0, rationality).
    pub rrm_bound: f64,
}

impl Gaps {
    /// The decomposition of Train − Test.
    pub fn new(train: f64, train_eta: f64, ntrain_eta: f64, test: f64) -> Self {
        let (robustness, memorization, rationality) = (train - train_eta, train_eta - ntrain_eta, ntrain_eta - test);
        Gaps {
            train,
            train_eta,
            ntrain_eta,
            test,
            robustness,
            memorization,
            rationality,
            generalization: train - test,
            rrm_bound: robustness + memorization + rationality.max(0.0),
        }
    }
}

/// Plug-in mutual information, in bits, of the pairs (a, b).
pub fn mutual_information_bits(pairs: &[(i64, i64)]) -> f64 {
    let n = pairs.len() as f64;
    if pairs.is_empty() {
        return 0.0;
    }
    let (mut joint, mut left, mut right) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for &(a, b) in pairs {
        *joint.entry((a, b)).or_insert(0.0) += 1.0;
        *left.entry(a).or_insert(0.0) += 1.0;
        *right.entry(b).or_insert(0.0) += 1.0;
    }
    joint.iter().map(|(&(a, b), &c)| c / n * (c * n / (left[&a] * right[&b])).log2()).sum::<f64>().max(0.0)
}

/// The complexity of a classifier from K noisy runs on n points: with
/// a = (pred − y) mod C and b = (ỹ − y) mod C for every run and point,
/// C^pc is the mean over points of the mutual information of the K pairs at
/// that point, C^dc the mutual information of all nK pairs pooled, and
/// `dc_noised` the latter over the flipped pairs only. In bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Complexity {
    /// Per-point (conditional) complexity, averaged over points.
    pub pc: f64,
    /// Pooled (distributional) complexity.
    pub dc: f64,
    /// Pooled over flipped pairs only.
    pub dc_noised: f64,
}

/// [`Complexity`] of runs with `predictions[k]` trained on `noisy[k]`; `clean`
/// are the true labels, `classes` the number of classes.
pub fn complexity(predictions: &[Vec<i64>], noisy: &[Vec<i64>], clean: &[i64], classes: i64) -> Complexity {
    let residue = |v: i64, y: i64| (v - y).rem_euclid(classes);
    let n = clean.len();
    let mut pooled = Vec::with_capacity(n * predictions.len());
    let mut flipped = Vec::new();
    let mut per_point = 0.0;
    for z in 0..n {
        let pairs: Vec<(i64, i64)> =
            predictions.iter().zip(noisy).map(|(p, l)| (residue(p[z], clean[z]), residue(l[z], clean[z]))).collect();
        per_point += mutual_information_bits(&pairs);
        flipped.extend(pairs.iter().filter(|(_, b)| *b != 0));
        pooled.extend(pairs);
    }
    Complexity {
        pc: per_point / n.max(1) as f64,
        dc: mutual_information_bits(&pooled),
        dc_noised: mutual_information_bits(&flipped),
    }
}

/// Theorem II's bound on the memorization gap, √(C/2)/η, with C given in
/// bits (converted to nats).
pub fn theorem_ii_bound(complexity_bits: f64, eta: f64) -> f64 {
    (0.5 * complexity_bits * std::f64::consts::LN_2).sqrt() / eta
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::SeedRng;

    #[test]
    fn the_three_gaps_sum_to_the_generalization_gap() {
        let mut rng = SeedRng::new(1);
        for _ in 0..1000 {
            let v: Vec<f64> = (0..4).map(|_| rng.next_f64()).collect();
            let g = Gaps::new(v[0], v[1], v[2], v[3]);
            assert!((g.robustness + g.memorization + g.rationality - g.generalization).abs() < 1e-15);
            assert!(g.rrm_bound >= g.generalization - 1e-15);
        }
        let g = Gaps::new(0.99, 0.97, 0.90, 0.95);
        assert_eq!(g.rrm_bound, g.robustness + g.memorization, "a negative rationality gap adds nothing");
    }

    /// K runs of η-noise on n points with C classes; the classifier either
    /// copies the noisy labels or ignores them (predicts the clean label).
    fn runs(copies: bool, k: usize, n: usize, classes: i64, eta: f64) -> (Vec<Vec<i64>>, Vec<Vec<i64>>, Vec<i64>) {
        let mut rng = SeedRng::new(7);
        let clean: Vec<i64> = (0..n).map(|_| rng.below(classes as u64) as i64).collect();
        let mut noisy = vec![];
        let mut predictions = vec![];
        for _ in 0..k {
            let labels: Vec<i64> =
                clean
                    .iter()
                    .map(|&y| {
                        if rng.next_f64() < eta {
                            (y + 1 + rng.below(classes as u64 - 1) as i64) % classes
                        } else {
                            y
                        }
                    })
                    .collect();
            predictions.push(if copies { labels.clone() } else { clean.clone() });
            noisy.push(labels);
        }
        (predictions, noisy, clean)
    }

    #[test]
    fn complexity_is_log_classes_for_a_copier_and_zero_for_a_classifier_that_ignores_noise() {
        let classes = 10;
        let (p, l, y) = runs(true, 5, 20_000, classes, 0.05);
        let c = complexity(&p, &l, &y, classes);
        // On the flipped points the error is the noise: I = H(uniform on 9) = log2 9.
        assert!((c.dc_noised - 9f64.log2()).abs() < 0.05, "{c:?}");
        // Pooled over all points: H(b) = H_b(η) + η log2 9.
        let h = -(0.05f64 * 0.05f64.log2() + 0.95 * 0.95f64.log2()) + 0.05 * 9f64.log2();
        assert!((c.dc - h).abs() < 0.02, "{c:?} vs {h}");
        assert!(c.pc > 0.0);
        let (p, l, y) = runs(false, 5, 20_000, classes, 0.05);
        let c = complexity(&p, &l, &y, classes);
        assert_eq!((c.pc, c.dc, c.dc_noised), (0.0, 0.0, 0.0));
        // The bound: C = 0.02 bits and η = 0.05 give √(0.01·ln 2)/0.05.
        assert!((theorem_ii_bound(0.02, 0.05) - (0.01 * std::f64::consts::LN_2).sqrt() / 0.05).abs() < 1e-12);
    }

    #[test]
    fn mutual_information_of_hand_tables() {
        assert_eq!(mutual_information_bits(&[(0, 0), (1, 1)]), 1.0);
        assert_eq!(mutual_information_bits(&[(0, 0), (0, 1), (1, 0), (1, 1)]), 0.0);
        assert_eq!(mutual_information_bits(&[]), 0.0);
    }
}
