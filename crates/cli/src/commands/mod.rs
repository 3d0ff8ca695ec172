//! One file per command (or family of commands); [`dispatch`] sends the
//! parsed command line to its function. Every command returns its exit code:
//! 0 success, 1 a variant failed (its results kept), 2 what the user must fix.

use std::process::ExitCode;

use tessera_engine::handoff;
use tessera_engine::report::{self, RunResults};
use tessera_engine::run::RunOptions;

use crate::args::{Cli, Command, NewCommand};

mod check;
mod new;
pub(crate) mod plugins;
mod results;
mod run;
mod shard;
mod siamese;

/// Runs the command `cli` names.
pub(crate) fn dispatch(cli: &Cli, progress: indicatif::MultiProgress) -> ExitCode {
    let verbose = cli.verbose > 0;
    match &cli.command {
        Command::Plugins { json } => plugins::list_plugins(cli, *json, verbose),
        Command::Check { manifest, set } => check::check(cli, manifest, set, verbose),
        Command::Run { manifest, out, set, variants, executor } => {
            let text = std::fs::read_to_string(manifest).unwrap_or_default();
            handoff::hand_off_graph_work(handoff::keeps_kind(set) && handoff::graph_only(&text));
            let session = match run::prepared(cli, manifest, set) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let options = RunOptions {
                out: out.clone(),
                only: variants.clone(),
                progress: (!cli.quiet).then_some(progress),
                cancel: run::cancel_on_ctrl_c(),
                executor: Some(executor.choose(&session)),
            };
            run::print_outcome(tessera_engine::run::run(&session, &options))
        }
        Command::Plan { manifest, set, variants, json } => match run::prepared(cli, manifest, set) {
            Ok(session) => run::plan(&session, variants, *json),
            Err(code) => code,
        },
        Command::Worker { dir, unit, unit_offset, units, claims, threads, requeue } => {
            handoff::hand_off_graph_work(handoff::run_folder_graph_only(dir));
            run::worker(dir, unit.map(|u| (u, *unit_offset)), (units, claims), threads, *requeue)
        }
        Command::Collect { dir } => run::collect(dir),
        Command::Resume { dir, executor } => run::resume(cli, dir, executor, progress),
        Command::Status { dir, all } => run::status(dir, *all),
        other => read_or_make(other),
    }
}

/// The commands that read run folders or make files, none of which runs units.
fn read_or_make(command: &Command) -> ExitCode {
    match command {
        Command::Report { dir } => results::rerender(dir),
        Command::Compare { dirs, out, figures, force } => {
            let options = tessera_engine::compare::CompareOptions { figures: figures.clone(), force: *force };
            results::compare(dirs, out.as_deref(), &options)
        }
        Command::Figures { dir, expected, write } => results::figures(dir, expected, *write),
        Command::Table { dir, columns } => results::table(dir, columns),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut crate::args::Cli::command(), "tessera", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Siamese { dir, variants, batch, seconds } => siamese::siamese(dir, variants, *batch, *seconds),
        Command::New { what: NewCommand::Plugin { name, kind, out, sdk } } => {
            new::new_plugin(name, *kind, out.as_deref(), sdk.as_deref())
        }
        Command::Shard { source, out, block_size, blocks_per_shard, labels, label_column, seed } => {
            let flags = shard::ShardFlags { block_size: *block_size, blocks_per_shard: *blocks_per_shard, seed: *seed };
            shard::shard(source, out, labels.as_deref(), *label_column, flags)
        }
        _ => unreachable!("dispatch handles the commands that run units"),
    }
}

/// Prints `error: …` for `e` with its causes and gives exit code 2 (what
/// the user must fix).
pub(crate) fn user_error(e: impl Into<anyhow::Error>) -> ExitCode {
    eprintln!("error: {:#}", e.into());
    ExitCode::from(2)
}

/// 0 when every variant of `results` is ok, else 1 (as `run`: the error of
/// each failed variant is in results.json).
pub(crate) fn variants_exit(results: &RunResults) -> ExitCode {
    match results.variants.iter().all(|v| v.status == report::Status::Ok) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
