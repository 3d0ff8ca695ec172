//! A small Tessera plugin with one component of each of the four kinds: a
//! sampler, a metric, a finetuner and a graph objective.
//!
//! Build it with `cargo build --release`, then name this crate's
//! `target/release` folder in a manifest's `plugin_paths` and use its
//! components as `hello.reverse`, `hello.confidence`, `hello.last-block` and
//! `hello.first-nodes`.

use tessera_sdk::prelude::*;

params! {
    /// Parameters of [`Reverse`].
    pub struct ReverseParams {
        /// Flip the direction every epoch instead of always going backwards.
        pub alternate: bool = false,
    }
}

/// Visits the stored examples from last to first.
pub struct Reverse {
    alternate: bool,
}

impl Component for Reverse {
    const NAME: &'static str = "reverse";
    const SUMMARY: &'static str = "Stored order, backwards (or alternating per epoch).";
    type Params = ReverseParams;

    fn new(params: ReverseParams) -> Result<Self> {
        Ok(Reverse { alternate: params.alternate })
    }
}

impl Sampler for Reverse {
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, _host: &Host) -> Result<OrderStream> {
        let n = layout.examples;
        let forward = self.alternate && epoch % 2 == 1;
        log::info!("epoch {epoch}: visiting {n} examples {}", if forward { "forwards" } else { "backwards" });
        let order: Vec<u64> = if forward { (0..n).collect() } else { (0..n).rev().collect() };
        // One chunk per block keeps memory bounded by the block size.
        let chunk = layout.block_size.max(1) as usize;
        let chunks: Vec<Vec<u64>> = order.chunks(chunk).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }
}

params! {
    /// Parameters of [`Confidence`].
    pub struct ConfidenceParams {
        /// The split to measure on.
        pub split: String = "test".to_string(),
    }
}

/// Mean probability the model gives its own prediction, per checkpoint.
pub struct Confidence {
    split: String,
    steps: Vec<f64>,
    values: Vec<f64>,
}

impl Component for Confidence {
    const NAME: &'static str = "confidence";
    const SUMMARY: &'static str = "Mean max-softmax probability on a split, per checkpoint.";
    type Params = ConfidenceParams;

    fn new(params: ConfidenceParams) -> Result<Self> {
        Ok(Confidence { split: params.split, steps: vec![], values: vec![] })
    }
}

impl Metric for Confidence {
    fn requires(&self) -> Vec<ObservationRequest> {
        vec![ObservationRequest::new(&self.split, observation::PROBABILITIES)]
    }

    fn observe(&mut self, checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let probabilities = observations.get(&self.split, observation::PROBABILITIES)?;
        let classes =
            probabilities.shape.get(1).copied().ok_or_else(|| Error::msg("probabilities must be [n, classes]"))?
                as usize;
        let values = probabilities.as_f32().ok_or_else(|| Error::msg("probabilities must be floats"))?;
        let rows = values.chunks(classes);
        let n = rows.len().max(1) as f64;
        let mean = rows.map(|row| row.iter().cloned().fold(0.0f32, f32::max) as f64).sum::<f64>() / n;
        self.steps.push(checkpoint.step as f64);
        self.values.push(mean);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        let mut report = Report::new();
        if let Some(last) = self.values.last() {
            report.scalar("confidence", *last);
        }
        report.series("confidence", "step", "mean max probability", self.steps.clone(), self.values.clone());
        Ok(report)
    }
}

/// Trains the last block before the head (and the head), without asking
/// the oracle: the simplest finetuner.
pub struct LastBlock;

impl Component for LastBlock {
    const NAME: &'static str = "last-block";
    const SUMMARY: &'static str = "Trains the last block before the head.";
    type Params = NoParams;

    fn new(_: NoParams) -> Result<Self> {
        Ok(LastBlock)
    }
}

impl Finetuner for LastBlock {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        let last = layers.len().checked_sub(2).map(|i| layers[i].position);
        Ok(Selection::layers(last.into_iter().collect(), Report::new()))
    }
}

/// Seeds the graph with its first `budget` nodes: a baseline to beat.
pub struct FirstNodes;

impl Component for FirstNodes {
    const NAME: &'static str = "first-nodes";
    const SUMMARY: &'static str = "The first k nodes as the seed set.";
    type Params = NoParams;

    fn new(_: NoParams) -> Result<Self> {
        Ok(FirstNodes)
    }
}

impl GraphObjective for FirstNodes {
    fn choose(&mut self, graph: &GraphView, budget: u32, _host: &Host) -> Result<SeedChoice> {
        Ok(SeedChoice::single((0..budget.min(graph.nodes as u32)).collect(), Report::new()))
    }
}

export_plugin! {
    name: "hello",
    samplers: [Reverse],
    finetuners: [LastBlock],
    metrics: [Confidence],
    graph_objectives: [FirstNodes],
}
