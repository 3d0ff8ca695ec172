//! `tessera new plugin NAME --kind KIND` writes a crate that passes its own
//! test, builds against tessera-sdk by path, and runs from its manifest, for
//! each of the four kinds.

mod common;

use std::path::Path;
use std::process::Command;

fn cargo(args: &[&str], dir: &Path, target: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo).args(args).current_dir(dir).env("CARGO_TARGET_DIR", target).output().unwrap();
    assert!(out.status.success(), "cargo {args:?} in {}:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_kind_of_new_plugin_tests_builds_and_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let target = common::profile_dir().parent().unwrap().join("fixtures/new-plugins");
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    for kind in ["sampler", "finetuner", "metric", "graph-objective"] {
        let name = format!("new-{kind}");
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["new", "plugin", &name, "--kind", kind])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let crate_dir = dir.path().join(&name);
        // Pin the dependency versions to the workspace's (the build is offline).
        std::fs::copy(&lock, crate_dir.join("Cargo.lock")).unwrap();
        cargo(&["test", "--release", "--offline", "--quiet"], &crate_dir, &target);
        cargo(&["build", "--release", "--offline", "--quiet"], &crate_dir, &target);
        // Its manifest, with the plugin path at that build.
        let library = target
            .join("release")
            .join(tessera_engine::plugin::library_file_name(&format!("tessera_{}", name.replace('-', "_"))));
        let manifest_path = crate_dir.join(format!("{name}.toml"));
        let manifest = std::fs::read_to_string(&manifest_path).unwrap().replace(
            "plugin_paths = [\"target/release\"]",
            &format!(
                "plugin_paths = [{:?}, {:?}]",
                library.display().to_string(),
                common::baselines().display().to_string()
            ),
        );
        std::fs::write(&manifest_path, manifest).unwrap();
        let run = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["run", &format!("{name}.toml"), "--out", "run"])
            .current_dir(&crate_dir)
            .env_remove("TESSERA_PLUGIN_PATH")
            .output()
            .unwrap();
        assert!(run.status.success(), "{kind}: {}", String::from_utf8_lossy(&run.stderr));
        let results = tessera_engine::report::RunResults::load(&crate_dir.join("run")).unwrap();
        assert!(results.variants.iter().all(|v| v.status == tessera_engine::report::Status::Ok), "{kind}");
    }
    let again = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["new", "plugin", "new-metric", "--kind", "metric"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already holds files"));
}
