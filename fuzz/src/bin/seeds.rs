//! Writes each fuzz target's seed inputs into `OUT/<target>/`: small valid
//! files made by Tessera's own writers (the formats the tests use), in the
//! layout each target reads. `make fuzz` adds the examples' manifests and
//! the shipped graphs.

use std::path::{Path, PathBuf};

use tessera_engine::data::{self, readers};
use tessera_engine::graph::csr_cache;
use tessera_engine::graph::Graph;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: seeds OUT"));
    let tmp = out.join(".made");
    std::fs::create_dir_all(&tmp).expect("a folder");
    seed(&out, "npy", "blobs", &split(&npy(&tmp, "<f4", &[6, 2], 4), &npy(&tmp, "<i8", &[6], 8)));
    seed(&out, "npy", "bytes", &split(&npy(&tmp, "|u1", &[2, 2, 2], 1), &npy(&tmp, "<i8", &[2], 8)));
    seed(&out, "idx", "images", &split(&idx(&[2, 2, 2], 8), &idx(&[2], 1)));
    seed(&out, "csv", "header", b"\xffa,b,label\n1,2,0\n3.5,4,1\n");
    seed(&out, "csv", "first-column", b"\x001,2,3\n0,4,5\n");
    seed(&out, "cifar", "two-records", &cifar());
    seed(&out, "shard_set", "blobs", &shard_set(&tmp));
    seed(&out, "tar_shard", "npy-and-png", &tar(&tmp));
    seed(&out, "edge_list", "snap", b"\x00# a comment\n0 1\n1 2 0.5\n2 0\n");
    seed(&out, "edge_list", "header", b"\x013 3\n0 1\n1 2\n2 0\n");
    seed(&out, "csr_cache", "triangle", &csr(&tmp));
    seed(&out, "run_folder", "plan-and-result", &split(PLAN.as_bytes(), RESULT.as_bytes()));
    std::fs::remove_dir_all(&tmp).expect("removing the scratch files");
}

fn seed(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("a folder");
    std::fs::write(dir.join(name), bytes).expect("a seed");
}

/// Two parts as `fuzz::split` cuts them: the first part's length, then both.
fn split(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut bytes = (first.len() as u16).to_le_bytes().to_vec();
    bytes.extend_from_slice(first);
    bytes.extend_from_slice(second);
    bytes
}

fn npy(tmp: &Path, descr: &str, shape: &[usize], value_bytes: usize) -> Vec<u8> {
    let count: usize = shape.iter().product();
    let values: Vec<u8> =
        (0..count * value_bytes).map(|i| if i % value_bytes == 0 { (i / value_bytes % 2) as u8 } else { 0 }).collect();
    let path = tmp.join("a.npy");
    readers::write_npy(&path, descr, shape, &values).expect("a .npy");
    std::fs::read(path).expect("the .npy")
}

fn idx(dims: &[u32], values: u8) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| bytes.extend_from_slice(&d.to_be_bytes()));
    let count: u32 = dims.iter().product();
    bytes.extend((0..count).map(|i| (i as u8) % values.max(1)));
    bytes
}

fn cifar() -> Vec<u8> {
    let mut bytes = vec![0u8];
    for record in 0..2u8 {
        bytes.push(record);
        bytes.extend((0..3072).map(|i| (i % 251) as u8));
    }
    bytes
}

fn shard_set(tmp: &Path) -> Vec<u8> {
    let d = data::blobs(10, 2, 2, 2.0, 1).expect("blobs");
    let dir = tmp.join("set");
    tessera_engine::storage::write_shards(&d, None, &dir, 4, 16).expect("shards");
    split(&std::fs::read(dir.join("index.json")).unwrap(), &std::fs::read(dir.join("shard-00000.bin")).unwrap())
}

fn tar(tmp: &Path) -> Vec<u8> {
    let mut png = Vec::new();
    let pixels = [0u8, 64, 128, 255];
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &pixels,
        2,
        2,
        image::ExtendedColorType::L8,
    )
    .expect("a PNG");
    let path = tmp.join("s.tar");
    let samples = vec![
        ("000000".to_string(), "npy", npy(tmp, "<f4", &[2, 2], 4)),
        ("000000".to_string(), "cls", b"1".to_vec()),
        ("000001".to_string(), "png", png),
        ("000001".to_string(), "json", br#"{"label": 0}"#.to_vec()),
    ];
    data::webdataset::write_tar(&path, &samples).expect("a tar");
    std::fs::read(path).expect("the tar")
}

fn csr(tmp: &Path) -> Vec<u8> {
    let key = tessera_fuzz::csr_key();
    let graph = Graph::from_edges(3, &[(0, 1), (1, 2), (2, 0)]).expect("a graph");
    let path = tmp.join("g.csr");
    csr_cache::store(&path, &key, &graph).expect("a cache file");
    std::fs::read(path).expect("the cache file")
}

const PLAN: &str = r#"{"schema": 1, "experiment": "m", "manifest": "m.toml", "started": "", "cwd": ".",
 "overrides": [], "plugins": [], "threads": 1,
 "variants": [{"name": "a", "kind": "train", "units": [0]}, {"name": "b", "kind": "population", "units": [1, 2]}],
 "units": [{"id": 0, "variant": "a", "work": {"kind": "variant"}, "cost": 1.0, "cost_unit": "example visits"},
           {"id": 1, "variant": "b", "work": {"kind": "population-runs", "runs": []}, "cost": null, "cost_unit": ""},
           {"id": 2, "variant": "b", "work": {"kind": "variant"}, "cost": null, "cost_unit": ""}]}"#;

const RESULT: &str = r#"{"unit": 0, "variant": "a", "status": "ok", "seconds": 0.5,
 "ran": {"host": "h", "pid": 1, "started": "2026-01-01T00:00:00+00:00"},
 "results": {"engine": {"scalars": {"test_accuracy": 0.9}}}}"#;
