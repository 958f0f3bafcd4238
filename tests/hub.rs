//! `Sketch2MedI::from_hub` without a network: the shipped pipeline laid out as a hub repo in
//! a Hugging Face cache folder (`$HF_HOME/hub/models--<org>--<name>/{refs/main,snapshots/<rev>}`,
//! files linked as the real cache links its blobs). Cached files load offline; a file missing
//! from the cache is downloaded from `$HF_ENDPOINT`, here a closed local port, so the error
//! names it. Run with `cargo test --features hub --test hub`.
#![cfg(feature = "hub")]

use std::path::Path;

use candle_core::Device;
use sketch2medi::Sketch2MedI;

const REPO: &str = "sketch2medi-test/phantom";
const REV: &str = "0123456789abcdef0123456789abcdef01234567";

fn link_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            link_dir(&e.path(), &target);
        } else {
            std::os::unix::fs::symlink(e.path().canonicalize().unwrap(), &target).unwrap();
        }
    }
}

#[test]
fn from_hub_loads_a_cached_repo_offline_and_names_a_missing_file() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary, before it starts any thread of its own.
    unsafe {
        std::env::set_var("HF_HOME", home.path());
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
        std::env::remove_var(sketch2medi::pipeline::WEIGHTS_ENV);
    }
    let repo = home.path().join("hub/models--sketch2medi-test--phantom");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), REV).unwrap();
    let snapshot = repo.join("snapshots").join(REV);
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    for d in [
        "sketch2medi_phantom64",
        "stylegan2_phantom64",
        "solov2_phantom",
    ] {
        link_dir(&weights.join(d), &snapshot.join(d));
    }
    // The resume checkpoint is not part of a pipeline.
    let _ = std::fs::remove_dir_all(snapshot.join("stylegan2_phantom64/resume"));

    let dev = Device::Cpu;
    let hub = Sketch2MedI::from_hub(REPO, "sketch2medi_phantom64", &dev).unwrap();
    let local = Sketch2MedI::load(weights.join("sketch2medi_phantom64")).unwrap();
    assert_eq!(hub.hashes(), local.hashes());
    let sketch = image::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sketches/freehand_careful.png"),
    )
    .unwrap();
    assert_eq!(
        hub.generate(&sketch).unwrap().image,
        local.generate(&sketch).unwrap().image
    );

    // A file the cache lacks is fetched from HF_ENDPOINT (a closed port): the error names it,
    // the segmenter of the step selection included.
    let s_json = snapshot.join("solov2_phantom/solov2.json");
    let target = std::fs::read_link(&s_json).unwrap();
    std::fs::remove_file(&s_json).unwrap();
    let Err(e) = Sketch2MedI::from_hub(REPO, "sketch2medi_phantom64", &dev) else {
        panic!("a missing segmenter file without network must be an error");
    };
    assert!(e.to_string().contains("solov2_phantom/solov2.json"), "{e}");
    std::os::unix::fs::symlink(target, &s_json).unwrap();
    std::fs::remove_file(snapshot.join("sketch2medi_phantom64/refiner/refiner.json")).unwrap();
    let Err(e) = Sketch2MedI::from_hub(REPO, "sketch2medi_phantom64", &dev) else {
        panic!("a missing file without network must be an error");
    };
    let e = e.to_string();
    assert!(
        e.contains("sketch2medi_phantom64/refiner/refiner.json") && e.contains(REPO),
        "{e}"
    );
}
