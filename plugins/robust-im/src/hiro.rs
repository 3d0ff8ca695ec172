//! HIRO (Kalimeris, Kaplun, Singer, ICML 2019): robust influence
//! maximization over a box Θ of hyperparametric models, as a zero-sum game
//! between the seeder and nature, solved by multiplicative weights.
//!
//! Sample θ₁..θ_ℓ from Θ and give them weights w_i = 1/ℓ. For t = 1..T:
//! S_t = greedy best response to the mixture Σ_i w_i f_θi (max coverage over
//! every θ_i's RR sets, set weights w_i · n/|R_i|); nature's loss
//! loss_i += f_θi(S_t) / g_i (normalized by the per-θ greedy value g_i);
//! w_i ∝ exp(−η · loss_i) with η = √(ln ℓ / 2T), so weight moves to the
//! models where the seeds do worst. The answer is the uniform distribution
//! over S_1..S_T (and the union, at most kT seeds, as a bicriteria answer).

use crate::coverage::CoverageIndex;
use crate::rr::{seed_mask, RrSets};

/// The game's outcome.
#[derive(Debug, Clone)]
pub struct Game {
    /// S_1..S_T.
    pub sets: Vec<Vec<u32>>,
    /// Nature's weights over θ₁..θ_ℓ before each round (T rows of ℓ).
    pub weights: Vec<Vec<f64>>,
    /// f_θi(S_t) / g_i for each round t and model i (T rows of ℓ).
    pub normalized: Vec<Vec<f64>>,
}

impl Game {
    /// min over i of the mixed strategy's normalized value (1/T) Σ_t f_θi(S_t)/g_i.
    pub fn worst_case_ratio(&self) -> f64 {
        let t = self.normalized.len().max(1) as f64;
        let l = self.normalized.first().map_or(0, |r| r.len());
        (0..l).map(|i| self.normalized.iter().map(|row| row[i]).sum::<f64>() / t).fold(f64::INFINITY, f64::min)
    }
}

/// Plays T rounds over the models' RR collections `models` (one per θ_i)
/// with per-model greedy values `greedy_values` (g_i, in spread units) on a
/// graph of `nodes` nodes, k seeds a round.
pub fn play(models: &[RrSets], greedy_values: &[f64], nodes: u32, k: u32, rounds: u32) -> Game {
    let l = models.len();
    let eta = ((l as f64).ln() / (2.0 * rounds as f64)).sqrt();
    let mut loss = vec![0.0; l];
    let mut game = Game { sets: vec![], weights: vec![], normalized: vec![] };
    // The RR sets never change, only their weights: index them once.
    let index = CoverageIndex::new(&models.iter().collect::<Vec<_>>(), nodes);
    for _ in 0..rounds {
        let raw: Vec<f64> = loss.iter().map(|&x| (-eta * x).exp()).collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let set_weights: Vec<f64> =
            models.iter().zip(&weights).map(|(sets, w)| w * nodes as f64 / sets.len().max(1) as f64).collect();
        let seeds = index.greedy(&set_weights, k).seeds;
        let is_seed = seed_mask(&seeds, nodes);
        let values: Vec<f64> = models
            .iter()
            .zip(greedy_values)
            .map(|(sets, &g)| if g > 0.0 { (sets.spread_of(&is_seed) / g).min(1.0) } else { 1.0 })
            .collect();
        for (l, v) in loss.iter_mut().zip(&values) {
            *l += v;
        }
        game.sets.push(seeds);
        game.weights.push(weights);
        game.normalized.push(values);
    }
    game
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_move_to_the_model_the_seeds_serve_worst() {
        // Planted: under θ₁ node 0 reaches every root, under θ₂ node 1 does;
        // one seed. Any single set serves one model and misses the other.
        let mut a = RrSets::new();
        let mut b = RrSets::new();
        for root in 2..12u32 {
            a.push(&[root, 0]);
            b.push(&[root, 1]);
        }
        let g = [12.0, 12.0];
        let game = play(&[a.clone(), b.clone()], &g, 12, 1, 40);
        // Round 1: equal weights, ties go to node 0; nature then leans on θ₂.
        assert_eq!(game.sets[0], vec![0]);
        assert!(game.weights[1][1] > 0.5, "{:?}", game.weights[1]);
        // The mixed strategy serves both about equally: worst case near 1/2,
        // where either single set has worst case 0.
        let zeros = game.sets.iter().filter(|s| s[0] == 0).count();
        assert!((15..=25).contains(&zeros), "{zeros} of 40 rounds chose node 0");
        assert!(game.worst_case_ratio() > 0.4, "{}", game.worst_case_ratio());
        // With one dominant model, the weights stay uniform only if losses tie.
        let c = a.clone();
        let game = play(&[a, c], &g, 12, 1, 5);
        assert!(game.weights.iter().all(|w| (w[0] - 0.5).abs() < 1e-12));
    }
}
