//! The bounded fuzzing run of CI: 20,000 seeded mutants per target (no panic, bounded memory),
//! and every file of the regression corpus (`tests/corpus/<target>/`: inputs that once broke
//! a target or that stress its limits) run again.

use s2m_fuzz::{Target, campaign};

const COUNT: u64 = 20_000;

fn corpus(target: Target) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target.name());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn run(target: Target, seed: u64) {
    let extra: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
    let report = campaign(target, COUNT, seed, &extra);
    println!("{report}");
    assert_eq!(report.inputs, COUNT);
    assert!(
        report.panics.is_empty(),
        "{}: {} panics, first: {}",
        target.name(),
        report.panics.len(),
        report.panics[0].message
    );
    // Mutants must still reach past the first checks now and then, or the run proves little.
    assert!(report.accepted > 0, "{report}");
    if let Some(mib) = report.peak_rss_mib {
        assert!(mib < 1024.0, "{report}");
    }
}

#[test]
fn sketch_decoding_and_preparation() {
    run(Target::Sketch, 1);
}

#[test]
fn pipeline_json() {
    run(Target::PipelineJson, 2);
}

#[test]
fn checkpoints() {
    run(Target::Checkpoint, 3);
}

#[test]
fn safetensors_weights() {
    run(Target::Safetensors, 4);
}

#[test]
fn the_regression_corpus_is_refused_or_accepted_without_a_panic() {
    let mut n = 0;
    for target in Target::ALL {
        for (name, bytes) in corpus(target) {
            let outcome = std::panic::catch_unwind(|| target.run(&bytes));
            assert!(outcome.is_ok(), "{name} panicked");
            n += 1;
        }
    }
    assert!(n > 0, "the regression corpus is empty");
}

#[test]
fn the_same_seed_runs_the_same_inputs() {
    let a = campaign(Target::PipelineJson, 300, 9, &[]);
    let b = campaign(Target::PipelineJson, 300, 9, &[]);
    assert_eq!(a.accepted, b.accepted);
    let mut rng1 = s2m_core::rng::rng_from_seed(5);
    let mut rng2 = s2m_core::rng::rng_from_seed(5);
    let seed = Target::Sketch.seeds();
    for _ in 0..50 {
        assert_eq!(
            s2m_fuzz::mutate(&mut rng1, &seed[0], &seed),
            s2m_fuzz::mutate(&mut rng2, &seed[0], &seed)
        );
    }
}

#[test]
fn the_seeds_are_accepted_and_png_crcs_are_repaired() {
    for target in Target::ALL {
        for (i, s) in target.seeds().iter().enumerate() {
            assert_eq!(target.run(s), Ok(()), "{} seed {i}", target.name());
        }
    }
    let mut png = Target::Sketch.seeds()[0].clone();
    // Damage a byte inside IHDR's data (offset 8 + 8 = the width); the CRC no longer matches.
    png[18] ^= 0x01;
    let broken = png.clone();
    s2m_fuzz::repair_png_crcs(&mut png);
    assert_ne!(png, broken, "the IHDR CRC was not rewritten");
    assert_eq!(&png[..29], &broken[..29]);
}
