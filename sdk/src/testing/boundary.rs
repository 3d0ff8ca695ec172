//! A component through the path the host takes, without the host: its
//! parameters parsed from a manifest's TOML (unknown keys refused, naming
//! the key), its constructor, and the boundary adapter every call crosses
//! (panics caught and named); reports checked against the host's contract.
//!
//! ```
//! use tessera_sdk::prelude::*;
//! use tessera_sdk::testing;
//!
//! struct Reverse;
//! impl Component for Reverse {
//!     const NAME: &'static str = "reverse";
//!     const SUMMARY: &'static str = "The stored order, reversed.";
//!     type Params = NoParams;
//!     fn new(_: NoParams) -> Result<Self> { Ok(Reverse) }
//! }
//! impl Sampler for Reverse {
//!     fn epoch_order(&mut self, layout: &StorageLayout, _: u64, _: &Host) -> Result<OrderStream> {
//!         Ok(Box::new(std::iter::once((0..layout.examples).rev().collect())))
//!     }
//! }
//!
//! let mut sampler = testing::sampler::<Reverse>("").unwrap();
//! assert_eq!(sampler.epoch_order(&testing::layout(3, 1), 0).unwrap(), vec![2, 1, 0]);
//! let refused = testing::sampler::<Reverse>("typo = 1").err().unwrap();
//! assert!(refused.to_string().contains("typo"));
//! ```

use abi_stable::std_types::{RResult, RSlice};

use crate::abi::PluginError;
use crate::ffi::{HostServices, MetricBox, SamplerBox};
use crate::{
    Candidates, Checkpoint, Chosen, Error, Metric, Observation, ObservationRequest, Report, Result, Sampler, Schedule,
    StorageLayout,
};

/// A boundary error as the author's [`Error`].
fn plain<T>(result: RResult<T, PluginError>) -> Result<T> {
    result.into_result().map_err(Error::from_ffi)
}

/// A report the host would refuse, as an error saying why.
fn checked(report: Report) -> Result<Report> {
    report.check().map_err(|detail| Error::msg(format!("the host would refuse this report: {detail}")))?;
    Ok(report)
}

/// A sampler behind the boundary, called as the host calls it (seed `seed`).
pub struct BoundarySampler {
    inner: SamplerBox,
    services: HostServices,
}

/// Sampler `S` built from the TOML text of its manifest table (without
/// `use`), as the host builds it; calls get seed 1 (see [`BoundarySampler::seed`]).
pub fn sampler<S: Sampler>(params: &str) -> Result<BoundarySampler> {
    Ok(BoundarySampler { inner: crate::new_sampler::<S>(params)?, services: HostServices::detached(1) })
}

impl BoundarySampler {
    /// The seed its calls get from now on.
    pub fn seed(mut self, seed: u64) -> Self {
        self.services = HostServices::detached(seed);
        self
    }

    /// The whole order of epoch `epoch`, its chunks joined.
    pub fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64) -> Result<Vec<u64>> {
        let mut stream = plain(self.inner.epoch_order(layout, epoch, &self.services))?;
        let mut ids = Vec::new();
        while let Some(chunk) = plain(stream.next_chunk())?.into_option() {
            ids.extend_from_slice(&chunk);
        }
        Ok(ids)
    }

    /// The observations it asks for.
    pub fn requires(&self) -> Vec<ObservationRequest> {
        self.inner.requires().into_vec()
    }

    /// Hands it observations before an epoch.
    pub fn observe(
        &mut self,
        schedule: &Schedule,
        checkpoint: &Checkpoint,
        observations: &[Observation],
    ) -> Result<()> {
        plain(self.inner.observe(schedule, checkpoint, RSlice::from_slice(observations), &self.services))
    }

    /// Its loss weights of epoch `epoch`, if any.
    pub fn example_weights(&mut self, layout: &StorageLayout, epoch: u64) -> Result<Option<Vec<f32>>> {
        Ok(plain(self.inner.example_weights(layout, epoch, &self.services))?.into_option().map(|w| w.into_vec()))
    }

    /// Its candidates per step, if it selects per step.
    pub fn candidates(&self) -> Result<Option<u32>> {
        Ok(plain(self.inner.candidates())?.into_option())
    }

    /// Its choice among one step's candidates.
    pub fn select(&mut self, candidates: &Candidates) -> Result<Chosen> {
        plain(self.inner.select(candidates, &self.services))
    }

    /// Its report, checked against the host's report contract.
    pub fn finish(&mut self) -> Result<Report> {
        checked(plain(self.inner.finish(&self.services))?)
    }
}

/// A metric behind the boundary, called as the host calls it (seed 1).
pub struct BoundaryMetric {
    inner: MetricBox,
    services: HostServices,
}

/// Metric `M` built from the TOML text of its manifest table (without `use`).
pub fn metric<M: Metric>(params: &str) -> Result<BoundaryMetric> {
    Ok(BoundaryMetric { inner: crate::new_metric::<M>(params)?, services: HostServices::detached(1) })
}

impl BoundaryMetric {
    /// The observations it asks for at each checkpoint.
    pub fn requires(&self) -> Vec<ObservationRequest> {
        self.inner.requires().into_vec()
    }

    /// Hands it one checkpoint's observations.
    pub fn observe(&mut self, checkpoint: &Checkpoint, observations: &[Observation]) -> Result<()> {
        plain(self.inner.observe(checkpoint, RSlice::from_slice(observations), &self.services))
    }

    /// Its report, checked against the host's report contract.
    pub fn finish(&mut self) -> Result<Report> {
        checked(plain(self.inner.finish(&self.services))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    crate::params! {
        /// A metric's parameters for these tests.
        pub struct NanParams {
            /// Report a NaN scalar.
            pub nan: bool = false,
        }
    }

    struct Nan(bool);

    impl Component for Nan {
        const NAME: &'static str = "nan";
        const SUMMARY: &'static str = "Reports 1, or NaN when told.";
        type Params = NanParams;
        fn new(p: NanParams) -> Result<Self> {
            Ok(Nan(p.nan))
        }
    }

    impl Metric for Nan {
        fn requires(&self) -> Vec<ObservationRequest> {
            vec![]
        }
        fn observe(&mut self, _: &Checkpoint, _: &Observations, _: &Host) -> Result<()> {
            panic!("deliberately")
        }
        fn finish(&mut self, _: &Host) -> Result<Report> {
            let mut report = Report::new();
            report.scalar("value", if self.0 { f64::NAN } else { 1.0 });
            Ok(report)
        }
    }

    #[test]
    fn the_real_path_parses_parameters_catches_panics_and_checks_reports() {
        assert!(metric::<Nan>("").unwrap().finish().is_ok());
        let refused = metric::<Nan>("nan = true").unwrap().finish().unwrap_err();
        assert!(refused.to_string().contains("the host would refuse this report: scalar `value` is NaN"), "{refused}");
        let typed = metric::<Nan>("nan = 3").err().unwrap();
        assert_eq!(typed.key(), Some("nan"));
        let checkpoint = Checkpoint { step: 0, epoch: 0.0, examples_seen: 0, is_final: false };
        let panicked = metric::<Nan>("").unwrap().observe(&checkpoint, &[]).unwrap_err();
        assert!(panicked.to_string().contains("nan panicked: deliberately"), "{panicked}");
    }
}
