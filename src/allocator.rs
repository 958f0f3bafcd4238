//! The allocator setting of the binaries and benches, which use mimalloc as their
//! `#[global_allocator]` (candle allocates a fresh buffer for nearly every op; glibc returned
//! large ones to the kernel at once, which then zeroed new pages for the next op: 6 GAN steps at
//! 64 px took 31.9 s with glibc, 21.8 s with mimalloc).
//!
//! mimalloc itself returns ("purges") freed pages to the OS after a short delay; with
//! transparent huge pages the kernel then zeroes 2 MiB pages again for the next op's buffer.
//! Profiled on an H training step: 40 % of the time in `clear_page_erms`. A 10 s delay keeps
//! every page that a training or generation loop reuses (phase-1 steps 6.5 -> 1.2 s, the same as
//! never purging) while still returning memory that stays unused; never purging let repeated
//! paper-256 generations grow to 24 GB and be OOM-killed.

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// Purge delay, milliseconds.
pub const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` (ms) is set
/// in the environment. Call it first thing in `main` (it only stores an option; harmless when
/// mimalloc is not the global allocator).
pub fn configure_mimalloc() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain store into mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}
