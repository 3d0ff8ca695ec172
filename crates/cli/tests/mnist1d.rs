//! Tessera's `mnist1d` source against its authors' generator: the `mnist1d`
//! package, installed into the set-up's Python by `make`
//! (`testing/mnist1d_reference.py` writes its arrays).

mod common;

use std::path::Path;
use std::process::Command;

use tessera_engine::data::mnist1d::{make_dataset, Mnist1dArgs, PACKAGE_SEED};
use tessera_engine::data::readers::npy;

/// The package's sequences (train then test) and labels for `args`.
fn package(out: &Path, args: &[&str]) -> (Vec<f64>, Vec<i64>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testing/mnist1d_reference.py");
    let python = tessera_engine::plugin::libtorch_python();
    let run = Command::new(&python).arg(&script).arg(out).args(args).output().expect("python runs");
    assert!(
        run.status.success(),
        "{} could not run the mnist1d package (make test installs it: `make mnist1d`): {}",
        python.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let x = npy(&out.join("x.npy")).unwrap().values;
    let y = npy(&out.join("y.npy")).unwrap().values.iter().map(|&v| v as i64).collect();
    (x, y)
}

/// Tessera's arrays equal the package's to within 1e-9 for `args`.
fn assert_equal(args: &Mnist1dArgs, seed: u64, package_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = package(dir.path(), package_args);
    let ours = make_dataset(args, seed).unwrap();
    assert_eq!(ours.y, y, "labels ({package_args:?})");
    assert_eq!(ours.x.len(), x.len());
    let worst = ours.x.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-9, "largest difference {worst:e} ({package_args:?})");
    assert_eq!(ours.train_count, (y.len() as f64 * args.train_split) as usize);
}

#[test]
fn the_default_arguments_give_the_packages_data() {
    assert_equal(&Mnist1dArgs::default(), PACKAGE_SEED, &[]);
}

#[test]
fn no_translation_gives_the_packages_data() {
    let args = Mnist1dArgs { max_translation: 1, ..Mnist1dArgs::default() };
    assert_equal(&args, PACKAGE_SEED, &["max_translation=1"]);
}

#[test]
fn another_seed_size_and_shuffled_positions_give_the_packages_data() {
    let args =
        Mnist1dArgs { num_samples: 1230, padding: [20, 30], shuffle_seq: true, seed: None, ..Mnist1dArgs::default() };
    assert_equal(&args, 7, &["num_samples=1230", "padding=[20, 30]", "shuffle_seq=True", "seed=7"]);
}

#[test]
fn a_manifest_reads_the_package_split_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[data]\nsource = \"mnist1d\"\nvalidation_fraction = 0.25\n\n[data.mnist1d]\nnum_samples = 200\nsplit = \"package\"\n\n[train]\nepochs = 1\n\n[sampler]\nuse = \"baselines.sequential\"\n";
    let m = common::write_manifest(dir.path(), &[&common::baselines()], body);
    let session = common::prepare(&m).unwrap();
    let s = &session.variants[0].settings;
    let splits = tessera_engine::data::load(&s.data, 0.0, s.experiment.seed, dir.path()).unwrap();
    let made = make_dataset(&s.data.mnist1d, PACKAGE_SEED).unwrap();
    // The package's first 160 train (the last 40 of them validate), its last 40 test.
    assert_eq!((splits.train.len(), splits.validation.len(), splits.test.len()), (120, 40, 40));
    assert_eq!(splits.test.labels, made.y[160..]);
    assert_eq!(splits.train.labels, made.y[..120]);
    assert_eq!(splits.train.features[0], made.x[0] as f32);
    let limited = tessera_engine::manifest::DataConfig { limit: Some(50), ..s.data.clone() };
    let err = tessera_engine::data::load(&limited, 0.0, 0, dir.path()).err().unwrap().to_string();
    assert!(err.contains("data.limit does not apply"), "{err}");
}
