//! Test fixture: components that panic, fail or break a plugin contract where
//! a parameter says, so the host's handling of misbehaving plugins can be
//! tested on real libraries.

use tessera_sdk::abi_stable::std_types::{RString, RVec};
use tessera_sdk::{
    export_plugin, params, Candidates, Cell, Checkpoint, Chosen, Component, Error, GraphObjective, GraphView, Host,
    LayerInfo, Metric, ObservationRequest, Observations, Oracle, OrderStream, Report, Result, Sampler, Sampling,
    Schedule, SeedChoice, Selection, Series, StorageLayout, Table, WeightedSeeds,
};

params! {
    /// Where and how to misbehave.
    pub struct FaultParams {
        /// `none`, `new` (constructor), `order` (making the order), `chunk`
        /// (inside the stream), `requires`, `observe`, `step` (a sampler's
        /// per-step choice), `finish`, `select` or `choose`.
        pub panic_in: String = "none".to_string(),
        /// Return an error instead of panicking.
        pub error_instead: bool = false,
        /// Yield this example id once (out of range ids test the host's checks).
        pub bogus_id: Option<u64> = None,
        /// Break a contract: samplers `repeat`, `omit`, `empty`; metrics
        /// `nan-scalar`, `ragged-table`, `uneven-series`, `repeated-scalar`;
        /// objectives `weights-0.6`, `negative-weight`, `nan-weight`,
        /// `no-sets`, `over-budget`, `not-a-node`, `host-name` (a figure
        /// named as one of the host's, kept apart); finetuners `bad-layer`,
        /// `host-name`; a selecting sampler's choice `choose-twice`,
        /// `choose-outside`, `choose-none`, `step-weight-nan`.
        pub breaks: String = "none".to_string(),
        /// A metric's or sampler's one observation request: `split/kind`
        /// (empty: none).
        pub request: String = String::new(),
        /// A sampler's declared mode: `permutation`, `subset` or `with-replacement`.
        pub sampling: String = "permutation".to_string(),
        /// A sampler's candidates per step (0: no per-step selection); it
        /// keeps the first `train.batch_size` of them.
        pub candidates: u32 = 0,
        /// A metric reads this file and reports its size as `path_bytes`
        /// (a relative path is the manifest's folder's, as the host resolves it).
        pub path: Option<std::path::PathBuf> = None,
    }
}

fn fault(params: &FaultParams, place: &str) -> Result<()> {
    if params.panic_in == place {
        if params.error_instead {
            return Err(Error::msg(format!("deliberate failure in {place}")));
        }
        panic!("deliberate panic in {place}");
    }
    Ok(())
}

/// A sequential sampler that misbehaves on demand.
pub struct FaultySampler(FaultParams);

impl Component for FaultySampler {
    const NAME: &'static str = "sampler";
    const SUMMARY: &'static str = "Sequential order that panics, fails or breaks its contract where told (tests only).";
    type Params = FaultParams;

    fn new(params: FaultParams) -> Result<Self> {
        fault(&params, "new")?;
        Ok(FaultySampler(params))
    }
}

/// The ids of an epoch as the sampler's `breaks` says.
fn epoch_ids(n: u64, breaks: &str) -> Vec<u64> {
    match breaks {
        "repeat" => (0..n).map(|i| if i == 1 { 0 } else { i }).collect(),
        "omit" => (0..n.saturating_sub(3)).collect(),
        "empty" => vec![],
        _ => (0..n).collect(),
    }
}

/// The one observation request `split/kind`, if any.
fn request(params: &FaultParams) -> Vec<ObservationRequest> {
    match params.request.split_once('/') {
        Some((split, kind)) => vec![ObservationRequest::new(split, kind)],
        None => vec![],
    }
}

impl Sampler for FaultySampler {
    fn sampling(&self) -> Sampling {
        match self.0.sampling.as_str() {
            "subset" => Sampling::Subset,
            "with-replacement" => Sampling::WithReplacement,
            _ => Sampling::Permutation,
        }
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        request(&self.0)
    }

    fn observe(&mut self, _: &Schedule, _: &Checkpoint, _: &Observations, _: &Host) -> Result<()> {
        fault(&self.0, "observe")
    }

    fn epoch_order(&mut self, layout: &StorageLayout, _epoch: u64, _host: &Host) -> Result<OrderStream> {
        fault(&self.0, "order")?;
        let params = self.0.clone();
        let mut chunks: Vec<Vec<u64>> = vec![epoch_ids(layout.examples, &params.breaks)];
        if let Some(id) = params.bogus_id {
            chunks.push(vec![id]);
        }
        let mut sent = 0;
        Ok(Box::new(std::iter::from_fn(move || {
            if sent == 1 && params.panic_in == "chunk" {
                panic!("deliberate panic in chunk");
            }
            sent += 1;
            if chunks.is_empty() {
                None
            } else {
                Some(chunks.remove(0))
            }
        })))
    }

    fn candidates(&self) -> Option<u32> {
        (self.0.candidates > 0).then_some(self.0.candidates)
    }

    fn select(&mut self, candidates: &Candidates, _host: &Host) -> Result<Chosen> {
        fault(&self.0, "step")?;
        let n = candidates.len() as u32;
        Ok(match self.0.breaks.as_str() {
            "choose-twice" => Chosen::positions(vec![0, 0]),
            "choose-outside" => Chosen::positions(vec![n]),
            "choose-none" => Chosen::positions(vec![]),
            "step-weight-nan" => Chosen::positions(vec![0]).weighted(vec![f32::NAN]),
            _ => Chosen::positions((0..n.min(candidates.batch_size as u32)).collect()),
        })
    }
}

/// A metric that misbehaves on demand; with a `request`, it reports the
/// requested integer array of the last checkpoint as the table `observed`.
pub struct FaultyMetric(FaultParams, Vec<i64>);

impl Component for FaultyMetric {
    const NAME: &'static str = "metric";
    const SUMMARY: &'static str = "Counts checkpoints; panics, fails or breaks its report where told (tests only).";
    type Params = FaultParams;

    fn new(params: FaultParams) -> Result<Self> {
        fault(&params, "new")?;
        Ok(FaultyMetric(params, Vec::new()))
    }
}

impl Metric for FaultyMetric {
    fn requires(&self) -> Vec<ObservationRequest> {
        if self.0.panic_in == "requires" {
            panic!("deliberate panic in requires");
        }
        request(&self.0)
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        tessera_sdk::log::info!("faulty metric observed a checkpoint");
        if let Some((split, kind)) = self.0.request.split_once('/') {
            if let Some(values) = observations.get(split, kind)?.as_i64() {
                self.1 = values.to_vec();
            }
        }
        fault(&self.0, "observe")
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        fault(&self.0, "finish")?;
        let mut report = Report::new();
        match self.0.breaks.as_str() {
            "nan-scalar" => report.scalar("score", f64::NAN),
            "repeated-scalar" => report.scalar("score", 1.0).scalar("score", 2.0),
            // Past the SDK's builders, which would refuse these.
            "ragged-table" => {
                let row: RVec<Cell> = vec![Cell::Integer(1)].into();
                let columns: RVec<RString> = vec!["a".into(), "b".into()].into();
                report.tables.push(Table { name: "t".into(), columns, rows: vec![row].into() });
                &mut report
            }
            "uneven-series" => {
                let (x, y): (RVec<f64>, RVec<f64>) = (vec![1.0, 2.0].into(), vec![1.0].into());
                report.series.push(Series { name: "curve".into(), x_label: "x".into(), y_label: "y".into(), x, y });
                &mut report
            }
            _ => report.scalar("score", 1.0),
        };
        if let Some(path) = &self.0.path {
            let bytes = std::fs::read(path).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
            report.scalar("path_bytes", bytes.len() as f64);
        }
        if !self.1.is_empty() {
            report.table("observed", &["value"], self.1.iter().map(|&v| vec![Cell::Integer(v)]).collect());
        }
        Ok(report)
    }
}

/// A graph objective that picks the first nodes and misbehaves on demand.
pub struct FaultyObjective(FaultParams);

impl Component for FaultyObjective {
    const NAME: &'static str = "objective";
    const SUMMARY: &'static str = "The first k nodes; panics, fails or breaks its answer where told (tests only).";
    type Params = FaultParams;

    fn new(params: FaultParams) -> Result<Self> {
        fault(&params, "new")?;
        Ok(FaultyObjective(params))
    }
}

impl GraphObjective for FaultyObjective {
    fn choose(&mut self, graph: &GraphView, budget: u32, _host: &Host) -> Result<SeedChoice> {
        fault(&self.0, "choose")?;
        let first: Vec<u32> = (0..budget.min(graph.nodes as u32)).collect();
        let set = |weight: f64, seeds: Vec<u32>| WeightedSeeds { weight, seeds: seeds.into() };
        let mut report = Report::new();
        let sets = match self.0.breaks.as_str() {
            "weights-0.6" => vec![set(0.6, first)],
            "negative-weight" => vec![set(-0.5, first.clone()), set(1.5, first)],
            "nan-weight" => vec![set(f64::NAN, first)],
            "no-sets" => vec![],
            "over-budget" => vec![set(1.0, (0..budget + 1).collect())],
            "not-a-node" => vec![set(1.0, vec![graph.nodes as u32])],
            "host-name" => {
                report.scalar("expected_spread", 1e9);
                vec![set(1.0, first)]
            }
            _ => vec![set(1.0, first)],
        };
        Ok(SeedChoice { sets: sets.into(), report })
    }
}

/// A finetuner that trains the first block and misbehaves on demand.
pub struct FaultyFinetuner(FaultParams);

impl Component for FaultyFinetuner {
    const NAME: &'static str = "finetuner";
    const SUMMARY: &'static str = "Trains the first block; panics, fails or breaks its answer where told (tests only).";
    type Params = FaultParams;

    fn new(params: FaultParams) -> Result<Self> {
        fault(&params, "new")?;
        Ok(FaultyFinetuner(params))
    }
}

impl tessera_sdk::Finetuner for FaultyFinetuner {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        fault(&self.0, "select")?;
        let mut report = Report::new();
        let trainable = match self.0.breaks.as_str() {
            "bad-layer" => vec![1000],
            "host-name" => {
                report.scalar("search_seconds", -1.0);
                vec![0]
            }
            _ => vec![0],
        };
        let _ = layers;
        Ok(Selection::layers(trainable, report))
    }
}

export_plugin! {
    name: "faulty",
    samplers: [FaultySampler],
    finetuners: [FaultyFinetuner],
    metrics: [FaultyMetric],
    graph_objectives: [FaultyObjective],
}
