//! `population` experiments: each unit trains a group of runs (one run, a
//! fork group, or an architecture's runs over its pretrained encoder) and
//! saves its members; the variant's reduce step joins the parts in row
//! order, saves `population/<variant>/` before any metric runs, and hands
//! the matrices to the metrics in one observation.

use crate::error::Result;

use std::collections::BTreeSet;

use super::plan::Work;
use crate::manifest::{MemberBatch, PretrainMethod, Variant};
use crate::population::{PopulationPlan, RunSpec};

#[cfg(feature = "torch")]
mod members;
#[cfg(feature = "torch")]
mod resume;
#[cfg(feature = "torch")]
pub(super) use members::{encoders_dir, engine_report, observe_population, reduce, run_part, run_pretrain};

/// The folder of a unit's part of the population.
pub(super) const PART: &str = "population-part";

/// The population's units of work for `variant`: when its runs start from
/// a pretrained encoder, first a unit per architecture that pretrains it;
/// then its runs in row order, grouped, each group with the index of the
/// work it needs (its architecture's encoder).
pub(super) fn works(variant: &Variant) -> Result<Vec<(Work, Option<usize>)>> {
    let s = &variant.settings;
    let plan = PopulationPlan::new(&s.population, &s.train)?;
    let k = crate::population::unit_runs(&s.population);
    // Under "auto", a plugin's sampler trains each run alone.
    let batches = k > 1 && !(s.population.batch == MemberBatch::Auto && variant.sampler.is_some());
    let unit = |runs: Vec<RunSpec>| Work::PopulationRuns { batched: batches && runs.len() > 1, runs };
    let groups = plan.batches(&s.population, k);
    if s.pretrain.method == PretrainMethod::None {
        return Ok(groups.into_iter().map(|runs| (unit(runs), None)).collect());
    }
    let architectures: Vec<usize> =
        plan.runs.iter().map(|r| r.architecture).collect::<BTreeSet<_>>().into_iter().collect();
    let mut works: Vec<(Work, Option<usize>)> = (architectures.iter())
        .map(|&architecture| {
            let model = crate::population::describe(&plan.architectures[architecture].0);
            (Work::Pretrain { architecture, model }, None)
        })
        .collect();
    for runs in groups {
        let pretrain = architectures.iter().position(|&a| a == runs[0].architecture);
        works.push((unit(runs), pretrain));
    }
    Ok(works)
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
