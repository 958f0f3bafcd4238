//! The `sketch2medi` command line. Run `sketch2medi --help`.

mod cli;

use clap::Parser;

/// candle allocates a fresh buffer for nearly every op. glibc returns buffers above 32 MiB to
/// the kernel at once, which then zeroes new pages for the next op (a third of a 256 px
/// generator forward was page clearing); mimalloc keeps and reuses them. Measured on 6 GAN
/// steps at 64 px (phantom_64, batch 8, loaded machine): 31.9 s with glibc, 21.8 s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // candle computes correct second-order gradients (R1, path length) only when this is set
    // before the first backward of the process, and reads it once. Setting it here, before any
    // thread or tensor exists, makes every subcommand correct however the binary is started;
    // the regularisers still self-check and refuse to run if it did not take effect.
    if std::env::var_os("CANDLE_GRAD_DO_NOT_DETACH").is_none() {
        // SAFETY: the process is still single-threaded here (nothing has been spawned).
        unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
    }
    let args = cli::Cli::parse();
    cli::run(args)
}
