//! Subcommands of the `sketch2medi` binary: thin layers over the library crates.

mod phantom;

use clap::{Parser, Subcommand};

/// Sketch2MedI: realistic pharyngeal images from free-hand sketches.
#[derive(Debug, Parser)]
#[command(name = "sketch2medi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The procedural pharynx phantom: build dataset folders, draw contact sheets.
    #[command(subcommand)]
    Phantom(phantom::PhantomCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Phantom(cmd) => phantom::run(cmd),
    }
}
