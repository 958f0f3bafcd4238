//! Dataset folders: splits, manifest, determinism, bad input, and loading them back.

use candle_core::Device;
use pharynx_phantom::layout::{Layout, Split, read_split_list};
use pharynx_phantom::manifest::Manifest;
use pharynx_phantom::sample::{FreehandRecord, SampleRecord};
use pharynx_phantom::{
    BuildConfig, Counts, DatasetSource, Loader, LoaderConfig, PhantomError, build_dataset,
};
use s2m_core::progress::NoProgress;
use sketch_synth::SketchConfig;
use std::path::Path;

fn config(out: &Path, scale: f64, size: u32) -> BuildConfig {
    BuildConfig {
        out: out.to_path_buf(),
        scale,
        size,
        seed: 5,
        force: false,
        sketch: SketchConfig::default(),
        command: "test".into(),
    }
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn counts_follow_the_paper_and_reject_empty_splits() {
    let c = Counts::scaled(1.0).unwrap();
    assert_eq!(
        (c.train, c.seg_train, c.seg_val, c.freehand),
        (60_000, 1_600, 400, 495)
    );
    let c = Counts::scaled(0.01).unwrap();
    assert_eq!(
        (c.train, c.seg_train, c.seg_val, c.freehand),
        (600, 16, 4, 5)
    );
    for bad in [0.0, -1.0, f64::NAN, 0.0005, 100.5, f64::INFINITY] {
        let err = Counts::scaled(bad).unwrap_err().to_string();
        assert!(err.contains("--scale"), "{err}");
    }
    // Above the cap: the message names it; the cap itself is allowed.
    let err = Counts::scaled(1e6).unwrap_err().to_string();
    assert!(
        err.contains(&format!("cap of {}", pharynx_phantom::MAX_SCALE)),
        "{err}"
    );
    assert_eq!(Counts::scaled(100.0).unwrap().train, 6_000_000);
}

#[test]
fn build_writes_a_complete_consistent_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let report = build_dataset(&config(&out, 0.0025, 64), &NoProgress).unwrap();
    let layout = Layout::new(&out);
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(layout.manifest()).unwrap()).unwrap();
    assert_eq!(manifest.size, 64);
    assert_eq!(manifest.freehand_styles.len(), 12);
    let expected = Counts::scaled(0.0025).unwrap();
    assert_eq!(report.counts, expected);
    for split in Split::ALL {
        let ids = read_split_list(&layout.split(split)).unwrap();
        assert_eq!(ids.len(), manifest.counts[split.name()], "{split:?}");
        for id in &ids {
            assert!(layout.image(id).is_file(), "{id}");
            assert!(layout.mask(id).is_file(), "{id}");
            assert!(layout.split_sketch(split, id).is_file(), "{id}");
        }
    }
    // Annotated images are generation-set images; the free-hand references are not.
    let train = read_split_list(&layout.split(Split::Train)).unwrap();
    let seg: Vec<String> = [Split::SegTrain, Split::SegVal]
        .iter()
        .flat_map(|s| read_split_list(&layout.split(*s)).unwrap())
        .collect();
    assert!(seg.iter().all(|id| train.contains(id)));
    let freehand = read_split_list(&layout.split(Split::Freehand)).unwrap();
    assert!(freehand.iter().all(|id| !train.contains(id)));

    // The tonsil count recorded per sample matches the mask on disk.
    let samples: Vec<SampleRecord> = read_jsonl(&layout.samples_index());
    assert_eq!(samples.len(), train.len() + freehand.len());
    for s in &samples {
        let mask = s2m_core::imageio::load_gray(layout.mask(&s.id)).unwrap();
        let labels = s2m_core::LabelMap::from_gray(mask, &s.id).unwrap();
        let tonsils = labels
            .instances()
            .iter()
            .filter(|i| i.class == s2m_core::Class::Tonsil)
            .count();
        assert_eq!(tonsils, s.tonsils as usize, "{}", s.id);
        assert!(!s.empty_sketch);
    }
    let drawn: Vec<FreehandRecord> = read_jsonl(&layout.freehand_index());
    assert_eq!(drawn.len(), freehand.len());
    assert!(drawn.iter().all(|d| d.chamfer_px.is_some()));
    // No staging folder is left beside the result.
    let siblings: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(siblings.len(), 1);
}

#[test]
fn same_seed_gives_byte_identical_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build_dataset(&config(&a, 0.0025, 32), &NoProgress).unwrap();
    build_dataset(&config(&b, 0.0025, 32), &NoProgress).unwrap();
    for sub in ["images", "masks", "sketches", "freehand"] {
        let mut names: Vec<_> = std::fs::read_dir(a.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert!(!names.is_empty());
        for n in names {
            let x = std::fs::read(a.join(sub).join(&n)).unwrap();
            let y = std::fs::read(b.join(sub).join(&n)).unwrap();
            assert_eq!(x, y, "{sub}/{n:?} differs");
        }
    }
    assert_eq!(
        std::fs::read(a.join("samples.jsonl")).unwrap(),
        std::fs::read(b.join("samples.jsonl")).unwrap()
    );
}

#[test]
fn bad_arguments_are_clear_errors_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let err = build_dataset(&config(&out, 0.0025, 60), &NoProgress).unwrap_err();
    assert!(matches!(err, PhantomError::BadSize(60)), "{err}");
    let err = build_dataset(&config(&out, 0.0, 64), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("--scale"), "{err}");
    assert!(!out.exists());

    // A non-empty output folder needs --force.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let err = build_dataset(&config(&out, 0.0025, 32), &NoProgress).unwrap_err();
    assert!(matches!(err, PhantomError::OutputNotEmpty(_)), "{err}");
    assert!(err.to_string().contains("--force"));
    assert!(out.join("keep.txt").exists());
    let mut forced = config(&out, 0.0025, 32);
    forced.force = true;
    build_dataset(&forced, &NoProgress).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("manifest.json").exists());

    // An output path below a file cannot be created.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let err = build_dataset(&config(&blocker.join("ds"), 0.0025, 32), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("file"), "{err}");
}

#[test]
fn built_folder_loads_as_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    build_dataset(&config(&out, 0.0025, 32), &NoProgress).unwrap();
    let cfg = LoaderConfig {
        batch_size: 4,
        shuffle_seed: Some(1),
        drop_last: false,
        size: None,
        load_masks: true,
        load_sketches: true,
        resize_to: None,
    };
    let source = DatasetSource::phantom(&out, Split::Freehand).unwrap();
    let n = source.len();
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>().unwrap();
    let total: usize = batches.iter().map(|b| b.len()).sum();
    assert_eq!(total, n);
    let b = &batches[0];
    assert_eq!(b.images.dims()[1..], [3, 32, 32]);
    assert_eq!(b.sketches.as_ref().unwrap().dims()[1..], [1, 32, 32]);
    let min = b.images.min_all().unwrap().to_scalar::<f32>().unwrap();
    let max = b.images.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((-1.0..=1.0).contains(&min) && (-1.0..=1.0).contains(&max) && max > min);
    // Free-hand sketches are mostly white paper: their mean is close to +1.
    let mean = b
        .sketches
        .as_ref()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(mean > 0.5, "{mean}");
}
