//! Graph runs without libtorch. Loading libtorch costs every `tessera`
//! process about 115 MB before it does anything, and graph experiments never
//! use it. `make` therefore also builds this crate without its `torch`
//! feature, as `tessera-graph` beside `tessera`; `tessera run`, `resume`,
//! `worker` and `collect` of graph-only work replace themselves with it (same
//! arguments, same results), so the process's memory is the graph's and the
//! algorithm's. Where the runner is missing, or `TESSERA_GRAPH_RUNNER=0`, the
//! work runs in this process as before.

use std::path::{Path, PathBuf};

/// The runner's file name, beside `tessera`.
pub const GRAPH_RUNNER: &str = "tessera-graph";

/// `TESSERA_GRAPH_RUNNER=0` keeps graph work in the `tessera` process.
pub const GRAPH_RUNNER_ENV: &str = "TESSERA_GRAPH_RUNNER";

/// Whether a manifest's text asks for graph experiments only: its
/// `[experiment]` kind is `graph` and no `[[variant]]` sets another.
/// Anything unclear (a parse error, say) counts as no, so the full build
/// handles it and reports it.
pub fn graph_only(text: &str) -> bool {
    let Ok(root) = text.parse::<toml::Table>() else { return false };
    let top = kind_of(&root) == Some("graph");
    let variants = match root.get("variant") {
        None => true,
        Some(toml::Value::Array(list)) => list.iter().all(|v| match v.as_table() {
            Some(table) => matches!(kind_of(table), None | Some("graph")),
            None => false,
        }),
        Some(_) => false,
    };
    top && variants
}

/// The `experiment.kind` a table sets (`""` if it is not a string).
fn kind_of(table: &toml::Table) -> Option<&str> {
    table.get("experiment")?.get("kind").map(|kind| kind.as_str().unwrap_or(""))
}

/// Whether `--set` overrides leave the experiment's kind alone.
pub fn keeps_kind(overrides: &[String]) -> bool {
    !overrides.iter().any(|o| o.trim_start().starts_with("experiment.kind"))
}

/// Whether a run folder holds graph work only (its resolved manifest).
pub fn run_folder_graph_only(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("manifest.resolved.toml")).is_ok_and(|text| graph_only(&text))
}

/// The runner beside this binary, if there is one and it may be used.
pub fn runner() -> Option<PathBuf> {
    if std::env::var(GRAPH_RUNNER_ENV).is_ok_and(|v| v == "0") {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let runner = exe.with_file_name(GRAPH_RUNNER);
    (runner.is_file() && runner != exe).then_some(runner)
}

/// Where `graph_only` and this build has libtorch: replaces this process
/// with the runner, given the same arguments. Returns when it does not (no
/// runner, training work, a build without libtorch, or exec failed, which
/// is logged and leaves the work here).
pub fn hand_off_graph_work(graph_only: bool) {
    if !cfg!(feature = "torch") || !graph_only {
        return;
    }
    let Some(runner) = runner() else { return };
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(&runner).args(std::env::args_os().skip(1)).exec();
    log::warn!("could not start {} ({error}); running here", runner.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_manifests_that_are_all_graph_hand_off() {
        assert!(graph_only("[experiment]\nkind = \"graph\"\n[[variant]]\nname = \"a\"\n"));
        assert!(graph_only("[experiment]\nkind = \"graph\"\n[[variant]]\nexperiment = { kind = \"graph\" }\n"));
        assert!(!graph_only("[experiment]\nkind = \"train\"\n"));
        assert!(!graph_only("[experiment]\nname = \"x\"\n"), "the default kind trains");
        assert!(!graph_only("[experiment]\nkind = \"graph\"\n[[variant]]\nexperiment = { kind = \"population\" }\n"));
        assert!(!graph_only("variant = 3\n[experiment]\nkind = \"graph\"\n"));
        assert!(!graph_only("[experiment\nkind = \"graph\""), "unparsable: the full build reports it");
    }

    #[test]
    fn overrides_of_the_kind_keep_the_work_here() {
        assert!(keeps_kind(&["graph.budget=5".into()]));
        assert!(!keeps_kind(&["experiment.kind=train".into()]));
    }
}
