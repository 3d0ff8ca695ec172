//! A manifest checked against the plugins: where plugins are found, and the
//! validation that runs before anything trains.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{bail, invalid, Result};
use crate::storage::StoreUrl;
use tessera_sdk::{ComponentKind, ErrorKind};

use crate::graph;
use crate::manifest::ComponentSpec;
use crate::manifest::{Diagnostic, Diagnostics, ExperimentKind, Manifest, Override, Variant};
use crate::plugin::{ComponentError, MetricHandle, Registry, SamplerHandle};
use crate::report;

/// Where plugins are looked for, in this order.
#[derive(Debug, Clone, Default)]
pub struct PluginSearch {
    /// Extra folders or files (e.g. `--plugins` on the command line).
    pub extra: Vec<PathBuf>,
    /// Read `TESSERA_PLUGIN_PATH` (colon-separated folders).
    pub env: bool,
    /// Look in the folder of the running executable.
    pub beside_executable: bool,
}

impl PluginSearch {
    /// What the `tessera` command uses: the environment and its own folder.
    pub fn standard() -> Self {
        PluginSearch { extra: vec![], env: true, beside_executable: true }
    }

    /// Loads every plugin found into `registry`; a folder that does not exist
    /// is skipped, a named file that cannot be loaded is an error.
    pub fn load_into(&self, registry: &mut Registry) -> Result<()> {
        for path in &self.extra {
            load_path(registry, path)?;
        }
        if self.env {
            if let Some(value) = std::env::var_os("TESSERA_PLUGIN_PATH") {
                for dir in std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty()) {
                    load_path(registry, &dir)?;
                }
            }
        }
        if self.beside_executable {
            if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
                registry.load_dir(&dir);
            }
        }
        Ok(())
    }
}

fn load_path(registry: &mut Registry, path: &Path) -> Result<()> {
    if path.is_dir() {
        registry.load_dir(path);
        Ok(())
    } else if path.exists() {
        Ok(registry.load_file(path).map(drop)?)
    } else {
        bail!("plugin path {} does not exist", path.display())
    }
}

/// A manifest checked against the plugins: ready to run.
pub struct Session {
    /// The manifest.
    pub manifest: Manifest,
    /// Its variants, resolved.
    pub variants: Vec<Variant>,
    /// The plugins.
    pub registry: Registry,
    /// The `--set` overrides it was prepared with, as written.
    pub overrides: Vec<String>,
    /// Per-θ reference values of graph experiments, shared by the variants
    /// that evaluate on the same graph, grid and budget.
    pub(super) reference_cache: std::sync::Mutex<BTreeMap<String, Vec<graph::SpreadEstimate>>>,
    /// The last graph built, with its in-edges, by its `[graph]` settings and
    /// seed: variants on the same graph share it (one kept, so memory stays
    /// that of one graph).
    pub(super) graph_cache: std::sync::Mutex<Option<(String, std::sync::Arc<graph::Graph>)>>,
    /// Clean data sets by their `[data]` and seed, shared by the population
    /// units one process runs.
    pub(super) data_cache: std::sync::Mutex<BTreeMap<String, std::sync::Arc<crate::data::Splits>>>,
}

impl Session {
    /// The data of `[data]` with clean labels and `seed`, loaded once per process.
    pub(super) fn clean_data(
        &self,
        data: &crate::manifest::DataConfig,
        seed: u64,
    ) -> Result<std::sync::Arc<crate::data::Splits>> {
        let key = format!("{}|{seed}", toml::to_string(data).unwrap_or_default());
        if let Some(hit) = self.data_cache.lock().expect("cache lock").get(&key) {
            return Ok(hit.clone());
        }
        let splits = std::sync::Arc::new(crate::data::load(data, 0.0, seed, &self.manifest.dir())?);
        self.data_cache.lock().expect("cache lock").insert(key, splits.clone());
        Ok(splits)
    }
}

/// What a component's creation error says, located at its key, with a
/// hint: for a parameter the component does not declare (its
/// `ComponentInfo` lists what it does), the closest declared one.
fn component_diagnostic(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    declared: &[String],
    key: &str,
    e: &ComponentError,
) -> Diagnostic {
    match (&e.kind, &e.key) {
        (ErrorKind::InvalidParams, Some(param)) => {
            let unknown = !declared.iter().any(|d| d == param);
            let hint = unknown
                .then(|| crate::plugin::closest(param, declared.iter().map(String::as_str)))
                .flatten()
                .map(|b| format!("did you mean `{b}`? (`tessera plugins` lists {}'s parameters)", e.component));
            let hint = hint.or_else(|| Some(format!("`tessera plugins` lists the parameters of {}", e.component)));
            manifest.diagnostic(
                variant.index,
                overrides,
                &format!("{key}.{param}"),
                format!("{}: parameter `{param}`: {}", e.component, e.message),
                hint,
            )
        }
        (ErrorKind::UnknownComponent, _) => {
            let hint = e.hint.clone().unwrap_or_else(|| "`tessera plugins` lists every loaded component".into());
            manifest.diagnostic(variant.index, overrides, &format!("{key}.use"), e.message.clone(), Some(hint))
        }
        _ => manifest.diagnostic(variant.index, overrides, key, e.to_string(), None),
    }
}

/// The parameters component `id` declares (none when it does not resolve).
fn declared_params(registry: &Registry, kind: ComponentKind, id: &str) -> Vec<String> {
    let info = registry.resolve(kind, id).map(|(_, info)| info);
    info.map(|i| i.params.iter().map(|p| p.name.to_string()).collect()).unwrap_or_default()
}

/// Parses the manifest, loads plugins and creates every component once, so
/// that every mistake is found before anything runs.
pub fn prepare(manifest_path: &Path, overrides: &[Override], search: &PluginSearch) -> Result<Session, Diagnostics> {
    let manifest = Manifest::load(manifest_path)?;
    prepare_manifest(manifest, overrides, search)
}

/// [`prepare`] for a manifest already read: a worker reads the run folder's
/// copy, with the original's path for its relative paths.
pub fn prepare_manifest(
    manifest: Manifest,
    overrides: &[Override],
    search: &PluginSearch,
) -> Result<Session, Diagnostics> {
    let variants = manifest.variants(overrides)?;
    let mut registry = Registry::new();
    let mut errors = Vec::new();
    // Before anything can run libtorch: its kernel choices.
    if let Err(e) = super::kernels::mode_of(&variants).and_then(super::kernels::pin) {
        errors.push(manifest.diagnostic(None, overrides, "experiment.reproducible", e.to_string(), None));
    }
    let mut manifest_search = search.clone();
    manifest_search.extra = manifest.plugin_paths();
    for (i, path) in manifest_search.extra.iter().enumerate() {
        if let Err(e) = load_path(&mut registry, path) {
            errors.push(manifest.diagnostic(
                None,
                overrides,
                &format!("experiment.plugin_paths[{i}]"),
                tessera_util::error::chain(&e),
                Some("plugin paths are relative to the manifest's folder".into()),
            ));
        }
    }
    manifest_search.extra = search.extra.clone();
    if let Err(e) = manifest_search.load_into(&mut registry) {
        errors.push(Diagnostic {
            file: manifest.path.clone(),
            location: None,
            key: None,
            message: tessera_util::error::chain(&e),
            hint: None,
        });
    }
    let variants = resolve_path_params(variants, &registry, &manifest.dir());
    for variant in &variants {
        errors.extend(variant_diagnostics(&manifest, overrides, variant, &registry));
    }
    errors.dedup();
    if errors.is_empty() {
        let overrides = overrides.iter().map(|o| o.text.clone()).collect();
        Ok(Session {
            manifest,
            variants,
            registry,
            overrides,
            reference_cache: Default::default(),
            graph_cache: Default::default(),
            data_cache: Default::default(),
        })
    } else {
        Err(Diagnostics(errors))
    }
}

/// Each variant with its components' path parameters (declared `PathBuf` or
/// `Option<PathBuf>`) resolved against the manifest's folder `base`, as the
/// host's own paths are: a plugin reads the file the manifest means from
/// whatever folder the run (or a worker of it) starts in.
fn resolve_path_params(mut variants: Vec<Variant>, registry: &Registry, base: &Path) -> Vec<Variant> {
    const PATH_TYPES: [&str; 4] = ["PathBuf", "std::path::PathBuf", "Option<PathBuf>", "Option<std::path::PathBuf>"];
    for variant in &mut variants {
        let kinds = [ComponentKind::Sampler, ComponentKind::Finetuner, ComponentKind::GraphObjective];
        let single = [&mut variant.sampler, &mut variant.finetuner, &mut variant.objective];
        let specs = kinds.into_iter().zip(single).filter_map(|(k, s)| s.as_mut().map(|s| (k, s)));
        let metrics = variant.metrics.iter_mut().map(|s| (ComponentKind::Metric, s));
        for (kind, spec) in specs.chain(metrics) {
            let Ok((_, info)) = registry.resolve(kind, &spec.id) else { continue };
            for param in info.params.iter().filter(|p| PATH_TYPES.contains(&p.type_name.as_str())) {
                if let Some(toml::Value::String(path)) = spec.params.get_mut(param.name.as_str()) {
                    if Path::new(path.as_str()).is_relative() && !path.is_empty() {
                        *path = base.join(path.as_str()).display().to_string();
                    }
                }
            }
        }
    }
    variants
}

/// What a population's sampler cannot do: observe training or select per
/// step (a population's runs give it no observations), or order a fork
/// (a forked run continues its parent's host shuffle).
fn population_sampler(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    spec: &ComponentSpec,
    sampler: &SamplerHandle,
) -> Vec<Diagnostic> {
    let observes = sampler.requires().map(|r| !r.is_empty()).unwrap_or(true);
    let selects = sampler.candidates().map(|c| c.is_some()).unwrap_or(true);
    let forks = variant.settings.population.fork_step.is_some();
    let why = match (observes, selects, forks) {
        (true, _, _) => "observes training, which a population's runs cannot feed it",
        (_, true, _) => "selects each step's batch, which a population's runs do not do",
        (_, _, true) => "would order forked runs, which continue their parent's shuffle (population.fork_step)",
        _ => return frozen_batch(manifest, overrides, variant, spec),
    };
    let message = format!("variant `{}` is a population experiment, and sampler {} {why}", variant.name, spec.id);
    let hint = "use a sampler that only orders (e.g. baselines.sequential, corgi2.corgipile), or remove [sampler]";
    vec![manifest.diagnostic(variant.index, overrides, &format!("{}.use", spec.key), message, Some(hint.into()))]
}

/// Runs under a plugin's sampler batch (`population.batch = K`) only where
/// every layer trains: the stacked fit they batch through has no frozen
/// features.
fn frozen_batch(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    spec: &ComponentSpec,
) -> Vec<Diagnostic> {
    let population = &variant.settings.population;
    let batched = matches!(population.batch, crate::manifest::MemberBatch::Runs(k) if k > 1);
    if !(batched && population.freeze_features) {
        return vec![];
    }
    let message = format!(
        "variant `{}`: runs under sampler {} batch only when every layer trains, and population.freeze_features freezes their features",
        variant.name, spec.id
    );
    let hint = "set population.batch = 1 (or \"auto\", which trains such runs one after another)";
    vec![manifest.diagnostic(variant.index, overrides, "population.batch", message, Some(hint.into()))]
}

/// Every problem of one variant: its components and their parameters, its
/// settings, and what its kind of experiment needs.
fn variant_diagnostics(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    registry: &Registry,
) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut created = Created::default();
    for (kind, spec) in variant.components() {
        let params = spec.params_text();
        let result = match kind {
            ComponentKind::Sampler => registry.new_sampler(&spec.id, &params).map(|s| created.sampler = Some(s)),
            ComponentKind::Finetuner => registry.new_finetuner(&spec.id, &params).map(|f| created.finetuner = Some(f)),
            ComponentKind::Metric => registry.new_metric(&spec.id, &params).map(|m| created.metrics.push((spec, m))),
            ComponentKind::GraphObjective => registry.new_graph_objective(&spec.id, &params).map(drop),
        };
        if let Err(e) = result {
            let declared = declared_params(registry, kind, &spec.id);
            errors.push(component_diagnostic(manifest, overrides, variant, &declared, &spec.key, &e));
        }
    }
    errors.extend(validation_diagnostics(manifest, overrides, variant, &created));
    let kind = variant.settings.experiment.kind;
    if kind == ExperimentKind::Population {
        if let Err(e) = crate::population::setting_configs(&variant.settings.population, &variant.settings.train) {
            errors.push(manifest.diagnostic(
                variant.index,
                overrides,
                "population.settings",
                tessera_util::error::chain(&e),
                Some("each setting is a table of [train] keys, e.g. { batch_size = 16, lr = 0.01 }".into()),
            ));
        }
    }
    if kind == ExperimentKind::Population {
        if let (Some(spec), Some(sampler)) = (&variant.sampler, &created.sampler) {
            errors.extend(population_sampler(manifest, overrides, variant, spec, sampler));
        }
    }
    if kind == ExperimentKind::Train && variant.sampler.is_none() {
        errors.push(manifest.diagnostic(
            variant.index,
            overrides,
            "sampler",
            format!("variant `{}` trains but names no [sampler]", variant.name),
            Some("add e.g. [sampler] use = \"baselines.full-shuffle\"".into()),
        ));
    }
    let reference = &variant.settings.graph.reference;
    if kind == ExperimentKind::Graph && !reference.is_empty() {
        if let Err(e) = registry.new_graph_objective(reference, "") {
            errors.push(manifest.diagnostic(
                variant.index,
                overrides,
                "graph.reference",
                tessera_util::error::chain(&e),
                Some("the reference is a graph objective, e.g. \"robust-im.greedy\"".into()),
            ));
        }
    }
    if kind == ExperimentKind::Graph && variant.objective.is_none() {
        errors.push(manifest.diagnostic(
            variant.index,
            overrides,
            "objective",
            format!("variant `{}` is a graph experiment but names no [objective]", variant.name),
            Some("add e.g. [objective] use = \"baselines.degree\"".into()),
        ));
    }
    errors
}

/// The components `check` created of one variant (each once), for the
/// validation of what they request.
#[derive(Default)]
struct Created<'v> {
    sampler: Option<SamplerHandle>,
    finetuner: Option<crate::plugin::FinetunerHandle>,
    metrics: Vec<(&'v ComponentSpec, MetricHandle)>,
}

/// The validation pass over one variant's settings, the folders it would
/// write, and its components' observation requests.
fn validation_diagnostics(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    created: &Created,
) -> Vec<Diagnostic> {
    let base = manifest.dir();
    let mut problems = crate::validate::settings(&variant.settings, &base);
    if variant.settings.storage.mode == crate::choice::StorageMode::Shards {
        problems.extend(
            shards_root_outside_run(variant, &base)
                .and_then(|root| crate::validate::shard_folder(&variant.name, &root)),
        );
    }
    for (spec, metric) in &created.metrics {
        problems.extend(match spec.pool {
            crate::manifest::MetricPool::Each => crate::validate::metric_requests(&variant.settings, spec, metric),
            crate::manifest::MetricPool::Seeds => crate::validate::pooled_metric(variant, spec, metric),
        });
    }
    if let (Some(spec), Some(sampler)) = (&variant.sampler, &created.sampler) {
        problems.extend(crate::validate::sampler_requests(&variant.settings, spec, sampler));
        if variant.finetuner.is_some() {
            problems.extend(crate::validate::oracle_order(&variant.settings, spec, sampler));
        }
    }
    problems.extend(crate::validate::seeds_batch(variant, created.sampler.as_ref()));
    if let (Some(spec), Some(finetuner)) = (&variant.finetuner, &created.finetuner) {
        problems.extend(crate::validate::finetuner_requests(&variant.settings, spec, finetuner));
    }
    problems.into_iter().map(|p| manifest.diagnostic(variant.index, overrides, &p.key, p.message, p.hint)).collect()
}

/// The folder a variant's shards go to, when `storage.dir` puts them in a
/// local folder outside the run folder.
pub(super) fn shards_root_outside_run(variant: &Variant, base: &Path) -> Option<PathBuf> {
    let dir = variant.settings.storage.dir.as_ref().filter(|d| !StoreUrl::is_url(d))?;
    Some(base.join(dir).join(report::file_stem_safe(&variant.name)))
}

/// The store prefix a variant's shards go to, when `storage.dir` is an
/// `s3://` URL (checked by `tessera check`).
pub(super) fn shards_prefix(variant: &Variant) -> Result<Option<StoreUrl>> {
    let Some(dir) = variant.settings.storage.dir.as_ref().filter(|d| StoreUrl::is_url(d)) else { return Ok(None) };
    let url = StoreUrl::parse(dir).map_err(|e| invalid!("storage.dir: {e}"))?;
    Ok(Some(url.join(&report::file_stem_safe(&variant.name)).map_err(|e| invalid!("storage.dir: {e}"))?))
}
