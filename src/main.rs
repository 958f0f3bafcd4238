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
/// Purge delay of the binaries, milliseconds (see `main`).
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn main() -> anyhow::Result<()> {
    // mimalloc returns ("purges") freed pages to the OS after a short delay; with transparent
    // huge pages the kernel then zeroes 2 MiB pages again for the next op's buffer. Profiled on
    // an H training step: 40 % of the time in `clear_page_erms`. A 10 s delay keeps every page
    // that a training or generation loop reuses (phase-1 steps 6.5 -> 1.2 s, the same as never
    // purging) while still returning memory that stays unused; never purging let repeated
    // paper-256 generations grow to 24 GB and be OOM-killed. `MIMALLOC_PURGE_DELAY` (ms) in
    // the environment overrides this.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain option store, before any thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    if std::env::var_os("CANDLE_GRAD_DO_NOT_DETACH").is_none() {
        // SAFETY: the process is still single-threaded here (nothing has been spawned).
        unsafe { std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1") };
    }
    let args = cli::Cli::parse();
    cli::run(args)
}
