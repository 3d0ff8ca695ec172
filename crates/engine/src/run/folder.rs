//! The run folder: claimed atomically, the manifest as given and as
//! resolved, and the session a worker rebuilds from it.

use std::path::{Path, PathBuf};

use crate::error::{Context, Result};
use tessera_sdk::ComponentKind;

use super::plan::Plan;
use super::session::{prepare_manifest, PluginSearch, Session};
use crate::confined::Confined;
use crate::manifest::{Manifest, Override};

/// Creates the run folder: `out` if given (it must not hold files), else a
/// new timestamped folder under `runs/`; never overwrites.
pub fn create_run_dir(out: Option<&Path>, experiment: &str) -> Result<PathBuf> {
    match out {
        Some(dir) => crate::owned::claim_run_dir(dir),
        None => {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            crate::owned::create_fresh_dir(&PathBuf::from("runs").join(format!("{experiment}-{stamp}")))
        }
    }
}

fn toml_default(text: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {text}")).ok()?.remove("v")
}

/// The manifest as run: every variant with all settings and parameter
/// defaults filled in, and the plugins' paths and versions. It runs as is.
pub fn resolved_manifest(session: &Session) -> Result<String> {
    let plugin_paths: Vec<toml::Value> =
        session.registry.plugins().iter().map(|p| toml::Value::from(p.path.display().to_string())).collect();
    let mut experiment = toml::Table::new();
    experiment.insert("name".into(), session.manifest.name().into());
    experiment.insert("plugin_paths".into(), toml::Value::Array(plugin_paths));
    let mut root = toml::Table::new();
    root.insert("experiment".into(), toml::Value::Table(experiment));
    let mut variants = Vec::new();
    for v in &session.variants {
        let mut table = match toml::Value::try_from(&v.settings)? {
            toml::Value::Table(t) => t,
            _ => unreachable!("settings serialize to a table"),
        };
        if let Some(e) = table.get_mut("experiment").and_then(|e| e.as_table_mut()) {
            e.remove("plugin_paths");
            e.remove("name");
        }
        table.insert("name".into(), v.name.clone().into());
        let component_table = |spec: &crate::manifest::ComponentSpec, kind: ComponentKind| -> toml::Table {
            let mut t = toml::Table::new();
            t.insert("use".into(), spec.id.clone().into());
            if let Ok((_, info)) = session.registry.resolve(kind, &spec.id) {
                for p in info.params.iter() {
                    if let Some(default) = toml_default(p.default.as_str()) {
                        t.insert(p.name.to_string(), default);
                    }
                }
            }
            for (k, value) in &spec.params {
                t.insert(k.clone(), value.clone());
            }
            t
        };
        for (kind, spec) in v.components() {
            let t = component_table(spec, kind);
            if kind == ComponentKind::Metric {
                let list = table.entry("metric").or_insert_with(|| toml::Value::Array(vec![]));
                if let toml::Value::Array(a) = list {
                    a.push(toml::Value::Table(t));
                }
            } else {
                table.insert(spec.key.clone(), toml::Value::Table(t));
            }
        }
        variants.push(toml::Value::Table(table));
    }
    root.insert("variant".into(), toml::Value::Array(variants));
    let plugins: Vec<toml::Value> = session
        .registry
        .plugins()
        .iter()
        .map(|p| {
            let mut t = toml::Table::new();
            t.insert("name".into(), p.name().to_string().into());
            t.insert("version".into(), p.info.version.to_string().into());
            t.insert("sdk_version".into(), p.info.sdk_version.to_string().into());
            t.insert("path".into(), p.path.display().to_string().into());
            toml::Value::Table(t)
        })
        .collect();
    root.insert("plugin".into(), toml::Value::Array(plugins));
    let header = format!(
        "# Resolved from {} by tessera {} on {}.\n# Every default is filled in; `tessera run` runs this file as is.\n\n",
        session.manifest.path.display(),
        env!("CARGO_PKG_VERSION"),
        chrono::Local::now().to_rfc3339()
    );
    Ok(header + &toml::to_string_pretty(&root)?)
}

/// Writes the folder's fixed files: `manifest.toml` (as given),
/// `manifest.resolved.toml` and `plan.json`.
pub(super) fn write_header(session: &Session, plan: &Plan, dir: &Path) -> Result<()> {
    let run = Confined::new(dir);
    run.write_atomic("manifest.resolved.toml", resolved_manifest(session)?.as_bytes())?;
    run.write_atomic("manifest.toml", session.manifest.text.as_bytes())?;
    plan.save(dir)
}

/// The plan and session of an existing run folder, as a worker, collect or
/// resume sees them: in the folder the run started in, with the manifest
/// copied into the run folder (relative paths resolve against the
/// original's folder) and the plugin libraries the run loaded.
pub fn open_run(run_dir: &Path) -> Result<(Plan, Session, PathBuf)> {
    let run_dir = std::fs::canonicalize(run_dir).with_context(|| format!("no run folder {}", run_dir.display()))?;
    let plan = Plan::load(&run_dir)?;
    std::env::set_current_dir(&plan.cwd).with_context(|| {
        format!("entering {}, the folder the run started in (shared with the nodes?)", plan.cwd.display())
    })?;
    let copy = run_dir.join("manifest.toml");
    let bytes = Confined::new(&run_dir).read("manifest.toml").with_context(|| format!("reading {}", copy.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", copy.display()))?;
    let manifest = Manifest::parse(&plan.manifest, text).map_err(|d| crate::error::invalid!("{d}"))?;
    let overrides = plan.overrides.iter().map(|o| Override::parse(o)).collect::<Result<Vec<_>, _>>()?;
    let search = PluginSearch { extra: plan.plugins.clone(), env: false, beside_executable: false };
    let session = prepare_manifest(manifest, &overrides, &search).map_err(|d| crate::error::invalid!("{d}"))?;
    Ok((plan, session, run_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        create_run_dir(Some(&out), "x").unwrap();
        std::fs::write(out.join("results.json"), "{}").unwrap();
        let err = create_run_dir(Some(&out), "x").unwrap_err();
        assert!(err.to_string().contains("never overwritten"), "{err}");
    }
}
