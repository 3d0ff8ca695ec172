//! One manifest, every executor, the same results: a seed sweep, a
//! population and a graph experiment run inline, through worker processes
//! and through a real Slurm cluster (started by `testing/slurm/start.sh`,
//! which `make test` runs), and their results.json agree bit for bit once
//! wall times are set aside. A Slurm array task killed with `scancel` is
//! rerun, alone, by `tessera resume`. The test cluster's `MaxArraySize` is
//! 4, so the population's 6 units run as two arrays. A population whose
//! runs start from a pretrained encoder runs its pretraining unit first and
//! its runs as dependent arrays after it; a population of batched runs
//! (`population.batch`) too, batched runs under a plugin's sampler, and a
//! train variant's seeds in batches (`experiment.batch`). A unit twice as long as its
//! task's time limit finishes through requeues, with inline's bits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Three runs of the pointwise-profiles example in batches of two.
const BATCHED_POPULATION: [&str; 14] = [
    "--variant",
    "digits",
    "--set",
    "population.models=[{ kind = \"mlp\", hidden = [32] }]",
    "--set",
    "population.seeds=[1,2,3]",
    // Runs 0, 2, 4 at batch 32 and 1, 3, 5 at 16: batches of runs that are
    // not consecutive, joined back in row order.
    "--set",
    "population.settings=[{ batch_size = 32 }, { batch_size = 16, lr = 0.02 }]",
    "--set",
    "population.epochs=[1,2]",
    "--set",
    "population.widths=[1.0]",
    "--set",
    "population.batch=2",
];

/// [`BATCHED_POPULATION`] under a plugin's sampler, each run its own stream.
const BATCHED_SAMPLED_POPULATION: [&str; 16] = {
    let mut args = ["--set"; 16];
    let mut i = 0;
    while i < BATCHED_POPULATION.len() {
        args[i] = BATCHED_POPULATION[i];
        i += 1;
    }
    args[15] = "sampler.use=\"baselines.full-shuffle\"";
    args
};

/// A tiny manifest of one kind of experiment: example, variants, `--set`.
struct Tiny {
    name: &'static str,
    example: &'static str,
    args: &'static [&'static str],
}

const TINY: &[Tiny] = &[
    Tiny {
        name: "seed-sweep",
        example: "quickstart",
        args: &["--set", "experiment.seeds=[1,2]", "--set", "train.epochs=1", "--set", "data.examples=600"],
    },
    Tiny {
        name: "population",
        example: "pointwise-profiles",
        args: &[
            "--variant",
            "digits",
            "--set",
            "population.seeds=[1,2]",
            "--set",
            "population.epochs=[1,2]",
            "--set",
            "population.widths=[0.25]",
        ],
    },
    Tiny {
        name: "pretrained-population",
        example: "rrm",
        args: &[
            "--variant",
            "digits-simclr",
            "--set",
            "pretrain.epochs=1",
            "--set",
            "population.epochs=[1]",
            "--set",
            "population.seeds=[1,2]",
        ],
    },
    Tiny { name: "batched-population", example: "pointwise-profiles", args: &BATCHED_POPULATION },
    Tiny { name: "batched-sampled-population", example: "pointwise-profiles", args: &BATCHED_SAMPLED_POPULATION },
    Tiny {
        name: "batched-seeds",
        example: "quickstart",
        args: &[
            "--set",
            "experiment.seeds=[1,2,3]",
            "--set",
            "experiment.batch=2",
            "--set",
            "train.epochs=1",
            "--set",
            "data.examples=600",
        ],
    },
    Tiny {
        name: "graph",
        example: "robust-im",
        args: &[
            "--variant",
            "hiro",
            "--variant",
            "greedy-at-centre",
            "--set",
            "experiment.seeds=[1,2]",
            "--set",
            "graph.nodes=300",
            "--set",
            "graph.simulations=50",
            "--set",
            "graph.budgets=[5]",
            "--set",
            "graph.evaluation_thetas=3",
        ],
    },
];

fn tessera(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera")).arg("--quiet").args(args).output().expect("tessera runs");
    if !out.status.success() {
        panic!(
            "tessera {} exited {:?}\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn manifest(example: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(format!("{example}.toml")).display().to_string()
}

/// `tessera run` of `tiny` into `out` with extra arguments (the executor).
fn run(tiny: &Tiny, out: &Path, executor: &[&str]) -> Output {
    let manifest = manifest(tiny.example);
    let out = out.display().to_string();
    let mut args = vec!["run", manifest.as_str(), "--out", out.as_str()];
    args.extend_from_slice(tiny.args);
    args.extend_from_slice(executor);
    tessera(&args)
}

/// results.json without wall times, memory peaks or dates.
fn comparable(dir: &Path) -> Value {
    let text = std::fs::read(dir.join("results.json")).expect("results.json");
    let mut value: Value = serde_json::from_slice(&text).expect("json");
    common::comparable(&mut value);
    value
}

/// Every file under `population/` of a run, by relative path, with its bytes.
fn population_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![];
    let mut stack = vec![dir.join("population")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    files.sort();
    files
}

fn assert_same_results(tiny: &Tiny, inline: &Path, other: &Path, executor: &str) {
    let (a, b) = (comparable(inline), comparable(other));
    let variants = a["variants"].as_array().map_or(0, |v| v.len());
    assert!(variants > 0, "{}: no variants", tiny.name);
    for v in a["variants"].as_array().unwrap() {
        assert_eq!(v["status"], "ok", "{}: {}", tiny.name, v["error"]);
    }
    assert!(
        a == b,
        "{}: {executor} results differ from inline ({} vs {})",
        tiny.name,
        inline.display(),
        other.display()
    );
    let (pa, pb) = (population_files(inline), population_files(other));
    assert!(pa == pb, "{}: {executor} population matrices differ from inline", tiny.name);
}

#[test]
fn processes_give_the_inline_results_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for tiny in TINY {
        let inline = dir.path().join(format!("{}-inline", tiny.name));
        let processes = dir.path().join(format!("{}-processes", tiny.name));
        run(tiny, &inline, &["--executor", "inline"]);
        run(tiny, &processes, &["--executor", "processes", "--jobs", "2"]);
        assert_same_results(tiny, &inline, &processes, "processes");
        let units = std::fs::read_dir(processes.join("units")).unwrap().count();
        assert!(units > 1, "{}: the run was not split into units", tiny.name);
    }
}

#[test]
fn resume_reruns_only_the_units_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = &TINY[0];
    let out = dir.path().join("run");
    run(tiny, &out, &["--executor", "processes", "--jobs", "2"]);
    let before = comparable(&out);
    // Unit 2 "was killed": its result is gone, a stale started.json remains.
    let lost = out.join("units/00002/result.json");
    std::fs::remove_file(&lost).unwrap();
    let status = String::from_utf8_lossy(&tessera(&["status", out.to_str().unwrap()]).stdout).to_string();
    assert!(status.contains("3 done") && status.contains("1 stopped"), "{status}");
    let kept = out.join("units/00000/result.json");
    let kept_before = (std::fs::read(&kept).unwrap(), std::fs::metadata(&kept).unwrap().modified().unwrap());
    let resumed = tessera(&["resume", out.to_str().unwrap(), "--executor", "inline"]);
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("ok"));
    assert!(lost.exists(), "the lost unit ran again");
    let kept_after = (std::fs::read(&kept).unwrap(), std::fs::metadata(&kept).unwrap().modified().unwrap());
    assert_eq!(kept_before, kept_after, "a unit that was done ran again");
    assert!(before == comparable(&out), "resumed results differ");
}

#[test]
fn plan_lists_units_and_their_dependencies() {
    let tiny = &TINY[1];
    let manifest = manifest(tiny.example);
    let mut args = vec!["plan", manifest.as_str()];
    args.extend_from_slice(tiny.args);
    let text = String::from_utf8_lossy(&tessera(&args).stdout).to_string();
    assert!(text.contains("digits (population)") && text.contains("unit    0: population runs 0–"), "{text}");
    assert!(text.contains("as one batched model"), "the example trains batched: {text}");
    assert!(text.contains("collect joins the parts and runs the metrics"), "{text}");
    // Each batch size's seeds batch, though their runs are not consecutive.
    let mut args = vec!["plan", manifest.as_str()];
    args.extend_from_slice(&BATCHED_POPULATION);
    let text = String::from_utf8_lossy(&tessera(&args).stdout).to_string();
    for unit in ["runs 0, 2 as one batched model", "runs 1, 3 as one batched model", "run 4 ", "run 5 "] {
        assert!(text.contains(unit), "no unit of {unit}: {text}");
    }
}

/// The cluster `testing/slurm/start.sh` started, if any: `SLURM_CONF`.
fn slurm_cluster() -> Option<PathBuf> {
    let state = std::env::var("TESSERA_SLURM_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tessera/slurm"));
    let conf = state.join("slurm.conf");
    let up = state.join("pids").exists()
        && Command::new("sinfo").arg("-h").env("SLURM_CONF", &conf).output().is_ok_and(|o| o.status.success());
    if up {
        return Some(conf);
    }
    let why = "no local Slurm cluster is running (make test starts one with testing/slurm/start.sh; it needs root)";
    if std::env::var_os("CI").is_some() {
        panic!("{why}, and on CI it must");
    }
    eprintln!("skipped: {why}");
    None
}

/// Records a submission where `make test` prints it (the test log shows the job ids).
fn log_jobs(what: &str, stdout: &[u8]) {
    let line =
        String::from_utf8_lossy(stdout).lines().find(|l| l.starts_with("slurm:")).unwrap_or_default().to_string();
    eprintln!("{what}: {line}");
    let state = std::env::var("TESSERA_SLURM_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tessera/slurm"));
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(state.join("test-jobs.log")) {
        let _ = writeln!(f, "{what}: {line}");
    }
}

/// The test cluster's `MaxArraySize` (testing/slurm/start.sh), lowered so
/// that a plan of more units than it is split into several arrays.
const MAX_ARRAY_SIZE: u64 = 4;

/// Every array of the run's first submission keeps its task indices below
/// [`MAX_ARRAY_SIZE`] and the arrays cover every unit once; a plan of more
/// units than that was split.
fn assert_arrays_fit(run: &Path, name: &str) {
    let jobs: Value = serde_json::from_slice(&std::fs::read(run.join("slurm/jobs.json")).unwrap()).unwrap();
    let (arrays, units) = (jobs[0]["arrays"].as_array().unwrap(), jobs[0]["units"].as_array().unwrap());
    let mut covered = Vec::new();
    for array in arrays {
        let offset = array["offset"].as_u64().unwrap();
        for unit in array["units"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()) {
            assert!(unit >= offset && unit - offset < MAX_ARRAY_SIZE, "{name}: unit {unit} as task {}", unit - offset);
            covered.push(serde_json::json!(unit));
        }
    }
    assert_eq!(&covered, units, "{name}: the arrays cover every unit once");
    let needed = (units.len() as u64).div_ceil(MAX_ARRAY_SIZE) as usize;
    assert!(arrays.len() >= needed, "{name}: {} units in {} array(s)", units.len(), arrays.len());
    eprintln!("{name}: {} units in {} array(s)", units.len(), arrays.len());
}

/// The pretraining unit ran in the first array, alone; the runs' arrays
/// waited for it (`afterok`), and each run unit read its encoder.
fn assert_runs_after_their_encoder(run: &Path) {
    let jobs: Value = serde_json::from_slice(&std::fs::read(run.join("slurm/jobs.json")).unwrap()).unwrap();
    let arrays = jobs[0]["arrays"].as_array().unwrap();
    assert_eq!(arrays[0]["units"], serde_json::json!([0]), "the encoder's unit comes first: {arrays:?}");
    let first = arrays[0]["job"].as_str().unwrap();
    let later: Vec<String> = std::fs::read_dir(run.join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-wave-1.args.json"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(later.len(), arrays.len() - 1, "every later array is a dependent one");
    for args in later {
        assert!(args.contains(&format!("--dependency=afterok:{first}")), "{args}");
    }
    assert!(run.join("pretrained/digits-simclr").read_dir().unwrap().count() == 1, "one encoder, merged by collect");
}

fn wait_until_gone(conf: &Path, job: &str) {
    let started = Instant::now();
    loop {
        let out = Command::new("squeue").args(["-h", "-j", job]).env("SLURM_CONF", conf).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "job {job} still queued after 5 minutes");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn slurm_runs_each_kind_like_inline_and_resume_reruns_a_killed_task() {
    let Some(conf) = slurm_cluster() else { return };
    std::env::set_var("SLURM_CONF", &conf);
    let dir = tempfile::tempdir().unwrap();
    for (i, tiny) in TINY.iter().enumerate() {
        let inline = dir.path().join(format!("{}-inline", tiny.name));
        // The last run folder's name is shell: it must reach the nodes as a
        // name, never run (the scripts hold no value; sbatch gets arguments).
        let name = match i + 1 == TINY.len() {
            true => format!("{}-slurm $(touch pwned) `touch pwned` 'q\" x", tiny.name),
            false => format!("{}-slurm", tiny.name),
        };
        let slurm = dir.path().join(name);
        run(tiny, &inline, &["--executor", "inline"]);
        let out = run(tiny, &slurm, &["--executor", "slurm", "--wait"]);
        log_jobs(&format!("slurm {}", tiny.name), &out.stdout);
        assert_same_results(tiny, &inline, &slurm, "slurm");
        assert_arrays_fit(&slurm, tiny.name);
        if tiny.example == "rrm" {
            assert_runs_after_their_encoder(&slurm);
        }
        assert!(!dir.path().join("pwned").exists() && !Path::new("pwned").exists(), "a run folder's name ran");
    }
    // Kill one task of an array (one at a time, so the last is still queued
    // or running), let the collect job record it, then resume.
    let tiny = &TINY[0];
    let inline = dir.path().join("seed-sweep-inline");
    let killed = dir.path().join("killed");
    let manifest = manifest(tiny.example);
    let out_arg = killed.display().to_string();
    let mut args = vec!["run", manifest.as_str(), "--out", out_arg.as_str(), "--executor", "slurm"];
    args.extend_from_slice(tiny.args);
    args.extend_from_slice(&["--set", "executor.slurm.max_parallel=1"]);
    let out = tessera(&args);
    log_jobs("slurm killed-task run", &out.stdout);
    let jobs: Value = serde_json::from_slice(&std::fs::read(killed.join("slurm/jobs.json")).unwrap()).unwrap();
    let (array, collect) = (jobs[0]["array_job"].as_str().unwrap(), jobs[0]["collect_job"].as_str().unwrap());
    let last = jobs[0]["units"].as_array().unwrap().len() - 1;
    let task = format!("{array}_{last}");
    let cancel = Command::new("scancel").arg(&task).env("SLURM_CONF", &conf).status().unwrap();
    assert!(cancel.success(), "scancel {task}");
    wait_until_gone(&conf, collect);
    let results = comparable(&killed);
    let failed: Vec<&Value> = results["variants"].as_array().unwrap().iter().filter(|v| v["status"] != "ok").collect();
    assert_eq!(failed.len(), 1, "one variant lost its unit: {results}");
    assert!(failed[0]["error"].as_str().unwrap().contains("did not finish"), "{}", failed[0]["error"]);
    let done: Vec<(PathBuf, Vec<u8>)> = (0..last)
        .map(|id| {
            let path = killed.join(format!("units/{id:05}/result.json"));
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    let resumed = tessera(&["resume", &out_arg, "--executor", "slurm", "--wait"]);
    log_jobs("slurm resume", &resumed.stdout);
    let second: Value = serde_json::from_slice(&std::fs::read(killed.join("slurm/jobs.json")).unwrap()).unwrap();
    assert_eq!(second[1]["units"], serde_json::json!([last]), "resume submitted only the killed unit");
    for (path, bytes) in done {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{} was rewritten", path.display());
    }
    assert_same_results(tiny, &inline, &killed, "slurm after resume");
}

/// A `train` unit of about a minute and a half on one core (longer beside
/// the inline run and other tests), saving its state only when stopped; its
/// tasks have one minute, and Slurm signals them 15 s before it (or up to a
/// minute earlier, never later).
const TWO_MINUTES: &str = r#"
[data]
source = "blobs"
examples = 8000
features = 64
classes = 4
[model]
hidden = [1024, 1024]
[train]
epochs = 180
batch_size = 48
lr = 0.05
checkpoint_every = 1000
[sampler]
use = "baselines.full-shuffle"
[[metric]]
use = "baselines.accuracy"
[executor.slurm]
time = "1"
signal_grace = 15
"#;

#[test]
fn a_unit_longer_than_its_time_limit_finishes_through_requeues() {
    let Some(conf) = slurm_cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    common::write_manifest(dir.path(), &[&common::baselines()], TWO_MINUTES);
    let command = |out: &str, executor: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command.args(["--quiet", "run", "manifest.toml", "--out", out]).args(executor);
        command.current_dir(dir.path()).env("SLURM_CONF", &conf);
        command
    };
    // The reference runs beside the Slurm tasks.
    let inline = command("inline", &["--executor", "inline"]).spawn().unwrap();
    let started = Instant::now();
    let out = command("slurm", &["--executor", "slurm", "--wait"]).output().unwrap();
    log_jobs("slurm requeued unit", &out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let slurm = dir.path().join("slurm");
    let args = std::fs::read_to_string(slurm.join("slurm/array-0.args.json")).unwrap();
    assert!(args.contains("--signal=B:USR1@15") && args.contains("--requeue"), "{args}");
    assert!(!std::fs::read_to_string(slurm.join("slurm/collect.args.json")).unwrap().contains("--signal"));
    let log = std::fs::read_to_string(slurm.join("units/00000.log")).unwrap_or_default();
    let continued = log.matches("continuing from its state saved at step").count();
    assert!(continued >= 1, "the unit never continued from a saved state:\n{log}");
    let started_json: Value =
        serde_json::from_slice(&std::fs::read(slurm.join("units/00000/started.json")).unwrap()).unwrap();
    eprintln!(
        "requeued unit: {continued} continuation(s), attempt {}, {:.0} s",
        started_json["attempt"],
        started.elapsed().as_secs_f64()
    );
    assert!(inline.wait_with_output().unwrap().status.success());
    let tiny = Tiny { name: "requeued unit", example: "", args: &[] };
    assert_same_results(&tiny, &dir.path().join("inline"), &slurm, "slurm with requeues");
}
