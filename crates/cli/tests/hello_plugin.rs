//! examples/hello-plugin builds outside the workspace against tessera-sdk by
//! path, and a manifest loads it next to the baselines — the book's steps.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn hello_plugin_builds_standalone_and_runs_from_a_manifest() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-plugin");
    // The README's `cargo build --release`, into the shared fixtures target
    // folder so that repeated test runs reuse the build.
    let target = common::profile_dir().parent().unwrap().join("fixtures/target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "hello-plugin build failed:\n{}", String::from_utf8_lossy(&output.stderr));

    // The example manifest, with its plugin path pointed at that build.
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(crate_dir.join("hello.toml")).unwrap().replace(
        "plugin_paths = [\"target/release\"]",
        &format!(
            "plugin_paths = [{:?}, {:?}]",
            target.join("release").display().to_string(),
            common::baselines().display().to_string()
        ),
    );
    std::fs::write(dir.path().join("hello.toml"), manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["run", "hello.toml", "--out", "run"])
        .current_dir(dir.path())
        .env_remove("TESSERA_PLUGIN_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[INFO  tessera_hello] epoch 1: visiting 700 examples forwards"), "{stderr}");
    let results = tessera_engine::report::RunResults::load(&dir.path().join("run")).unwrap();
    for v in &results.variants {
        let confidence = v.results["hello.confidence"].scalars["confidence"];
        assert!((0.2..=1.0).contains(&confidence), "{}: {confidence}", v.name);
        assert!(v.results["baselines.accuracy"].scalars["test_accuracy"] > 0.5);
    }
}
