//! The graph-objective components: `greedy` (plain IM with OPIM-C at one
//! model), `lugreedy` (Chen et al. 2016) and `hiro`.

use tessera_sdk::{
    params, Cell, Component, Error, GraphObjective, GraphView, Host, Report, Result, SeedChoice, State, WeightedSeeds,
};

use crate::coverage::{greedy, Weighted};
use crate::hiro;
use crate::opim::{maximize, Settings, Solution, UpperBound};
use crate::rr::{Model, ReverseGraph, RrSets};

params! {
    /// Parameters of [`Greedy`].
    pub struct GreedyParams {
        /// ε of the (1 − 1/e − ε) guarantee.
        pub epsilon: f64 = 0.1,
        /// Failure probability δ (0: 1/n).
        pub delta: f64 = 0.0,
        /// Cap on RR sets (0: none; the guarantee may then not be certified).
        pub max_rr_sets: u64 = 0,
        /// R₁'s bound on the optimum: `greedy` (Cov₁(S)/(1 − 1/e)) or
        /// `tight` (OPIM-C's, over the greedy's prefixes: the same guarantee
        /// from fewer RR sets, so it stops sooner, with a weaker answer at
        /// large ε).
        pub upper_bound: String = "greedy".to_string(),
        /// |R₂| / |R₁|, in (0, 8]: RR sets that check the seeds per set that
        /// chooses them. 1 is the paper's; below 1 spends more of the sets
        /// on choosing (better seeds from as many sets, a lower certificate).
        pub validation_ratio: f64 = 1.0,
    }
}

impl GreedyParams {
    /// OPIM-C's settings for budget `k`.
    fn settings(&self, k: u32) -> Result<Settings> {
        let bound = match self.upper_bound.as_str() {
            "greedy" => UpperBound::Greedy,
            "tight" => UpperBound::Tight,
            other => return Err(Error::invalid_param("upper_bound", format!("`{other}`: use `greedy` or `tight`"))),
        };
        if !(MIN_VALIDATION_RATIO..=8.0).contains(&self.validation_ratio) {
            return Err(Error::invalid_param(
                "validation_ratio",
                format!("must be in [{MIN_VALIDATION_RATIO}, 8]: |R₂| / |R₁|, 1 in the paper (fewer checking sets cannot certify a ratio)"),
            ));
        }
        Ok(Settings {
            k,
            epsilon: self.epsilon,
            delta: self.delta,
            max_rr_sets: self.max_rr_sets,
            bound,
            validation_ratio: self.validation_ratio,
        })
    }
}

fn check_epsilon(epsilon: f64, delta: f64) -> Result<()> {
    if !(epsilon > 0.0 && epsilon < 1.0 - 1.0 / std::f64::consts::E) {
        return Err(Error::invalid_param("epsilon", "must be in (0, 1 − 1/e)"));
    }
    if !(0.0..1.0).contains(&delta) {
        return Err(Error::invalid_param("delta", "must be in [0, 1)"));
    }
    Ok(())
}

fn need_probabilities(graph: &GraphView) -> Result<()> {
    if !graph.has_probabilities() {
        return Err(Error::msg("the graph has no edge probabilities (set graph.probability_model)"));
    }
    Ok(())
}

fn report_solution(report: &mut Report, prefix: &str, s: &Solution) {
    report.scalar(&format!("{prefix}estimated_spread"), s.spread);
    // The plain greedy's certificate and what it took are its headlines.
    let mut figure = |name: &str, value: f64| {
        match prefix {
            "" => report.headline(name, value),
            _ => report.scalar(&format!("{prefix}{name}"), value),
        };
    };
    figure("certified_ratio", s.certified_ratio);
    figure("rr_sets", s.rr_sets as f64);
    report.scalar(&format!("{prefix}validation_rr_sets"), s.validation_sets as f64);
    report.scalar(&format!("{prefix}rr_entries"), s.rr_entries as f64);
    report.scalar(&format!("{prefix}opim_rounds"), s.rounds as f64);
}

/// Plain influence maximization at the graph's probabilities (for a
/// hyperparametric graph: at θ_c): OPIM-C over RR sets.
pub struct Greedy {
    params: GreedyParams,
}

impl Component for Greedy {
    /// Its fields are its parameters: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "greedy";
    const SUMMARY: &'static str =
        "Influence maximization at one model: greedy max coverage over RR sets with OPIM-C's (1 − 1/e − ε) stopping rule.";
    type Params = GreedyParams;

    fn new(params: GreedyParams) -> Result<Self> {
        check_epsilon(params.epsilon, params.delta)?;
        params.settings(1)?;
        Ok(Greedy { params })
    }
}

impl GraphObjective for Greedy {
    fn choose(&mut self, graph: &GraphView, budget: u32, host: &Host) -> Result<SeedChoice> {
        need_probabilities(graph)?;
        let reverse = ReverseGraph::new(graph);
        let probabilities = reverse.probabilities(graph);
        let model = Model::of_graph(&reverse, graph, &probabilities);
        let s = maximize(&model, &self.params.settings(budget)?, host.seed());
        let mut report = Report::new();
        report_solution(&mut report, "", &s);
        log::info!("greedy: {} RR sets, certified ratio {:.3}", s.rr_sets, s.certified_ratio);
        Ok(SeedChoice::single(s.seeds, report))
    }
}

/// The smallest `validation_ratio`: |R₂| = |R₁| / 20.
const MIN_VALIDATION_RATIO: f64 = 0.05;

/// `p(x_u, x_v)` of every in-edge (u, v), in reverse CSR order.
fn per_in_edge(graph: &GraphView, reverse: &ReverseGraph, p: impl Fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
    let d = graph.feature_dim as usize;
    let x = |u: u32| &graph.features.as_slice()[u as usize * d..(u as usize + 1) * d];
    (0..reverse.nodes)
        .flat_map(|v| reverse.in_neighbors(v).iter().map(move |&u| (u, v)))
        .map(|(u, v)| p(x(u), x(v)))
        .collect()
}

/// p_uv = σ(θᵀ[x_u; x_v]) of every in-edge (reverse CSR order).
fn probabilities_at(graph: &GraphView, reverse: &ReverseGraph, theta: &[f32]) -> Vec<f32> {
    let d = graph.feature_dim as usize;
    let score = |t: &[f32], x: &[f32]| t.iter().zip(x).map(|(t, x)| t * x).sum::<f32>();
    per_in_edge(graph, reverse, |xu, xv| sigmoid(score(&theta[..d], xu) + score(&theta[d..], xv)))
}

/// The hyperparametric probabilities p_uv = σ(θᵀ[x_u; x_v] ± B‖[x_u; x_v]‖₁):
/// the lowest (sign −1) or highest (+1) any θ in the box gives each in-edge
/// (reverse CSR order).
fn bound_probabilities(graph: &GraphView, reverse: &ReverseGraph, sign: f32) -> Vec<f32> {
    let d = graph.feature_dim as usize;
    let centre = graph.theta_center.as_slice();
    let b = graph.theta_radius as f32;
    per_in_edge(graph, reverse, |xu, xv| {
        let z: f32 = centre[..d].iter().zip(xu).chain(centre[d..].iter().zip(xv)).map(|(t, x)| t * x).sum();
        let l1: f32 = xu.iter().chain(xv).map(|x| x.abs()).sum();
        sigmoid(z + sign * b * l1)
    })
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn need_hyperparametric(graph: &GraphView, what: &str) -> Result<()> {
    if !graph.is_hyperparametric() {
        return Err(Error::msg(format!(
            "{what} needs a hyperparametric graph: set graph.probability_model = \"hyperparametric\" with graph.feature_dim >= 1"
        )));
    }
    Ok(())
}

/// LUGreedy (Chen, Lin, Tan, Zhao, Zhou, KDD 2016): greedy under the lowest
/// and under the highest probabilities the box allows; keep the set that
/// does better under the lowest.
pub struct LuGreedy {
    params: GreedyParams,
}

impl Component for LuGreedy {
    /// Its fields are its parameters: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "lugreedy";
    const SUMMARY: &'static str =
        "LUGreedy: greedy at the box's lower and upper edge probabilities; the better under the lower bound.";
    type Params = GreedyParams;

    fn new(params: GreedyParams) -> Result<Self> {
        check_epsilon(params.epsilon, params.delta)?;
        params.settings(1)?;
        Ok(LuGreedy { params })
    }
}

impl GraphObjective for LuGreedy {
    fn choose(&mut self, graph: &GraphView, budget: u32, host: &Host) -> Result<SeedChoice> {
        need_hyperparametric(graph, "lugreedy")?;
        let reverse = ReverseGraph::new(graph);
        let settings = self.params.settings(budget)?;
        let (lower, upper) = (bound_probabilities(graph, &reverse, -1.0), bound_probabilities(graph, &reverse, 1.0));
        let (lower, upper) = (Model::new(&reverse, &lower), Model::new(&reverse, &upper));
        let s_lower = maximize(&lower, &settings, host.seed());
        let s_upper = maximize(&upper, &settings, host.seed() ^ 1);
        // Judge both under the lower bound on the same fresh RR sets.
        let mut judge = RrSets::new();
        judge.extend_to(s_lower.rr_sets.max(10_000) as usize, &lower, host.seed() ^ 2);
        let (a, b) = (judge.spread(&s_lower.seeds, reverse.nodes), judge.spread(&s_upper.seeds, reverse.nodes));
        let mut report = Report::new();
        report_solution(&mut report, "lower_", &s_lower);
        report_solution(&mut report, "upper_", &s_upper);
        report.scalar("lower_set_spread_under_lower", a);
        report.scalar("upper_set_spread_under_lower", b);
        report.scalar("chose_upper", if b > a { 1.0 } else { 0.0 });
        Ok(SeedChoice::single(if b > a { s_upper.seeds } else { s_lower.seeds }, report))
    }
}

params! {
    /// Parameters of [`Hiro`].
    pub struct HiroParams {
        /// ℓ: models θ₁..θ_ℓ sampled uniformly from the box.
        pub thetas: u32 = 20,
        /// T: rounds of multiplicative weights (and seed sets in the answer).
        pub rounds: u32 = 20,
        /// RR sets per sampled model.
        pub rr_per_theta: u64 = 20_000,
    }
}

/// HIRO: the uniform distribution over the best responses S_1..S_T of a
/// multiplicative-weights game against nature's choice of θ.
pub struct Hiro {
    params: HiroParams,
}

impl Component for Hiro {
    /// Its fields are its parameters: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "hiro";
    const SUMMARY: &'static str =
        "HIRO: robust IM over a box of hyperparametric models by multiplicative weights over sampled θs (a distribution over T seed sets).";
    type Params = HiroParams;

    fn new(params: HiroParams) -> Result<Self> {
        if params.thetas == 0 {
            return Err(Error::invalid_param("thetas", "must be at least 1"));
        }
        if params.rounds == 0 {
            return Err(Error::invalid_param("rounds", "must be at least 1"));
        }
        if params.rr_per_theta == 0 {
            return Err(Error::invalid_param("rr_per_theta", "must be at least 1"));
        }
        Ok(Hiro { params })
    }
}

impl GraphObjective for Hiro {
    fn choose(&mut self, graph: &GraphView, budget: u32, host: &Host) -> Result<SeedChoice> {
        need_hyperparametric(graph, "hiro")?;
        let started = std::time::Instant::now();
        let reverse = ReverseGraph::new(graph);
        let n = reverse.nodes;
        let centre = graph.theta_center.as_slice();
        let b = graph.theta_radius;
        let mut rng = host.rng(1);
        let mut models = Vec::new();
        let mut greedy_values = Vec::new();
        for i in 0..self.params.thetas {
            let theta: Vec<f32> = centre.iter().map(|&c| c + ((2.0 * rng.next_f64() - 1.0) * b) as f32).collect();
            let probabilities = probabilities_at(graph, &reverse, &theta);
            let mut sets = RrSets::new();
            let model = Model::new(&reverse, &probabilities);
            sets.extend_to(self.params.rr_per_theta as usize, &model, host.seed() ^ (i as u64 + 1) << 40);
            let g = greedy(&[Weighted { sets: &sets, weight: n as f64 / sets.len() as f64 }], n, budget);
            greedy_values.push(g.covered.last().copied().unwrap_or(0.0));
            models.push(sets);
            host.progress(i as u64 + 1, self.params.thetas as u64 + self.params.rounds as u64, "sampling models");
        }
        let sampling_seconds = started.elapsed().as_secs_f64();
        let game = hiro::play(&models, &greedy_values, n, budget, self.params.rounds);
        let t = game.sets.len() as f64;
        let round_seconds = (started.elapsed().as_secs_f64() - sampling_seconds) / t.max(1.0);
        let sets: Vec<WeightedSeeds> =
            game.sets.iter().map(|s| WeightedSeeds { weight: 1.0 / t, seeds: s.clone().into() }).collect();
        let mut union: Vec<u32> = game.sets.iter().flatten().copied().collect();
        union.sort_unstable();
        union.dedup();
        let union_ratio = models
            .iter()
            .zip(&greedy_values)
            .map(|(m, &g)| if g > 0.0 { m.spread(&union, n) / g } else { 1.0 })
            .fold(f64::INFINITY, f64::min);
        let mut report = Report::new();
        report.scalar("eta", ((self.params.thetas as f64).ln() / (2.0 * t)).sqrt());
        report.scalar("sampling_seconds", sampling_seconds);
        report.scalar("seconds_per_round", round_seconds);
        report.headline("sampled_worst_case_ratio", game.worst_case_ratio());
        report.scalar("union_size", union.len() as f64);
        report.scalar("union_sampled_worst_case_ratio", union_ratio);
        let last = game.weights.last().cloned().unwrap_or_default();
        report.table(
            "nature_weights",
            &["theta", "greedy_value", "final_weight"],
            greedy_values
                .iter()
                .zip(&last)
                .enumerate()
                .map(|(i, (g, w))| vec![Cell::Integer(i as i64), Cell::Number(*g), Cell::Number(*w)])
                .collect(),
        );
        report.table("union", &["seed"], union.iter().map(|&u| vec![Cell::Integer(u as i64)]).collect());
        Ok(SeedChoice { sets: sets.into(), report })
    }
}
