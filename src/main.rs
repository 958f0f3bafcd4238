//! The `sketch2medi` command line. Run `sketch2medi --help`.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Cli::parse();
    cli::run(args)
}
