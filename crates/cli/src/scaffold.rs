//! `tessera new plugin NAME --kind KIND`: a plugin crate that builds and
//! loads as is, with a unit test (through `tessera_sdk::testing`) and a
//! manifest that uses it. The templates are `crates/cli/templates/plugin/*.tmpl`,
//! with `{name}`, `{lib}` and `{sdk}` filled in.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use tessera_engine::choice::PluginKind;

/// The files of a new plugin `name` of `kind`, depending on the SDK at `sdk`.
pub fn files(name: &str, kind: PluginKind, sdk: &Path) -> Result<Vec<(PathBuf, String)>> {
    let allowed = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    if !allowed || !starts_with_letter || name.ends_with('-') || name.contains("--") || name.len() > 64 {
        bail!("plugin name `{name}`: start with a lowercase letter, then letters, digits and single `-` between them, at most 64 characters (it names the crate and the manifest's `{name}.…`)");
    }
    let lib = name.replace('-', "_");
    let fill =
        |text: &str| text.replace("{name}", name).replace("{lib}", &lib).replace("{sdk}", &sdk.display().to_string());
    let (source, manifest) = match kind {
        PluginKind::Sampler => (SAMPLER, SAMPLER_MANIFEST),
        PluginKind::Finetuner => (FINETUNER, FINETUNER_MANIFEST),
        PluginKind::Metric => (METRIC, METRIC_MANIFEST),
        PluginKind::GraphObjective => (GRAPH_OBJECTIVE, GRAPH_MANIFEST),
    };
    Ok(vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(source)),
        (PathBuf::from(format!("{name}.toml")), fill(manifest)),
    ])
}

/// Writes plugin `name` of `kind` into `dir` (new or empty); returns the
/// files written.
pub fn write(dir: &Path, name: &str, kind: PluginKind, sdk: &Path) -> Result<Vec<PathBuf>> {
    let files = files(name, kind, sdk)?;
    if dir.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        bail!(
            "{} exists and is not a folder; a new plugin is written into a new or empty folder (--out)",
            dir.display()
        );
    }
    if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("{} already holds files; a new plugin is written into a new or empty folder", dir.display());
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let full = dir.join(&path);
        let parent = full.parent().expect("a folder");
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        // `create_new`: never over a file that appeared meanwhile.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .with_context(|| format!("writing {}", full.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).with_context(|| format!("writing {}", full.display()))?;
        written.push(full);
    }
    Ok(written)
}

/// The SDK of the checkout this binary was built from.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

const CARGO_TOML: &str = include_str!("../templates/plugin/Cargo.toml.tmpl");

const SAMPLER: &str = include_str!("../templates/plugin/sampler.rs.tmpl");

const SAMPLER_MANIFEST: &str = include_str!("../templates/plugin/sampler.toml.tmpl");

const METRIC: &str = include_str!("../templates/plugin/metric.rs.tmpl");

const METRIC_MANIFEST: &str = include_str!("../templates/plugin/metric.toml.tmpl");

const FINETUNER: &str = include_str!("../templates/plugin/finetuner.rs.tmpl");

const FINETUNER_MANIFEST: &str = include_str!("../templates/plugin/finetuner.toml.tmpl");

const GRAPH_OBJECTIVE: &str = include_str!("../templates/plugin/graph-objective.rs.tmpl");

const GRAPH_MANIFEST: &str = include_str!("../templates/plugin/graph-objective.toml.tmpl");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_every_kind_has_its_files() {
        assert!(files("My Plugin", PluginKind::Sampler, Path::new("sdk")).is_err());
        for kind in [PluginKind::Sampler, PluginKind::Finetuner, PluginKind::Metric, PluginKind::GraphObjective] {
            let f = files("my-plugin", kind, Path::new("/sdk")).unwrap();
            assert!(f[0].1.contains("name = \"tessera_my_plugin\"") && f[0].1.contains("path = \"/sdk\""));
            assert!(f[1].1.contains("export_plugin! { name: \"my-plugin\""), "{kind}");
            assert!(f[2].1.contains("my-plugin."), "{kind}");
        }
    }
}
