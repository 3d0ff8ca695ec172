//! What the host lends a component during a call: its seed, progress and
//! cancellation (`Host`), the finetuning oracle, and a checkpoint's
//! observations.

use abi_stable::std_types::{RErr, ROk, RStr};

use crate::ffi::{HostServices, OracleServices};
use crate::rng::SeedRng;
use crate::types::{Array, Observation, OracleAnswer, OracleQuery};

use super::*;

/// The host's services during one call: the component's seed, progress,
/// cancellation.
pub struct Host<'a> {
    pub(super) raw: &'a HostServices,
}

impl<'a> Host<'a> {
    /// Wraps the raw services (used by the adapters and by host-side tests).
    pub fn new(raw: &'a HostServices) -> Self {
        Host { raw }
    }

    /// The component's seed in this variant: one per role (`sampler`,
    /// `finetuner`, `objective`, or a metric's report key, so two copies of
    /// one metric differ) and run seed, the same for each of its calls; the
    /// same manifest and seed give the same value. Draw with
    /// [`Host::rng`], a stream per purpose (e.g. the epoch).
    pub fn seed(&self) -> u64 {
        self.raw.seed
    }

    /// An independent random stream derived from the component's seed and `stream`.
    pub fn rng(&self, stream: u64) -> SeedRng {
        SeedRng::derive(self.raw.seed, stream)
    }

    /// Reports progress: `done` of `total` units.
    pub fn progress(&self, done: u64, total: u64, message: &str) {
        (self.raw.report_progress)(self.raw.context, done, total, RStr::from(message));
    }

    /// Whether the user asked to stop.
    pub fn is_cancelled(&self) -> bool {
        (self.raw.is_cancelled)(self.raw.context)
    }

    /// `Err(cancelled)` if the user asked to stop: call it in long loops.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::cancelled())
        } else {
            Ok(())
        }
    }
}

/// The host's training oracle, as a finetuner sees it.
pub struct Oracle<'a> {
    pub(super) raw: &'a mut OracleServices,
}

impl<'a> Oracle<'a> {
    /// Wraps the host's oracle (the host does this; tests may build their own
    /// [`OracleServices`] to drive a finetuner with a synthetic oracle).
    pub fn new(raw: &'a mut OracleServices) -> Self {
        Oracle { raw }
    }

    /// Trains with exactly the layers at positions `trainable` (plus a fresh
    /// head) from the pretrained weights, and returns the mean held-out
    /// accuracy over `folds` folds (1 = the validation split), each fold
    /// training the manifest's `train.oracle_epochs`.
    pub fn score(&mut self, trainable: &[u32], folds: u32) -> Result<f64> {
        Ok(self.ask(&OracleQuery::new(trainable).folds(folds))?.accuracy)
    }

    /// Trains and scores as `query` says (layers, folds, epochs) and returns
    /// every fold's accuracy and loss with their means.
    pub fn ask(&mut self, query: &OracleQuery) -> Result<OracleAnswer> {
        match (self.raw.ask)(self.raw.context, query) {
            ROk(v) => Ok(v),
            RErr(e) => Err(Error { kind: e.kind, message: e.message.into(), key: None }),
        }
    }
}

/// The observations of one checkpoint, as a metric sees them.
pub struct Observations<'a> {
    pub(super) items: &'a [Observation],
}

impl<'a> Observations<'a> {
    /// Wraps a slice of observations.
    pub fn new(items: &'a [Observation]) -> Self {
        Observations { items }
    }

    /// The array `kind` on `split`, or an error saying it is missing.
    pub fn get(&self, split: &str, kind: &str) -> Result<&'a Array> {
        self.items
            .iter()
            .find(|o| o.split.as_str() == split && o.kind.as_str() == kind)
            .map(|o| &o.array)
            .ok_or_else(|| Error::msg(format!("the host gave no `{kind}` observation on split `{split}`")))
    }

    /// Integer data of `kind` on `split`.
    pub fn i64(&self, split: &str, kind: &str) -> Result<&'a [i64]> {
        self.get(split, kind)?
            .as_i64()
            .ok_or_else(|| Error::msg(format!("observation `{kind}` on `{split}` is not integer")))
    }

    /// Float data of `kind` on `split`.
    pub fn f32(&self, split: &str, kind: &str) -> Result<&'a [f32]> {
        self.get(split, kind)?
            .as_f32()
            .ok_or_else(|| Error::msg(format!("observation `{kind}` on `{split}` is not float")))
    }

    /// All observations.
    pub fn all(&self) -> &'a [Observation] {
        self.items
    }
}
