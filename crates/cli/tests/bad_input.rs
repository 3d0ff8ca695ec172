//! Bad input never crashes the host: each case gets a clear error naming
//! the file, the key or line, and what to do. All cases load real plugins.

mod common;

use common::*;
use tessera_engine::plugin::{LoadError, Registry};
use tessera_engine::report::Status;

fn line_of(path: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(path).unwrap().lines().position(|l| l.contains(needle)).expect("needle in manifest") + 1
}

#[test]
fn unknown_plugin_is_located_and_lists_the_loaded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &[&baselines()],
        &format!("{SMALL_TRAIN}\n[sampler]\nuse = \"nosuch.sequential\"\n"),
    );
    let err = prepare(&m).err().expect("an unknown plugin is an error").0;
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].message.contains("no plugin named `nosuch`"), "{}", err[0]);
    assert!(err[0].message.contains("loaded: baselines"), "{}", err[0]);
    assert_eq!(err[0].location.map(|l| l.0), Some(line_of(&m, "nosuch")));
}

#[test]
fn unknown_component_suggests_the_closest_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &[&baselines()],
        &format!("{SMALL_TRAIN}\n[sampler]\nuse = \"baselines.sequentail\"\n"),
    );
    let err = prepare(&m).err().unwrap().0;
    assert!(err[0].message.contains("has no sampler named `sequentail`"), "{}", err[0]);
    assert_eq!(err[0].hint.as_deref(), Some("did you mean `baselines.sequential`?"));
    assert_eq!(err[0].key.as_deref(), Some("sampler.use"));
    assert_eq!(err[0].location.map(|l| l.0), Some(line_of(&m, "sequentail")));
}

#[test]
fn misspelled_component_parameter_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{SMALL_TRAIN}\n[sampler]\nuse = \"baselines.full-shuffle\"\n\n[[variant]]\nname = \"a\"\n\n[[variant]]\nname = \"b\"\nsampler = {{ use = \"baselines.full-shuffle\", chunkk = 3 }}\n");
    let m = write_manifest(dir.path(), &[&baselines()], &body);
    let err = prepare(&m).err().unwrap().0;
    assert_eq!(err.len(), 1, "only variant b is wrong: {err:?}");
    let d = &err[0];
    assert_eq!(d.key.as_deref(), Some("variant[1].sampler.chunkk"));
    assert_eq!(d.location.map(|l| l.0), Some(line_of(&m, "chunkk")));
    assert!(d.hint.as_deref().unwrap_or("").contains("did you mean `chunk`?"), "{d}");
    assert!(d.to_string().starts_with(&format!("{}:{}:", m.display(), line_of(&m, "chunkk"))), "{d}");
}

#[test]
fn wrong_value_type_and_bad_value_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &[&baselines()],
        &format!("{SMALL_TRAIN}\n[sampler]\nuse = \"baselines.sequential\"\nchunk = \"big\"\n"),
    );
    let err = prepare(&m).err().unwrap().0;
    assert_eq!(err[0].key.as_deref(), Some("sampler.chunk"));
    assert!(err[0].message.contains("invalid type"), "{}", err[0]);
    assert_eq!(err[0].location.map(|l| l.0), Some(line_of(&m, "chunk = \"big\"")));

    let m = write_manifest(
        dir.path(),
        &[&baselines()],
        &format!("{SMALL_TRAIN}\n[sampler]\nuse = \"baselines.sequential\"\nchunk = 0\n"),
    );
    let err = prepare(&m).err().unwrap().0;
    assert!(err[0].message.contains("parameter `chunk`: must be at least 1"), "{}", err[0]);

    let m = write_manifest(
        dir.path(),
        &[&baselines()],
        "[train]\nepochs = -1\n[sampler]\nuse = \"baselines.sequential\"\n",
    );
    let err = prepare(&m).err().unwrap().0;
    assert_eq!(err[0].key.as_deref(), Some("train.epochs"));
}

#[test]
fn missing_plugin_file_points_at_the_plugin_paths() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/libtessera_gone.so");
    let m = write_manifest(dir.path(), &[&missing], "[sampler]\nuse = \"baselines.sequential\"\n");
    let err = prepare(&m).err().unwrap().0;
    assert!(err[0].message.contains("does not exist"), "{}", err[0]);
    assert!(err[0].message.contains("libtessera_gone.so"), "{}", err[0]);
    assert_eq!(err[0].key.as_deref(), Some("experiment.plugin_paths[0]"));
    assert_eq!(err[0].location.map(|l| l.0), Some(2));
}

#[test]
fn two_libraries_with_one_plugin_name_are_refused_when_used() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(baselines(), a.join(tessera_engine::plugin::library_file_name("tessera_baselines"))).unwrap();
    std::fs::copy(baselines(), b.join(tessera_engine::plugin::library_file_name("tessera_baselines_copy"))).unwrap();
    let m =
        write_manifest(dir.path(), &[&a, &b], &format!("{SMALL_TRAIN}\n[sampler]\nuse = \"baselines.sequential\"\n"));
    let err = prepare(&m).err().unwrap().0;
    assert!(err[0].message.contains("two libraries provide plugin `baselines`"), "{}", err[0]);
    assert!(err[0].message.contains("remove one"), "{}", err[0]);
}

#[test]
fn the_same_file_twice_is_one_plugin() {
    let mut registry = Registry::new();
    registry.load_file(&baselines()).unwrap();
    registry.load_file(&baselines()).unwrap();
    assert_eq!(registry.plugins().len(), 1);
    assert_eq!(registry.conflicts().count(), 0);
}

#[test]
fn a_library_that_is_no_plugin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join(tessera_engine::plugin::library_file_name("tessera_fake"));
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let err = Registry::new().load_file(&fake).unwrap_err();
    assert!(matches!(err, LoadError::Open { .. }), "{err}");
}

#[test]
fn panicking_and_failing_plugins_fail_their_variant_only() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"{SMALL_TRAIN}
[sampler]
use = "baselines.sequential"

[[metric]]
use = "baselines.accuracy"

[[variant]]
name = "before"

[[variant]]
name = "panic-in-order"
sampler = {{ use = "faulty.sampler", panic_in = "order" }}

[[variant]]
name = "panic-in-stream"
sampler = {{ use = "faulty.sampler", panic_in = "chunk" }}

[[variant]]
name = "error-in-metric"
metric = [{{ use = "faulty.metric", panic_in = "observe", error_instead = true }}]

[[variant]]
name = "panic-in-finish"
metric = [{{ use = "faulty.metric", panic_in = "finish" }}]

[[variant]]
name = "bogus-id"
sampler = {{ use = "faulty.sampler", bogus_id = 1000000 }}

[[variant]]
name = "after"
"#
    );
    let m = write_manifest(dir.path(), &[&baselines(), &faulty()], &body);
    let session = prepare(&m).unwrap_or_else(|e| panic!("{e}"));
    let outcome = run_into(&session, dir.path());
    let status: Vec<(&str, Status)> = outcome.results.variants.iter().map(|v| (v.name.as_str(), v.status)).collect();
    assert_eq!(
        status,
        vec![
            ("before", Status::Ok),
            ("panic-in-order", Status::Failed),
            ("panic-in-stream", Status::Failed),
            ("error-in-metric", Status::Failed),
            ("panic-in-finish", Status::Failed),
            ("bogus-id", Status::Failed),
            ("after", Status::Ok),
        ]
    );
    let error = |name: &str| outcome.results.variants.iter().find(|v| v.name == name).unwrap().error.clone().unwrap();
    assert_eq!(error("panic-in-order"), "plugin component faulty.sampler panicked: deliberate panic in order");
    assert_eq!(error("panic-in-stream"), "plugin component faulty.sampler panicked: deliberate panic in chunk");
    assert_eq!(error("error-in-metric"), "faulty.metric: deliberate failure in observe");
    assert_eq!(error("panic-in-finish"), "plugin component faulty.metric panicked: deliberate panic in finish");
    assert!(error("bogus-id").contains("example id 1000000, outside 0..420"), "{}", error("bogus-id"));
    assert!(!outcome.all_ok());
    // Results of the variants that ran are on disk.
    let saved = tessera_engine::report::RunResults::load(&outcome.dir).unwrap();
    assert_eq!(saved, outcome.results);
    assert!(saved.variants[0].results["baselines.accuracy"].scalars["test_accuracy"] > 0.5);
    assert!(saved.variants[6].results["baselines.accuracy"].scalars["test_accuracy"] > 0.5);
}

#[test]
fn a_panicking_constructor_is_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &[&baselines(), &faulty()],
        &format!("{SMALL_TRAIN}\n[sampler]\nuse = \"faulty.sampler\"\npanic_in = \"new\"\n"),
    );
    let err = prepare(&m).err().unwrap().0;
    assert!(err[0].message.contains("faulty.sampler panicked: deliberate panic in new"), "{}", err[0]);
}

#[test]
fn missing_or_foreign_pretrained_weights_fail_their_variant_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A CNN's weights, for the MLP of SMALL_TRAIN.
    let cnn = tessera_engine::model::Model::new(
        &tessera_engine::manifest::ModelConfig { kind: tessera_engine::manifest::ModelKind::Cnn, ..Default::default() },
        &[1, 8, 8],
        3,
        tch::Device::Cpu,
        0,
    )
    .unwrap();
    cnn.save(&dir.path().join("cnn.safetensors")).unwrap();
    let body = format!(
        "{SMALL_TRAIN}\n[sampler]\nuse = \"baselines.full-shuffle\"\n\n[[variant]]\nname = \"missing\"\nmodel = {{ weights = \"nope.safetensors\" }}\n\n[[variant]]\nname = \"foreign\"\nmodel = {{ weights = \"cnn.safetensors\", fresh_head = true }}\n"
    );
    let m = write_manifest(dir.path(), &[&baselines()], &body);
    let outcome = run_into(&prepare(&m).unwrap(), dir.path());
    let error = |i: usize| outcome.results.variants[i].error.clone().unwrap_or_default();
    assert!(error(0).contains("nope.safetensors does not exist") && error(0).contains("save_model"), "{}", error(0));
    assert!(error(1).contains("cnn.safetensors has no weight `layer0."), "{}", error(1));
}
