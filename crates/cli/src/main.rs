//! `tessera`: list plugins, check a manifest, run an experiment on this
//! machine or a Slurm cluster, follow and finish it, read and compare run
//! folders, write shard folders and new plugins. The command line is in
//! [`args`], each command in [`commands`]; everything else is the engine's.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod commands;
mod scaffold;
mod signals;

fn main() -> ExitCode {
    tessera_engine::process::keep_freed_memory();
    tessera_engine::system::set_build(tessera_engine::system::Build {
        commit: env!("TESSERA_COMMIT").into(),
        libtorch: env!("TESSERA_LIBTORCH").into(),
    });
    let cli = args::Cli::parse();
    let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
    let progress = tessera_engine::logger::init(verbosity);
    commands::dispatch(&cli, progress)
}
