//! The CPU thread count of the binaries and benches.
//!
//! candle asks for its thread count on every matrix product (`candle_core::utils::
//! get_num_threads`): without `RAYON_NUM_THREADS` it counts the physical cores again each time,
//! and on Linux that reads and parses `/proc/cpuinfo` (about 5 % of an H training step in a
//! profile on the 2-core machine). [`configure_cpu_threads`] counts them once and stores the
//! count in `RAYON_NUM_THREADS`, which candle, rayon and the workspace's kernels then read: the
//! same number of threads as before, without the per-op file reads.

/// Sets `RAYON_NUM_THREADS` to the number of physical cores (the count candle would find)
/// unless it is already set; returns the thread count in effect.
///
/// # Safety
///
/// Writes the process environment: call it first thing in `main`, before any other thread
/// exists (as `main` and the benches do).
pub unsafe fn configure_cpu_threads() -> usize {
    if let Some(n) = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    let n = num_cpus::get_physical().max(1);
    // SAFETY: the caller guarantees that no other thread runs yet.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    n
}
