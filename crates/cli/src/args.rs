//! The command line: `tessera`'s global flags and its commands, as clap
//! parses them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera_engine::choice::ExecutorKind;
use tessera_engine::manifest::Override;
use tessera_engine::run::{self, Executor, PluginSearch};

#[derive(Parser)]
#[command(
    name = "tessera",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TESSERA_COMMIT"), ", libtorch ", env!("TESSERA_LIBTORCH"), ")"),
    about = "Compose learning-science methods shipped as plugins, from TOML manifests."
)]
pub(crate) struct Cli {
    /// More output (-v debug, -vv trace; -v also shows full ABI reports).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Errors only.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Extra plugin folder or library file (repeatable).
    #[arg(long = "plugins", value_name = "PATH", global = true)]
    pub(crate) plugins: Vec<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Added to --unit: a Slurm array's task index is below the
        /// cluster's MaxArraySize, so a later array's tasks start there.
        #[arg(long, default_value_t = 0, requires = "unit")]
        unit_offset: usize,
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
        /// Under Slurm: when SIGUSR1 (the time-limit signal) stops the
        /// unit, ask Slurm to run this array task again (`scontrol requeue`).
        #[arg(long, requires = "unit")]
        requeue: bool,
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
    /// Compare runs: what differs between them (settings, variants), then
    /// the same variants side by side (headline figures first, mean ± sd
    /// over seeds, each run's difference from the first, paired over shared
    /// seeds) and their shared curves on one plot; writes compare.html into
    /// a new folder. Runs on other data or with other variants: exit 2
    /// unless --force.
    Compare {
        /// Two or more run folders; the first is the baseline.
        #[arg(required = true, num_args = 2..)]
        dirs: Vec<PathBuf>,
        /// The folder to write (default: runs/compare-<time>); new or empty.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A figure to compare, `ROLE/SCALAR` (repeatable; default: the headline figures).
        #[arg(long = "figure", value_name = "ROLE/SCALAR")]
        figures: Vec<String>,
        /// Compare runs on other data or with other variants too.
        #[arg(long)]
        force: bool,
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
        columns: Vec<tessera_engine::table::Column>,
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
    /// Print a shell's completion script: `tessera completions bash >
    /// ~/.local/share/bash-completion/completions/tessera` (zsh: a file `_tessera`
    /// on $fpath; fish: ~/.config/fish/completions/tessera.fish).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
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
pub(crate) enum NewCommand {
    /// A plugin crate that builds and loads as is, with a unit test and a
    /// manifest that uses it.
    Plugin {
        /// The plugin's name (lowercase, digits, `-`): manifests say `NAME.component`.
        name: String,
        /// The component it starts with: sampler, finetuner, metric or graph-objective.
        #[arg(long)]
        kind: tessera_engine::choice::PluginKind,
        /// The folder to write (default: ./NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The tessera-sdk crate to depend on (default: this checkout's sdk/).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Where the units run (`run`, `resume`).
#[derive(clap::Args)]
pub(crate) struct ExecutorArgs {
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
    pub(crate) fn choose(&self, session: &run::Session) -> Executor {
        let manifest = session.variants.first().map(|v| &v.settings);
        let kind = self.executor.or(manifest.map(|s| s.experiment.executor)).unwrap_or(ExecutorKind::Inline);
        let jobs = self.jobs.or(manifest.map(|s| s.experiment.jobs)).unwrap_or(0);
        let slurm = manifest.map(|s| s.executor.slurm.clone()).unwrap_or_default();
        Executor::from_kind(kind, jobs, &slurm, self.wait)
    }
}

pub(crate) fn search(cli: &Cli) -> PluginSearch {
    PluginSearch { extra: cli.plugins.clone(), ..PluginSearch::standard() }
}

pub(crate) fn overrides(set: &[String]) -> Result<Vec<Override>, tessera_engine::manifest::BadOverride> {
    set.iter().map(|s| Override::parse(s)).collect()
}
