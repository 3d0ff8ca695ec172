//! Seed sets that ignore the diffusion model: highest out-degree, or random.

use tessera_sdk::{params, Component, Error, GraphObjective, GraphView, Host, Report, Result, SeedChoice, State};

/// The k nodes of highest out-degree (ties broken by lower id).
pub struct TopDegree;

impl Component for TopDegree {
    /// Its fields are its parameters: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "degree";
    const SUMMARY: &'static str = "The k nodes of highest out-degree.";
    type Params = tessera_sdk::NoParams;

    fn new(_: tessera_sdk::NoParams) -> Result<Self> {
        Ok(TopDegree)
    }
}

impl GraphObjective for TopDegree {
    fn choose(&mut self, graph: &GraphView, budget: u32, _host: &Host) -> Result<SeedChoice> {
        let n = graph.nodes as u32;
        let mut nodes: Vec<u32> = (0..n).collect();
        nodes.sort_by_key(|&u| (std::cmp::Reverse(graph.out_degree(u)), u));
        nodes.truncate(budget as usize);
        let mut report = Report::new();
        let covered: u64 = nodes.iter().map(|&u| graph.out_degree(u)).sum();
        report.scalar("seed_out_degree_sum", covered as f64);
        Ok(SeedChoice::single(nodes, report))
    }
}

params! {
    /// Parameters of [`RandomSeeds`].
    pub struct RandomParams {
        /// Number of random sets drawn (the answer is uniform over them).
        pub draws: u32 = 1,
    }
}

/// k nodes drawn uniformly without replacement.
pub struct RandomSeeds {
    draws: u32,
}

impl Component for RandomSeeds {
    /// Its fields are its parameters: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "random";
    const SUMMARY: &'static str = "k nodes uniformly at random (a distribution over `draws` sets).";
    type Params = RandomParams;

    fn new(params: RandomParams) -> Result<Self> {
        if params.draws == 0 {
            return Err(Error::invalid_param("draws", "must be at least 1"));
        }
        Ok(RandomSeeds { draws: params.draws })
    }
}

impl GraphObjective for RandomSeeds {
    fn choose(&mut self, graph: &GraphView, budget: u32, host: &Host) -> Result<SeedChoice> {
        let mut sets = Vec::new();
        for draw in 0..self.draws {
            let mut rng = host.rng(draw as u64);
            let mut nodes: Vec<u32> = (0..graph.nodes as u32).collect();
            let k = (budget as usize).min(nodes.len());
            // Partial Fisher–Yates: the first k positions are a uniform k-subset.
            for i in 0..k {
                let j = i + rng.below((nodes.len() - i) as u64) as usize;
                nodes.swap(i, j);
            }
            nodes.truncate(k);
            sets.push(tessera_sdk::WeightedSeeds { weight: 1.0 / self.draws as f64, seeds: nodes.into() });
        }
        Ok(SeedChoice { sets: sets.into(), report: Report::new() })
    }
}
