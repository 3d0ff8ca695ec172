//! Records libtorch's lib folder as an rpath of the `tessera` binary and of
//! this crate's tests, so nobody has to export LD_LIBRARY_PATH (torch-sys
//! exports the folder to its direct dependents as `DEP_TCH_LIBTORCH_LIB`);
//! with the `cuda` feature, keeps libtorch_cuda linked, which the linker's
//! --as-needed would otherwise drop. Also gives the binary its build: the
//! git commit (`TESSERA_COMMIT`, HEAD when it was built) and libtorch's version (`TESSERA_LIBTORCH`),
//! which `--version` prints and every run folder records.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    if let Some(lib) = &lib {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-env=TESSERA_COMMIT={}", commit());
    println!("cargo:rustc-env=TESSERA_LIBTORCH={}", libtorch_version(lib.as_deref()));
}

/// The checkout's short commit (rebuilt when HEAD moves), `unknown` outside
/// git. The Makefile passes it as `TESSERA_BUILD_COMMIT`, which also reruns
/// this script when two checkouts share one target folder (the HEAD files
/// watched are those of the checkout that ran it last).
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=TESSERA_BUILD_COMMIT");
    if let Some(given) = std::env::var("TESSERA_BUILD_COMMIT").ok().filter(|c| !c.trim().is_empty()) {
        return given.trim().to_string();
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        for file in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
            println!("cargo:rerun-if-changed={}", Path::new(&dir).join(file).display());
        }
    }
    git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

/// The torch wheel's `version.py` beside libtorch's lib folder, or libtorch's
/// `build-version`; `none` without libtorch (`tessera-graph`).
fn libtorch_version(lib: Option<&str>) -> String {
    let Some(root) = lib.map(|l| Path::new(l).join("..")) else { return "none".into() };
    let read = |name: &str| std::fs::read_to_string(root.join(name)).ok();
    let from_wheel = read("version.py").and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("__version__"))?.to_string();
        Some(line.split('\'').nth(1)?.to_string())
    });
    from_wheel.or_else(|| read("build-version").map(|v| v.trim().to_string())).unwrap_or_else(|| "unknown".into())
}
