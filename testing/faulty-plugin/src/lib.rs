//! Test fixture: components that panic or fail where a parameter says, so
//! the host's handling of misbehaving plugins can be tested on real libraries.

use tessera_sdk::{
    export_plugin, params, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations, OrderStream,
    Report, Result, Sampler, StorageLayout,
};

params! {
    /// Where to misbehave.
    pub struct FaultParams {
        /// `none`, `new` (constructor), `order` (making the order), `chunk`
        /// (inside the stream), `observe` or `finish`.
        pub panic_in: String = "none".to_string(),
        /// Return an error instead of panicking.
        pub error_instead: bool = false,
        /// Yield this example id once (out of range ids test the host's checks).
        pub bogus_id: Option<u64> = None,
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
    const SUMMARY: &'static str = "Sequential order that panics or fails where told (tests only).";
    type Params = FaultParams;

    fn new(params: FaultParams) -> Result<Self> {
        fault(&params, "new")?;
        Ok(FaultySampler(params))
    }
}

impl Sampler for FaultySampler {
    fn epoch_order(&mut self, layout: &StorageLayout, _epoch: u64, _host: &Host) -> Result<OrderStream> {
        fault(&self.0, "order")?;
        let params = self.0.clone();
        let n = layout.examples;
        let mut chunks: Vec<Vec<u64>> = vec![(0..n).collect()];
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
}

/// A metric that misbehaves on demand.
pub struct FaultyMetric(FaultParams);

impl Component for FaultyMetric {
    const NAME: &'static str = "metric";
    const SUMMARY: &'static str = "Counts checkpoints; panics or fails where told (tests only).";
    type Params = FaultParams;

    fn new(params: FaultParams) -> Result<Self> {
        fault(&params, "new")?;
        Ok(FaultyMetric(params))
    }
}

impl Metric for FaultyMetric {
    fn requires(&self) -> Vec<ObservationRequest> {
        vec![]
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, _observations: &Observations, _host: &Host) -> Result<()> {
        tessera_sdk::log::info!("faulty metric observed a checkpoint");
        fault(&self.0, "observe")
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        fault(&self.0, "finish")?;
        Ok(Report::new())
    }
}

export_plugin! {
    name: "faulty",
    samplers: [FaultySampler],
    metrics: [FaultyMetric],
}
