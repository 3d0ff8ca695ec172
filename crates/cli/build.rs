//! Records libtorch's lib folder as an rpath of the `tessera` binary and of
//! this crate's tests, so nobody has to export LD_LIBRARY_PATH (torch-sys
//! exports the folder to its direct dependents as `DEP_TCH_LIBTORCH_LIB`);
//! with the `cuda` feature, keeps libtorch_cuda linked, which the linker's
//! --as-needed would otherwise drop.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
