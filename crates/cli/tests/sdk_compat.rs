//! Plugins built against another tessera-sdk are refused with one short
//! message that says what to do. The tests build real plugins against
//! modified copies of the SDK (in target/fixtures, reused between runs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_engine::plugin::{LoadError, Registry};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixtures_dir() -> PathBuf {
    common::profile_dir().parent().unwrap().join("fixtures")
}

/// Writes `text` to `path` unless it already holds it (keeps cargo's
/// fingerprints, and so the fixture builds, warm).
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Every file under `dir`, its subfolders' included.
fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(source_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Builds a one-sampler plugin against a copy of the SDK whose version is
/// `sdk_version` and whose sources pass through `edit`.
fn build_plugin_against_modified_sdk(name: &str, sdk_version: &str, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let root = fixtures_dir().join(name);
    let sdk_src = workspace_root().join("sdk/src");
    let copy = root.join("sdk/src");
    let mut copied = Vec::new();
    for path in source_files(&sdk_src) {
        let file = path.strip_prefix(&sdk_src).unwrap().to_str().unwrap().to_string();
        write_if_changed(&copy.join(&file), &edit(&file, std::fs::read_to_string(&path).unwrap()));
        copied.push(copy.join(&file));
    }
    // A file the SDK no longer has (this fixture's own copy, in the target
    // folder) would keep a stale module alive: remove it.
    for stale in source_files(&copy).into_iter().filter(|f| !copied.contains(f)) {
        std::fs::remove_file(stale).unwrap();
    }
    let deps = "abi_stable = \"0.11.3\"\nciborium = \"0.2\"\nserde = { version = \"1\", features = [\"derive\"] }\ntoml = \"0.8\"\nlog = { version = \"0.4\", features = [\"std\"] }\n";
    write_if_changed(
        &root.join("sdk/Cargo.toml"),
        &format!("[package]\nname = \"tessera-sdk\"\nversion = \"{sdk_version}\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
    );
    let lib = format!("tessera_fixture_{}", name.replace('-', "_"));
    write_if_changed(
        &root.join("plugin/Cargo.toml"),
        &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nname = \"{lib}\"\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ntessera-sdk = {{ path = \"../sdk\" }}\n\n[workspace]\n"),
    );
    write_if_changed(
        &root.join("plugin/src/lib.rs"),
        r#"use tessera_sdk::{Component, Host, NoParams, OrderStream, Result, Sampler, StorageLayout};
pub struct Stale;
impl Component for Stale {
    const NAME: &'static str = "stale";
    const SUMMARY: &'static str = "Built against another SDK.";
    type Params = NoParams;
    fn new(_: NoParams) -> Result<Self> { Ok(Stale) }
}
impl Sampler for Stale {
    fn epoch_order(&mut self, layout: &StorageLayout, _: u64, _: &Host) -> Result<OrderStream> {
        Ok(Box::new(std::iter::once((0..layout.examples).collect())))
    }
}
tessera_sdk::export_plugin! { name: "stale", samplers: [Stale] }
"#,
    );
    // Pin the dependency versions to the workspace's.
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).unwrap();
    write_if_changed(&root.join("plugin/Cargo.lock"), &lock);
    let target = fixtures_dir().join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(root.join("plugin"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "fixture build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    target.join("release").join(tessera_engine::plugin::library_file_name(&lib))
}

#[test]
fn a_plugin_built_against_sdk_0_2_is_refused_with_a_short_message() {
    let library = build_plugin_against_modified_sdk("sdk-version", "0.2.1", |_, text| text);
    let err = Registry::new().load_file(&library).unwrap_err();
    assert!(matches!(err, LoadError::SdkVersion { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("was built against tessera-sdk 0.2.1"), "{message}");
    let host = tessera_engine::plugin::HOST_SDK_VERSION;
    assert!(message.contains(&format!("this host uses tessera-sdk {host}")), "{message}");
    assert!(message.ends_with("rebuild it against tessera-sdk 0.4"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn a_plugin_built_against_a_modified_sdk_is_refused_with_its_error_lines_only() {
    // The host's own version: only the layout differs.
    let host = tessera_engine::plugin::HOST_SDK_VERSION;
    let library = build_plugin_against_modified_sdk("sdk-layout", host, |file, text| {
        match file {
            "types/storage.rs" => text.replacen(
                "    pub bytes_per_example: u64,\n}",
                "    pub bytes_per_example: u64,\n    /// Not in the host's SDK.\n    pub extra: u64,\n}",
                1,
            ),
            // The test helpers build a layout: give them the extra field too.
            "testing/mod.rs" => text.replacen("bytes_per_example: 8 }", "bytes_per_example: 8, extra: 0 }", 1),
            _ => text,
        }
    });
    let err = Registry::new().load_file(&library).unwrap_err();
    assert!(matches!(err, LoadError::Layout { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("whose types differ from this host's: rebuild it against tessera-sdk 0.4"), "{message}");
    assert!(message.lines().count() <= 5, "short, not the full dump:\n{message}");
    assert!(err.details().unwrap().lines().count() > message.lines().count(), "the full report is kept for -v");
}
