//! `tessera` hands graph work to `tessera-graph`, the build without
//! libtorch that `make` puts beside it: the units then run without libtorch
//! loaded, and every figure is the one `tessera` computes itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{baselines, comparable, library, profile_dir, write_manifest};

/// The runner beside the built `tessera`; `make build` puts it there.
fn runner() -> Option<PathBuf> {
    let runner = profile_dir().join(tessera_engine::handoff::GRAPH_RUNNER);
    if runner.is_file() {
        return Some(runner);
    }
    let why = format!("{} is missing (make build builds it)", runner.display());
    if std::env::var_os("CI").is_some() {
        panic!("{why}, and on CI it must be there");
    }
    eprintln!("skipped: {why}");
    None
}

/// `tessera ARGS` in `dir`, with `TESSERA_GRAPH_RUNNER` set to `runner`.
fn tessera(args: &[&str], dir: &Path, runner: &str) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(dir)
        .env("TESSERA_GRAPH_RUNNER", runner)
        .env_remove("TESSERA_PLUGIN_PATH")
        .output()
        .expect("tessera runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Whether each unit of a run folder ran with libtorch loaded.
fn libtorch_loaded(run: &Path) -> Vec<bool> {
    let mut units: Vec<PathBuf> =
        std::fs::read_dir(run.join("units")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    units.sort();
    units
        .iter()
        .map(|unit| {
            let result: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(unit.join("result.json")).unwrap()).unwrap();
            result["ran"]["libtorch"].as_bool().expect("ran.libtorch")
        })
        .collect()
}

fn figures(run: &Path) -> serde_json::Value {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    comparable(&mut json);
    json["variants"].clone()
}

const GRAPH: &str = "kind = \"graph\"\nseeds = [1, 2]\n\n[graph]\nnodes = 2000\nedges = 12000\nprobability_model = \"weighted-cascade\"\nbudget = 10\nsimulations = 100\n\n[[variant]]\nname = \"opim\"\nobjective = { use = \"robust-im.greedy\", epsilon = 0.3 }\n\n[[variant]]\nname = \"degree\"\nobjective = { use = \"baselines.degree\" }\n\n[[variant]]\nname = \"trivalency\"\ngraph = { probability_model = \"trivalency\" }\nobjective = { use = \"robust-im.greedy\", epsilon = 0.3 }\n";

#[test]
fn graph_runs_go_to_the_runner_without_libtorch_with_the_same_figures() {
    let Some(_) = runner() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), &[&baselines(), &library("tessera_robust_im")], GRAPH);
    let m = m.display().to_string();
    tessera(&["run", &m, "--out", "handed"], dir.path(), "1");
    tessera(&["run", &m, "--out", "here"], dir.path(), "0");
    tessera(&["run", &m, "--out", "workers", "--executor", "processes", "--jobs", "2"], dir.path(), "1");
    let (handed, here, workers) = (dir.path().join("handed"), dir.path().join("here"), dir.path().join("workers"));
    assert!(libtorch_loaded(&handed).iter().all(|&loaded| !loaded), "handed to tessera-graph");
    assert!(libtorch_loaded(&workers).iter().all(|&loaded| !loaded), "its workers are tessera-graph too");
    assert!(libtorch_loaded(&here).iter().all(|&loaded| loaded), "TESSERA_GRAPH_RUNNER=0 keeps it here");
    assert_eq!(figures(&handed), figures(&here), "the same figures, bit for bit");
    assert_eq!(figures(&workers), figures(&here));
    assert!(handed.join("report.html").is_file());
}

#[test]
fn training_work_stays_with_libtorch_and_the_runner_refuses_it() {
    let Some(runner) = runner() else { return };
    let dir = tempfile::tempdir().unwrap();
    let body = "kind = \"graph\"\n\n[graph]\nnodes = 200\nedges = 800\nbudget = 3\nsimulations = 20\n\n[objective]\nuse = \"baselines.degree\"\n";
    let m = write_manifest(dir.path(), &[&baselines()], body).display().to_string();
    // `--set experiment.kind` could make it training work: it stays here.
    let set = ["run", &m, "--out", "set", "--set", "experiment.kind=graph"];
    tessera(&set, dir.path(), "1");
    assert_eq!(libtorch_loaded(&dir.path().join("set")), vec![true]);
    // The runner itself names what it cannot do.
    let body = format!("{}\n[sampler]\nuse = \"baselines.full-shuffle\"\n", common::SMALL_TRAIN);
    let train = common::write_manifest(dir.path(), &[&baselines()], &body);
    let out = Command::new(runner)
        .args(["run", &train.display().to_string(), "--out", "train"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let results = std::fs::read_to_string(dir.path().join("train/results.json")).unwrap_or_default();
    let said = format!("{}{results}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("no libtorch"), "{said}");
}
