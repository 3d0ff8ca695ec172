//! `tessera check`: a manifest against the plugins, without running it.

use std::process::ExitCode;

use tessera_engine::run;

use crate::args::{overrides, search, Cli};
use crate::commands::plugins::print_load_failures;

/// `tessera check`.
pub(crate) fn check(cli: &Cli, manifest: &std::path::Path, set: &[String], verbose: bool) -> ExitCode {
    let overrides = match overrides(set) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run::prepare(manifest, &overrides, &search(cli)) {
        Ok(session) => {
            print_load_failures(&session.registry, verbose);
            let names: Vec<&str> = session.variants.iter().map(|v| v.name.as_str()).collect();
            println!("{}: ok ({} variants: {})", manifest.display(), names.len(), names.join(", "));
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            ExitCode::from(2)
        }
    }
}
