//! With the `torch` feature (which the engine's own `torch` feature turns
//! on), torch-sys is a direct dependency and exports libtorch's lib folder
//! as `DEP_TCH_LIBTORCH_LIB`: the host records that folder and libtorch's
//! version, the one a plugin that links libtorch must match. Without it the
//! host links no libtorch and records none (`tessera-graph`).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-env=TESSERA_LIBTORCH_LIB={lib}");
    // The wheel's torch/version.py says e.g. `__version__ = '2.13.0+cu130'`.
    let version_py = std::path::Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    if let Ok(text) = std::fs::read_to_string(&version_py) {
        if let Some(line) = text.lines().find(|l| l.starts_with("__version__")) {
            let version = line.split(['\'', '"']).nth(1).unwrap_or("").split('+').next().unwrap_or("");
            println!("cargo:rustc-env=TESSERA_LIBTORCH_VERSION={version}");
        }
    }
}
