//! Seeds merged: a variant's `name@seed` runs summarised per scalar
//! (mean, sample standard deviation, min, max).

use super::{RunResults, Status};

/// Mean, sample standard deviation, min and max of one scalar over the seeds
/// of a variant (`name@seed` runs).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedAggregate {
    /// The variant's name without `@seed`.
    pub variant: String,
    /// The report's role.
    pub role: String,
    /// The scalar.
    pub name: String,
    /// Values over the seeds that finished.
    pub values: Vec<f64>,
}

/// The mean of `values` (0 for none).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The sample standard deviation of `values` (0 for fewer than two).
pub fn sample_sd(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

impl SeedAggregate {
    /// The mean.
    pub fn mean(&self) -> f64 {
        mean(&self.values)
    }

    /// The sample standard deviation (0 for one value).
    pub fn sd(&self) -> f64 {
        sample_sd(&self.values)
    }
}

/// Every scalar of every repeated variant, over its seeds, in manifest order.
pub fn seed_aggregates(results: &RunResults) -> Vec<SeedAggregate> {
    let mut out: Vec<SeedAggregate> = Vec::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let Some((base, _)) = v.name.rsplit_once('@') else { continue };
        for (role, report) in &v.results {
            for (name, value) in &report.scalars {
                match out.iter_mut().find(|a| a.variant == base && &a.role == role && &a.name == name) {
                    Some(a) => a.values.push(*value),
                    None => out.push(SeedAggregate {
                        variant: base.to_string(),
                        role: role.clone(),
                        name: name.clone(),
                        values: vec![*value],
                    }),
                }
            }
        }
    }
    out
}
