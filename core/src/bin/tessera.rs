//! `tessera`: list plugins, check a manifest, run an experiment, re-render a
//! run's report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera_core::choice::ExecutorKind;
use tessera_core::handoff;
use tessera_core::manifest::Override;
use tessera_core::plugin::{Registry, HOST_SDK_VERSION};
use tessera_core::report::{self, RunResults};
use tessera_core::run::{self, Executor, PluginSearch, RunOptions};
#[cfg(feature = "torch")]
use tessera_core::siamese;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Compose learning-science methods shipped as plugins, from TOML manifests."
)]
struct Cli {
    /// More output (-v debug, -vv trace; -v also shows full ABI reports).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Extra plugin folder or library file (repeatable).
    #[arg(long = "plugins", value_name = "PATH", global = true)]
    plugins: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every plugin and component with its parameters and defaults.
    Plugins {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Validate a manifest against the plugins without running it.
    Check {
        /// The manifest.
        manifest: PathBuf,
        /// Override a setting in every variant, e.g. --set train.lr=0.1.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Run every variant of a manifest and write a run folder.
    Run {
        /// The manifest.
        manifest: PathBuf,
        /// The run folder (default: runs/<experiment>-<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override a setting in every variant, e.g. --set train.lr=0.1.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Run only this variant (repeatable); a seeded variant's base name selects all its seeds.
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        #[command(flatten)]
        executor: ExecutorArgs,
    },
    /// Print the plan of a manifest: its units, their estimated cost, and
    /// what collect does after them. Runs nothing.
    Plan {
        /// The manifest.
        manifest: PathBuf,
        /// Override a setting in every variant, e.g. --set train.lr=0.1.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Plan only this variant (repeatable).
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// The plan as JSON (as plan.json holds it).
        #[arg(long)]
        json: bool,
    },
    /// Run units of a run folder (what executors start; rarely typed).
    Worker {
        /// The run folder.
        dir: PathBuf,
        /// The unit's id.
        #[arg(long, required_unless_present = "units", conflicts_with = "units")]
        unit: Option<usize>,
        /// Several units, comma-separated, each run if this worker claims it
        /// in --claims (how the processes executor's workers share them).
        #[arg(long, value_delimiter = ',', requires = "claims")]
        units: Vec<usize>,
        /// The claims folder the workers share.
        #[arg(long)]
        claims: Option<PathBuf>,
        /// This worker's share of the cores: at most this many libtorch
        /// threads (default under Slurm: the CPUs of its allocation).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Merge a run folder's finished units into results.json, tables, plots
    /// and population matrices (what the Slurm collect job runs).
    Collect {
        /// The run folder.
        dir: PathBuf,
    },
    /// Run the units of a run folder that are missing or failed, then collect.
    Resume {
        /// The run folder.
        dir: PathBuf,
        #[command(flatten)]
        executor: ExecutorArgs,
    },
    /// Show each unit of a run folder: done, running, failed, stopped or pending.
    Status {
        /// The run folder.
        dir: PathBuf,
        /// List done units too.
        #[arg(long)]
        all: bool,
    },
    /// Re-render the tables, plots, report.html and summary of a run folder from its results.json.
    Report {
        /// The run folder.
        dir: PathBuf,
    },
    /// Compare runs: the same variants side by side (headline figures first,
    /// mean ± sd over seeds, each run's difference from the first) and their
    /// shared curves on one plot; writes compare.html into a new folder.
    Compare {
        /// Two or more run folders; the first is the baseline.
        #[arg(required = true, num_args = 2..)]
        dirs: Vec<PathBuf>,
        /// The folder to write (default: runs/compare-<time>); new or empty.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare a run folder's figures (every scalar but wall times, per
    /// variant, seeds merged) with an expected-figures file, exactly; exit 1
    /// and print each figure that moved. With --write, write the file instead.
    Figures {
        /// The run folder.
        dir: PathBuf,
        /// The expected-figures file, e.g. examples/expected/quickstart.json.
        #[arg(long)]
        expected: PathBuf,
        /// Write the run's figures as the expected ones.
        #[arg(long)]
        write: bool,
    },
    /// Print a Markdown table of a run folder's figures: a row per variant
    /// (seeds merged, mean ± sd), a column per scalar. The book's tables
    /// are made this way.
    Table {
        /// The run folder.
        dir: PathBuf,
        /// A column, `LABEL=ROLE/SCALAR[:pct|int|fN]` (repeatable), e.g.
        /// `"test accuracy=baselines.accuracy/test_accuracy:pct"`.
        #[arg(long = "column", value_name = "COLUMN", required = true)]
        columns: Vec<tessera_core::table::Column>,
    },
    /// Write a data source as shard folders (`OUT/train`, `OUT/validation`,
    /// `OUT/test`), split as `tessera run` splits it, one example in memory
    /// at a time. Train on them with `source = "shards"`, `path = "OUT"`.
    Shard {
        /// A manifest (its [data], train.label_noise and seed), or a data
        /// file: .npy (with --labels), .csv, .tar or a folder of .tar
        /// (WebDataset), IDX images (with --labels).
        source: PathBuf,
        /// The folder to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Examples per block (default: the manifest's storage.block_size, else 256).
        #[arg(long)]
        block_size: Option<u64>,
        /// Blocks per shard file (default: the manifest's storage.blocks_per_shard).
        #[arg(long)]
        blocks_per_shard: Option<u64>,
        /// The labels of a .npy or IDX source.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// The label column of a CSV (negative counts from the end).
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        label_column: i64,
        /// The seed of the split, for a data file (a manifest has its own).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Start something new: `tessera new plugin NAME --kind KIND`.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Answer several finetuned variants of a run as one Siamese multi-task
    /// model over their shared backbone; check its outputs and compare its
    /// throughput with the separate models.
    Siamese {
        /// The run folder.
        dir: PathBuf,
        /// A finetuned variant to include (repeatable; default: all of them).
        #[arg(long = "variant", value_name = "NAME")]
        variants: Vec<String>,
        /// Inputs per timed batch.
        #[arg(long, default_value_t = 256)]
        batch: i64,
        /// Seconds to time each way.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
}

/// What `tessera new` makes.
#[derive(Subcommand)]
enum NewCommand {
    /// A plugin crate that builds and loads as is, with a unit test and a
    /// manifest that uses it.
    Plugin {
        /// The plugin's name (lowercase, digits, `-`): manifests say `NAME.component`.
        name: String,
        /// The component it starts with: sampler, finetuner, metric or graph-objective.
        #[arg(long)]
        kind: tessera_core::choice::PluginKind,
        /// The folder to write (default: ./NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The tessera-sdk crate to depend on (default: this checkout's sdk/).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// `tessera new plugin`: writes the crate and says what to do next.
fn new_plugin(name: &str, kind: tessera_core::choice::PluginKind, out: Option<&Path>, sdk: Option<&Path>) -> ExitCode {
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(tessera_core::scaffold::default_sdk);
    let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
    match tessera_core::scaffold::write(&dir, name, kind, &sdk) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
            println!("next: cd {} && cargo test && cargo build --release && tessera run {name}.toml", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Where the units run (`run`, `resume`).
#[derive(clap::Args)]
struct ExecutorArgs {
    /// inline (this process), processes (--jobs workers here) or slurm
    /// (a job array); default: the manifest's experiment.executor.
    #[arg(long, value_name = "KIND")]
    executor: Option<ExecutorKind>,
    /// Worker processes of --executor processes (default: the manifest's
    /// experiment.jobs, else one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// With --executor slurm: wait for the collect job and print the results.
    #[arg(long)]
    wait: bool,
}

impl ExecutorArgs {
    /// The executor these flags choose over the manifest's.
    fn choose(&self, session: &run::Session) -> Executor {
        let manifest = session.variants.first().map(|v| &v.settings);
        let kind = self.executor.or(manifest.map(|s| s.experiment.executor)).unwrap_or(ExecutorKind::Inline);
        let jobs = self.jobs.or(manifest.map(|s| s.experiment.jobs)).unwrap_or(0);
        let slurm = manifest.map(|s| s.executor.slurm.clone()).unwrap_or_default();
        Executor::from_kind(kind, jobs, &slurm, self.wait)
    }
}

fn search(cli: &Cli) -> PluginSearch {
    PluginSearch { extra: cli.plugins.clone(), ..PluginSearch::standard() }
}

fn overrides(set: &[String]) -> Result<Vec<Override>, String> {
    set.iter().map(|s| Override::parse(s)).collect()
}

fn print_load_failures(registry: &Registry, verbose: bool) {
    for failure in registry.failures.iter().chain(registry.conflicts()) {
        eprintln!("warning: {failure}");
        if let (true, Some(details)) = (verbose, failure.details()) {
            eprintln!("{details}");
        } else if failure.details().is_some() {
            eprintln!("  (run with -v for abi_stable's full report)");
        }
    }
}

fn plugins_json(registry: &Registry) -> serde_json::Value {
    let plugins: Vec<serde_json::Value> = registry
        .plugins()
        .iter()
        .map(|p| {
            let components: Vec<serde_json::Value> = p
                .info
                .components
                .iter()
                .map(|c| {
                    let params: Vec<serde_json::Value> = c
                        .params
                        .iter()
                        .map(|s| serde_json::json!({"name": s.name.as_str(), "type": s.type_name.as_str(), "default": s.default.as_str(), "doc": s.doc.as_str()}))
                        .collect();
                    serde_json::json!({
                        "kind": c.kind.as_str(),
                        "name": c.name.as_str(),
                        "id": format!("{}.{}", p.name(), c.name),
                        "summary": c.summary.as_str(),
                        "params": params,
                    })
                })
                .collect();
            serde_json::json!({
                "name": p.name(),
                "version": p.info.version.as_str(),
                "sdk_version": p.info.sdk_version.as_str(),
                "libtorch_version": p.info.libtorch_version.as_str(),
                "path": p.path.display().to_string(),
                "components": components,
            })
        })
        .collect();
    let failures: Vec<String> = registry.failures.iter().chain(registry.conflicts()).map(|f| f.to_string()).collect();
    serde_json::json!({
        "tessera_version": env!("CARGO_PKG_VERSION"),
        "sdk_version": HOST_SDK_VERSION,
        "libtorch_version": tessera_core::plugin::host_libtorch_version(),
        "plugins": plugins,
        "failures": failures,
    })
}

fn print_plugins(registry: &Registry) {
    if registry.plugins().is_empty() {
        println!("no plugins found (searched --plugins, TESSERA_PLUGIN_PATH and the folder of this binary)");
    }
    for p in registry.plugins() {
        println!("{} {} (tessera-sdk {})  {}", p.name(), p.info.version, p.info.sdk_version, p.path.display());
        for c in p.info.components.iter() {
            let id = format!("{}.{}", p.name(), c.name);
            println!("  {:<16} {id:<32} {}", c.kind.as_str(), c.summary);
            for s in c.params.iter() {
                let default = if s.default.is_empty() { "none".to_string() } else { s.default.to_string() };
                println!("  {:<18}{} : {} = {}  {}", "", s.name, s.type_name, default, s.doc);
            }
        }
    }
}

/// `tessera figures`: compare a run with its expected figures, or write them.
fn figures(dir: &std::path::Path, expected: &std::path::Path, write: bool) -> ExitCode {
    let found = match tessera_core::figures::expected_of(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if write {
        let text = serde_json::to_string_pretty(&found).unwrap_or_default() + "\n";
        return match tessera_core::report::write_atomic(expected, text.as_bytes()) {
            Ok(()) => {
                println!("{}: the figures of {} (commit {})", expected.display(), dir.display(), found.commit);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let want = match tessera_core::figures::load(expected) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e:#} (write it with --write from the run that made the figures)");
            return ExitCode::from(2);
        }
    };
    if !want.cpu.is_empty() && want.cpu != found.cpu {
        println!(
            "note: the expected figures were made on {}, this machine is {}: libtorch's kernels differ by CPU, so trained figures may differ in their last bits and beyond",
            want.cpu, found.cpu
        );
    }
    let moved = tessera_core::figures::compare(&want.variants, &found.variants);
    let count: usize = want.variants.values().map(|f| f.len()).sum();
    for m in &moved {
        println!("moved: {m}");
    }
    println!(
        "{}: {} of {count} figures as expected (made at commit {}), {} moved",
        expected.display(),
        count - moved.iter().filter(|m| m.expected.is_some()).count(),
        want.commit,
        moved.len()
    );
    if moved.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The session of `manifest` with `--set` overrides; the exit code on failure.
fn prepared(cli: &Cli, manifest: &std::path::Path, set: &[String]) -> Result<run::Session, ExitCode> {
    let overrides = overrides(set).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    run::prepare(manifest, &overrides, &search(cli)).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        ExitCode::from(2)
    })
}

/// The flags of `tessera shard` that a manifest can also set.
struct ShardFlags {
    block_size: Option<u64>,
    blocks_per_shard: Option<u64>,
    seed: u64,
}

/// `tessera shard`: writes the splits and prints them.
fn shard(source: &Path, out: &Path, labels: Option<&Path>, label_column: i64, flags: ShardFlags) -> ExitCode {
    let request = match shard_request(source, labels, label_column, flags) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    match tessera_core::shard::write(&request, out) {
        Ok(written) => {
            for split in written {
                println!(
                    "{:<10} {:>10} examples {:>8} MB  {}",
                    split.name,
                    split.examples,
                    split.bytes >> 20,
                    split.dir.display()
                );
            }
            println!("{:.1}s, peak memory {:.0} MB", started.elapsed().as_secs_f64(), run::peak_rss_mb());
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The source, the folder or the geometry: each is the user's to fix.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What `tessera shard SOURCE` writes: a manifest's data, or a data file's.
fn shard_request(
    source: &Path,
    labels: Option<&Path>,
    label_column: i64,
    flags: ShardFlags,
) -> anyhow::Result<tessera_core::shard::ShardRequest> {
    let defaults = tessera_core::manifest::StorageConfig::default();
    if source.extension().is_some_and(|e| e == "toml") {
        let manifest = tessera_core::manifest::Manifest::load(source)?;
        let s = manifest.variant(None, &[])?.settings;
        return Ok(tessera_core::shard::ShardRequest {
            data: s.data,
            base: manifest.dir(),
            label_noise: s.train.label_noise,
            seed: s.experiment.seed,
            block_size: flags.block_size.unwrap_or(s.storage.block_size),
            blocks_per_shard: flags.blocks_per_shard.unwrap_or(s.storage.blocks_per_shard),
        });
    }
    Ok(tessera_core::shard::ShardRequest {
        data: tessera_core::shard::data_for_file(source, labels, label_column)?,
        base: PathBuf::from("."),
        label_noise: 0.0,
        seed: flags.seed,
        block_size: flags.block_size.unwrap_or(256),
        blocks_per_shard: flags.blocks_per_shard.unwrap_or(defaults.blocks_per_shard),
    })
}

/// A flag that Ctrl-C sets (a second Ctrl-C exits at once).
///
/// The second one ends the process with `_exit`: no exit handlers, no C++
/// static destructors run under threads still inside libtorch (which is how
/// `exit` crashed). What is already computed is on disk by then: each unit's
/// `result.json`, and `results.json` of the variants finished so far, are
/// written (atomically) as they finish.
fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            let said = b"killed; the results finished so far are in the run folder (`tessera resume` runs the rest)\n";
            // SAFETY: a write of a static buffer to stderr's descriptor (no lock
            // another thread may hold), then `_exit`, which ends the process at once.
            unsafe {
                libc::write(2, said.as_ptr().cast(), said.len());
                libc::_exit(130)
            };
        }
        eprintln!("stopping after the current step (Ctrl-C again to kill)");
    });
    cancel
}

/// Prints a run's summary (or its Slurm jobs); exit 0 when every variant is ok.
fn print_outcome(outcome: anyhow::Result<run::RunOutcome>) -> ExitCode {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let waited = outcome.submitted.is_none() || !outcome.results.variants.is_empty();
    if let Some(s) = &outcome.submitted {
        println!("slurm: array job {} over {} unit(s), collect job {}", s.array_job, s.units.len(), s.collect_job);
    }
    if waited {
        println!("{}", report::summary_table(&outcome.results, 8));
    } else {
        println!("follow it with: tessera status {}", outcome.dir.display());
    }
    println!("run folder: {}", outcome.dir.display());
    if outcome.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `tessera plan`: the units of a manifest, as text or JSON.
fn plan(session: &run::Session, variants: &[String], json: bool) -> ExitCode {
    let selected =
        |v: &tessera_core::manifest::Variant| variants.is_empty() || variants.iter().any(|n| run::selected_by(v, n));
    match run::Plan::new(session, selected) {
        Ok(plan) if json => {
            println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(plan) => {
            print!("{}", plan.describe());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `tessera plugins`.
fn list_plugins(cli: &Cli, json: bool, verbose: bool) -> ExitCode {
    let mut registry = Registry::new();
    if let Err(e) = search(cli).load_into(&mut registry) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&plugins_json(&registry)).unwrap_or_default());
    } else {
        print_plugins(&registry);
    }
    print_load_failures(&registry, verbose);
    ExitCode::SUCCESS
}

/// `tessera check`.
fn check(cli: &Cli, manifest: &std::path::Path, set: &[String], verbose: bool) -> ExitCode {
    let overrides = match overrides(set) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run::prepare(manifest, &overrides, &search(cli)) {
        Ok(session) => {
            print_load_failures(&session.registry, verbose);
            let names: Vec<&str> = session.variants.iter().map(|v| v.name.as_str()).collect();
            println!("{}: ok ({} variants: {})", manifest.display(), names.len(), names.join(", "));
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            ExitCode::from(2)
        }
    }
}

/// `tessera worker`.
fn worker(
    dir: &std::path::Path,
    unit: &Option<usize>,
    units: &[usize],
    claims: &Option<PathBuf>,
    threads: &Option<usize>,
) -> ExitCode {
    // A Slurm task gets the CPUs Slurm allocated it, not the node's.
    let slurm_cpus = std::env::var("SLURM_CPUS_ON_NODE").ok().and_then(|n| n.parse().ok());
    if let Some(threads) = threads.or(slurm_cpus) {
        run::set_thread_share(threads);
    }
    let which = match (unit, claims) {
        (Some(id), _) => run::WorkerUnits::One(*id),
        (None, Some(claims)) => run::WorkerUnits::Claimed { units: units.to_vec(), claims: claims.clone() },
        (None, None) => unreachable!("clap requires --unit or --units with --claims"),
    };
    match run::work(dir, &which, cancel_on_ctrl_c()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {which:?} of {}: {e:#}", dir.display());
            ExitCode::from(2)
        }
    }
}

/// `tessera resume`.
fn resume(cli: &Cli, dir: &std::path::Path, executor: &ExecutorArgs, progress: indicatif::MultiProgress) -> ExitCode {
    handoff::hand_off_graph_work(handoff::run_folder_graph_only(dir));
    let chosen = match run::open_run(dir) {
        Ok((_, session, _)) => executor.choose(&session),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let options = RunOptions {
        progress: (!cli.quiet).then_some(progress),
        cancel: cancel_on_ctrl_c(),
        executor: Some(chosen),
        ..Default::default()
    };
    print_outcome(run::resume(dir, &options))
}

/// `tessera compare`: the table printed, the page written.
fn compare(dirs: &[PathBuf], out: Option<&std::path::Path>) -> ExitCode {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let out = out.map_or_else(|| PathBuf::from(format!("runs/compare-{stamp}")), std::path::Path::to_path_buf);
    match tessera_core::compare::compare(dirs, &out) {
        Ok(table) => {
            print!("{table}");
            println!("the page: {}", out.join("compare.html").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `tessera report`: tables, plots, the report page and the summary again
/// from results.json.
fn rerender(dir: &std::path::Path) -> ExitCode {
    let result = RunResults::load(dir).and_then(|r| {
        report::write_tables(&r, dir)?;
        let plots = report::write_plots(&r, dir)?;
        let page = tessera_core::html::write_report_page(&r, dir, &plots)?;
        Ok((r, plots, page))
    });
    match result {
        Ok((results, plots, page)) => {
            println!("{}", report::summary_table(&results, 8));
            println!("{} plots in {}; the page: {}", plots.len(), dir.join("plots").display(), page.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `tessera siamese`.
#[cfg(not(feature = "torch"))]
fn siamese(_: &std::path::Path, _: &[String], _: i64, _: f64) -> ExitCode {
    eprintln!("error: {}", run::NO_LIBTORCH);
    ExitCode::from(2)
}

/// `tessera siamese`.
#[cfg(feature = "torch")]
fn siamese(dir: &std::path::Path, variants: &[String], batch: i64, seconds: f64) -> ExitCode {
    match siamese::evaluate_run(dir, variants, batch, seconds) {
        Ok(e) => {
            println!(
                "{:<32} {:>6} {:<10} {:>9} {:>9} {:>10}",
                "task", "branch", "block", "one pass", "separate", "max |Δ|"
            );
            for t in &e.tasks {
                println!(
                    "{:<40} {:>6} {:<10} {:>9.4} {:>9.4} {:>10.2e}",
                    t.variant,
                    t.branch,
                    t.branch_block,
                    t.siamese_accuracy,
                    t.separate_accuracy,
                    t.max_logit_difference
                );
            }
            println!(
                "T = {} tasks, batches of {}: one pass {:.0} inputs/s, separate models {:.0} inputs/s: {:.2}x",
                e.tasks.len(),
                e.batch,
                e.siamese_examples_per_second,
                e.separate_examples_per_second,
                e.speedup
            );
            println!("written to {}", dir.join("siamese.json").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
    let progress = tessera_core::logger::init(verbosity);
    let verbose = cli.verbose > 0;
    match &cli.command {
        Command::Plugins { json } => list_plugins(&cli, *json, verbose),
        Command::Check { manifest, set } => check(&cli, manifest, set, verbose),
        Command::Run { manifest, out, set, variants, executor } => {
            let text = std::fs::read_to_string(manifest).unwrap_or_default();
            handoff::hand_off_graph_work(handoff::keeps_kind(set) && handoff::graph_only(&text));
            let session = match prepared(&cli, manifest, set) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let options = RunOptions {
                out: out.clone(),
                only: variants.clone(),
                progress: (!cli.quiet).then_some(progress),
                cancel: cancel_on_ctrl_c(),
                executor: Some(executor.choose(&session)),
            };
            print_outcome(run::run(&session, &options))
        }
        Command::Plan { manifest, set, variants, json } => {
            let session = match prepared(&cli, manifest, set) {
                Ok(s) => s,
                Err(code) => return code,
            };
            plan(&session, variants, *json)
        }
        Command::Worker { dir, unit, units, claims, threads } => {
            handoff::hand_off_graph_work(handoff::run_folder_graph_only(dir));
            worker(dir, unit, units, claims, threads)
        }
        Command::Collect { dir } => {
            handoff::hand_off_graph_work(handoff::run_folder_graph_only(dir));
            match run::collect_run(dir) {
                Ok(results) => {
                    println!("{}", report::summary_table(&results, 8));
                    // As `run`: 1 when a variant failed (its error is in results.json).
                    match results.variants.iter().all(|v| v.status == report::Status::Ok) {
                        true => ExitCode::SUCCESS,
                        false => ExitCode::FAILURE,
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Resume { dir, executor } => resume(&cli, dir, executor, progress),
        Command::Status { dir, all } => match run::Plan::load(dir) {
            Ok(plan) => {
                print!("{}", run::status::describe(&plan, dir, *all));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Report { dir } => rerender(dir),
        Command::Compare { dirs, out } => compare(dirs, out.as_deref()),
        Command::Figures { dir, expected, write } => figures(dir, expected, *write),
        Command::Table { dir, columns } => {
            match RunResults::load(dir).and_then(|r| tessera_core::table::render(&r, columns)) {
                Ok(table) => {
                    print!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Siamese { dir, variants, batch, seconds } => siamese(dir, variants, *batch, *seconds),
        Command::New { what: NewCommand::Plugin { name, kind, out, sdk } } => {
            new_plugin(name, *kind, out.as_deref(), sdk.as_deref())
        }
        Command::Shard { source, out, block_size, blocks_per_shard, labels, label_column, seed } => {
            let flags = ShardFlags { block_size: *block_size, blocks_per_shard: *blocks_per_shard, seed: *seed };
            shard(source, out, labels.as_deref(), *label_column, flags)
        }
    }
}
