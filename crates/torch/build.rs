//! Records libtorch's lib folder as an rpath of this crate's test and bench
//! binaries, so that they run without LD_LIBRARY_PATH (torch-sys exports the
//! folder to its direct dependents as `DEP_TCH_LIBTORCH_LIB`), and compiles
//! `src/optim/state.cpp` against the same libtorch's headers.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=src/optim/state.cpp");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // <libtorch>/lib → <libtorch>/include and its C++ API's include folder.
    let include = Path::new(&lib).parent().unwrap_or(Path::new(&lib)).join("include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("src/optim/state.cpp")
        .compile("tessera_optimizer_state");
}
