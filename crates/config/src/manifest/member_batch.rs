//! `population.batch`: how many runs of a population train as one batched
//! model, a number or `"auto"`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::reference::SettingType;

/// How many consecutive runs of one architecture and setting train as one
/// batched model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberBatch {
    /// Up to this many (1: each run alone).
    Runs(usize),
    /// Where the population can batch, up to [`MemberBatch::AUTO_RUNS`] a
    /// unit of the plan, split further by `population.batch_memory_mb`
    /// (and on a CPU a cache share) once the model's size is known;
    /// elsewhere each run alone.
    Auto,
}

impl MemberBatch {
    /// The most runs a unit takes under `"auto"`: past 64 small models a
    /// batch gains little on a CPU, and fewer, larger units keep cores idle.
    pub const AUTO_RUNS: usize = 64;

    /// The most runs one unit of the plan takes, `refused` saying whether
    /// the population cannot batch.
    pub fn unit_runs(self, refused: bool) -> usize {
        match (self, refused) {
            (MemberBatch::Runs(k), _) => k,
            (MemberBatch::Auto, true) => 1,
            (MemberBatch::Auto, false) => Self::AUTO_RUNS,
        }
    }

    /// Whether more than one run may train at once.
    pub fn batches(self) -> bool {
        self != MemberBatch::Runs(1)
    }
}

impl Default for MemberBatch {
    fn default() -> Self {
        MemberBatch::Runs(1)
    }
}

impl fmt::Display for MemberBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberBatch::Runs(k) => write!(f, "{k}"),
            MemberBatch::Auto => write!(f, "\"auto\""),
        }
    }
}

impl Serialize for MemberBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MemberBatch::Runs(k) => serializer.serialize_u64(*k as u64),
            MemberBatch::Auto => serializer.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for MemberBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberBatchVisitor)
    }
}

struct MemberBatchVisitor;

impl Visitor<'_> for MemberBatchVisitor {
    type Value = MemberBatch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of runs (1 to 4096) or \"auto\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MemberBatch, E> {
        usize::try_from(v).map(MemberBatch::Runs).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MemberBatch, E> {
        usize::try_from(v).map(MemberBatch::Runs).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MemberBatch, E> {
        match v {
            "auto" => Ok(MemberBatch::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl SettingType for MemberBatch {
    fn describe() -> String {
        "integer ≥ 1, or `\"auto\"`".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Table {
        batch: MemberBatch,
    }

    fn parsed(text: &str) -> Result<MemberBatch, toml::de::Error> {
        toml::from_str::<Table>(text).map(|t| t.batch)
    }

    #[test]
    fn a_batch_is_a_number_of_runs_or_auto_and_writes_back_as_read() {
        assert_eq!(parsed("batch = 8").unwrap(), MemberBatch::Runs(8));
        assert_eq!(parsed("batch = \"auto\"").unwrap(), MemberBatch::Auto);
        for text in ["batch = -1", "batch = \"all\"", "batch = 2.5"] {
            let error = parsed(text).unwrap_err().to_string();
            assert!(error.contains("a number of runs (1 to 4096) or \"auto\""), "{text}: {error}");
        }
        for batch in [MemberBatch::Runs(3), MemberBatch::Auto] {
            let text = toml::to_string(&Table { batch }).unwrap();
            assert_eq!(parsed(&text).unwrap(), batch);
        }
    }

    #[test]
    fn auto_batches_only_a_population_that_can() {
        assert_eq!(MemberBatch::Auto.unit_runs(false), MemberBatch::AUTO_RUNS);
        assert_eq!(MemberBatch::Auto.unit_runs(true), 1);
        assert_eq!(MemberBatch::Runs(5).unit_runs(false), 5);
        assert!(!MemberBatch::Runs(1).batches() && MemberBatch::Auto.batches());
    }
}
