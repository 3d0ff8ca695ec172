//! Functional distance between models, and where a run reaches a loss level.

/// Mean over points of d_TV(p, q) = ½ Σ_k |p_k − q_k| between two models'
/// softmax outputs (`points × classes`, row-major): 0 for identical models,
/// symmetric, at most 1.
pub fn mean_total_variation(p: &[f32], q: &[f32], classes: usize) -> f64 {
    assert_eq!(p.len(), q.len(), "the two models' outputs differ in size");
    let points = p.len() / classes.max(1);
    if points == 0 {
        return 0.0;
    }
    let total: f64 = p
        .chunks_exact(classes)
        .zip(q.chunks_exact(classes))
        .map(|(a, b)| 0.5 * a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>())
        .sum();
    total / points as f64
}

/// Where a run first reaches held-out loss `level`: the checkpoints `i` and
/// `i + 1` with L_i ≥ level ≥ L_{i+1}, and α = (L_i − level)/(L_i − L_{i+1}),
/// so the model at the level is (1 − α)·model_i + α·model_{i+1} (outputs
/// interpolated). `None` if the run never crosses the level downwards.
pub fn crossing(losses: &[f64], level: f64) -> Option<(usize, f64)> {
    losses.windows(2).position(|w| w[0] >= level && level >= w[1]).map(|i| {
        let drop = losses[i] - losses[i + 1];
        (i, if drop > 0.0 { (losses[i] - level) / drop } else { 0.0 })
    })
}

/// The softmax outputs of a run at loss `level`: its checkpoints' outputs
/// (`outputs[i]`, one slice per checkpoint) interpolated at the crossing.
pub fn outputs_at(losses: &[f64], outputs: &[&[f32]], level: f64) -> Option<Vec<f32>> {
    let (i, alpha) = crossing(losses, level)?;
    let (a, b) = (outputs[i], outputs[i + 1]);
    Some(a.iter().zip(b).map(|(x, y)| ((1.0 - alpha) * *x as f64 + alpha * *y as f64) as f32).collect())
}

/// `count` loss levels spread evenly over the range every run crosses: from
/// the highest of the runs' lowest losses up to the lowest of their first
/// losses, 5 % in from each end. Empty when the runs share no range.
pub fn shared_levels(runs: &[Vec<f64>], count: usize) -> Vec<f64> {
    let top = runs.iter().filter_map(|l| l.first().copied()).fold(f64::INFINITY, f64::min);
    let bottom = runs.iter().map(|l| l.iter().copied().fold(f64::INFINITY, f64::min)).fold(f64::NEG_INFINITY, f64::max);
    if bottom.partial_cmp(&top) != Some(std::cmp::Ordering::Less) || count == 0 {
        return vec![];
    }
    let (lo, hi) = (bottom + 0.05 * (top - bottom), top - 0.05 * (top - bottom));
    if count == 1 {
        return vec![(lo + hi) / 2.0];
    }
    (0..count).map(|k| hi - (hi - lo) * k as f64 / (count - 1) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::SeedRng;

    fn random_outputs(points: usize, classes: usize, seed: u64) -> Vec<f32> {
        let mut rng = SeedRng::new(seed);
        let mut out = Vec::new();
        for _ in 0..points {
            let raw: Vec<f64> = (0..classes).map(|_| rng.next_f64() + 1e-3).collect();
            let sum: f64 = raw.iter().sum();
            out.extend(raw.iter().map(|v| (v / sum) as f32));
        }
        out
    }

    #[test]
    fn total_variation_is_zero_for_identical_models_symmetric_and_at_most_one() {
        let p = random_outputs(50, 4, 1);
        let q = random_outputs(50, 4, 2);
        assert_eq!(mean_total_variation(&p, &p, 4), 0.0);
        let (pq, qp) = (mean_total_variation(&p, &q, 4), mean_total_variation(&q, &p, 4));
        assert_eq!(pq, qp);
        assert!(pq > 0.0 && pq <= 1.0);
        // Disjoint one-hot outputs are at distance exactly 1.
        let a = [1.0f32, 0.0, 0.0, 1.0];
        let b = [0.0f32, 1.0, 1.0, 0.0];
        assert!((mean_total_variation(&a, &b, 2) - 1.0).abs() < 1e-12);
        // Hand-computed: ½(|0.5−0.2| + |0.5−0.8|) = 0.3.
        assert!((mean_total_variation(&[0.5, 0.5], &[0.2, 0.8], 2) - 0.3).abs() < 1e-7);
    }

    #[test]
    fn loss_levels_pick_the_right_checkpoints_on_synthetic_curves() {
        // A curve with a bump: the first downward crossing counts.
        let losses = [2.0, 1.5, 1.0, 1.2, 0.8, 0.5];
        assert_eq!(crossing(&losses, 1.75), Some((0, 0.5)));
        assert_eq!(crossing(&losses, 1.5), Some((0, 1.0)));
        assert_eq!(crossing(&losses, 1.1).map(|c| c.0), Some(1));
        let (i, a) = crossing(&losses, 0.9).unwrap();
        assert_eq!(i, 3);
        assert!((a - 0.75).abs() < 1e-12);
        assert_eq!(crossing(&losses, 0.4), None);
        assert_eq!(crossing(&losses, 2.5), None);
        // Outputs interpolate linearly between the two checkpoints.
        let outputs: Vec<Vec<f32>> = (0..6).map(|i| vec![i as f32 / 10.0, 1.0 - i as f32 / 10.0]).collect();
        let slices: Vec<&[f32]> = outputs.iter().map(|o| o.as_slice()).collect();
        let at = outputs_at(&losses, &slices, 1.75).unwrap();
        assert!((at[0] - 0.05).abs() < 1e-6 && (at[1] - 0.95).abs() < 1e-6);
        // Two runs, one slower: the shared levels lie within both.
        let fast = vec![2.0, 1.0, 0.5, 0.3];
        let slow = vec![1.8, 1.4, 1.0, 0.7];
        let levels = shared_levels(&[fast.clone(), slow.clone()], 5);
        assert_eq!(levels.len(), 5);
        assert!(levels.iter().all(|&l| l < 1.8 && l > 0.7));
        assert!(levels.iter().all(|&l| crossing(&fast, l).is_some() && crossing(&slow, l).is_some()));
        assert!(shared_levels(&[vec![2.0, 1.5], vec![1.0, 0.5]], 3).is_empty(), "no shared range");
    }
}
