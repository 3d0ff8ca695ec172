//! Data larger than memory, through the `tessera` binary: sources streamed
//! into shards, `tessera shard` folders trained in place, WebDataset tar
//! shards, and each sampler's memory staying flat as the data grows.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{baselines, library, write_manifest};
use tessera_engine::data::readers::write_npy;

fn tessera(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera")).arg("-q").args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tessera {args:?} failed:\n{text}");
    text
}

/// The engine's scalars of each variant of the run in `out`, by name.
fn engines(out: &Path) -> Vec<(String, serde_json::Value)> {
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["status"], "ok", "{v}");
            (v["name"].as_str().unwrap().to_string(), v["results"]["engine"]["scalars"].clone())
        })
        .collect()
}

fn plugins() -> Vec<PathBuf> {
    vec![baselines(), library("tessera_corgi2")]
}

const TRAIN: &str = "[model]\nkind = \"linear\"\n\n[train]\nepochs = 1\nbatch_size = 64\nlr = 0.1\n";

#[test]
fn an_npy_source_streams_into_shards_and_a_tessera_shard_folder_trains_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = tessera_engine::data::blobs(3000, 12, 4, 2.0, 1).unwrap();
    let x: Vec<u8> = d.features.iter().flat_map(|v| (*v as f64).to_le_bytes()).collect();
    write_npy(&dir.path().join("x.npy"), "<f8", &[3000, 12], &x).unwrap();
    write_npy(&dir.path().join("y.npy"), "|u1", &[3000], &d.labels.iter().map(|&l| l as u8).collect::<Vec<_>>())
        .unwrap();
    tessera(&["shard", "x.npy", "--labels", "y.npy", "--out", "set", "--block-size", "50", "--seed", "3"], dir.path());
    let storage = "[storage]\nmode = \"shards\"\nblock_size = 50\nbuffer_blocks = 4\n\n[[variant]]\nname = \"corgipile\"\nsampler = { use = \"corgi2.corgipile\", buffer_blocks = 4 }\n";
    let libraries = plugins();
    let paths: Vec<&Path> = libraries.iter().map(PathBuf::as_path).collect();
    for (name, data) in [
        ("npy", "[data]\nsource = \"npy\"\npath = \"x.npy\"\nlabels_path = \"y.npy\"\n"),
        ("stored", "[data]\nsource = \"shards\"\npath = \"set\"\n"),
    ] {
        let body = format!("seed = 3\n\n{data}\n{TRAIN}\n{storage}");
        let m = write_manifest(dir.path(), &paths, &body);
        std::fs::rename(&m, dir.path().join(format!("{name}.toml"))).unwrap();
        tessera(&["run", &format!("{name}.toml"), "--out", name], dir.path());
    }
    let (streamed, stored) = (engines(&dir.path().join("npy")), engines(&dir.path().join("stored")));
    assert_eq!(streamed[0].1["train_examples"], 2100.0);
    for key in ["final_test_loss", "final_test_accuracy", "io_requests_per_epoch", "io_bytes_per_epoch"] {
        assert_eq!(streamed[0].1[key], stored[0].1[key], "{key}");
    }
    // The user's folder is trained in place and left as it was.
    let listing = |p: &Path| {
        let mut names: Vec<String> =
            std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(listing(&dir.path().join("set")), ["test", "train", "validation"]);
    assert_eq!(listing(&dir.path().join("set/train")), ["index.json", "shard-00000.bin"]);
}

/// A PNG of 8 × 8 grey pixels: dark for class 0, light for class 1, with a
/// pattern that varies by `k`.
fn png(class: u8, k: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..64).map(|p| class * 120 + ((p * 7 + k * 13) % 100) as u8).collect();
    let mut bytes = Vec::new();
    image::GrayImage::from_raw(8, 8, pixels)
        .unwrap()
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

#[test]
fn webdataset_tar_shards_train_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tars")).unwrap();
    for t in 0..2u32 {
        let samples: Vec<(String, &str, Vec<u8>)> = (0..100u32)
            .flat_map(|k| {
                let class = ((k + t) % 2) as u8;
                let key = format!("s{t}-{k:04}");
                [(key.clone(), "png", png(class, k)), (key, "cls", class.to_string().into_bytes())]
            })
            .collect();
        tessera_engine::data::webdataset::write_tar(&dir.path().join(format!("tars/part-{t}.tar")), &samples).unwrap();
    }
    let body = format!(
        "seed = 0\n\n[data]\nsource = \"webdataset\"\npath = \"tars\"\n\n{TRAIN}\n[storage]\nmode = \"shards\"\nblock_size = 16\nbuffer_blocks = 2\n\n[[variant]]\nname = \"block-shuffle\"\nsampler = {{ use = \"baselines.block-shuffle\" }}\n"
    );
    write_manifest(dir.path(), &[&baselines()], &body);
    tessera(&["run", "manifest.toml", "--out", "run", "--set", "train.epochs=10"], dir.path());
    let engine = &engines(&dir.path().join("run"))[0].1;
    assert_eq!(engine["train_examples"], 140.0);
    assert!(engine["final_test_accuracy"].as_f64().unwrap() > 0.9, "{engine}");
    let printed = tessera(&["shard", "tars", "--out", "set", "--block-size", "16"], dir.path());
    assert!(printed.contains("train") && printed.contains("140 examples"), "{printed}");
}

/// Every sampler: one epoch from a shard folder, in a process of its own,
/// over 10× more data, needs less than a quarter of the extra data in extra
/// memory (both sets are larger than the loader's budget of
/// (prefetch + 3) × buffer_blocks = 28 blocks, so that budget is full in both); and from disk it trains the model that memory trains (every
/// example visited as the order says).
#[test]
fn each_samplers_memory_stays_flat_as_the_data_grows_and_disk_trains_as_memory_does() {
    let dir = tempfile::tempdir().unwrap();
    let samplers = [
        ("sequential", "{ use = \"baselines.sequential\" }", ""),
        ("block-shuffle", "{ use = \"baselines.block-shuffle\" }", ""),
        ("shuffle-buffer", "{ use = \"baselines.shuffle-buffer\" }", ""),
        ("corgipile", "{ use = \"corgi2.corgipile\", buffer_blocks = 4 }", ""),
        ("corgi2", "{ use = \"corgi2.corgi2\", buffer_blocks = 4 }", ""),
        ("full-shuffle", "{ use = \"baselines.full-shuffle\" }", ", access = \"example\""),
    ];
    let variants: String = samplers
        .iter()
        .map(|(name, sampler, access)| {
            format!(
                "\n[[variant]]\nname = \"{name}\"\nsampler = {sampler}\nstorage = {{ mode = \"STORAGE\"{access} }}\n"
            )
        })
        .collect();
    let libraries = plugins();
    let paths: Vec<&Path> = libraries.iter().map(PathBuf::as_path).collect();
    let mut peaks = Vec::new();
    for (set, examples) in [("small", 20_000), ("large", 200_000)] {
        let generate = format!(
            "seed = 0\n\n[data]\nsource = \"blobs\"\nexamples = {examples}\nfeatures = 256\nclasses = 10\nseparation = 2.0\ntest_fraction = 0.02\nvalidation_fraction = 0.0\n"
        );
        write_manifest(dir.path(), &paths, &generate);
        tessera(&["shard", "manifest.toml", "--out", set, "--block-size", "256"], dir.path());
        let body = format!(
            "seed = 0\n\n[data]\nsource = \"shards\"\npath = \"{set}\"\n\n{TRAIN}\n[storage]\nblock_size = 256\nbuffer_blocks = 4\n{variants}"
        );
        let mut peak = Vec::new();
        for (mode, runs) in [("shards", samplers.len()), ("memory", 1)] {
            write_manifest(dir.path(), &paths, &body.replace("STORAGE", mode));
            for (k, (name, ..)) in samplers.iter().enumerate().take(runs) {
                // One process per sampler: a process's peak is its own.
                let only = if mode == "shards" { vec!["--variant", name] } else { vec![] };
                let out = format!("{set}-{mode}-{k}");
                tessera(&[&["run", "manifest.toml", "--out", &out][..], &only].concat(), dir.path());
                let engine = engines(&dir.path().join(&out));
                if mode == "shards" {
                    peak.push(engine[0].1.clone());
                } else {
                    for (i, (name, memory)) in engine.iter().enumerate() {
                        for key in ["final_test_loss", "final_test_accuracy", "steps"] {
                            assert_eq!(memory[key], peak[i][key], "{set}: {name} from disk and from memory: {key}");
                        }
                    }
                }
            }
        }
        peaks.push(peak);
    }
    let extra_data_mb = 180_000.0 * 0.98 * (8.0 + 4.0 * 256.0) / (1 << 20) as f64;
    for (k, (name, ..)) in samplers.iter().enumerate() {
        let mb = |i: usize| peaks[i][k]["peak_memory_mb"].as_f64().unwrap();
        let grew = mb(1) - mb(0);
        assert!(
            grew < extra_data_mb / 4.0,
            "{name}: {:.0} MB → {:.0} MB for {extra_data_mb:.0} MB more data",
            mb(0),
            mb(1)
        );
    }
}
