//! Records libtorch's lib folder as an rpath of every binary of this crate
//! (the `tessera` command, tests, benches), so nobody has to export
//! LD_LIBRARY_PATH. torch-sys exports the folder to its direct dependents as
//! `DEP_TCH_LIBTORCH_LIB` (its `links` key is "tch").

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
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
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
