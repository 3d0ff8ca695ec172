//! Shards in an object store (issue 40), through the `tessera` binary and a
//! real S3-compatible server: the moto server `testing/s3/start.sh` started
//! on a loopback port (`make test` does), with its own request log. A
//! `tessera shard` folder is uploaded under a fresh prefix; each sampler
//! trains from the bucket and from local disk, with the same results and
//! the cost model's block reads as the store's own ranged GETs, also with
//! its own shards (Corgi²'s copy) written to the bucket.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{baselines, library, write_manifest};
use serde_json::Value;
use tessera_engine::data::readers::write_npy;
use tessera_store::{Credentials, Store, StoreOptions, StoreUrl};

/// The server `testing/s3/start.sh` started: its bucket and request log.
struct Server {
    bucket: String,
    log: PathBuf,
}

fn server() -> Option<Server> {
    let (bucket, log) = (std::env::var("TESSERA_S3_BUCKET"), std::env::var("TESSERA_S3_LOG"));
    match (bucket, log, std::env::var_os("AWS_ENDPOINT_URL")) {
        (Ok(bucket), Ok(log), Some(_)) => Some(Server { bucket, log: log.into() }),
        _ if std::env::var_os("CI").is_some() => panic!("no S3 server (testing/s3/start.sh), and on CI there must be"),
        _ => {
            eprintln!("skipped: no S3 server; run through `make test` (testing/s3/start.sh)");
            None
        }
    }
}

/// A prefix no other test or run uses.
fn fresh_prefix(server: &Server, name: &str) -> StoreUrl {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    StoreUrl::parse(&format!("s3://{}/{name}-{}-{nanos}", server.bucket, std::process::id())).unwrap()
}

fn client(url: &StoreUrl) -> Store {
    Store::connect(url, &Credentials::from_environment().unwrap(), StoreOptions::default()).unwrap()
}

/// Every file under `dir`, uploaded under `url` with the same relative keys.
fn upload(dir: &Path, url: &StoreUrl) {
    let store = client(url);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = path.strip_prefix(dir).unwrap().to_str().unwrap();
            store.put(&url.join(key).unwrap(), std::fs::read(&path).unwrap()).unwrap();
        }
    }
}

/// The server's log lines of ranged GETs (206) of objects under `prefix`
/// (werkzeug's lines, their colour codes taken out).
fn ranged_gets(server: &Server, prefix: &str) -> usize {
    let log = std::fs::read_to_string(&server.log).unwrap();
    let request = format!("\"GET /{}/{prefix}", server.bucket);
    log.lines().map(without_colour).filter(|l| l.contains(&request) && l.contains("HTTP/1.1\" 206")).count()
}

/// `line` without ANSI colour codes (`ESC [ ... m`).
fn without_colour(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

fn tessera(args: &[&str], dir: &Path) -> Output {
    tessera_with(args, dir, &[])
}

/// `tessera ARGS` in `dir`, with these environment variables set.
fn tessera_with(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.arg("-q").args(args).current_dir(dir).envs(env.iter().copied());
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The engine's scalars of each variant of the run in `out`, by name.
fn engines(out: &Path) -> Vec<(String, Value)> {
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let variants = results["variants"].as_array().unwrap();
    variants
        .iter()
        .map(|v| {
            assert_eq!(v["status"], "ok", "{v}");
            let sampler = &v["results"]["sampler"]["scalars"];
            let mut engine = v["results"]["engine"]["scalars"].clone();
            for key in ["offline_blocks_read", "offline_bytes_read"] {
                engine[key] = sampler.get(key).cloned().unwrap_or(Value::from(0.0));
            }
            (v["name"].as_str().unwrap().to_string(), engine)
        })
        .collect()
}

/// `tessera shard` of `x.npy` and `y.npy` into `out`, blocks of 50, seed 3.
fn shard_args(out: &str) -> [&str; 10] {
    ["shard", "x.npy", "--labels", "y.npy", "--out", out, "--block-size", "50", "--seed", "3"]
}

/// A `tessera shard` folder of 3,000 examples (2,100 to train), blocks of 50.
fn shard_folder(dir: &Path) {
    let d = tessera_engine::data::blobs(3000, 12, 4, 2.0, 1).unwrap();
    let x: Vec<u8> = d.features.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(&dir.join("x.npy"), "<f4", &[3000, 12], &x).unwrap();
    write_npy(&dir.join("y.npy"), "|u1", &[3000], &d.labels.iter().map(|&l| l as u8).collect::<Vec<_>>()).unwrap();
    let out = tessera(&shard_args("set"), dir);
    assert!(out.status.success(), "{}", text(&out));
}

const SAMPLERS: &str = r#"
[[variant]]
name = "sequential"
sampler = { use = "baselines.sequential" }

[[variant]]
name = "full-shuffle"
sampler = { use = "baselines.full-shuffle" }

[[variant]]
name = "corgipile"
sampler = { use = "corgi2.corgipile", buffer_blocks = 4 }

[[variant]]
name = "corgi2"
sampler = { use = "corgi2.corgi2", buffer_blocks = 4 }
"#;

/// Writes `body` as the manifest `NAME.toml` (with `libraries`) and runs it
/// into the run folder `NAME`.
fn run_manifest(dir: &Path, name: &str, libraries: &[PathBuf], body: &str) -> Output {
    run_manifest_with(dir, name, libraries, body, &[])
}

/// [`run_manifest`] with these environment variables set.
fn run_manifest_with(dir: &Path, name: &str, libraries: &[PathBuf], body: &str, env: &[(&str, &str)]) -> Output {
    let paths: Vec<&Path> = libraries.iter().map(PathBuf::as_path).collect();
    let m = write_manifest(dir, &paths, body);
    let file = format!("{name}.toml");
    std::fs::rename(&m, dir.join(&file)).unwrap();
    tessera_with(&["run", &file, "--out", name], dir, env)
}

/// Every sampler, two epochs, on the shards at `path` (with more
/// `[storage]` lines).
fn samplers_on(dir: &Path, name: &str, path: &str, storage: &str) -> Output {
    let body = format!(
        "seed = 3\n\n[data]\nsource = \"shards\"\npath = \"{path}\"\n\n[model]\nkind = \"linear\"\n\n[train]\nepochs = 2\nbatch_size = 64\nlr = 0.1\n\n[storage]\nmode = \"shards\"\nblock_size = 50\nbuffer_blocks = 4\n{storage}{SAMPLERS}"
    );
    run_manifest(dir, name, &[baselines(), library("tessera_corgi2")], &body)
}

/// Every object name under `url`, two levels down (split folders and their
/// objects).
fn listing(url: &StoreUrl) -> Vec<String> {
    let store = client(url);
    let mut names = Vec::new();
    for name in store.names(url, 1000).unwrap() {
        let below = store.names(&url.join(name.trim_end_matches('/')).unwrap(), 1000).unwrap();
        names.extend(below.into_iter().map(|b| format!("{name}{b}")));
        names.push(name);
    }
    names.sort();
    names
}

/// The bytes of the files in `dir`.
fn folder_bytes(dir: &Path) -> f64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len() as f64).sum()
}

/// Whether a folder named `name` is anywhere under `dir`.
fn holds_folder(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .any(|p| p.file_name().is_some_and(|n| n == name) || holds_folder(&p, name))
}

/// The results that must not depend on where the shards are.
const SAME: [&str; 5] =
    ["final_test_loss", "final_test_accuracy", "io_requests_per_epoch", "io_bytes_per_epoch", "offline_blocks_read"];

#[test]
fn each_sampler_trains_from_a_bucket_as_from_local_disk() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    shard_folder(dir.path());
    let prefix = fresh_prefix(&server, "samplers");
    let source = prefix.join("set").unwrap();
    upload(&dir.path().join("set"), &source);
    let uploaded = listing(&source);
    let runs = prefix.join("runs").unwrap();
    let (url, storage_dir) = (source.to_string(), format!("dir = \"{runs}\"\n"));
    // Local disk; the bucket (Corgi²'s copy on local disk); the bucket with
    // `storage.dir` in the bucket too (Corgi²'s copy under runs/corgi2).
    let runs_of = [("local", "set", ""), ("store", url.as_str(), ""), ("written", url.as_str(), storage_dir.as_str())];
    for (name, path, storage) in runs_of {
        let out = samplers_on(dir.path(), name, path, storage);
        assert!(out.status.success(), "{name}: {}", text(&out));
    }
    let [local, store, written] = runs_of.map(|(name, _, _)| engines(&dir.path().join(name)));
    let mut served = 0.0;
    for (((name, on_disk), (_, in_store)), (_, in_written)) in local.iter().zip(&store).zip(&written) {
        for key in SAME {
            assert_eq!(on_disk[key], in_store[key], "{name}: {key}");
            assert_eq!(on_disk[key], in_written[key], "{name}: {key}, with storage.dir in the store");
        }
        // Every block read the cost model counts is one ranged GET, and no
        // more. Corgi²'s pass reads the source and writes its copy; the
        // epochs read the copy, local or under runs/corgi2.
        let offline = in_store["offline_blocks_read"].as_f64().unwrap();
        let epochs = in_store["io_requests_per_epoch"].as_f64().unwrap() * 2.0;
        let from_source = if offline > 0.0 { offline } else { epochs + offline };
        assert_eq!(in_store["store_range_requests"].as_f64(), Some(from_source), "{name}: {in_store}");
        assert_eq!(in_written["store_range_requests"].as_f64(), Some(epochs + offline), "{name}: {in_written}");
        assert_eq!(in_store["store_retries"], 0.0, "{name}");
        assert!(on_disk.get("store_requests").is_none(), "{name}: a local set reports no store");
        let objects = in_written["store_objects_written"].as_f64().unwrap();
        assert_eq!(objects > 0.0, name == "corgi2", "{name}: {in_written}");
        if name == "corgi2" {
            let copy = runs.join("corgi2/offline").unwrap();
            assert_eq!(ranged_gets(&server, copy.key()) as f64, epochs, "the copy in the store served each epoch");
        }
        // And every byte: the blocks' (as the model counts them) and the
        // index's, read whole once.
        let index = std::fs::metadata(dir.path().join("set/train/index.json")).unwrap().len() as f64;
        let offline_bytes = in_store["offline_bytes_read"].as_f64().unwrap();
        let block_bytes = if offline > 0.0 { 0.0 } else { in_store["io_bytes_per_epoch"].as_f64().unwrap() * 2.0 };
        assert_eq!(in_store["store_bytes"].as_f64(), Some(index + block_bytes + offline_bytes), "{name}: {in_store}");
        // Apart, the held-out splits, read whole once: their folders' files.
        let holdout = folder_bytes(&dir.path().join("set/test")) + folder_bytes(&dir.path().join("set/validation"));
        assert_eq!(in_store["store_holdout_bytes"].as_f64(), Some(holdout), "{name}: {in_store}");
        assert!(on_disk.get("store_holdout_bytes").is_none(), "{name}: local held-out splits report no store");
        served += from_source * 2.0;
    }
    assert_eq!(ranged_gets(&server, source.join("train").unwrap().key()) as f64, served, "the server's log agrees");
    assert!(served > 2100.0, "full shuffle reads a block an example: {served}");
    assert_eq!(listing(&source), uploaded, "the source prefix is as it was uploaded");
    assert!(listing(&runs).is_empty(), "without storage.keep the copies are removed: {:?}", listing(&runs));
    // The page sets the store's real reads and the wait beside the model's.
    let page = std::fs::read_to_string(dir.path().join("store/report.html")).unwrap();
    for column in ["io_requests_per_epoch", "io_modeled_seconds_per_epoch", "store_range_requests", "io_wait_seconds"] {
        assert!(page.contains(column), "{column} is on the page");
    }
}

#[test]
fn a_runs_own_shards_go_to_an_empty_prefix_and_stay_there_when_kept() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let runs = fresh_prefix(&server, "own");
    let body = |storage: &str| {
        format!(
            "seed = 5\n\n[data]\nsource = \"blobs\"\nexamples = 1200\nfeatures = 6\n\n[model]\nkind = \"linear\"\n\n[train]\nepochs = 2\nbatch_size = 32\n\n[storage]\nmode = \"shards\"\nblock_size = 40\n{storage}\n[[variant]]\nname = \"corgipile\"\nsampler = {{ use = \"corgi2.corgipile\", buffer_blocks = 3 }}\n"
        )
    };
    let libraries = [library("tessera_corgi2")];
    let out = run_manifest(dir.path(), "local", &libraries, &body(""));
    assert!(out.status.success(), "{}", text(&out));
    let kept = format!("dir = \"{runs}\"\nkeep = true\n");
    let out = run_manifest(dir.path(), "kept", &libraries, &body(&kept));
    assert!(out.status.success(), "{}", text(&out));
    let (local, kept_run) = (engines(&dir.path().join("local")), engines(&dir.path().join("kept")));
    assert_eq!(local[0].1["final_test_loss"], kept_run[0].1["final_test_loss"]);
    assert!(kept_run[0].1["store_range_requests"].as_f64().unwrap() > 0.0, "{}", kept_run[0].1);
    let stored = runs.join("corgipile/stored").unwrap();
    assert!(client(&runs).exists(&stored.join("index.json").unwrap()).unwrap(), "{:?}", listing(&runs));
    assert!(!holds_folder(&dir.path().join("kept"), "shards"), "the local copy staged the upload only");
    // The same manifest again: the prefix holds the kept shards, which the
    // second run neither writes over nor removes.
    let again = run_manifest(dir.path(), "again", &libraries, &body(&kept));
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let said = text(&again);
    assert!(said.contains(&format!("storage.dir: {}/corgipile already holds objects", runs)), "{said}");
    assert!(client(&runs).exists(&stored.join("index.json").unwrap()).unwrap(), "still there");
}

/// One sequential variant on the shards at `path` (with `data`, more
/// `[data]` lines), run with `env`.
fn sequential_run(dir: &Path, name: &str, path: &str, data: &str, env: &[(&str, &str)]) -> Output {
    let body = format!(
        "[data]\nsource = \"shards\"\npath = \"{path}\"\n{data}\n[model]\nkind = \"linear\"\n\n[train]\nepochs = 1\n\n[storage]\nmode = \"shards\"\nblock_size = 50\n\n[[variant]]\nname = \"stored\"\nsampler = {{ use = \"baselines.sequential\" }}\n"
    );
    run_manifest_with(dir, name, &[baselines()], &body, env)
}

/// Runs one sequential variant on the shards at `path`, which fails; what
/// it printed.
fn failing_run(dir: &Path, name: &str, path: &str) -> String {
    let out = sequential_run(dir, name, path, "store_retries = 1\n", &[]);
    assert_eq!(out.status.code(), Some(1), "{name}: the variant fails: {}", text(&out));
    text(&out)
}

/// The checking server `testing/s3/start.sh` started (IAM enforced): its
/// endpoint, bucket, and the one key it lets in.
struct CheckingServer {
    endpoint: String,
    bucket: String,
    key: String,
    secret: String,
}

fn checking_server() -> Option<CheckingServer> {
    let var = |name: &str| std::env::var(format!("TESSERA_S3_AUTH_{name}"));
    match (var("ENDPOINT"), var("BUCKET"), var("KEY"), var("SECRET")) {
        (Ok(endpoint), Ok(bucket), Ok(key), Ok(secret)) => Some(CheckingServer { endpoint, bucket, key, secret }),
        _ if std::env::var_os("CI").is_some() => {
            panic!("no checking S3 server (testing/s3/start.sh), and on CI there must be")
        }
        _ => {
            eprintln!("skipped: no checking S3 server; run through `make test` (testing/s3/start.sh)");
            None
        }
    }
}

/// The environment that reaches the checking server with `key` and `secret`.
fn checking_env<'a>(server: &'a CheckingServer, key: &'a str, secret: &'a str) -> [(&'a str, &'a str); 3] {
    [("AWS_ENDPOINT_URL", server.endpoint.as_str()), ("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret)]
}

#[test]
fn refused_credentials_fail_the_variant_naming_the_url_and_never_the_secret() {
    let Some(server) = checking_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    shard_folder(dir.path());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let url = format!("s3://{}/set-{}-{nanos}", server.bucket, std::process::id());
    let allowed = checking_env(&server, &server.key, &server.secret);
    // The one key the server lets in writes the shards and trains from them.
    let args = shard_args(&url);
    let out = tessera_with(&args, dir.path(), &allowed);
    assert!(out.status.success(), "{}", text(&out));
    let out = sequential_run(dir.path(), "allowed", &url, "", &allowed);
    assert!(out.status.success(), "{}", text(&out));
    // A wrong secret, then a key the server does not know: refused (403),
    // not retried, named with the URL; the secret is never printed.
    let wrong_secret = "tessera-wrong-secret-0123456789";
    let refused =
        [("wrong-secret", server.key.as_str(), wrong_secret), ("no-such-key", "AKIATESSERANOBODY000", &server.secret)];
    for (name, key, secret) in refused {
        let out = sequential_run(dir.path(), name, &url, "", &checking_env(&server, key, secret));
        assert_eq!(out.status.code(), Some(1), "{name}: the variant fails: {}", text(&out));
        let said = text(&out);
        assert!(said.contains(&format!("{url}/index.json: access denied")), "{name}: {said}");
        assert!(said.contains("403 Forbidden") && said.contains("check AWS_ACCESS_KEY_ID"), "{name}: {said}");
        assert!(!said.contains("attempts"), "{name}: refused, not retried: {said}");
        assert!(!said.contains(secret), "{name}: the secret is never printed: {said}");
    }
}

#[test]
fn a_missing_bucket_a_truncated_object_and_a_corrupt_block_fail_naming_the_url() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    shard_folder(dir.path());
    let said = failing_run(dir.path(), "no-bucket", "s3://tessera-no-such-bucket/set");
    assert!(
        said.contains("s3://tessera-no-such-bucket/set: the bucket `tessera-no-such-bucket` does not exist"),
        "{said}"
    );
    // Truncated: the training shard loses its last byte.
    let shard = dir.path().join("set/train/shard-00000.bin");
    let bytes = std::fs::read(&shard).unwrap();
    let truncated = fresh_prefix(&server, "truncated");
    upload(&dir.path().join("set"), &truncated);
    client(&truncated)
        .put(&truncated.join("train/shard-00000.bin").unwrap(), bytes[..bytes.len() - 1].to_vec())
        .unwrap();
    let said = failing_run(dir.path(), "truncated", &truncated.to_string());
    assert!(
        said.contains(&format!("{truncated}/train/shard-00000.bin: block")) && said.contains("truncated?"),
        "{said}"
    );
    // Corrupt: one byte of block 1 flipped; the checksum names the object.
    let mut corrupt_bytes = bytes.clone();
    corrupt_bytes[60 * 56] ^= 0xff;
    let corrupt = fresh_prefix(&server, "corrupt");
    upload(&dir.path().join("set"), &corrupt);
    client(&corrupt).put(&corrupt.join("train/shard-00000.bin").unwrap(), corrupt_bytes).unwrap();
    let said = failing_run(dir.path(), "corrupt", &corrupt.to_string());
    assert!(said.contains(&format!("{corrupt}/train/shard-00000.bin: block 1 at byte offset")), "{said}");
    assert!(said.contains("fails its checksum"), "{said}");
    // The source prefixes hold what was uploaded, nothing more or less.
    let store = client(&corrupt);
    assert!(!store.exists(&corrupt.join("train/offline").unwrap()).unwrap());
    assert!(!said.contains(&std::env::var("AWS_SECRET_ACCESS_KEY").unwrap()), "the secret is never printed");
}

#[test]
fn a_block_cache_serves_later_epochs_without_the_store() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    shard_folder(dir.path());
    let prefix = fresh_prefix(&server, "cache");
    upload(&dir.path().join("set"), &prefix);
    let body = |cache: &str| {
        format!(
            "seed = 3\n\n[data]\nsource = \"shards\"\npath = \"{prefix}\"\n{cache}\n\n[model]\nkind = \"linear\"\n\n[train]\nepochs = 3\nbatch_size = 64\nlr = 0.1\n\n[storage]\nmode = \"shards\"\nblock_size = 50\nbuffer_blocks = 4\n\n[[variant]]\nname = \"corgipile\"\nsampler = {{ use = \"corgi2.corgipile\", buffer_blocks = 4 }}\n"
        )
    };
    let run = |name: &str, cache: &str| {
        let out = run_manifest(dir.path(), name, &[library("tessera_corgi2")], &body(cache));
        assert!(out.status.success(), "{name}: {}", text(&out));
        engines(&dir.path().join(name)).remove(0).1
    };
    let plain = run("plain", "");
    let cached = run("cached", "store_cache = \"cache\"");
    let again = run("again", "store_cache = \"cache\"");
    for key in ["final_test_loss", "final_test_accuracy", "io_requests_per_epoch"] {
        assert_eq!((&plain[key], &plain[key]), (&cached[key], &again[key]), "{key}");
    }
    // 2,100 examples in 42 blocks: the first epoch fetches each once, later
    // epochs (and the next run) read them from the cache.
    let reads = plain["io_requests_per_epoch"].as_f64().unwrap() * 3.0;
    assert_eq!(plain["store_range_requests"].as_f64(), Some(reads));
    assert_eq!(
        (cached["store_range_requests"].as_f64(), cached["store_cache_misses"].as_f64()),
        (Some(42.0), Some(42.0))
    );
    assert_eq!(cached["store_cache_hits"].as_f64(), Some(reads - 42.0));
    assert_eq!((again["store_range_requests"].as_f64(), again["store_cache_hits"].as_f64()), (Some(0.0), Some(reads)));
    assert!(dir.path().join("cache").join(tessera_engine::storage::CACHE_MARKER).is_file());
    // A folder of the user's is never taken for a cache, and left as it was.
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "mine").unwrap();
    let out = run_manifest(dir.path(), "mine-run", &[library("tessera_corgi2")], &body("store_cache = \"mine\""));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not a block cache Tessera made"), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(dir.path().join("mine")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["notes.txt"]);
    assert_eq!(std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(), "mine");
}

#[test]
fn tessera_shard_writes_into_an_empty_prefix_the_objects_it_writes_on_disk() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    shard_folder(dir.path());
    let prefix = fresh_prefix(&server, "sharded");
    let url = prefix.to_string();
    let args = shard_args(&url);
    let out = tessera(&args, dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("{prefix}/train")), "{}", text(&out));
    let store = client(&prefix);
    for name in ["train/index.json", "train/shard-00000.bin", "validation/index.json", "test/shard-00000.bin"] {
        let local = std::fs::read(dir.path().join("set").join(name)).unwrap();
        assert_eq!(store.get(&prefix.join(name).unwrap()).unwrap(), local, "{name}");
    }
    // A shard over 16 MB goes up in parts and comes back whole.
    let big: Vec<u8> = (0..(17u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let object = prefix.join("big/shard-00000.bin").unwrap();
    store.put_file(&object, &dir.path().join("big.bin")).unwrap();
    assert!(store.get(&object).unwrap() == big, "the multipart upload reads back as written");
    // A prefix that holds objects is never written over.
    let again = tessera(&args, dir.path());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already holds objects"), "{}", text(&again));
}

#[test]
fn failed_and_timed_out_block_reads_are_retried_counted_and_change_nothing() {
    let Some(server) = server() else { return };
    let (Ok(flaky), Ok(faults)) = (std::env::var("TESSERA_S3_FLAKY_ENDPOINT"), std::env::var("TESSERA_S3_FLAKY_LOG"))
    else {
        assert!(std::env::var_os("CI").is_none(), "no failing proxy (testing/s3/start.sh), and on CI there must be");
        return eprintln!("skipped: no failing proxy; run through `make test` (testing/s3/start.sh)");
    };
    let dir = tempfile::tempdir().unwrap();
    shard_folder(dir.path());
    let prefix = fresh_prefix(&server, "flaky");
    upload(&dir.path().join("set"), &prefix);
    // The proxy answers every 5th block read 503, or holds it 2 s: past
    // the 1 s timeout here.
    let data = "store_retries = 3\nstore_timeout_seconds = 1\n";
    let direct = sequential_run(dir.path(), "direct", &prefix.to_string(), data, &[]);
    assert!(direct.status.success(), "{}", text(&direct));
    let out = sequential_run(dir.path(), "flaky", &prefix.to_string(), data, &[("AWS_ENDPOINT_URL", flaky.as_str())]);
    assert!(out.status.success(), "{}", text(&out));
    let (direct, flaky) = (&engines(&dir.path().join("direct"))[0].1, &engines(&dir.path().join("flaky"))[0].1);
    for key in ["final_test_loss", "final_test_accuracy", "store_range_requests", "store_bytes"] {
        assert_eq!(direct[key], flaky[key], "{key}: the same reads succeeded, the same results");
    }
    let log = std::fs::read_to_string(faults).unwrap();
    let train = format!("/{}/{}/train/", server.bucket, prefix.key());
    let faulted: Vec<&str> = log.lines().filter(|l| l.contains(&train)).collect();
    assert!(faulted.iter().any(|l| l.starts_with("503")) && faulted.iter().any(|l| l.starts_with("stall")));
    assert_eq!(flaky["store_retries"].as_f64(), Some(faulted.len() as f64), "each fault one retry: {faulted:?}");
    assert_eq!(direct["store_retries"], 0.0);
}

/// One sequential variant on the `[data]` lines `data`, memory mode, run
/// with `TMPDIR` set to `tmp`.
fn file_source_run(dir: &Path, name: &str, data: &str, tmp: &Path) -> Output {
    let body = format!(
        "seed = 4\n\n[data]\n{data}\n\n[model]\nkind = \"linear\"\n\n[train]\nepochs = 2\nbatch_size = 32\n\n[[variant]]\nname = \"files\"\nsampler = {{ use = \"baselines.sequential\" }}\n"
    );
    run_manifest_with(dir, name, &[baselines()], &body, &[("TMPDIR", tmp.to_str().unwrap())])
}

/// `x` and `y` as npy files, a CSV and two WebDataset tar shards (npy
/// members) under `dir`.
fn data_files(dir: &Path) {
    let d = tessera_engine::data::blobs(600, 6, 3, 2.0, 9).unwrap();
    let x: Vec<u8> = d.features.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(&dir.join("x.npy"), "<f4", &[600, 6], &x).unwrap();
    write_npy(&dir.join("y.npy"), "<i8", &[600], &d.labels.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
        .unwrap();
    let rows: Vec<String> = (0..600)
        .map(|i| {
            let features: Vec<String> = d.features[i * 6..(i + 1) * 6].iter().map(|v| v.to_string()).collect();
            format!("{},{}", features.join(","), d.labels[i])
        })
        .collect();
    std::fs::write(dir.join("table.csv"), rows.join("\n")).unwrap();
    std::fs::create_dir(dir.join("tars")).unwrap();
    let member = dir.join("member.npy");
    for t in 0..2 {
        let mut samples = Vec::new();
        for i in t * 300..(t + 1) * 300 {
            write_npy(&member, "<f4", &[6], &x[i * 24..(i + 1) * 24]).unwrap();
            samples.push((format!("{i:04}"), "npy", std::fs::read(&member).unwrap()));
            samples.push((format!("{i:04}"), "cls", d.labels[i].to_string().into_bytes()));
        }
        tessera_engine::data::webdataset::write_tar(&dir.join(format!("tars/part-{t}.tar")), &samples).unwrap();
    }
}

#[test]
fn data_files_of_other_sources_are_fetched_from_the_store_and_read_as_local_ones() {
    let Some(server) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    data_files(dir.path());
    let prefix = fresh_prefix(&server, "files");
    let store = client(&prefix);
    for name in ["x.npy", "y.npy", "table.csv", "tars/part-0.tar", "tars/part-1.tar"] {
        store.put(&prefix.join(name).unwrap(), std::fs::read(dir.path().join(name)).unwrap()).unwrap();
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let sources = [
        ("npy", "source = \"npy\"\npath = \"{at}x.npy\"\nlabels_path = \"{at}y.npy\""),
        ("csv", "source = \"csv\"\npath = \"{at}table.csv\""),
        ("webdataset", "source = \"webdataset\"\npath = \"{at}tars\""),
    ];
    for (name, data) in sources {
        let local = file_source_run(dir.path(), &format!("{name}-local"), &data.replace("{at}", ""), &tmp);
        assert!(local.status.success(), "{name}: {}", text(&local));
        let in_store = data.replace("{at}", &format!("{prefix}/"));
        let fetched = file_source_run(dir.path(), &format!("{name}-store"), &in_store, &tmp);
        assert!(fetched.status.success(), "{name}: {}", text(&fetched));
        let (a, b) =
            (engines(&dir.path().join(format!("{name}-local"))), engines(&dir.path().join(format!("{name}-store"))));
        assert_eq!(a[0].1["final_test_loss"], b[0].1["final_test_loss"], "{name}");
        assert_eq!(a[0].1["train_examples"], b[0].1["train_examples"], "{name}");
    }
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the fetched copies are gone with their run");
    // A truncated file in the store: the error names its URL, not the copy.
    let bytes = std::fs::read(dir.path().join("x.npy")).unwrap();
    store.put(&prefix.join("short.npy").unwrap(), bytes[..bytes.len() - 10].to_vec()).unwrap();
    let data = format!("source = \"npy\"\npath = \"{prefix}/short.npy\"\nlabels_path = \"y.npy\"");
    let out = file_source_run(dir.path(), "short", &data, &tmp);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&format!("{prefix}/short.npy")), "{}", text(&out));
    assert!(!text(&out).contains("tessera-fetched"), "{}", text(&out));
}
