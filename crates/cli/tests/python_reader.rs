//! The Python reader of run folders (`python/tessera_runs`) under pytest,
//! on run folders this build's `tessera` writes (a train run at two step
//! sizes, a population run, a graph run), with the book's notebook example
//! run as written. `make test` installs pandas, pytest and TensorBoard into
//! the Python environment next to libtorch.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_reader_s_tests_pass_on_run_folders_of_this_build() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = tessera_engine::plugin::libtorch_python();
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(&python)
        .args(["-m", "pytest", "python/tests", "-q", "-p", "no:cacheprovider", "--basetemp"])
        .arg(scratch.path().join("pytest"))
        .current_dir(&repo)
        .env("TESSERA_BIN", env!("CARGO_BIN_EXE_tessera"))
        .env("PYTHONPATH", repo.join("python"))
        .env("MPLBACKEND", "Agg")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (make test installs it)", python.display()));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "pytest python/tests with {} failed (make test installs pandas, pytest and tensorboard):\n{said}",
        python.display()
    );
    assert!(said.contains(" passed"), "{said}");
}
