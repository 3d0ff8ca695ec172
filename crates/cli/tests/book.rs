//! The book (`docs/book/`): it builds with mdbook, and every manifest in it
//! and in the README passes `tessera check`. A ```` ```toml ```` block is a
//! whole manifest; ```` ```toml,fragment ```` is part of one, checked on
//! top of the example of its kind; ```` ```toml,cargo ```` is a Cargo.toml.
//! (The settings reference is checked current by the library's own tests.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

/// mdbook, as `make docs` and `make test` install it into the cache.
fn mdbook() -> PathBuf {
    let cache = std::env::var_os("CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/tessera"));
    let path = cache.join("tools/bin/mdbook");
    assert!(path.exists(), "{} is missing: `make docs` (or `make test`) installs it", path.display());
    path
}

#[test]
fn the_book_builds() {
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(mdbook())
        .args(["build", "docs/book", "--dest-dir"])
        .arg(out.path())
        .current_dir(repo())
        .output()
        .expect("mdbook runs");
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "mdbook build failed:\n{log}");
    assert!(!log.contains("[WARN]") && !log.contains("WARN "), "mdbook warned:\n{log}");
    assert!(out.path().join("manifests/settings.html").exists(), "the settings reference was not built");
}

/// A TOML block of a page: its info string's attribute, where it starts, its text.
struct Block {
    attribute: String,
    place: String,
    text: String,
}

fn blocks(page: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut found = Vec::new();
    let mut open: Option<(String, String, usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.take() {
            None if trimmed.starts_with("```toml") => {
                let attribute = trimmed["```toml".len()..].trim_start_matches(',').to_string();
                open = Some((attribute, format!("{}:{}", page.display(), i + 1), indent, vec![]));
            }
            None => {}
            Some((attribute, place, _, lines)) if trimmed == "```" => {
                found.push(Block { attribute, place, text: lines.join("\n") });
            }
            Some((attribute, place, indent, mut lines)) => {
                lines.push(line.get(indent..).unwrap_or(trimmed).to_string());
                open = Some((attribute, place, indent, lines));
            }
        }
    }
    found
}

fn pages(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            pages(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// The example a fragment is checked on, by the tables it sets.
fn base_for(fragment: &toml::Table) -> &'static str {
    if fragment.contains_key("graph") {
        "examples/robust-im.toml"
    } else if fragment.contains_key("population") {
        "examples/pointwise-profiles.toml"
    } else {
        "examples/quickstart.toml"
    }
}

/// `over` merged key by key onto `base`.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The manifest a block stands for, or None for a Cargo.toml.
fn manifest(block: &Block) -> Option<String> {
    match block.attribute.as_str() {
        "" => Some(block.text.clone()),
        "cargo" => None,
        "fragment" => {
            let fragment: toml::Table = toml::from_str(&block.text).expect("a fragment is TOML");
            let base_path = repo().join(base_for(&fragment));
            let mut base: toml::Table = toml::from_str(&std::fs::read_to_string(base_path).unwrap()).unwrap();
            merge(&mut base, fragment);
            Some(toml::to_string(&base).unwrap())
        }
        other => panic!("{}: unknown TOML block kind `toml,{other}` (toml, toml,fragment, toml,cargo)", block.place),
    }
}

#[test]
fn every_manifest_in_the_book_and_the_readme_passes_check() {
    let mut all = vec![repo().join("README.md")];
    pages(&repo().join("docs/book/src"), &mut all);
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for page in all {
        for block in blocks(&page) {
            let Some(text) = manifest(&block) else { continue };
            let file = dir.path().join("book.toml");
            std::fs::write(&file, text).unwrap();
            let out = common::tessera_command(&["check", file.to_str().unwrap()], dir.path());
            assert!(
                out.status.success(),
                "{}: this manifest fails `tessera check`:\n{}",
                block.place,
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} manifests found in the book");
}
