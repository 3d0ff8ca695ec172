//! The metrics' side of a unit: their final reports, keyed by id.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::plugin::{CallContext, MetricHandle};
use crate::report::ReportJson;

/// Asks every metric for its report, keyed by its id (`id#2`, … for repeats).
pub(super) fn finish_metrics(
    metrics: &mut [MetricHandle],
    contexts: &[CallContext],
    reports: &mut BTreeMap<String, ReportJson>,
) -> Result<()> {
    for (metric, mctx) in metrics.iter_mut().zip(contexts) {
        let report = metric.finish(mctx)?;
        let mut key = metric.id.clone();
        let mut n = 2;
        while reports.contains_key(&key) {
            key = format!("{}#{n}", metric.id);
            n += 1;
        }
        reports.insert(key, crate::contract::plugin_report(&metric.id, &report)?);
    }
    Ok(())
}
