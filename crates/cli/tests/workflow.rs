//! The researcher's day at the command line, with the traps it once had:
//! what a run prints (the page's path, tables that fit 100 columns, a line
//! per checkpoint without a terminal), what it records (the machine and
//! build), `status` of a unit still training, the thread warning, refused
//! figure names, `compare` that says what differs, `--version` and shell
//! completions.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tessera(args: &[&str], cwd: &Path) -> Output {
    tessera_command(args, cwd)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn quickstart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.toml").display().to_string()
}

/// The quickstart, small, into `out` with extra `--set`s.
fn small_quickstart(dir: &Path, out: &str, sets: &[&str]) -> Output {
    let manifest = quickstart();
    let mut args =
        vec!["run", manifest.as_str(), "--out", out, "--set", "data.examples=900", "--set", "train.epochs=2"];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    tessera(&args, dir)
}

#[test]
fn a_run_prints_its_page_a_narrow_table_and_a_line_per_checkpoint_and_records_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = small_quickstart(dir.path(), "run", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let page = dir.path().join("run/report.html");
    let said = stdout.lines().find_map(|l| l.strip_prefix("the page: ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(Path::new(said).ends_with("run/report.html") && page.exists(), "{stdout}");
    assert!(stdout.lines().all(|l| l.chars().count() <= 100), "the console's tables fit 100 columns:\n{stdout}");
    assert!(
        stdout.contains("sequential") && stdout.contains("3/3") && stdout.contains(" ± "),
        "seeds merged:\n{stdout}"
    );
    // stderr is a pipe here: a line per checkpoint, at most one per 10 s (and the last).
    let stderr = text(&out.stderr);
    for seed in [7, 8, 9] {
        let unit = format!("full-shuffle@{seed}: epoch");
        let lines = stderr.lines().filter(|l| l.contains(&unit)).count();
        assert!((1..=2).contains(&lines), "{lines} progress lines of {unit} (rate-limited):\n{stderr}");
    }
    assert!(
        stderr.contains("epoch 2.0/2 · step") && stderr.contains("train loss") && stderr.contains("test acc"),
        "{stderr}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/results.json")).unwrap()).unwrap();
    assert_eq!(results["schema_version"], "2.2");
    let system = &results["system"];
    assert!(system["cpu"].as_str().is_some_and(|c| !c.is_empty() && c != "unknown"), "{system}");
    assert!(system["cores"].as_u64().is_some_and(|c| c >= 1) && system["threads"] == 1, "{system}");
    assert!(system["libtorch"].as_str().is_some_and(|v| v.starts_with("2.")), "the libtorch version: {system}");
    assert_eq!(system["commit"], build_commit(), "the build's commit");
    let progress: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/units/00000/progress.json")).unwrap()).unwrap();
    assert_eq!((progress["step"].clone(), progress["epochs"].clone()), (progress["steps"].clone(), 2.into()));
}

/// The commit `--version` and run folders should name: HEAD's, where git can
/// tell (cargo runs the tests in the checkout's package folder).
fn build_commit() -> String {
    let out = Command::new("git").args(["rev-parse", "--short=10", "HEAD"]).output();
    out.ok().filter(|o| o.status.success()).map_or("unknown".into(), |o| text(&o.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit_and_libtorch_and_completions_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let version = text(&tessera(&["--version"], dir.path()).stdout);
    assert!(version.starts_with("tessera 0.") && version.contains(&format!("commit {}", build_commit())), "{version}");
    assert!(version.contains("libtorch 2."), "{version}");
    for (shell, mark) in [("bash", "_tessera()"), ("zsh", "#compdef tessera"), ("fish", "complete -c tessera")] {
        let out = tessera(&["completions", shell], dir.path());
        let script = text(&out.stdout);
        assert!(out.status.success() && script.contains(mark), "{shell}: {script}");
        assert!(script.contains("compare") && script.contains("--force"), "{shell} completes commands and flags");
    }
    let bad = tessera(&["completions", "tcsh"], dir.path());
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is the user's to fix");
}

#[test]
fn more_libtorch_threads_than_free_cores_are_warned_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let threads = format!("experiment.threads={}", cores + 1);
    let out = small_quickstart(dir.path(), "run", &[&threads, "experiment.seeds=[7]"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let said = format!("1 process(es) × {} libtorch thread(s)", cores + 1);
    assert!(stderr.contains(&said) && stderr.contains("set experiment.threads = "), "{stderr}");
    let out = small_quickstart(dir.path(), "calm", &["experiment.threads=1", "experiment.seeds=[7]"]);
    let calm = text(&out.stderr);
    let busy = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next()?.parse::<f64>().ok());
    if busy.is_some_and(|load| load < cores as f64 - 1.5) {
        assert!(!calm.contains("libtorch thread(s)"), "one thread on a machine with free cores: {calm}");
    }
}

#[test]
fn a_misspelled_figure_is_refused_with_the_closest_one() {
    let dir = tempfile::tempdir().unwrap();
    assert!(small_quickstart(dir.path(), "a", &["experiment.seeds=[7]"]).status.success());
    let out = tessera(&["table", "a", "--column", "acc=baselines.accuracy/test_acuracy:pct"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let said = text(&out.stderr);
    assert!(said.contains("did you mean `baselines.accuracy/test_accuracy`"), "{said}");
    assert!(small_quickstart(dir.path(), "b", &["experiment.seeds=[7]"]).status.success());
    let out = tessera(&["compare", "a", "b", "--figure", "engine/final_test_acc", "--out", "cmp"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean `engine/final_test_accuracy`"), "{}", text(&out.stderr));
    assert!(!dir.path().join("cmp").exists(), "nothing written for a refused comparison");
}

#[test]
fn compare_says_what_differs_pairs_seeds_and_refuses_other_data_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    for (out, sets) in
        [("a", vec![]), ("same", vec![]), ("lr", vec!["train.lr=0.01"]), ("one", vec!["experiment.seeds=[7]"])]
    {
        assert!(small_quickstart(dir.path(), out, &sets).status.success());
    }
    let out = tessera(&["compare", "a", "lr", "--out", "c1"], dir.path());
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        said.contains("train.lr: a = 0.05, lr = 0.01") && said.contains("the variants differ in: sampler.use"),
        "{said}"
    );
    assert!(said.contains("(p)") && said.contains("paired over the same seeds"), "same seeds pair:\n{said}");
    // The same manifest twice: bit-identical figures, a paired difference of exactly 0.
    let out = tessera(&["compare", "a", "same", "--out", "c2", "--figure", "engine/final_test_accuracy"], dir.path());
    let said = text(&out.stdout);
    assert!(said.contains("the runs' settings are the same") && said.contains("+0.0000 ± 0.0000 (p)"), "{said}");
    // One seed: its value, never `± 0`.
    let out = tessera(&["compare", "one", "one", "--out", "c3", "--figure", "engine/final_test_accuracy"], dir.path());
    let said = text(&out.stdout);
    assert!(out.status.success() && !said.contains("± 0") && said.contains("+0.0000"), "{said}");
    // Other data: exit 2 and why, unless --force.
    assert!(small_quickstart(dir.path(), "data", &["data.examples=600"]).status.success());
    let out = tessera(&["compare", "a", "data", "--out", "c4"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    assert!(said.contains("different data (data.examples)") && said.contains("--force"), "{said}");
    let out = tessera(&["compare", "a", "data", "--out", "c4", "--force"], dir.path());
    assert!(
        out.status.success() && text(&out.stdout).contains("data.examples: a = 900, data = 600"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn status_shows_a_training_unit_s_epoch_step_and_eta() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = quickstart();
    let sets = ["train.epochs=400", "experiment.seeds=[7]", "train.checkpoint_every=5"];
    let mut args = vec!["-q", "run", manifest.as_str(), "--out", "run", "--variant", "full-shuffle"];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(300));
        if dir.path().join("run/units/00000/progress.json").exists() {
            seen = text(&tessera(&["status", "run"], dir.path()).stdout);
            if seen.contains("eta") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("1 running"), "{seen}");
    let line = seen.lines().find(|l| l.contains("epoch")).unwrap_or_else(|| panic!("no progress line:\n{seen}"));
    assert!(line.contains("/400 · step ") && line.contains("train loss") && line.contains(" · eta "), "{line}");
}
