//! The commands that read run folders: `report`, `compare`, `figures`,
//! `table`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_engine::report::{self, RunResults};

/// `tessera figures`: compare a run with its expected figures, or write them.
pub(crate) fn figures(dir: &std::path::Path, expected: &std::path::Path, write: bool) -> ExitCode {
    let found = match tessera_engine::figures::expected_of(dir) {
        Ok(f) => f,
        Err(e) => return super::user_error(e),
    };
    if write {
        let text = serde_json::to_string_pretty(&found).unwrap_or_default() + "\n";
        return match tessera_engine::report::write_atomic(expected, text.as_bytes()) {
            Ok(()) => {
                println!("{}: the figures of {} (commit {})", expected.display(), dir.display(), found.commit);
                ExitCode::SUCCESS
            }
            Err(e) => super::user_error(e),
        };
    }
    let want = match tessera_engine::figures::load(expected) {
        Ok(w) => w,
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#} (write it with --write from the run that made the figures)");
            return ExitCode::from(2);
        }
    };
    if want.kernels != found.kernels {
        let mode = |k: &str| if k.is_empty() { "native".to_string() } else { k.to_string() };
        println!(
            "note: the expected figures were made with {} kernels, this run with {}: rerun with --set experiment.reproducible={}",
            mode(&want.kernels),
            mode(&found.kernels),
            mode(&want.kernels)
        );
    } else if !want.cpu.is_empty() && want.cpu != found.cpu && want.kernels.is_empty() {
        println!(
            "note: the expected figures were made on {}, this machine is {}: libtorch's kernels differ by CPU, so trained figures may differ in their last bits and beyond",
            want.cpu, found.cpu
        );
    }
    let moved = tessera_engine::figures::compare(&want.variants, &found.variants);
    let count: usize = want.variants.values().map(|f| f.len()).sum();
    for m in &moved {
        println!("moved: {m}");
    }
    println!(
        "{}: {} of {count} figures as expected (made at commit {}), {} moved",
        expected.display(),
        count - moved.iter().filter(|m| m.expected.is_some()).count(),
        want.commit,
        moved.len()
    );
    if moved.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `tessera compare`: the table printed, the page written.
pub(crate) fn compare(
    dirs: &[PathBuf],
    out: Option<&std::path::Path>,
    options: &tessera_engine::compare::CompareOptions,
) -> ExitCode {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let out = out.map_or_else(|| PathBuf::from(format!("runs/compare-{stamp}")), std::path::Path::to_path_buf);
    match tessera_engine::compare::compare(dirs, &out, options) {
        Ok(table) => {
            print!("{table}");
            println!("the page: {}", out.join("compare.html").display());
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}

/// `tessera report`: tables, plots, the report page and the summary again
/// from results.json.
pub(crate) fn rerender(dir: &std::path::Path) -> ExitCode {
    let result = RunResults::load(dir).and_then(|r| {
        report::write_tables(&r, dir)?;
        let plots = report::write_plots(&r, dir)?;
        let page = tessera_engine::html::write_report_page(&r, dir, &plots)?;
        Ok((r, plots, page))
    });
    match result {
        Ok((results, plots, page)) => {
            println!("{}", report::summary_table(&results, 8));
            println!("{} plots in {}; the page: {}", plots.len(), dir.join("plots").display(), page.display());
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}

/// `tessera table`: a Markdown table of a run folder, seeds merged.
pub(crate) fn table(dir: &Path, columns: &[tessera_engine::table::Column]) -> ExitCode {
    match RunResults::load(dir).and_then(|r| tessera_engine::table::render(&r, columns)) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}
