#![no_main]
//! libFuzzer target: `s2m_fuzz::Target::Checkpoint` (see crates/s2m-fuzz).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = s2m_fuzz::Target::Checkpoint.run(data);
});
