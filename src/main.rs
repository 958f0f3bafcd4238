//! The `sketch2medi` command line. Run `sketch2medi --help`.

mod cli;

use clap::Parser;

/// mimalloc, configured by `sketch2medi::allocator::configure_mimalloc` (see there why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    sketch2medi::allocator::configure_mimalloc();
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { sketch2medi::threads::configure_cpu_threads() };
    if std::env::var_os("CANDLE_GRAD_DO_NOT_DETACH").is_none() {
        // SAFETY: the process is still single-threaded here (nothing has been spawned).
        unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
    }
    let args = cli::Cli::parse();
    cli::run(args)
}
