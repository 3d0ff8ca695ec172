//! Same manifest and seed, same results: every example family runs twice, in
//! two processes of the real binary, at tiny settings, and the two
//! results.json (and population matrices) must be identical bit for bit once
//! wall times, memory peaks and dates are set aside.
//!
//! The same runs are the fast subset of the expected figures: every scalar
//! of every variant must equal `examples/expected/fast/<example>.json`, so a
//! change that moves a result is seen by `make test`. After a change that
//! moves results on purpose (or on a machine whose CPU differs from the one
//! the files name: they are compared only on that kind of CPU), rewrite them with
//! `TESSERA_BLESS=1 cargo test --release -p tessera-engine --test determinism`
//! and commit them (each file records the commit it was made at).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_engine::figures;

/// An example at tiny settings: its manifest, the variants to run (all if
/// empty) and `--set` overrides.
struct Family {
    example: &'static str,
    variants: &'static [&'static str],
    set: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family { example: "quickstart", variants: &[], set: &["train.epochs=1", "data.examples=600"] },
    Family {
        example: "corgi2",
        variants: &["corgipile", "corgi2", "corgi2-offline-2"],
        set: &["experiment.seeds=[1]", "train.epochs=1", "model.channels=[4]"],
    },
    Family { example: "digits-cnn", variants: &["full-shuffle"], set: &["train.epochs=1", "model.channels=[4]"] },
    Family {
        example: "mnist1d",
        variants: &["logistic-regression", "cnn"],
        set: &["experiment.seeds=[1]", "train.epochs=2", "data.mnist1d.num_samples=1000", "model.channels=[4]"],
    },
    Family {
        example: "adaptive",
        variants: &["loss-rank", "self-paced"],
        set: &["experiment.seeds=[1]", "train.epochs=3"],
    },
    Family {
        example: "increasing-complexity",
        variants: &["digits"],
        set: &["experiment.seeds=[1]", "train.epochs=1", "reference.epochs=3", "model.channels=[4]"],
    },
    Family {
        example: "pointwise-profiles",
        variants: &["digits"],
        set: &["population.seeds=[1,2]", "population.epochs=[1,2]", "population.widths=[0.25]"],
    },
    Family {
        example: "rrm",
        variants: &["digits-simclr"],
        set: &["pretrain.epochs=1", "population.epochs=[2]", "population.seeds=[1,2]"],
    },
    Family {
        example: "sgd-noise",
        variants: &["offline"],
        set: &["data.examples=3000", "data.test_fraction=0.2", "train.epochs=2", "population.seeds=[1]"],
    },
    Family {
        example: "ssl-probe",
        variants: &["simclr-probe", "end-to-end"],
        set: &["experiment.seeds=[1]", "pretrain.epochs=1", "train.epochs=1", "model.channels=[4,8]"],
    },
    Family {
        example: "robust-im",
        variants: &["hiro", "lugreedy", "greedy-at-centre"],
        set: &[
            "experiment.seeds=[1]",
            "graph.nodes=300",
            "graph.simulations=50",
            "graph.budgets=[5]",
            "graph.evaluation_thetas=3",
        ],
    },
    Family {
        example: "im-scale",
        variants: &["opim-eps0.5"],
        set: &["graph.nodes=3000", "graph.edges=20000", "graph.simulations=20"],
    },
];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn run(manifest: &Path, out: &Path, variants: &[&str], set: &[String]) {
    let mut command = Command::new(common::profile_dir().join("tessera"));
    command.args(["run", &manifest.display().to_string(), "--quiet", "--out", &out.display().to_string()]);
    for v in variants {
        command.args(["--variant", v]);
    }
    for s in set {
        command.args(["--set", s]);
    }
    let output = command.output().expect("start tessera");
    assert!(
        output.status.success(),
        "{} failed:\n{}{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn results(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    common::comparable(&mut value);
    value
}

/// Every population matrix, by path below the run folder.
fn matrices(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![out.join("population")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "npy") {
                found.push((path.strip_prefix(out).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// Compares the run in `out` with the expected file of `family` (or writes
/// it, blessing).
fn compare_expected(family: &Family, out: &Path) -> Result<(), String> {
    let path = examples().join("expected/fast").join(format!("{}.json", family.example));
    let found = figures::expected_of(out).map_err(|e| format!("{}: {e:#}", family.example))?;
    if std::env::var_os("TESSERA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&found).unwrap() + "\n").unwrap();
        return Ok(());
    }
    let want = figures::load(&path)
        .map_err(|e| format!("{}: {e:#}; write the expected figures with TESSERA_BLESS=1", family.example))?;
    if want.cpu != found.cpu {
        // libtorch's kernels differ by CPU: exact figures hold on one kind.
        eprintln!(
            "{}: expected figures made on {}, this machine is {}: not compared (determinism still is)",
            family.example, want.cpu, found.cpu
        );
        return Ok(());
    }
    let moved = figures::compare(&want.variants, &found.variants);
    if moved.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = moved.iter().map(|m| format!("  {m}")).collect();
    Err(format!(
        "{}: {} figure(s) moved from {} (made at commit {}):\n{}",
        family.example,
        moved.len(),
        path.display(),
        want.commit,
        lines.join("\n")
    ))
}

fn check_family(family: &Family, dir: &Path) -> Result<(), String> {
    let manifest = examples().join(format!("{}.toml", family.example));
    let set: Vec<String> = family.set.iter().map(|s| s.to_string()).collect();
    let (a, b) = (dir.join(format!("{}-a", family.example)), dir.join(format!("{}-b", family.example)));
    run(&manifest, &a, family.variants, &set);
    run(&manifest, &b, family.variants, &set);
    let (ra, rb) = (results(&a), results(&b));
    let ok = |v: &serde_json::Value| v["variants"].as_array().is_some_and(|vs| vs.iter().all(|v| v["status"] == "ok"));
    if !ok(&ra) {
        return Err(format!("{}: a variant failed: {ra}", family.example));
    }
    if ra != rb {
        let (ta, tb) = (serde_json::to_string_pretty(&ra).unwrap(), serde_json::to_string_pretty(&rb).unwrap());
        let first = ta.lines().zip(tb.lines()).enumerate().find(|(_, (x, y))| x != y);
        return Err(format!("{}: results.json differs between two processes, first at line {first:?}", family.example));
    }
    if matrices(&a) != matrices(&b) {
        return Err(format!("{}: population matrices differ between two processes", family.example));
    }
    compare_expected(family, &a)
}

#[test]
fn every_example_family_gives_identical_results_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(family) = FAMILIES.get(i) else { break };
                if let Err(e) = check_family(family, dir.path()) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn subtuning_gives_identical_results_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let backbone = dir.path().join("backbone");
    let tiny = ["train.epochs=1", "model.width=4", "model.depth=1"].map(String::from);
    run(&examples().join("subtuning-backbone.toml"), &backbone, &[], &tiny);
    let weights = backbone.join("models/subtuning-backbone.safetensors");
    assert!(weights.exists(), "the backbone saved its weights");
    let family = Family { example: "subtuning", variants: &["subtuning"], set: &[] };
    let mut set = tiny.to_vec();
    set.extend([
        format!("model.weights={:?}", weights.display().to_string()),
        "experiment.seeds=[1]".into(),
        "experiment.sweep.values=[10]".into(),
        "train.oracle_epochs=1".into(),
    ]);
    let manifest = examples().join("subtuning.toml");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&manifest, &a, family.variants, &set);
    run(&manifest, &b, family.variants, &set);
    assert_eq!(results(&a), results(&b), "subtuning results differ between two processes");
    compare_expected(&family, &a).unwrap_or_else(|e| panic!("{e}"));
}
