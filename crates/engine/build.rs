//! Records libtorch's lib folder as an rpath of this crate's tests and
//! benches, so nobody has to export LD_LIBRARY_PATH. torch-sys exports the
//! folder to its direct dependents as `DEP_TCH_LIBTORCH_LIB` (its `links`
//! key is "tch").

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
