//! No work lost (issue 38): a `train` unit with an adaptive sampler
//! (importance sampling, whose state is last epoch's losses) and two
//! metrics that accumulate (accuracy per checkpoint; forgetting events per
//! example, from the per-step losses), a population unit (a run and the
//! fork that branches from it, members taken along the way), a population
//! unit that trains its runs as one batched model, and a SubTuning
//! unit (a greedy search of the block to finetune, then training), and a
//! unit of the other plugins that keep state (a pruning sampler, a finetuner
//! that revises its rates every epoch, two accumulating metrics), are stopped
//! mid-training by SIGINT, SIGTERM or SIGKILL at several moments, then
//! `tessera resume` finishes them: every figure and array equals the
//! uninterrupted run's, bit for bit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Steps of a few milliseconds each (the run takes ~5 s), a state saved
/// every ~30 ms, checkpoints
/// (and so metric observations) every 7 steps, a step boundary that falls
/// mid-epoch.
const BODY: &str = r#"
checkpoint_minutes = 0.0005
[data]
source = "blobs"
examples = 8000
features = 64
classes = 4
[model]
hidden = [512, 512]
[train]
epochs = 5
batch_size = 48
lr = 0.05
checkpoint_every = 7
[sampler]
use = "adaptive.importance"
[[metric]]
use = "baselines.accuracy"
[[metric]]
use = "adaptive.forgetting"
"#;

/// One unit: a run of two settings (the second forks from the first after
/// 60 steps) with momentum, members after 1, 4 and 12 epochs, its steps a
/// few milliseconds each (the unit takes ~5 s); the profile metric reads the members' matrices.
const POPULATION: &str = r#"
checkpoint_minutes = 0.0005
kind = "population"
[data]
source = "blobs"
examples = 8000
features = 64
classes = 4
[population]
models = [{ kind = "mlp", hidden = [512, 512] }]
seeds = [3]
settings = [{ batch_size = 32 }, { batch_size = 64, lr = 0.02 }]
fork_step = 60
epochs = [1, 4, 12]
splits = ["test"]
[train]
lr = 0.05
momentum = 0.9
[[metric]]
use = "pointwise-profiles.profile"
"#;

/// POPULATION's unit as three noisy runs trained as one batched model
/// (`population.batch`), members after 1, 3 and 6 epochs (the unit takes
/// ~5 s): a stop saves the batch inside itself.
fn batched_population() -> String {
    let batched = POPULATION
        .replace("examples = 8000", "examples = 4000")
        .replace("seeds = [3]", "seeds = [3, 4, 5]")
        .replace(
            "settings = [{ batch_size = 32 }, { batch_size = 64, lr = 0.02 }]\nfork_step = 60",
            "settings = [{ batch_size = 32, label_noise = 0.1 }]\nbatch = 3",
        )
        .replace("epochs = [1, 4, 12]", "epochs = [1, 3, 6]");
    assert!(batched.contains("batch = 3") && batched.contains("[1, 3, 6]"), "{batched}");
    batched
}

/// POPULATION's unit as a learning-rate grid trained as one batch (three
/// runs of one seed at 0.05, 0.02 and 0.1, two noisy): each member steps at
/// its own rate, with the optimizer's per-member state saved inside the batch.
fn rated_batched_population() -> String {
    let rated = batched_population().replace("seeds = [3, 4, 5]", "seeds = [3]").replace(
        "settings = [{ batch_size = 32, label_noise = 0.1 }]",
        "settings = [{ batch_size = 32, label_noise = 0.1 }, { batch_size = 32, lr = 0.02 }, \
         { batch_size = 32, lr = 0.1, label_noise = 0.1 }]",
    );
    assert!(rated.contains("lr = 0.02") && rated.contains("seeds = [3]\n"), "{rated}");
    rated
}

/// POPULATION's unit as three noisy runs under a plugin's sampler (each run
/// its own `baselines.full-shuffle` stream) trained as one batch: a stop
/// keeps the group as it was at the batch's start, as a run alone under a
/// sampler does.
fn sampled_batched_population() -> String {
    let sampled = batched_population().replace("epochs = [1, 3, 6]", "epochs = [1, 3, 12]")
        + "[sampler]\nuse = \"baselines.full-shuffle\"\n";
    assert!(sampled.contains("[1, 3, 12]"), "{sampled}");
    sampled
}

/// BODY's run over three seeds trained as one batched model
/// (`experiment.batch`): importance sampling's loss weights and
/// observations and the forgetting metric, each seed its own; a stop saves
/// the batch inside itself.
fn batched_seeds() -> String {
    let batched = BODY
        .replace("checkpoint_minutes = 0.0005", "checkpoint_minutes = 0.0005\nseeds = [1, 2, 3]\nbatch = 3")
        .replace("examples = 8000", "examples = 3000");
    assert!(batched.contains("batch = 3") && batched.contains("examples = 3000"), "{batched}");
    batched
}

/// SubTuning's greedy search picks one block of a small ResNet by 2-fold
/// validation, then trains it and the head with AdamW on a cosine schedule
/// (the unit takes ~4 s).
const SUBTUNING: &str = r#"
checkpoint_minutes = 0.0005
[data]
source = "digits"
seed = 0
validation_fraction = 0.0
[model]
kind = "resnet"
width = 8
depth = 1
stages = 2
[train]
optimizer = "adamw"
lr = 0.01
schedule = "cosine"
epochs = 50
batch_size = 32
oracle_epochs = 2
[sampler]
use = "baselines.full-shuffle"
[finetuner]
use = "subtuning.greedy"
folds = 2
max_blocks = 1
epsilon = 0.0
[[metric]]
use = "baselines.accuracy"
"#;

/// The other shipped components that keep state through training: Data
/// Diet's pruning (its scores and kept subset after epoch 3), Auto-RGN (its
/// multipliers revised before every epoch), the order quality of Corgi²
/// (every epoch's orders) and the performance correlation (every
/// checkpoint's predictions against a reference's). The unit takes ~4 s.
const STATEFUL: &str = r#"
checkpoint_minutes = 0.0005
[data]
source = "blobs"
examples = 6000
features = 32
classes = 4
[reference]
model = { kind = "linear" }
epochs = 20
lr = 0.05
[model]
hidden = [256, 256]
[train]
epochs = 36
batch_size = 32
lr = 0.05
checkpoint_every = 25
oracle_order = "shuffle"
[sampler]
use = "data-diet.prune"
score = "el2n"
keep = 0.5
score_after = 3
[finetuner]
use = "surgical.auto-rgn"
[[metric]]
use = "corgi2.order-quality"
window = 32
[[metric]]
use = "increasing-complexity.performance-correlation"
split = "test"
"#;

/// Waits for `child` to end: its exit code (None: killed) and stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// The unit's saved states, newest first.
fn saved_states(run: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(run.join("units/00000.resume"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("step-")))
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found
}

/// Every file a figure or a table comes from: results.json without times,
/// `series.csv`, and each table without its wall-time and memory columns.
fn comparable(run: &Path) -> (Value, Vec<(PathBuf, String)>) {
    let mut results: Value = serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    common::comparable(&mut results);
    let mut files = vec![(PathBuf::from("series.csv"), std::fs::read_to_string(run.join("series.csv")).unwrap())];
    for entry in std::fs::read_dir(run.join("tables")).unwrap().flatten() {
        let name = entry.path().strip_prefix(run).unwrap().to_path_buf();
        files.push((name, without_times(&std::fs::read_to_string(entry.path()).unwrap())));
    }
    let population = run.join("population");
    for entry in walk(&population) {
        let name = entry.strip_prefix(run).unwrap().to_path_buf();
        files.push((name, format!("{:x?}", std::fs::read(&entry).unwrap())));
    }
    files.sort();
    (results, files)
}

/// The files under `dir`, if it exists.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.file_type().unwrap().is_dir() {
            true => files.extend(walk(&entry.path())),
            false => files.push(entry.path()),
        }
    }
    files
}

/// A CSV table without what measures time or memory: such columns, and in
/// the `role,name,value` table of scalars, such rows.
fn without_times(csv: &str) -> String {
    let timed = |c: &str| {
        (c.ends_with("seconds") && !c.starts_with("modeled")) || c.contains("memory") || c.ends_with("per_second")
    };
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let keep: Vec<usize> = (0..header.len()).filter(|&i| !timed(header[i])).collect();
    let rows = lines.map(|l| l.split(',').collect::<Vec<_>>()).filter(|cells| !cells.iter().any(|c| timed(c)));
    let rows = rows.map(|cells| keep.iter().map(|&i| cells.get(i).copied().unwrap_or_default()).collect::<Vec<_>>());
    std::iter::once(header.join(",")).chain(rows.map(|r| r.join(","))).collect::<Vec<_>>().join("\n")
}

/// Stops a run with `signal` `after` it saved its first state, checks how it
/// ended, resumes it; the finished run's folder.
fn stopped_and_resumed(dir: &Path, signal: libc::c_int, after: Duration, whole: &Value) -> PathBuf {
    let out = format!("run-{signal}-{}", after.as_millis());
    let run = dir.join(&out);
    let child = common::spawn_in_group(dir, &["run", "manifest.toml", "--out", &out, "--quiet"]);
    let started = Instant::now();
    while saved_states(&run).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(120), "{out}: no state saved within 2 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(after);
    // SAFETY: a signal to the group our child leads, as a terminal or Slurm sends it.
    assert_eq!(unsafe { libc::kill(-(child.id() as libc::pid_t), signal) }, 0);
    let (code, stderr) = finish(child);
    if run.join("results.json").exists() && code == Some(0) {
        panic!("{out}: the run finished before the signal; make the test's run longer");
    }
    match signal {
        libc::SIGKILL => assert_eq!(code, None, "{out}: {stderr}"),
        _ => {
            assert_eq!(code, Some(75), "{out}: stopped, resumable: {stderr}");
            assert!(stderr.contains("tessera resume"), "{out}: says what to do: {stderr}");
        }
    }
    let saved = saved_states(&run);
    assert!(!saved.is_empty(), "{out}: a saved state is left");
    shows_where_it_stopped(dir, &out, &saved[0], whole);
    let status = Command::new(env!("CARGO_BIN_EXE_tessera")).args(["status", &out]).current_dir(dir).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("continues from its state saved at step"), "{out}: {status}");
    let resumed = common::spawn_in_group(dir, &["-v", "resume", &out]);
    let (code, stderr) = finish(resumed);
    assert_eq!(code, Some(0), "{out}: resume: {stderr}");
    assert!(stderr.contains("continuing from its state saved at step"), "{out}: resumed from step 0: {stderr}");
    assert!(!run.join("units/00000.resume").exists(), "{out}: the saved states are removed once done");
    run
}

/// After a stop, `tessera collect` (which a SIGINT or SIGTERM ran already)
/// says the variant stopped at the newest saved state's step, in
/// results.json and on the page, and keeps a `train` variant's curves so far.
fn shows_where_it_stopped(dir: &Path, out: &str, newest: &Path, whole: &Value) {
    let collect = Command::new(env!("CARGO_BIN_EXE_tessera")).args(["-q", "collect", out]).current_dir(dir).output();
    assert!(collect.is_ok(), "{out}: collect runs");
    let results: Value = serde_json::from_slice(&std::fs::read(dir.join(out).join("results.json")).unwrap()).unwrap();
    let variant = &results["variants"][0];
    let step: u64 = newest.file_name().unwrap().to_string_lossy()["step-".len()..].parse().unwrap();
    assert_eq!(variant["status"], "stopped", "{out}: {variant}");
    assert_eq!(variant["stopped_at"], step, "{out}");
    let page = std::fs::read_to_string(dir.join(out).join("report.html")).unwrap();
    assert!(page.contains(&format!("stopped at step {step}")), "{out}: the page says where it stopped");
    if variant["results"]["engine"].is_null() {
        return; // a population keeps its members so far in its saved state only
    }
    // The curve so far is the uninterrupted run's up to where it stopped.
    let curve = |v: &Value, axis: &str| {
        let series = v["results"]["engine"]["series"].as_array().unwrap();
        let test = series.iter().find(|s| s["name"] == "test_accuracy" && s["x_label"] == "epoch").unwrap();
        test[axis].as_array().cloned().unwrap()
    };
    let (so_far, all) = (curve(variant, "y"), curve(&whole["variants"][0], "y"));
    assert!(so_far.len() <= all.len() && so_far[..] == all[..so_far.len()], "{out}: {so_far:?} vs {all:?}");
    assert_eq!(curve(variant, "x")[..], curve(&whole["variants"][0], "x")[..so_far.len()], "{out}");
}

/// Runs `body` whole, then stopped by each of `stops` (signal, milliseconds
/// after the first save) and resumed: each ends with the same bits.
fn every_stop_gives_the_uninterrupted_bits(plugins: &[&Path], body: &str, stops: &[(libc::c_int, u64)]) {
    let dir = tempfile::tempdir().unwrap();
    // The manifest's `[experiment]` (threads = 1) goes on with the body's first lines.
    common::write_manifest(dir.path(), plugins, body);
    let whole = common::spawn_in_group(dir.path(), &["run", "manifest.toml", "--out", "whole", "--quiet"]);
    let (code, stderr) = finish(whole);
    assert_eq!(code, Some(0), "{stderr}");
    let expected = comparable(&dir.path().join("whole"));
    assert!(expected.0["variants"][0]["status"] == "ok", "{}", expected.0);
    for &(signal, after) in stops {
        let run = stopped_and_resumed(dir.path(), signal, Duration::from_millis(after), &expected.0);
        let got = comparable(&run);
        assert!(
            got.0 == expected.0,
            "signal {signal} after {after} ms: results.json differs from the uninterrupted run"
        );
        assert_eq!(got.1.len(), expected.1.len(), "signal {signal} after {after} ms: the same array files");
        for ((name, a), (_, b)) in got.1.iter().zip(&expected.1) {
            assert!(a == b, "signal {signal} after {after} ms: {} differs", name.display());
        }
    }
}

#[test]
fn a_unit_stopped_by_any_signal_and_resumed_gives_the_uninterrupted_bits() {
    let plugins = [common::baselines(), common::library("tessera_adaptive")];
    let stops = [
        (libc::SIGINT, 0),
        (libc::SIGINT, 900),
        (libc::SIGTERM, 150),
        (libc::SIGTERM, 2200),
        (libc::SIGKILL, 60),
        (libc::SIGKILL, 1400),
    ];
    every_stop_gives_the_uninterrupted_bits(&plugins.each_ref().map(PathBuf::as_path), BODY, &stops);
}

#[test]
fn a_population_stopped_by_any_signal_and_resumed_gives_the_uninterrupted_bits() {
    let plugin = common::library("tessera_pointwise_profiles");
    let stops = [
        (libc::SIGINT, 300),
        (libc::SIGINT, 2400),
        (libc::SIGTERM, 1000),
        (libc::SIGTERM, 1700),
        (libc::SIGKILL, 900),
        (libc::SIGKILL, 3000),
    ];
    every_stop_gives_the_uninterrupted_bits(&[plugin.as_path()], POPULATION, &stops);
}

#[test]
fn a_batched_population_stopped_by_any_signal_and_resumed_gives_the_uninterrupted_bits() {
    let plugin = common::library("tessera_pointwise_profiles");
    let stops = [(libc::SIGINT, 300), (libc::SIGTERM, 1600), (libc::SIGKILL, 900), (libc::SIGKILL, 2400)];
    every_stop_gives_the_uninterrupted_bits(&[plugin.as_path()], &batched_population(), &stops);
}

#[test]
fn a_batched_learning_rate_grid_stopped_and_resumed_gives_the_uninterrupted_bits() {
    let plugin = common::library("tessera_pointwise_profiles");
    let stops = [(libc::SIGINT, 400), (libc::SIGKILL, 1600)];
    every_stop_gives_the_uninterrupted_bits(&[plugin.as_path()], &rated_batched_population(), &stops);
}

#[test]
fn a_batched_population_under_a_sampler_stopped_and_resumed_gives_the_uninterrupted_bits() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = [common::library("tessera_pointwise_profiles"), common::baselines()];
    common::write_manifest(dir.path(), &plugins.each_ref().map(PathBuf::as_path), &sampled_batched_population());
    let (code, stderr) =
        finish(common::spawn_in_group(dir.path(), &["run", "manifest.toml", "--out", "whole", "--quiet"]));
    assert_eq!(code, Some(0), "{stderr}");
    let whole = comparable(&dir.path().join("whole"));
    // It saves nothing before a stop: each signal lands 1.5 s into the batch.
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let out = format!("run-{signal}");
        let child = common::spawn_in_group(dir.path(), &["run", "manifest.toml", "--out", &out, "--quiet"]);
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: a signal to the group our child leads, as a terminal or Slurm sends it.
        assert_eq!(unsafe { libc::kill(-(child.id() as libc::pid_t), signal) }, 0);
        let (code, stderr) = finish(child);
        let run = dir.path().join(&out);
        assert!(!run.join("results.json").exists() || code != Some(0), "{out}: finished before the signal");
        if signal == libc::SIGINT {
            assert_eq!(code, Some(75), "{out}: stopped, resumable: {stderr}");
            assert!(!saved_states(&run).is_empty(), "{out}: the batch's start is saved");
        }
        let (code, stderr) = finish(common::spawn_in_group(dir.path(), &["resume", &out]));
        assert_eq!(code, Some(0), "{out}: resume: {stderr}");
        let got = comparable(&run);
        assert!(got.0 == whole.0, "{out}: results.json differs from the uninterrupted run");
        assert!(got.1 == whole.1, "{out}: the population's arrays differ from the uninterrupted run");
    }
}

#[test]
fn a_batch_of_seeds_stopped_by_any_signal_and_resumed_gives_the_uninterrupted_bits() {
    let plugins = [common::baselines(), common::library("tessera_adaptive")];
    let stops = [(libc::SIGINT, 300), (libc::SIGTERM, 1500), (libc::SIGKILL, 900), (libc::SIGKILL, 2400)];
    every_stop_gives_the_uninterrupted_bits(&plugins.each_ref().map(PathBuf::as_path), &batched_seeds(), &stops);
}

#[test]
fn a_subtuning_unit_stopped_by_any_signal_and_resumed_gives_the_uninterrupted_bits() {
    let plugins = [common::baselines(), common::library("tessera_subtuning")];
    let stops = [
        (libc::SIGINT, 200),
        (libc::SIGINT, 1900),
        (libc::SIGTERM, 800),
        (libc::SIGTERM, 1500),
        (libc::SIGKILL, 700),
        (libc::SIGKILL, 2500),
    ];
    every_stop_gives_the_uninterrupted_bits(&plugins.each_ref().map(PathBuf::as_path), SUBTUNING, &stops);
}

#[test]
fn the_other_stateful_plugins_stopped_and_resumed_give_the_uninterrupted_bits() {
    let plugins = ["tessera_data_diet", "tessera_surgical", "tessera_corgi2", "tessera_increasing_complexity"]
        .map(common::library);
    let stops = [(libc::SIGTERM, 400), (libc::SIGKILL, 1800)];
    every_stop_gives_the_uninterrupted_bits(&plugins.each_ref().map(PathBuf::as_path), STATEFUL, &stops);
}
