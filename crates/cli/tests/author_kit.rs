//! The plugin author's side of SDK 0.3 through the real path: a parameter
//! declared as a path (`PathBuf`) is the manifest's folder's, as the host's
//! own paths are, whatever folder `tessera run` starts in.

mod common;

use common::*;
use tessera_engine::report::RunResults;

#[test]
fn a_path_parameter_is_relative_to_the_manifest_not_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("experiments");
    std::fs::create_dir_all(&experiment).unwrap();
    std::fs::write(experiment.join("notes.txt"), "twelve bytes").unwrap();
    let manifest = format!(
        r#"
[experiment]
threads = 1
plugin_paths = ["{faulty}"]
[data]
source = "blobs"
examples = 60
[model]
hidden = [4]
[train]
epochs = 1
[sampler]
use = "baselines.full-shuffle"
[[metric]]
use = "faulty.metric"
path = "notes.txt"
"#,
        faulty = faulty().display()
    );
    std::fs::write(experiment.join("m.toml"), manifest).unwrap();
    // Run from the folder above: `notes.txt` is not there, the manifest's folder has it.
    let out = tessera_command(&["-q", "run", "experiments/m.toml", "--out", "run"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results = RunResults::load(&dir.path().join("run")).unwrap();
    assert_eq!(results.variants[0].results["faulty.metric"].scalars["path_bytes"], 12.0);
}
