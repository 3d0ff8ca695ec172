//! The run engine: validates a manifest against the loaded plugins, runs
//! every variant, and writes the run folder as it goes, so that a failing
//! variant never loses the results of the others.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tch::Device;
use tessera_sdk::{ComponentKind, ErrorKind, LayerInfo, ObservationRequest, SeedRng, StorageLayout};

use crate::choice::DeviceChoice;
use crate::data;
use crate::graph;
use crate::manifest::{Diagnostic, Diagnostics, ExperimentKind, Manifest, Override, Variant};
use crate::model::Model;
use crate::plugin::{CallContext, ComponentError, Registry};
use crate::population::Population;
use crate::report::{self, ReportJson, RunResults, SeriesJson, Status, VariantResult};
use crate::storage::{Access, BlockLoader, CostModel, IoStats, LruPolicy, ShardSet, ShardWriter};
use crate::train::{self, BatchSource, FitHooks, MemorySource, ShardSource, TensorData};

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
        registry.load_file(path).map(|_| ()).map_err(|e| anyhow!(e))
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
    /// Per-θ reference values of graph experiments, shared by the variants
    /// that evaluate on the same graph, grid and budget.
    reference_cache: std::sync::Mutex<BTreeMap<String, Vec<graph::SpreadEstimate>>>,
}

fn component_diagnostic(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    key: &str,
    e: &ComponentError,
) -> Diagnostic {
    match (&e.kind, &e.key) {
        (ErrorKind::InvalidParams, Some(param)) => {
            let hint = if e.message.starts_with("unknown field") {
                let words: Vec<&str> = e.message.split('`').skip(1).step_by(2).collect();
                words.split_first().and_then(|(unknown, known)| {
                    crate::plugin::closest(unknown, known.iter().copied())
                        .map(|b| format!("did you mean `{b}`? (`tessera plugins` lists {}'s parameters)", e.component))
                })
            } else {
                None
            };
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
            let (message, hint) = match e.message.split_once(" (did you mean ") {
                Some((m, rest)) => (m.to_string(), Some(format!("did you mean {}", rest.trim_end_matches(')')))),
                None => (e.message.clone(), Some("`tessera plugins` lists every loaded component".into())),
            };
            manifest.diagnostic(variant.index, overrides, &format!("{key}.use"), message, hint)
        }
        _ => manifest.diagnostic(variant.index, overrides, key, e.to_string(), None),
    }
}

/// Parses the manifest, loads plugins and creates every component once, so
/// that every mistake is found before anything runs.
pub fn prepare(manifest_path: &Path, overrides: &[Override], search: &PluginSearch) -> Result<Session, Diagnostics> {
    let manifest = Manifest::load(manifest_path)?;
    let variants = manifest.variants(overrides)?;
    let mut registry = Registry::new();
    let mut errors = Vec::new();
    let mut manifest_search = search.clone();
    manifest_search.extra = manifest.plugin_paths();
    for (i, path) in manifest_search.extra.iter().enumerate() {
        if let Err(e) = load_path(&mut registry, path) {
            errors.push(manifest.diagnostic(
                None,
                overrides,
                &format!("experiment.plugin_paths[{i}]"),
                format!("{e:#}"),
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
            message: format!("{e:#}"),
            hint: None,
        });
    }
    for variant in &variants {
        for (kind, spec) in variant.components() {
            let params = spec.params_text();
            let created = match kind {
                ComponentKind::Sampler => registry.new_sampler(&spec.id, &params).map(drop),
                ComponentKind::Finetuner => registry.new_finetuner(&spec.id, &params).map(drop),
                ComponentKind::Metric => registry.new_metric(&spec.id, &params).map(drop),
                ComponentKind::GraphObjective => registry.new_graph_objective(&spec.id, &params).map(drop),
            };
            if let Err(e) = created {
                errors.push(component_diagnostic(&manifest, overrides, variant, &spec.key, &e));
            }
        }
        errors.extend(validation_diagnostics(&manifest, overrides, variant, &registry));
        let kind = variant.settings.experiment.kind;
        if kind == ExperimentKind::Population {
            if let Err(e) = crate::population::setting_configs(&variant.settings.population, &variant.settings.train) {
                errors.push(manifest.diagnostic(
                    variant.index,
                    overrides,
                    "population.settings",
                    format!("{e:#}"),
                    Some("each setting is a table of [train] keys, e.g. { batch_size = 16, lr = 0.01 }".into()),
                ));
            }
        }
        if kind == ExperimentKind::Population && variant.sampler.is_some() {
            errors.push(manifest.diagnostic(
                variant.index,
                overrides,
                "sampler",
                format!(
                    "variant `{}` is a population experiment, whose members train on a seeded full shuffle",
                    variant.name
                ),
                Some("remove [sampler], or set experiment.kind = \"train\"".into()),
            ));
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
                    format!("{e:#}"),
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
    }
    errors.dedup();
    if errors.is_empty() {
        Ok(Session { manifest, variants, registry, reference_cache: Default::default() })
    } else {
        Err(Diagnostics(errors))
    }
}

/// The validation pass over one variant's settings, the folders it would
/// write, and its metrics' observation requests.
fn validation_diagnostics(
    manifest: &Manifest,
    overrides: &[Override],
    variant: &Variant,
    registry: &Registry,
) -> Vec<Diagnostic> {
    let base = manifest.dir();
    let mut problems = crate::validate::settings(&variant.settings, &base);
    if variant.settings.storage.mode == crate::choice::StorageMode::Shards {
        problems.extend(
            shards_root_outside_run(variant, &base)
                .and_then(|root| crate::validate::shard_folder(&variant.name, &root)),
        );
    }
    for spec in &variant.metrics {
        if let Ok(metric) = registry.new_metric(&spec.id, &spec.params_text()) {
            problems.extend(crate::validate::metric_requests(&variant.settings, spec, &metric));
        }
    }
    problems.into_iter().map(|p| manifest.diagnostic(variant.index, overrides, &p.key, p.message, p.hint)).collect()
}

/// The folder a variant's shards go to, when `storage.dir` puts them outside
/// the run folder.
fn shards_root_outside_run(variant: &Variant, base: &Path) -> Option<PathBuf> {
    let dir = variant.settings.storage.dir.as_ref()?;
    Some(base.join(dir).join(report::file_stem_safe(&variant.name)))
}

/// Options of `tessera run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run folder (default: `runs/<experiment>-<timestamp>`).
    pub out: Option<PathBuf>,
    /// Run only these variants (all if empty).
    pub only: Vec<String>,
    /// Show progress bars.
    pub progress: Option<indicatif::MultiProgress>,
    /// Set to stop the run.
    pub cancel: Arc<AtomicBool>,
}

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

/// What `run` leaves behind.
pub struct RunOutcome {
    /// The run folder.
    pub dir: PathBuf,
    /// Its results.
    pub results: RunResults,
}

impl RunOutcome {
    /// Whether every variant finished.
    pub fn all_ok(&self) -> bool {
        self.results.variants.iter().all(|v| v.status == Status::Ok)
    }
}

/// Runs every variant of `session`, writing results.json after each.
pub fn run(session: &Session, options: &RunOptions) -> Result<RunOutcome> {
    let selected = |v: &Variant| options.only.is_empty() || options.only.iter().any(|n| selected_by(v, n));
    for name in &options.only {
        if !session.variants.iter().any(|v| selected_by(v, name)) {
            let names: Vec<&str> = session.variants.iter().map(|v| v.name.as_str()).collect();
            bail!("no variant named `{name}` (variants: {})", names.join(", "));
        }
    }
    let experiment = session.manifest.name();
    let dir = create_run_dir(options.out.as_deref(), &experiment)?;
    crate::logger::set_log_file(&dir.join("run.log"))?;
    std::fs::write(dir.join("manifest.resolved.toml"), resolved_manifest(session)?)?;
    std::fs::copy(&session.manifest.path, dir.join("manifest.toml"))?;
    let mut results = RunResults {
        schema: 1,
        tessera_version: env!("CARGO_PKG_VERSION").into(),
        experiment: experiment.clone(),
        manifest: session.manifest.path.display().to_string(),
        started: chrono::Local::now().to_rfc3339(),
        variants: vec![],
        plots: session.variants.first().map(|v| v.settings.experiment.plots.clone()).unwrap_or_default(),
    };
    results.save(&dir)?;
    for variant in session.variants.iter().filter(|v| selected(v)) {
        log::info!("variant `{}`: starting", variant.name);
        let started = Instant::now();
        let device = resolve_device(variant.settings.experiment.device).ok().map(device_name);
        let outcome = catch_unwind(AssertUnwindSafe(|| run_variant(session, variant, options, &dir)));
        let seconds = started.elapsed().as_secs_f64();
        let components = variant
            .components()
            .into_iter()
            .map(|(kind, spec)| {
                (
                    if kind == ComponentKind::Metric { format!("metric:{}", spec.id) } else { spec.key.clone() },
                    spec.id.clone(),
                )
            })
            .collect();
        let entry = match outcome {
            Ok(Ok(reports)) => {
                log::info!("variant `{}`: done in {seconds:.1}s", variant.name);
                VariantResult {
                    name: variant.name.clone(),
                    status: Status::Ok,
                    error: None,
                    seconds,
                    components,
                    results: reports,
                    device: device.clone(),
                }
            }
            Ok(Err(e)) => {
                log::error!("variant `{}` failed: {e:#}", variant.name);
                VariantResult {
                    name: variant.name.clone(),
                    status: Status::Failed,
                    error: Some(format!("{e:#}")),
                    seconds,
                    components,
                    results: BTreeMap::new(),
                    device: device.clone(),
                }
            }
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                log::error!("variant `{}` failed: the host panicked: {text}", variant.name);
                VariantResult {
                    name: variant.name.clone(),
                    status: Status::Failed,
                    error: Some(format!("internal error: {text}")),
                    seconds,
                    components,
                    results: BTreeMap::new(),
                    device: device.clone(),
                }
            }
        };
        results.variants.push(entry);
        results.save(&dir)?;
    }
    report::write_tables(&results, &dir)?;
    report::write_plots(&results, &dir)?;
    Ok(RunOutcome { dir, results })
}

/// Whether `--variant name` selects `variant`: its name, or the base name of
/// a seeded variant `name@seed`.
fn selected_by(variant: &Variant, name: &str) -> bool {
    let unseeded = variant.name.rsplit_once('@').map_or(variant.name.as_str(), |(base, _)| base);
    let unswept = unseeded.split_once('[').map_or(unseeded, |(base, _)| base);
    variant.name == name || unseeded == name || unswept == name
}

/// Where `positions` of the old stored order sit after reordering by
/// `order` (new position p holds old example `order[p]`), sorted.
fn renumber(positions: &[usize], order: &[usize]) -> Vec<usize> {
    let marked: std::collections::HashSet<usize> = positions.iter().copied().collect();
    order.iter().enumerate().filter(|(_, old)| marked.contains(old)).map(|(new, _)| new).collect()
}

/// The device a manifest names: `cuda` without a GPU is an error, `auto`
/// falls back to the CPU.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device> {
    let gpus = tch::Cuda::device_count().max(0) as usize;
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if gpus > 0 => Ok(Device::Cuda(0)),
        DeviceChoice::CudaIndex(n) if n < gpus => Ok(Device::Cuda(n)),
        other => bail!("experiment.device = \"{other}\", and libtorch sees {gpus} GPU(s); use \"cpu\" or \"auto\""),
    }
}

/// How results.json names a device.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The device of `[experiment]`, with libtorch's threads and global seed set
/// (anything that still draws from its global generator: dropout, say).
fn set_up_libtorch(experiment: &crate::manifest::ExperimentConfig) -> Result<Device> {
    let device = resolve_device(experiment.device)?;
    if experiment.threads > 0 {
        tch::set_num_threads(experiment.threads as i32);
    }
    tch::manual_seed(experiment.seed as i64);
    Ok(device)
}

/// A seed for role `role` of a variant with seed `seed`.
fn role_seed(seed: u64, role: &str) -> u64 {
    let hash = role.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    SeedRng::derive(seed, hash).next_u64()
}

fn run_variant(
    session: &Session,
    variant: &Variant,
    options: &RunOptions,
    run_dir: &Path,
) -> Result<BTreeMap<String, ReportJson>> {
    match variant.settings.experiment.kind {
        ExperimentKind::Train => run_train(session, variant, options, run_dir),
        ExperimentKind::Graph => run_graph(session, variant, options, run_dir),
        ExperimentKind::Population => run_population(session, variant, options, run_dir),
    }
}

fn progress_bar(options: &RunOptions, len: u64, message: String) -> Option<indicatif::ProgressBar> {
    let multi = options.progress.as_ref()?;
    let bar = multi.add(indicatif::ProgressBar::new(len));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    Some(bar)
}

fn run_train(
    session: &Session,
    variant: &Variant,
    options: &RunOptions,
    run_dir: &Path,
) -> Result<BTreeMap<String, ReportJson>> {
    let mut settings = variant.settings.clone();
    if let Some(weights) = &settings.model.weights {
        settings.model.weights = Some(session.manifest.dir().join(weights).display().to_string());
    }
    if let Some(path) = &settings.model.path {
        settings.model.path = Some(session.manifest.dir().join(path).display().to_string());
    }
    let s = &settings;
    let seed = s.experiment.seed;
    let device = set_up_libtorch(&s.experiment)?;
    let mut splits = data::load(&s.data, s.train.label_noise, seed, &session.manifest.dir())?;
    let registry = &session.registry;
    let ctx = |role: &str| CallContext::new(role_seed(seed, role), options.cancel.clone());
    let sampler_spec = variant.sampler.as_ref().ok_or_else(|| anyhow!("no sampler"))?;
    let mut sampler = registry.new_sampler(&sampler_spec.id, &sampler_spec.params_text())?;
    let mut metrics = Vec::new();
    for spec in &variant.metrics {
        metrics.push(registry.new_metric(&spec.id, &spec.params_text())?);
    }
    let mut reports = BTreeMap::new();
    // The reference classifier L, trained on the stored training split before
    // any sampler reorders it, so every variant compares with the same L.
    let mut reference_config = s.reference.clone();
    if let Some(weights) = &reference_config.model.weights {
        reference_config.model.weights = Some(session.manifest.dir().join(weights).display().to_string());
    }
    let reference =
        train::train_reference(&reference_config, &splits.train, &splits.test, device, role_seed(seed, "reference"))?
            .map(|train::TrainedReference { model, figures }| {
                let mut report = ReportJson::default();
                report.scalars.extend(figures.into_iter().map(|(k, v)| (k.to_string(), v)));
                log::info!(
                    "{}: reference classifier trained ({} test accuracy)",
                    variant.name,
                    report.scalars["test_accuracy"]
                );
                reports.insert("reference".to_string(), report);
                model
            });
    let mut model =
        Model::new(&s.model, &splits.train.shape, splits.train.classes as i64, device, role_seed(seed, "model"))?;
    if s.pretrain.method != crate::choice::PretrainMethod::None {
        let summary = crate::pretrain::pretrain(
            &s.pretrain,
            &model,
            &TensorData::new(&splits.train, device),
            device,
            role_seed(seed, "pretrain"),
        )?;
        let path = run_dir.join("pretrained").join(format!("{}.safetensors", report::file_stem_safe(&variant.name)));
        std::fs::create_dir_all(path.parent().expect("a folder"))?;
        model.save(&path)?;
        let mut report = ReportJson::default();
        report.scalars.insert("first_epoch_loss".into(), summary.epoch_loss.first().copied().unwrap_or(f64::NAN));
        report.scalars.insert("final_loss".into(), summary.epoch_loss.last().copied().unwrap_or(f64::NAN));
        report.scalars.insert("seconds".into(), summary.seconds);
        let epochs = (1..=summary.epoch_loss.len()).map(|e| e as f64).collect();
        report.series.push(SeriesJson {
            name: "pretrain_loss".into(),
            x_label: "epoch".into(),
            y_label: format!("{} loss", s.pretrain.method),
            x: epochs,
            y: summary.epoch_loss,
        });
        log::info!("{}: {} pretraining done, encoder saved to {}", variant.name, s.pretrain.method, path.display());
        reports.insert("pretrain".to_string(), report);
    }
    let layers: Vec<LayerInfo> = model.layers();

    if let Some(spec) = &variant.finetuner {
        let mut finetuner = registry.new_finetuner(&spec.id, &spec.params_text())?;
        let oracle_config = crate::manifest::TrainConfig {
            epochs: s.train.oracle_epochs,
            checkpoint_every: 0,
            checkpoint_steps: vec![],
            checkpoint_log: 0,
            max_examples: None,
            ..s.train.clone()
        };
        let setup = crate::finetune::OracleSetup {
            model: &s.model,
            train: &splits.train,
            validation: &splits.validation,
            config: oracle_config,
            seed: role_seed(seed, "oracle"),
            device,
            cache_bytes: s.train.oracle_cache_mb << 20,
        };
        let mut oracle = crate::finetune::FinetuneOracle::new(&model, setup);
        let mut finetuner_ctx = ctx("finetuner");
        finetuner_ctx.progress = progress_bar(options, 0, format!("{}: {}", variant.name, spec.id));
        let started = Instant::now();
        let selection = finetuner.select(&layers, &mut oracle, &finetuner_ctx)?;
        let search_seconds = started.elapsed().as_secs_f64();
        if let Some(bar) = finetuner_ctx.progress {
            bar.finish_and_clear();
        }
        // The head is new for the target task: it always trains.
        let head = layers.len() as u32 - 1;
        let mut trainable: Vec<u32> = selection.trainable.iter().copied().chain([head]).collect();
        trainable.sort_unstable();
        trainable.dedup();
        crate::contract::layers(&spec.id, &selection.trainable, layers.len())?;
        let mut plugin_report = crate::contract::plugin_report(&spec.id, &selection.report)?;
        let mut report = ReportJson::default();
        report.scalars.insert("search_seconds".into(), search_seconds);
        oracle.add_to_report(&mut report, &layers);
        drop(oracle);
        model.set_trainable(&trainable)?;
        let names: Vec<&str> =
            trainable.iter().filter_map(|&p| layers.get(p as usize)).map(|l| l.name.as_str()).collect();
        report.scalars.insert("trainable_blocks".into(), (trainable.len() - 1) as f64);
        report.scalars.insert("trainable_parameters".into(), model.trainable_parameters() as f64);
        report.tables.push(report::TableJson {
            name: "trainable_layers".into(),
            columns: vec!["position".into(), "layer".into(), "parameters".into()],
            rows: trainable
                .iter()
                .filter_map(|&p| layers.get(p as usize))
                .map(|l| {
                    vec![
                        serde_json::json!(l.position),
                        serde_json::json!(l.name.as_str()),
                        serde_json::json!(l.parameters),
                    ]
                })
                .collect(),
        });
        crate::contract::merge_host(&spec.id, &mut plugin_report, report)?;
        reports.insert("finetuner".to_string(), plugin_report);
        log::info!("{}: training {} ({} of {} layers)", spec.id, names.join(" "), trainable.len(), layers.len());
    }

    let storage = &s.storage;
    let cost = CostModel::preset(storage.preset);
    let access: Access = storage.access;
    let shards_mode = storage.mode == crate::choice::StorageMode::Shards;
    let record_bytes = (splits.train.dim() * 4 + 8) as u64;
    let layout = StorageLayout {
        examples: splits.train.len() as u64,
        block_size: storage.block_size.max(1),
        bytes_per_example: record_bytes,
    };
    let shards_root = shards_root_outside_run(variant, &session.manifest.dir())
        .unwrap_or_else(|| run_dir.join("shards").join(report::file_stem_safe(&variant.name)));
    let mut shard_set: Option<Arc<ShardSet>> = None;
    let owned_shards = shards_mode.then(|| crate::owned::OwnedDir::create(&shards_root, "shards")).transpose()?;
    if shards_mode {
        let started = Instant::now();
        let stored = shards_root.join("stored");
        let train = &splits.train;
        let bar = progress_bar(options, layout.examples, format!("{}: writing shards", variant.name));
        let mut writer =
            ShardWriter::create(&stored, &train.shape, train.classes, layout.block_size, storage.blocks_per_shard)?;
        let dim = train.dim();
        for (i, label) in train.labels.iter().enumerate() {
            writer.push(*label, &train.features[i * dim..(i + 1) * dim])?;
            if let Some(bar) = bar.as_ref().filter(|_| i % 4096 == 0) {
                bar.set_position(i as u64);
            }
        }
        writer.finish()?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        shard_set = Some(Arc::new(ShardSet::open(&stored)?));
        log::info!(
            "{}: wrote {} examples as shards in {:.1}s",
            variant.name,
            layout.examples,
            started.elapsed().as_secs_f64()
        );
    }

    let sampler_ctx = ctx("sampler");
    if let Some(mut offline) = sampler.offline_order(&layout, &sampler_ctx)? {
        let started = Instant::now();
        let buffer = storage.offline_buffer_blocks.unwrap_or(storage.buffer_blocks);
        let mut report = ReportJson::default();
        let (read, written) = match &shard_set {
            Some(set) => {
                // Read the stored shards in the offline order; write new ones.
                let loader = BlockLoader::new(set.clone(), buffer, Access::Block, storage.prefetch);
                let mut reader = loader.start(Box::new(offline));
                let target = shards_root.join("offline");
                let (shape, classes) = (set.index.shape.clone(), set.index.classes);
                let mut writer =
                    ShardWriter::create(&target, &shape, classes, layout.block_size, storage.blocks_per_shard)?;
                let dim = set.index.dim();
                let mut seen = vec![false; layout.examples as usize];
                let mut new_order = Vec::with_capacity(layout.examples as usize);
                loop {
                    let mut features = Vec::new();
                    let examples = reader.next_examples(4096, &mut features)?;
                    if examples.is_empty() {
                        break;
                    }
                    for (k, e) in examples.iter().enumerate() {
                        if std::mem::replace(&mut seen[e.id as usize], true) {
                            bail!("{}: the offline order visits example {} twice", sampler.id, e.id);
                        }
                        writer.push(e.label, &features[k * dim..(k + 1) * dim])?;
                        new_order.push(e.id as usize);
                    }
                }
                let read = reader.finish()?;
                if let Some(missing) = seen.iter().position(|&v| !v) {
                    bail!("{}: the offline order leaves out example {missing}", sampler.id);
                }
                let (_, written) = writer.finish()?;
                let new_set = Arc::new(ShardSet::open(&target)?);
                splits.train = new_set.read_all()?;
                splits.noised = renumber(&splits.noised, &new_order);
                shard_set = Some(new_set);
                (read, written)
            }
            None => {
                // Count what the offline pass would read and write.
                let mut order = Vec::with_capacity(layout.examples as usize);
                let mut policy = LruPolicy::new(buffer);
                let mut read = IoStats::default();
                while let Some(chunk) = offline.next_chunk()? {
                    for &id in chunk.iter() {
                        let block = id / layout.block_size;
                        if id < layout.examples && !policy.touch(block) {
                            policy.insert(block, ());
                            read.requests += 1;
                            read.bytes += layout.block_range(block).count() as u64 * record_bytes;
                        }
                        order.push(id as usize);
                    }
                }
                let mut seen = vec![false; splits.train.len()];
                for &id in &order {
                    if id >= seen.len() || std::mem::replace(&mut seen[id], true) {
                        bail!(
                            "{}: the offline order is not a permutation of the {} stored examples (id {id})",
                            sampler.id,
                            seen.len()
                        );
                    }
                }
                if order.len() != seen.len() {
                    bail!(
                        "{}: the offline order has {} ids for {} stored examples",
                        sampler.id,
                        order.len(),
                        seen.len()
                    );
                }
                splits.train = splits.train.subset(&order);
                splits.noised = renumber(&splits.noised, &order);
                let written =
                    IoStats { requests: layout.blocks(), bytes: layout.examples * record_bytes, io_seconds: 0.0 };
                (read, written)
            }
        };
        report.scalars.insert("offline_blocks_read".into(), read.requests as f64);
        report.scalars.insert("offline_bytes_read".into(), read.bytes as f64);
        report.scalars.insert("offline_blocks_written".into(), written.requests as f64);
        report.scalars.insert("offline_bytes_written".into(), written.bytes as f64);
        report
            .scalars
            .insert("offline_modeled_seconds".into(), read.modeled_seconds(&cost) + written.modeled_seconds(&cost));
        report.scalars.insert("offline_seconds".into(), started.elapsed().as_secs_f64());
        reports.insert("sampler".to_string(), report);
    }

    let train_tensors = TensorData::new(&splits.train, device);
    let test_tensors = TensorData::new(&splits.test, device);
    let validation_tensors = TensorData::new(&splits.validation, device);
    let split_tensors = [("train", &train_tensors), ("validation", &validation_tensors), ("test", &test_tensors)];
    let mut requests: Vec<ObservationRequest> = Vec::new();
    for metric in &metrics {
        requests.extend(metric.requires()?);
    }
    // L is fixed: its predictions on each split it is asked about, once.
    let mut reference_predictions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    if let Some(l) = &reference {
        for r in requests.iter().filter(|r| r.kind.as_str() == tessera_sdk::observation::REFERENCE_PREDICTIONS) {
            let Some((_, data)) = split_tensors.iter().find(|(name, _)| *name == r.split.as_str()) else {
                bail!("split `{}` is not loaded (known: train, validation, test)", r.split);
            };
            reference_predictions.insert(r.split.to_string(), train::predictions(l, data)?);
        }
    }
    let metric_ctx: Vec<CallContext> = metrics.iter().map(|m| ctx(&m.id)).collect();
    let steps_per_epoch = layout.examples.div_ceil(s.train.batch_size.max(1) as u64);
    let bar = progress_bar(options, steps_per_epoch * s.train.epochs, variant.name.clone());
    let mut curve: Vec<train::CurvePoint> = Vec::new();
    let loader =
        shard_set.as_ref().map(|set| BlockLoader::new(set.clone(), storage.buffer_blocks, access, storage.prefetch));
    let shape = splits.train.shape.clone();
    let train_ref = &train_tensors;
    let sampler_id = sampler.id.clone();
    let mut epoch = |epoch: u64| -> Result<Box<dyn BatchSource + '_>> {
        let order = sampler.epoch_order(&layout, epoch, &sampler_ctx)?;
        Ok(match &loader {
            Some(loader) => Box::new(ShardSource::new(loader.start(Box::new(order)), &shape, device)),
            None => Box::new(MemorySource::new(Box::new(order), train_ref, layout, access, storage.buffer_blocks)),
        })
    };
    // The ids of the current epoch, for the `order` observation.
    let epoch_order: std::cell::RefCell<(u64, Vec<u64>)> = Default::default();
    let wants_order = requests.iter().any(|r| r.kind.as_str() == tessera_sdk::observation::ORDER);
    let mut visit = |epoch: u64, ids: &[u64]| {
        let mut current = epoch_order.borrow_mut();
        if current.0 != epoch {
            *current = (epoch, Vec::with_capacity(layout.examples as usize));
        }
        current.1.extend_from_slice(ids);
    };
    let mut checkpoint = |model: &Model, cp: tessera_sdk::Checkpoint, train_loss: f64| -> Result<()> {
        let eval = train::evaluate(model, &test_tensors);
        curve.push(train::CurvePoint {
            step: cp.step,
            epoch: cp.epoch,
            examples_seen: cp.examples_seen,
            train_loss,
            test_accuracy: eval.accuracy,
            test_loss: eval.loss,
        });
        let order = epoch_order.borrow();
        let storage_view = train::StorageView { order: &order.1, block_size: layout.block_size };
        let observations =
            train::observe(model, &splits, &split_tensors, storage_view, &reference_predictions, &requests)?;
        for (metric, mctx) in metrics.iter_mut().zip(&metric_ctx) {
            metric.observe(&cp, &observations, mctx)?;
        }
        Ok(())
    };
    let hooks = FitHooks {
        progress: bar.as_ref(),
        visit: if wants_order { Some(&mut visit) } else { None },
        sampler: Some(&sampler_id),
        ..FitHooks::new(&mut epoch, &mut checkpoint, &options.cancel)
    };
    let summary = train::fit(&model, layout.examples, &s.train, hooks)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(owned) = owned_shards.filter(|_| !storage.keep) {
        owned.remove()?;
    }
    finish_metrics(&mut metrics, &metric_ctx, &mut reports)?;
    let mut engine = ReportJson::default();
    if let Some(last) = curve.last() {
        engine.scalars.insert("final_test_accuracy".into(), last.test_accuracy);
        engine.scalars.insert("final_test_loss".into(), last.test_loss);
    }
    engine.scalars.insert("examples_per_second".into(), summary.examples_per_second);
    engine.scalars.insert("trainable_parameters".into(), model.trainable_parameters() as f64);
    engine.scalars.insert("steps".into(), summary.steps as f64);
    if s.train.label_noise > 0.0 {
        engine.scalars.insert("noised_labels".into(), splits.noised.len() as f64);
    }
    let epochs = summary.epoch_io.len().max(1) as f64;
    let total = summary.epoch_io.iter().fold(IoStats::default(), |mut total, io| {
        total.add(io);
        total
    });
    engine.scalars.insert("io_requests_per_epoch".into(), total.requests as f64 / epochs);
    engine.scalars.insert("io_bytes_per_epoch".into(), total.bytes as f64 / epochs);
    engine.scalars.insert("io_modeled_seconds_per_epoch".into(), total.modeled_seconds(&cost) / epochs);
    if shards_mode {
        engine.scalars.insert("io_seconds_per_epoch".into(), total.io_seconds / epochs);
    }
    engine.scalars.insert("epoch_seconds".into(), summary.epoch_seconds.iter().sum::<f64>() / epochs);
    engine.scalars.insert("train_seconds".into(), summary.epoch_seconds.iter().sum::<f64>());
    engine.scalars.insert("train_examples".into(), splits.train.len() as f64);
    if variant.finetuner.is_some() || s.train.save_model {
        let path = run_dir.join("models").join(format!("{}.safetensors", report::file_stem_safe(&variant.name)));
        std::fs::create_dir_all(path.parent().expect("a folder"))?;
        model.save(&path)?;
    }
    // Accuracy against cumulative modeled I/O time, at the end of each epoch.
    let mut cumulative = 0.0;
    let (mut io_x, mut io_y) = (vec![], vec![]);
    for (i, io) in summary.epoch_io.iter().enumerate() {
        cumulative += io.modeled_seconds(&cost);
        if let Some(p) = curve.iter().find(|p| p.epoch == (i + 1) as f64) {
            io_x.push(cumulative);
            io_y.push(p.test_accuracy);
        }
    }
    engine.series.push(SeriesJson {
        name: "test_accuracy_by_modeled_io".into(),
        x_label: format!("cumulative modeled I/O seconds ({})", storage.preset),
        y_label: "accuracy".into(),
        x: io_x,
        y: io_y,
    });
    let io_rows = summary.epoch_io.iter().zip(&summary.epoch_seconds).enumerate().map(|(i, (io, secs))| {
        vec![
            serde_json::json!(i + 1),
            serde_json::json!(io.requests),
            serde_json::json!(io.bytes),
            serde_json::json!(io.modeled_seconds(&cost)),
            serde_json::json!(io.io_seconds),
            serde_json::json!(secs),
        ]
    });
    engine.tables.push(report::TableJson {
        name: "io_per_epoch".into(),
        columns: ["epoch", "requests", "bytes", "modeled_seconds", "io_seconds", "epoch_seconds"]
            .map(String::from)
            .to_vec(),
        rows: io_rows.collect(),
    });

    let xs: Vec<f64> = curve.iter().map(|p| p.epoch).collect();
    for (name, y_label, ys) in [
        ("test_accuracy", "accuracy", curve.iter().map(|p| p.test_accuracy).collect::<Vec<_>>()),
        ("test_loss", "cross-entropy", curve.iter().map(|p| p.test_loss).collect()),
        ("train_loss", "cross-entropy", curve.iter().map(|p| p.train_loss).collect()),
    ] {
        engine.series.push(SeriesJson {
            name: name.into(),
            x_label: "epoch".into(),
            y_label: y_label.into(),
            x: xs.clone(),
            y: ys,
        });
    }
    reports.insert("engine".to_string(), engine);
    Ok(reports)
}

/// Asks every metric for its report, keyed by its id (`id#2`, … for repeats).
fn finish_metrics(
    metrics: &mut [crate::plugin::MetricHandle],
    contexts: &[CallContext],
    reports: &mut BTreeMap<String, ReportJson>,
) -> Result<()> {
    for (metric, mctx) in metrics.iter_mut().zip(contexts) {
        let report = metric.finish(mctx)?;
        let mut key = metric.id.clone();
        let mut n = 2;
        while reports.contains_key(&key) {
            key = format!("{}#{n}", metric.id);
            n += 1;
        }
        reports.insert(key, crate::contract::plugin_report(&metric.id, &report)?);
    }
    Ok(())
}

/// A population experiment: trains (or loads) the population, saves its
/// prediction matrices under `population/<variant>/` before any metric runs,
/// then hands them to the metrics in one observation.
fn run_population(
    session: &Session,
    variant: &Variant,
    options: &RunOptions,
    run_dir: &Path,
) -> Result<BTreeMap<String, ReportJson>> {
    let s = &variant.settings;
    let seed = s.experiment.seed;
    let device = set_up_libtorch(&s.experiment)?;
    let started = Instant::now();
    let population = match &s.population.load {
        Some(path) => {
            let dir = session.manifest.dir().join(path);
            let p = Population::load(&dir).with_context(|| format!("population.load = \"{path}\""))?;
            log::info!("{}: loaded {} members from {}", variant.name, p.len(), dir.display());
            p
        }
        None => {
            // Clean labels here: each run draws its settings' label noise itself.
            let splits = data::load(&s.data, 0.0, seed, &session.manifest.dir())?;
            let bar = progress_bar(options, 0, format!("{}: population", variant.name));
            let encoders = run_dir.join("pretrained").join(report::file_stem_safe(&variant.name));
            let p = Population::train(
                &s.population,
                &s.train,
                &s.pretrain,
                Some(&encoders),
                &splits,
                device,
                role_seed(seed, "population"),
                &options.cancel,
                bar.as_ref(),
            )?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            p
        }
    };
    let folder = run_dir.join("population").join(report::file_stem_safe(&variant.name));
    population.save(&folder)?;
    log::info!(
        "{}: {} members ready in {:.1}s, saved to {}",
        variant.name,
        population.len(),
        started.elapsed().as_secs_f64(),
        folder.display()
    );
    let mut reports = BTreeMap::new();
    let mut engine = ReportJson::default();
    engine.scalars.insert("members".into(), population.len() as f64);
    let runs = population.members.iter().map(|m| m.run).collect::<std::collections::BTreeSet<_>>().len();
    engine.scalars.insert("runs".into(), runs as f64);
    engine.scalars.insert("seconds".into(), started.elapsed().as_secs_f64());
    let splits: Vec<&String> = population.splits.keys().collect();
    for split in &splits {
        let accuracies: Vec<f64> = population.members.iter().map(|m| m.accuracy[split.as_str()]).collect();
        let (lo, hi) = accuracies.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &a| (lo.min(a), hi.max(a)));
        engine.scalars.insert(format!("points_{split}"), population.splits[split.as_str()].labels.len() as f64);
        engine.scalars.insert(format!("min_accuracy_{split}"), lo);
        engine.scalars.insert(format!("max_accuracy_{split}"), hi);
    }
    let mut columns: Vec<String> =
        ["member", "run", "model", "width", "seed", "setting", "epochs", "step", "examples_seen"]
            .map(String::from)
            .to_vec();
    columns.extend(splits.iter().map(|s| format!("{s}_accuracy")));
    let rows = population.members.iter().enumerate().map(|(i, m)| {
        let mut row = vec![
            serde_json::json!(i),
            serde_json::json!(m.run),
            serde_json::json!(m.model),
            serde_json::json!(m.width),
            serde_json::json!(m.seed),
            serde_json::json!(m.setting_label),
            serde_json::json!(m.epochs),
            serde_json::json!(m.step),
            serde_json::json!(m.examples_seen),
        ];
        row.extend(splits.iter().map(|s| serde_json::json!(m.accuracy[s.as_str()])));
        row
    });
    engine.tables.push(report::TableJson { name: "members".into(), columns, rows: rows.collect() });
    reports.insert("engine".to_string(), engine);

    let mut metrics = Vec::new();
    for spec in &variant.metrics {
        metrics.push(session.registry.new_metric(&spec.id, &spec.params_text())?);
    }
    let contexts: Vec<CallContext> =
        metrics.iter().map(|m| CallContext::new(role_seed(seed, &m.id), options.cancel.clone())).collect();
    let longest = population.members.iter().map(|m| m.epochs).max().unwrap_or(0);
    let checkpoint = tessera_sdk::Checkpoint { step: 0, epoch: longest as f64, examples_seen: 0, is_final: true };
    for (metric, mctx) in metrics.iter_mut().zip(&contexts) {
        let observations = population.observations(&metric.requires()?)?;
        metric.observe(&checkpoint, &observations, mctx)?;
    }
    finish_metrics(&mut metrics, &contexts, &mut reports)?;
    Ok(reports)
}

fn run_graph(
    session: &Session,
    variant: &Variant,
    options: &RunOptions,
    run_dir: &Path,
) -> Result<BTreeMap<String, ReportJson>> {
    let s = &variant.settings;
    let g = &s.graph;
    let seed = s.experiment.seed;
    let graph_seed = g.seed.unwrap_or(seed);
    let started = Instant::now();
    let graph = graph::build(g, graph_seed, &session.manifest.dir())?;
    log::info!(
        "{}: graph with {} nodes and {} edges ready in {:.1}s",
        variant.name,
        graph.nodes(),
        graph.edges(),
        started.elapsed().as_secs_f64()
    );
    if g.write_snap {
        let dir = run_dir.join("graphs");
        std::fs::create_dir_all(&dir)?;
        let comment = format!(
            "tessera {}: [graph] {} (seed {graph_seed})",
            env!("CARGO_PKG_VERSION"),
            toml::to_string(g).unwrap_or_default().replace('\n', "; ")
        );
        graph::write_snap(&graph, &dir.join(format!("{}.txt", report::file_stem_safe(&variant.name))), &comment)?;
    }
    let spec = variant.objective.as_ref().ok_or_else(|| anyhow!("no objective"))?;
    let mut objective = session.registry.new_graph_objective(&spec.id, &spec.params_text())?;
    let evaluation_seed = role_seed(seed, "evaluation");
    // The evaluation grid: θ_c, then draws from the box (hyperparametric only).
    let grid: Vec<Vec<f32>> =
        if graph.theta_center.is_empty() {
            vec![]
        } else {
            let mut rng = SeedRng::derive(graph_seed, 0x7E7A);
            let b = graph.theta_radius;
            std::iter::once(graph.theta_center.clone())
                .chain((1..g.evaluation_thetas.max(1)).map(|_| {
                    graph.theta_center.iter().map(|&c| c + ((2.0 * rng.next_f64() - 1.0) * b) as f32).collect()
                }))
                .collect()
        };
    let grid_probabilities: Vec<Vec<f32>> = grid.iter().map(|t| graph.view().probabilities_at(t)).collect();
    let mut budgets: Vec<u32> = std::iter::once(g.budget).chain(g.budgets.iter().copied()).collect();
    if let Some(k) = budgets.iter().find(|&&k| k > graph.nodes()) {
        bail!(
            "graph.budget: a seed set of {k} nodes in a graph of {} nodes; use a budget of at most the graph's nodes",
            graph.nodes()
        );
    }
    budgets.sort_unstable();
    budgets.dedup();
    let mut report = ReportJson::default();
    let mut by_k: Vec<(f64, f64, f64, f64)> = Vec::new(); // k, spread, worst case, worst ratio
    for &k in &budgets {
        let started = Instant::now();
        let mut ctx = CallContext::new(role_seed(seed, "objective"), options.cancel.clone());
        ctx.progress = progress_bar(options, 0, format!("{}: {} (k = {k})", variant.name, spec.id));
        let choice = objective.choose(&graph.view(), k, &ctx)?;
        if let Some(bar) = ctx.progress.take() {
            bar.finish_and_clear();
        }
        let choose_seconds = started.elapsed().as_secs_f64();
        let peak_memory_mb = peak_rss_mb();
        crate::contract::seed_choice(&spec.id, &choice, k, graph.nodes())?;
        let plugin_report = crate::contract::plugin_report(&spec.id, &choice.report)?;
        // E_S[σ(S)] of the chosen distribution under `probabilities`.
        let expected = |probabilities: &[f32]| {
            let sets = choice.sets.iter().map(|set| (set.weight, set.seeds.as_slice()));
            graph::expected_spread(&graph, probabilities, sets, g.simulations, evaluation_seed)
        };
        let at_model = expected(&graph.probabilities);
        let grid_spreads: Vec<graph::SpreadEstimate> = grid_probabilities.iter().map(|p| expected(p)).collect();
        let references = reference_values(session, g, graph_seed, &graph, &grid_probabilities, k, options, seed)?;
        let worst = grid_spreads.iter().copied().min_by(|a, b| a.mean.total_cmp(&b.mean));
        let ratios: Vec<f64> = grid_spreads
            .iter()
            .zip(&references)
            .map(|(s, r)| if r.mean > 0.0 { s.mean / r.mean } else { 1.0 })
            .collect();
        let worst_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        by_k.push((k as f64, at_model.mean, worst.map_or(f64::NAN, |w| w.mean), worst_ratio));
        if k != g.budget {
            continue;
        }
        report = plugin_report;
        let mut host = ReportJson::default();
        host.scalars.insert("expected_spread".into(), at_model.mean);
        host.scalars.insert("expected_spread_ci95".into(), at_model.ci95);
        host.scalars.insert("choose_seconds".into(), choose_seconds);
        host.scalars.insert("peak_memory_mb".into(), peak_memory_mb);
        host.scalars.insert("graph_nodes".into(), graph.nodes() as f64);
        host.scalars.insert("graph_edges".into(), graph.edges() as f64);
        host.scalars.insert("graph_self_loops_dropped".into(), graph.dropped.self_loops as f64);
        host.scalars.insert("graph_duplicate_edges_dropped".into(), graph.dropped.duplicates as f64);
        host.scalars.insert("seed_sets".into(), choice.sets.len() as f64);
        let rows = choice.sets.iter().enumerate().map(|(i, set)| {
            let seeds: Vec<String> = set.seeds.iter().map(u32::to_string).collect();
            vec![serde_json::json!(i), serde_json::json!(set.weight), serde_json::json!(seeds.join(" "))]
        });
        host.tables.push(report::TableJson {
            name: "seed_sets".into(),
            columns: ["set", "weight", "seeds"].map(String::from).to_vec(),
            rows: rows.collect(),
        });
        if let Some(worst) = worst {
            host.scalars.insert("worst_case_spread".into(), worst.mean);
            host.scalars.insert("worst_case_spread_ci95".into(), worst.ci95);
            host.scalars.insert(
                "mean_spread_over_grid".into(),
                grid_spreads.iter().map(|s| s.mean).sum::<f64>() / grid_spreads.len() as f64,
            );
            if !references.is_empty() {
                host.scalars.insert("worst_case_ratio".into(), worst_ratio);
            }
            let rows = grid_spreads.iter().enumerate().map(|(i, s)| {
                let reference = references.get(i);
                vec![
                    serde_json::json!(i),
                    serde_json::json!(s.mean),
                    serde_json::json!(s.ci95),
                    serde_json::json!(reference.map(|r| r.mean)),
                    serde_json::json!(ratios.get(i)),
                ]
            });
            host.tables.push(report::TableJson {
                name: "theta_grid".into(),
                columns: ["theta", "spread", "ci95", "reference_spread", "ratio"].map(String::from).to_vec(),
                rows: rows.collect(),
            });
            host.series.push(SeriesJson {
                name: "spread_by_theta".into(),
                x_label: "θ of the evaluation grid (0 = θ_c)".into(),
                y_label: "expected spread".into(),
                x: (0..grid_spreads.len()).map(|i| i as f64).collect(),
                y: grid_spreads.iter().map(|s| s.mean).collect(),
            });
        }
        crate::contract::merge_host(&spec.id, &mut report, host)?;
    }
    let mut host = ReportJson::default();
    if budgets.len() > 1 {
        let series = |name: &str, y_label: &str, f: fn(&(f64, f64, f64, f64)) -> f64| SeriesJson {
            name: name.into(),
            x_label: "budget k".into(),
            y_label: y_label.into(),
            x: by_k.iter().map(|r| r.0).collect(),
            y: by_k.iter().map(f).collect(),
        };
        host.series.push(series("spread_by_k", "expected spread", |r| r.1));
        if !grid.is_empty() {
            host.series.push(series("worst_case_spread_by_k", "worst-case spread over the grid", |r| r.2));
            if !g.reference.is_empty() {
                host.series.push(series("worst_case_ratio_by_k", "worst-case ratio to the per-θ reference", |r| r.3));
            }
        }
    }
    crate::contract::merge_host(&spec.id, &mut report, host)?;
    Ok([("objective".to_string(), report)].into())
}

/// The process's peak resident memory so far (Linux `VmHWM`), in MB; NaN elsewhere.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The reference objective's spread at each θ of the grid for budget `k`
/// (cached: variants on the same graph share them); empty without a reference.
#[allow(clippy::too_many_arguments)]
fn reference_values(
    session: &Session,
    g: &crate::manifest::GraphConfig,
    graph_seed: u64,
    graph: &graph::Graph,
    grid_probabilities: &[Vec<f32>],
    k: u32,
    options: &RunOptions,
    seed: u64,
) -> Result<Vec<graph::SpreadEstimate>> {
    if g.reference.is_empty() || grid_probabilities.is_empty() {
        return Ok(vec![]);
    }
    let key = format!("{}|{graph_seed}|{seed}|{k}", toml::to_string(g).unwrap_or_default());
    if let Some(hit) = session.reference_cache.lock().expect("cache lock").get(&key) {
        return Ok(hit.clone());
    }
    let mut reference = session.registry.new_graph_objective(&g.reference, "")?;
    let mut fixed = graph.clone();
    fixed.theta_center.clear();
    let mut values = Vec::new();
    for (i, probabilities) in grid_probabilities.iter().enumerate() {
        fixed.probabilities.clone_from(probabilities);
        let ctx = CallContext::new(role_seed(seed, &format!("reference-{i}")), options.cancel.clone());
        let choice = reference.choose(&fixed.view(), k, &ctx)?;
        let sets = choice.sets.iter().map(|set| (set.weight, set.seeds.as_slice()));
        values.push(graph::expected_spread(graph, probabilities, sets, g.simulations, role_seed(seed, "evaluation")));
    }
    log::info!("per-θ reference `{}` at k = {k}: {} models", g.reference, values.len());
    session.reference_cache.lock().expect("cache lock").insert(key, values.clone());
    Ok(values)
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

    #[test]
    fn renumbering_follows_the_new_order() {
        assert_eq!(renumber(&[0, 3], &[3, 1, 0, 2]), vec![0, 2]);
    }

    #[test]
    fn devices_parse() {
        assert_eq!(resolve_device(DeviceChoice::Cpu).unwrap(), Device::Cpu);
        assert_eq!(resolve_device(DeviceChoice::Auto).unwrap(), Device::cuda_if_available());
        assert!(resolve_device(DeviceChoice::CudaIndex(1000)).is_err());
    }
}
