//! The metrics' side of a unit: their final reports, keyed by id.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;

use crate::plugin::{CallContext, MetricHandle};
use crate::report::ReportJson;

/// Asks every metric for its report, keyed by its id (`id#2`, … for
/// repeats); their arrays go under `dir` (see `super::arrays`).
pub(super) fn finish_metrics(
    metrics: &mut [MetricHandle],
    contexts: &[CallContext],
    reports: &mut BTreeMap<String, ReportJson>,
    (dir, variant): (&Path, &str),
) -> Result<()> {
    let roles = metric_roles(metrics);
    for ((metric, mctx), role) in metrics.iter_mut().zip(contexts).zip(roles) {
        let report = metric.finish(mctx)?;
        let kept = super::arrays::kept_report(dir, variant, &role, &metric.id, &report)?;
        reports.insert(role, kept);
    }
    Ok(())
}

/// The role of each metric, its report's key: its id, and `id#2`, `id#3`,
/// … for further copies of one metric in a variant.
pub(super) fn metric_roles(metrics: &[MetricHandle]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    metrics
        .iter()
        .map(|m| {
            let copies = seen.entry(&m.id).or_default();
            *copies += 1;
            if *copies == 1 {
                m.id.clone()
            } else {
                format!("{}#{copies}", m.id)
            }
        })
        .collect()
}

/// A call context per metric, seeded by its role: two copies of one metric
/// get different seeds.
pub(super) fn metric_contexts(
    metrics: &[MetricHandle],
    seed: u64,
    cancel: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<CallContext> {
    metric_roles(metrics)
        .iter()
        .map(|role| CallContext::new(super::setup::role_seed(seed, role), cancel.clone()))
        .collect()
}
