//! Helpers shared by the integration tests: where the built plugin libraries
//! are, manifests in temporary folders, and sessions that search only the
//! paths a test names.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tessera_engine::manifest::Diagnostics;
use tessera_engine::plugin::library_file_name;
use tessera_engine::run::{self, PluginSearch, RunOptions, RunOutcome, Session};

/// `tessera ARGS` run in `cwd` as a user runs it: plugins from beside the
/// binary only (no `TESSERA_PLUGIN_PATH`).
pub fn tessera_command(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TESSERA_PLUGIN_PATH")
        .output()
        .expect("tessera runs")
}

/// `tessera ARGS` started in `cwd` as the leader of its own process group
/// (a terminal's Ctrl-C, or Slurm's signal, goes to the whole group), stderr
/// piped, plugins from the manifest only.
pub fn spawn_in_group(cwd: &Path, args: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TESSERA_PLUGIN_PATH")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("tessera starts")
}

/// The cargo profile folder holding the built libraries (target/release).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// A built library of the workspace, by its lib name (`tessera_baselines`).
pub fn library(stem: &str) -> PathBuf {
    let path = profile_dir().join(library_file_name(stem));
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`make test` does: cargo build --release --workspace)",
        path.display()
    );
    path
}

/// The baselines plugin.
pub fn baselines() -> PathBuf {
    library("tessera_baselines")
}

/// The misbehaving test plugin.
pub fn faulty() -> PathBuf {
    library("faulty_fixture")
}

/// A search that looks only where the manifest says.
pub fn manifest_only() -> PluginSearch {
    PluginSearch { extra: vec![], env: false, beside_executable: false }
}

/// Writes `body` as a manifest whose plugin paths are `plugins`, in `dir`.
pub fn write_manifest(dir: &Path, plugins: &[&Path], body: &str) -> PathBuf {
    let paths: Vec<String> = plugins.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    let text = format!("[experiment]\nplugin_paths = [{}]\nthreads = 1\n{body}", paths.join(", "));
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Prepares a manifest, searching only its own plugin paths.
pub fn prepare(path: &Path) -> Result<Session, Diagnostics> {
    run::prepare(path, &[], &manifest_only())
}

/// Runs a prepared manifest into `dir/run`.
pub fn run_into(session: &Session, dir: &Path) -> RunOutcome {
    let options = RunOptions { out: Some(dir.join("run")), ..Default::default() };
    run::run(session, &options).expect("the run itself (not its variants) succeeds")
}

/// Small training settings: quick, but enough to learn something.
pub const SMALL_TRAIN: &str = r#"
[data]
source = "blobs"
examples = 600
features = 8
classes = 3
separation = 3.0

[model]
hidden = [16]

[train]
epochs = 2
batch_size = 16
lr = 0.1
"#;

/// results.json without what legitimately differs between two runs.
pub fn comparable(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !tessera_engine::figures::varies(k));
            if let (Some(serde_json::Value::Array(columns)), Some(serde_json::Value::Array(rows))) =
                (map.get("columns").cloned(), map.get_mut("rows"))
            {
                let timed: Vec<usize> = columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.as_str().is_some_and(tessera_engine::figures::varies))
                    .map(|(i, _)| i)
                    .collect();
                for row in rows.iter_mut().filter_map(|r| r.as_array_mut()) {
                    for &i in &timed {
                        if let Some(cell) = row.get_mut(i) {
                            *cell = serde_json::Value::Null;
                        }
                    }
                }
            }
            map.values_mut().for_each(comparable);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(comparable),
        _ => {}
    }
}
