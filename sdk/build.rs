//! With the `torch` feature (plugins that compute on tensors themselves), the
//! SDK records the libtorch version the plugin is built against, so that the
//! host can refuse a plugin linked to another libtorch. torch-sys exports its
//! lib folder to direct dependents as `DEP_TCH_LIBTORCH_LIB`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let version_py = std::path::Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let text = std::fs::read_to_string(&version_py).unwrap_or_default();
    if let Some(line) = text.lines().find(|l| l.starts_with("__version__")) {
        let version = line.split(['\'', '"']).nth(1).unwrap_or("").split('+').next().unwrap_or("");
        println!("cargo:rustc-env=TESSERA_SDK_LIBTORCH_VERSION={version}");
    }
}
