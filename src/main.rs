//! The `sketch2medi` command line. Run `sketch2medi --help`.

mod cli;

use clap::Parser;

/// candle allocates a fresh buffer for nearly every op. glibc returns buffers above 32 MiB to
/// the kernel at once, which then zeroes new pages for the next op (a third of a 256 px
/// generator forward was page clearing); mimalloc keeps and reuses them. Measured on 6 GAN
/// steps at 64 px (phantom_64, batch 8, loaded machine): 31.9 s with glibc, 21.8 s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> anyhow::Result<()> {
    // mimalloc still returns ("purges") freed pages to the OS after 10 ms by default; with
    // transparent huge pages the kernel then zeroes 2 MiB pages again for the next op's buffer.
    // Profiled on an H training step: 40 % of the time in `clear_page_erms`. Never purging
    // (the process keeps its peak memory) made phase-1 steps 4-5x faster (6.5 -> 1.3 s).
    // `MIMALLOC_PURGE_DELAY` in the environment still overrides this.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain option store, before any thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
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
