//! `tessera siamese`: finetuned variants answered as one multi-task model.

use std::process::ExitCode;

#[cfg(not(feature = "torch"))]
use tessera_engine::run;
#[cfg(feature = "torch")]
use tessera_engine::siamese;

/// `tessera siamese`.
#[cfg(not(feature = "torch"))]
pub(crate) fn siamese(_: &std::path::Path, _: &[String], _: i64, _: f64) -> ExitCode {
    eprintln!("error: {}", run::NO_LIBTORCH);
    ExitCode::from(2)
}

/// `tessera siamese`.
#[cfg(feature = "torch")]
pub(crate) fn siamese(dir: &std::path::Path, variants: &[String], batch: i64, seconds: f64) -> ExitCode {
    match siamese::evaluate_run(dir, variants, batch, seconds) {
        Ok(e) => {
            println!(
                "{:<32} {:>6} {:<10} {:>9} {:>9} {:>10}",
                "task", "branch", "block", "one pass", "separate", "max |Δ|"
            );
            for t in &e.tasks {
                println!(
                    "{:<40} {:>6} {:<10} {:>9.4} {:>9.4} {:>10.2e}",
                    t.variant,
                    t.branch,
                    t.branch_block,
                    t.siamese_accuracy,
                    t.separate_accuracy,
                    t.max_logit_difference
                );
            }
            println!(
                "T = {} tasks, batches of {}: one pass {:.0} inputs/s, separate models {:.0} inputs/s: {:.2}x",
                e.tasks.len(),
                e.batch,
                e.siamese_examples_per_second,
                e.separate_examples_per_second,
                e.speedup
            );
            println!("written to {}", dir.join("siamese.json").display());
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}
