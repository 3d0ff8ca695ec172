//! The bad-input corpus: every case in `tests/corpus/*.cases` runs the real
//! `tessera` binary on a manifest (merged onto a small base), with the data
//! files, user folders and run folders the case makes, and asserts what a
//! user relies on: the exit code, that the message names the file, key,
//! line or component, that `check` refuses every setting error `run` would,
//! that nothing outside the run folder changed, that earlier variants'
//! results are intact, and that no case crashes, hangs past 60 s or uses
//! more than 4 GB.
//!
//! A case is a `### name` header, `#!` directives, and TOML:
//!
//! | directive | meaning |
//! |---|---|
//! | `#! base train` | the base manifest: `train` (default), `graph`, `population`, `none` |
//! | `#! remove sampler` | drop a top-level key of the base |
//! | `#! exit 2` | the expected exit code of `run` (default 0) |
//! | `#! check 0` | the expected exit code of `check` (default: 2 if exit is 2, else 0) |
//! | `#! says TEXT` | the output contains TEXT (repeatable) |
//! | `#! located` | the output has `manifest.toml:LINE:COL: error` |
//! | `#! args ...` | more arguments for both commands |
//! | `#! command report` | run `tessera report run` instead |
//! | `#! command ARGS...` | run `tessera ARGS...` instead (no `check` then) |
//! | `#! loud` | without `--quiet`, so that warnings show (with `command`) |
//! | `#! prepare ARGS...` | run `tessera ARGS...` first (e.g. a run to resume); its folders count as Tessera's |
//! | `#! delete PATH` | after `prepare`: remove a file or folder |
//! | `#! symlink PATH TARGET` | after `prepare`: make PATH a link to TARGET |
//! | `#! out PATH` | the run's `--out` (default `run`) |
//! | `#! file PATH` + `#\| lines` | a text file the case writes first |
//! | `#! env KEY=VALUE` | an environment variable for `tessera` (repeatable) |
//! | `#! npy PATH DTYPE DIMS... : VALUES...` | a `.npy` file (`f4`, `f8`, `i8`) |
//! | `#! idx PATH DIMS... : BYTES...` | an IDX file of unsigned bytes |
//! | `#! bytes PATH HEX...` | a file of raw bytes |
//! | `#! tar PATH KEY.EXT=DATA...` | a tar shard of those members: hex bytes, `text:WORD`, or `jpeg:W:H:PERCENT` (a W×H JPEG, its first PERCENT % of bytes) |
//! | `#! ok NAME` / `#! failed NAME` | that variant finished / failed in results.json |
//! | `#! scalar VARIANT ROLE NAME VALUE` | a scalar of results.json |

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIME_LIMIT: Duration = Duration::from_secs(60);
const MEMORY_LIMIT_KB: i64 = 4 * 1024 * 1024;

/// One case of the corpus.
#[derive(Debug, Default, Clone)]
struct Case {
    file: String,
    name: String,
    base: String,
    remove: Vec<String>,
    exit: i32,
    check: Option<i32>,
    says: Vec<String>,
    located: bool,
    /// Run `command` without `--quiet` (warnings show).
    loud: bool,
    args: Vec<String>,
    command: String,
    out: String,
    files: Vec<(String, Vec<u8>)>,
    ok: Vec<String>,
    failed: Vec<String>,
    scalars: Vec<(String, String, String, f64)>,
    prepare: Vec<Vec<String>>,
    /// Files from this one on are written after `prepare`.
    late_files: Option<usize>,
    deletes: Vec<String>,
    symlinks: Vec<(String, String)>,
    /// Environment variables for `tessera` (an object store's endpoint, say).
    env: Vec<(String, String)>,
    toml: String,
}

const TRAIN: &str = r#"
[experiment]
threads = 1
[data]
source = "blobs"
examples = 120
features = 4
classes = 3
[model]
hidden = [8]
[train]
epochs = 1
batch_size = 16
lr = 0.1
[sampler]
use = "baselines.full-shuffle"
[[metric]]
use = "baselines.accuracy"
"#;

const GRAPH: &str = r#"
[experiment]
threads = 1
kind = "graph"
[graph]
generator = "erdos-renyi"
nodes = 60
edges = 240
budget = 3
simulations = 50
[objective]
use = "baselines.degree"
"#;

const POPULATION: &str = r#"
[experiment]
threads = 1
kind = "population"
[data]
source = "blobs"
examples = 120
features = 4
classes = 3
[population]
models = [{ kind = "mlp", hidden = [8] }]
seeds = [0, 1]
epochs = [1]
[train]
batch_size = 16
lr = 0.1
[[metric]]
use = "pointwise-profiles.profile"
"#;

fn parse_cases(file: &str, text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    let mut text_file: Option<usize> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            cases.extend(current.take());
            current = Some(Case {
                file: file.into(),
                name: name.trim().into(),
                base: "train".into(),
                command: "run".into(),
                out: "run".into(),
                ..Case::default()
            });
            continue;
        }
        let Some(case) = current.as_mut() else { continue };
        if let Some(content) = line.strip_prefix("#|") {
            let i = text_file.unwrap_or_else(|| panic!("{file}: {}: `#|` without `#! file`", case.name));
            case.files[i].1.extend_from_slice(content.strip_prefix(' ').unwrap_or(content).as_bytes());
            case.files[i].1.push(b'\n');
            continue;
        }
        let Some(directive) = line.strip_prefix("#! ") else {
            case.toml.push_str(line);
            case.toml.push('\n');
            continue;
        };
        let (word, rest) = directive.split_once(' ').unwrap_or((directive, ""));
        let rest = rest.trim();
        text_file = None;
        match word {
            "base" => case.base = rest.into(),
            "remove" => case.remove.push(rest.into()),
            "exit" => case.exit = rest.parse().expect("exit code"),
            "check" => case.check = Some(rest.parse().expect("check exit code")),
            "says" => case.says.push(rest.into()),
            "located" => case.located = true,
            "loud" => case.loud = true,
            "args" => case.args.extend(rest.split_whitespace().map(String::from)),
            "command" => case.command = rest.into(),
            "out" => case.out = rest.into(),
            "ok" => case.ok.push(rest.into()),
            "failed" => case.failed.push(rest.into()),
            "scalar" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                let value = w[3].parse().expect("scalar value");
                case.scalars.push((w[0].into(), w[1].into(), w[2].into(), value));
            }
            "file" => {
                case.files.push((rest.into(), Vec::new()));
                text_file = Some(case.files.len() - 1);
            }
            "prepare" => {
                case.prepare.push(rest.split_whitespace().map(String::from).collect());
                case.late_files.get_or_insert(case.files.len());
            }
            "delete" => case.deletes.push(rest.into()),
            "symlink" => {
                let (path, target) = rest.split_once(' ').expect("symlink PATH TARGET");
                case.symlinks.push((path.into(), target.trim().into()));
            }
            "env" => {
                let (key, value) = rest.split_once('=').expect("env KEY=VALUE");
                case.env.push((key.into(), value.into()));
            }
            "npy" => case.files.push(npy_file(rest)),
            "idx" => case.files.push(idx_file(rest)),
            "bytes" => case.files.push(bytes_file(rest)),
            "tar" => case.files.push(tar_file(rest)),
            other => panic!("{file}: {}: unknown directive `{other}`", case.name),
        }
    }
    cases.extend(current);
    cases
}

/// `PATH DTYPE DIMS... : VALUES...` as a `.npy` (version 1.0, little endian).
fn npy_file(spec: &str) -> (String, Vec<u8>) {
    let (head, values) = spec.split_once(':').expect("npy: `:` before the values");
    let mut words = head.split_whitespace();
    let path = words.next().expect("npy path").to_string();
    let dtype = words.next().expect("npy dtype").to_string();
    let dims: Vec<usize> = words.map(|w| w.parse().expect("npy dim")).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<{dtype}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values.split_whitespace() {
        let x: f64 = v.parse().expect("npy value");
        match dtype.as_str() {
            "f4" => bytes.extend_from_slice(&(x as f32).to_le_bytes()),
            "f8" => bytes.extend_from_slice(&x.to_le_bytes()),
            "i8" => bytes.extend_from_slice(&(x as i64).to_le_bytes()),
            other => panic!("npy dtype {other}"),
        }
    }
    (path, bytes)
}

/// `PATH DIMS... : BYTES...` as an IDX file of unsigned bytes.
fn idx_file(spec: &str) -> (String, Vec<u8>) {
    let (head, data) = spec.split_once(':').expect("idx: `:` before the bytes");
    let mut words = head.split_whitespace();
    let path = words.next().expect("idx path").to_string();
    let dims: Vec<u32> = words.map(|w| w.parse().expect("idx dim")).collect();
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend(data.split_whitespace().map(|b| b.parse::<u8>().expect("idx byte")));
    (path, bytes)
}

fn bytes_file(spec: &str) -> (String, Vec<u8>) {
    let mut words = spec.split_whitespace();
    let path = words.next().expect("bytes path").to_string();
    (path, words.map(|h| u8::from_str_radix(h, 16).expect("hex byte")).collect())
}

/// `PATH KEY.EXT=HEX...` as a tar of those members, `text:WORD` for text.
fn tar_file(spec: &str) -> (String, Vec<u8>) {
    let mut words = spec.split_whitespace();
    let path = words.next().expect("tar path").to_string();
    let members: Vec<(String, String, Vec<u8>)> = words
        .map(|w| {
            let (name, data) = w.split_once('=').expect("tar member: NAME=HEX");
            let (key, ext) = name.split_once('.').expect("tar member name: KEY.EXT");
            let bytes = match data.split_once(':') {
                Some(("text", text)) => text.as_bytes().to_vec(),
                Some(("jpeg", size)) => jpeg(size),
                _ => {
                    (0..data.len()).step_by(2).map(|i| u8::from_str_radix(&data[i..i + 2], 16).expect("hex")).collect()
                }
            };
            (key.to_string(), ext.to_string(), bytes)
        })
        .collect();
    let samples: Vec<(String, &str, Vec<u8>)> =
        members.iter().map(|(k, e, b)| (k.clone(), e.as_str(), b.clone())).collect();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    tessera_engine::data::webdataset::write_tar(tmp.path(), &samples).unwrap();
    (path, std::fs::read(tmp.path()).unwrap())
}

/// `W:H:PERCENT`: a W × H grey JPEG, cut to its first PERCENT % of bytes.
fn jpeg(spec: &str) -> Vec<u8> {
    let n: Vec<u32> = spec.split(':').map(|w| w.parse().expect("jpeg:W:H:PERCENT")).collect();
    let pixels: Vec<u8> = (0..n[0] * n[1]).map(|i| (i * 37 % 256) as u8).collect();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut bytes)
        .encode(&pixels, n[0], n[1], image::ExtendedColorType::L8)
        .expect("a JPEG");
    bytes.truncate(bytes.len() * n[2] as usize / 100);
    bytes
}

fn merge(base: &mut toml::Table, case: toml::Table) {
    for (key, value) in case {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(c)) => merge(b, c),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The manifest a case runs: its TOML merged onto its base, with the test
/// plugin on the plugin path.
fn manifest_text(case: &Case) -> String {
    let base = match case.base.as_str() {
        "train" => TRAIN,
        "graph" => GRAPH,
        "population" => POPULATION,
        "none" => "",
        other => panic!("{}: unknown base `{other}`", case.name),
    };
    let mut table: toml::Table = toml::from_str(base).expect("base manifest");
    for key in &case.remove {
        table.remove(key);
    }
    match toml::from_str::<toml::Table>(&case.toml) {
        Ok(own) => merge(&mut table, own),
        // A case about TOML syntax runs as written.
        Err(_) => return case.toml.clone(),
    }
    let experiment = table.entry("experiment").or_insert_with(|| toml::Value::Table(Default::default()));
    if let toml::Value::Table(e) = experiment {
        let faulty = common::faulty().display().to_string();
        e.entry("plugin_paths").or_insert_with(|| toml::Value::Array(vec![faulty.into()]));
    }
    toml::to_string(&table).expect("manifest text")
}

/// Every file under `dir` but the run folder, with its content.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path == skip {
                continue;
            }
            let kind = path.symlink_metadata().map(|m| m.file_type());
            if kind.as_ref().is_ok_and(|k| k.is_symlink()) {
                let target = std::fs::read_link(&path).unwrap_or_default();
                out.insert(path.clone(), format!("<link to {}>", target.display()).into_bytes());
            } else if kind.is_ok_and(|k| k.is_dir()) {
                out.insert(path.clone(), b"<dir>".to_vec());
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

/// What one command did.
struct Outcome {
    code: Option<i32>,
    output: String,
    max_rss_kb: i64,
    seconds: f64,
}

/// Runs the binary with a time limit, measuring its peak memory.
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its peak memory
fn tessera(dir: &Path, args: &[String], env: &[(String, String)]) -> Outcome {
    let started = Instant::now();
    let mut child = Command::new(common::profile_dir().join("tessera"))
        .args(args)
        .current_dir(dir)
        .env("TESSERA_PLUGIN_PATH", "")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .expect("start tessera");
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: waits for our own child, writing into locals.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome { code: None, output: "timed out".into(), max_rss_kb: 0, seconds: 60.0 };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let output = std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join("stdout.txt"));
    let _ = std::fs::remove_file(dir.join("stderr.txt"));
    Outcome { code, output, max_rss_kb: usage.ru_maxrss, seconds: started.elapsed().as_secs_f64() }
}

fn located(output: &str) -> bool {
    output.match_indices("manifest.toml:").any(|(i, m)| {
        let rest = &output[i + m.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let col = parts.next().unwrap_or("");
        !line.is_empty()
            && line.chars().all(|c| c.is_ascii_digit())
            && !col.is_empty()
            && col.chars().all(|c| c.is_ascii_digit())
    })
}

/// Runs one case; every problem found is returned, none panics.
fn run_case(case: &Case) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("manifest.toml"), manifest_text(case)).unwrap();
    write_files(root, &case.files[..case.late_files.unwrap_or(case.files.len())]);
    let out = root.join(&case.out);
    let prepared = prepare(case, root);
    // A folder the case made itself is the user's: it must not change either.
    let skip = if out.exists() && prepared.is_none() { root.join("\0") } else { out.clone() };
    let before = snapshot(root, &skip);
    let mut args: Vec<String> = match case.command.as_str() {
        "run" => vec!["run".into(), "manifest.toml".into(), "--out".into(), case.out.clone()],
        "report" => vec!["report".into(), case.out.clone()],
        other => {
            let quiet = (!case.loud).then_some("--quiet");
            quiet.into_iter().chain(other.split_whitespace()).map(String::from).collect()
        }
    };
    if matches!(case.command.as_str(), "run" | "report") {
        args.push("--quiet".into());
    }
    args.extend(case.args.iter().cloned());
    let ran = tessera(root, &args, &case.env);
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    expect(ran.code == Some(case.exit), format!("run exited {:?}, expected {}", ran.code, case.exit));
    for text in &case.says {
        expect(ran.output.contains(text.as_str()), format!("the output does not say `{text}`"));
    }
    expect(!case.located || located(&ran.output), "the output names no manifest.toml:LINE:COL".into());
    for crash in ["panicked at", "RUST_BACKTRACE", "stack backtrace", "memory allocation of"] {
        expect(!ran.output.contains(crash), format!("the output shows a crash (`{crash}`)"));
    }
    expect(ran.max_rss_kb <= MEMORY_LIMIT_KB, format!("peak memory {} MB, over 4 GB", ran.max_rss_kb / 1024));
    let after = snapshot(root, &skip);
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .collect();
    expect(changed.is_empty(), format!("files outside the run folder changed: {changed:?}"));
    check_results(case, &out, &mut expect);
    if case.command == "run" {
        let check_expected = case.check.unwrap_or(if case.exit == 2 { 2 } else { 0 });
        let mut args = vec!["check".to_string(), "manifest.toml".into(), "--quiet".into()];
        args.extend(case.args.iter().filter(|a| !a.starts_with("--variant=")).cloned());
        let checked = tessera(root, &args, &case.env);
        expect(
            checked.code == Some(check_expected),
            format!("check exited {:?}, expected {check_expected}: {}", checked.code, checked.output),
        );
    }
    if let Some(Err(e)) = prepared {
        problems.push(e);
    }
    if !problems.is_empty() {
        problems.push(format!("output ({:.1}s):\n{}", ran.seconds, ran.output));
    }
    problems
}

fn write_files(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
}

/// Runs the case's `prepare` commands, then its deletions and links; `None`
/// when it has none, an error when a `prepare` command failed.
fn prepare(case: &Case, root: &Path) -> Option<Result<(), String>> {
    if case.prepare.is_empty() && case.deletes.is_empty() && case.symlinks.is_empty() {
        return None;
    }
    for args in &case.prepare {
        let ran = tessera(root, args, &case.env);
        if ran.code != Some(0) {
            return Some(Err(format!("prepare `{}` exited {:?}: {}", args.join(" "), ran.code, ran.output)));
        }
    }
    for path in &case.deletes {
        let full = root.join(path);
        let _ = std::fs::remove_dir_all(&full).or_else(|_| std::fs::remove_file(&full));
    }
    write_files(root, &case.files[case.late_files.unwrap_or(case.files.len())..]);
    for (path, target) in &case.symlinks {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
    }
    Some(Ok(()))
}

fn check_results(case: &Case, out: &Path, expect: &mut impl FnMut(bool, String)) {
    if case.ok.is_empty() && case.failed.is_empty() && case.scalars.is_empty() {
        return;
    }
    let Ok(results) = tessera_engine::report::RunResults::load(out) else {
        expect(false, format!("no readable results.json in {}", out.display()));
        return;
    };
    let status = |name: &str| results.variants.iter().find(|v| v.name == name).map(|v| (v.status, v.results.len()));
    for name in &case.ok {
        let entry = status(name);
        let ok = matches!(entry, Some((tessera_engine::report::Status::Ok, n)) if n > 0);
        expect(ok, format!("variant `{name}` is not ok with results: {entry:?}"));
    }
    for (variant, role, name, value) in &case.scalars {
        let found = results
            .variants
            .iter()
            .find(|v| &v.name == variant)
            .and_then(|v| v.results.get(role))
            .and_then(|r| r.scalars.get(name));
        expect(found == Some(value), format!("{variant} {role} {name} is {found:?}, expected {value}"));
    }
    for name in &case.failed {
        let entry = status(name);
        expect(
            matches!(entry, Some((tessera_engine::report::Status::Failed, _))),
            format!("variant `{name}` did not fail: {entry:?}"),
        );
    }
}

fn corpus() -> Vec<Case> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("tests/corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cases"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            parse_cases(&name, &std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

#[test]
fn every_bad_input_gets_a_clear_answer_and_harms_nothing() {
    let cases = corpus();
    assert!(cases.len() >= 150, "the corpus has {} cases; it should have at least 150", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for case in &cases {
        assert!(names.insert((&case.file, &case.name)), "two cases named {} in {}", case.name, case.file);
    }
    let filter = std::env::var("CORPUS_CASE").unwrap_or_default();
    let selected: Vec<&Case> = cases.iter().filter(|c| c.name.contains(&filter)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = selected.get(i) else { break };
                let problems = run_case(case);
                if !problems.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "{} / {}:\n  {}",
                        case.file,
                        case.name,
                        problems.join("\n  ")
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), selected.len(), failures.join("\n\n"));
}
