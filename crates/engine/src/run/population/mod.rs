//! `population` experiments: each unit trains a group of runs (one run, a
//! fork group, or an architecture's runs over its pretrained encoder) and
//! saves its members; the variant's reduce step joins the parts in row
//! order, saves `population/<variant>/` before any metric runs, and hands
//! the matrices to the metrics in one observation.

use crate::error::Result;

use crate::manifest::Variant;
use crate::population::{PopulationPlan, RunSpec};

#[cfg(feature = "torch")]
mod members;
#[cfg(feature = "torch")]
mod resume;
#[cfg(feature = "torch")]
pub(super) use members::{engine_report, observe_population, reduce, run_part};

/// The folder of a unit's part of the population.
pub(super) const PART: &str = "population-part";

/// The population's plan for `variant` (its runs in row order, grouped).
pub(super) fn groups(variant: &Variant) -> Result<Vec<Vec<RunSpec>>> {
    let s = &variant.settings;
    let plan = PopulationPlan::new(&s.population, &s.train)?;
    Ok(plan.groups(&s.population, &s.pretrain))
}

/// Without libtorch there are no members to reduce.
#[cfg(not(feature = "torch"))]
pub(super) fn reduce(
    _: &super::Session,
    variant: &Variant,
    _: &[std::path::PathBuf],
    _: &super::RunOptions,
    _: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, crate::report::ReportJson>> {
    crate::error::bail!("variant `{}`: {}", variant.name, super::NO_LIBTORCH)
}
