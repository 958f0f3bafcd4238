//! Tests of the dataset loader: sources, batches, shuffles and the errors that name files.

use super::*;
use crate::layout::{self, Layout, Split};
use crate::manifest::GENERATOR_VERSION;
use crate::manifest::{MANIFEST_KIND, Manifest};
use candle_core::DType;
use image::{GrayImage, Luma, Rgb, RgbImage};
use s2m_core::imageio::save_png;
use std::path::{Path, PathBuf};

const S: u32 = 32;
/// A valid label: tonsil (class 3), instance 1.
const TONSIL_1: u8 = 3 * 16 + 1;

/// Image `i`: pixel (0, 0) = [i, 255, 0], pixel (1, 0) = [255 - i, 128, 1], rest gray.
fn test_image(i: usize) -> RgbImage {
    let mut img = RgbImage::from_pixel(S, S, Rgb([100, 100, 100]));
    img.put_pixel(0, 0, Rgb([i as u8, 255, 0]));
    img.put_pixel(1, 0, Rgb([255 - i as u8, 128, 1]));
    img
}

fn test_mask() -> GrayImage {
    GrayImage::from_fn(S, S, |x, _| Luma([if x < 4 { TONSIL_1 } else { 0 }]))
}

fn test_sketch() -> GrayImage {
    GrayImage::from_fn(S, S, |x, _| Luma([if x == 5 { 0 } else { 255 }]))
}

fn test_manifest(n: usize) -> Manifest {
    Manifest {
        kind: MANIFEST_KIND.to_string(),
        generator_version: GENERATOR_VERSION.to_string(),
        seed: 1,
        scale: 0.001,
        size: S,
        sketch_stroke_width: 1.5,
        counts: [("train".to_string(), n)].into_iter().collect(),
        classes: [
            (1, "uvula"),
            (2, "pharyngeal wall"),
            (3, "tonsil"),
            (4, "tongue"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect(),
        mask_encoding: "class_id * 16 + instance".to_string(),
        freehand_styles: vec!["steady".to_string()],
        command: "test".to_string(),
    }
}

/// A phantom dataset folder with `n` train items.
fn write_phantom(root: &Path, n: usize) {
    let layout = Layout::new(root);
    for dir in [
        layout::IMAGES,
        layout::MASKS,
        layout::SKETCHES,
        layout::SPLITS,
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let ids: Vec<String> = (0..n).map(layout::train_id).collect();
    for (i, id) in ids.iter().enumerate() {
        save_png(layout.image(id), &test_image(i)).unwrap();
        save_png(layout.mask(id), &test_mask()).unwrap();
        save_png(layout.sketch(id), &test_sketch()).unwrap();
    }
    std::fs::write(layout.split(Split::Train), ids.join("\n") + "\n").unwrap();
    let json = serde_json::to_string_pretty(&test_manifest(n)).unwrap();
    std::fs::write(layout.manifest(), json).unwrap();
}

/// A plain folder `images/` of `n` images named `img_<i>.png`.
fn write_folder(root: &Path, n: usize) -> PathBuf {
    let dir = root.join("images");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        save_png(dir.join(format!("img_{i:02}.png")), &test_image(i)).unwrap();
    }
    dir
}

fn config(batch_size: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        ..LoaderConfig::default()
    }
}

fn unit(x: u8) -> f32 {
    x as f32 / 127.5 - 1.0
}

#[test]
fn phantom_batches_have_shapes_and_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    write_phantom(dir.path(), 5);
    let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
    assert_eq!(source.manifest().map(|m| m.size), Some(S));
    let cfg = LoaderConfig {
        load_masks: true,
        load_sketches: true,
        ..config(2)
    };
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    assert_eq!((loader.len(), loader.num_batches()), (5, 3));
    let batches: Vec<Batch> = loader.epoch(0).collect::<Result<_>>().unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].ids, vec!["000004".to_string()]);

    let b = &batches[0];
    assert_eq!(b.ids, vec!["000000".to_string(), "000001".to_string()]);
    assert_eq!(b.images.dims(), &[2, 3, 32, 32]);
    assert_eq!(b.images.dtype(), DType::F32);
    let v = b.images.get(1).unwrap().to_vec3::<f32>().unwrap(); // [3, H, W] of item 1
    assert_eq!([v[0][0][0], v[1][0][0], v[2][0][0]], [unit(1), 1.0, -1.0]);
    assert_eq!(
        [v[0][0][1], v[1][0][1], v[2][0][1]],
        [unit(254), unit(128), unit(1)]
    );
    assert_eq!(v[1][5][5], unit(100));
    let all = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(all.iter().all(|x| (-1.0..=1.0).contains(x)));

    let sk = b.sketches.as_ref().unwrap();
    assert_eq!(sk.dims(), &[2, 1, 32, 32]);
    let s = sk.get(0).unwrap().get(0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!((s[3][5], s[3][6]), (-1.0, 1.0));

    let m = b.masks.as_ref().unwrap();
    assert_eq!(m.dims(), &[2, 32, 32]);
    assert_eq!(m.dtype(), DType::U8);
    let m = m.get(1).unwrap().to_vec2::<u8>().unwrap();
    assert_eq!((m[7][3], m[7][4]), (TONSIL_1, 0));
}

#[test]
fn sketches_from_another_folder_replace_the_datasets_and_missing_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_phantom(dir.path(), 3);
    let other = dir.path().join("s_sketches");
    std::fs::create_dir_all(&other).unwrap();
    // The other folder's sketches have their stroke in column 9 instead of 5.
    let stroke9 = GrayImage::from_fn(S, S, |x, _| Luma([if x == 9 { 0 } else { 255 }]));
    for id in ["000000", "000001"] {
        save_png(other.join(format!("{id}.png")), &stroke9).unwrap();
    }
    let cfg = LoaderConfig {
        load_sketches: true,
        ..config(2)
    };
    let source = DatasetSource::phantom(dir.path(), Split::Train)
        .unwrap()
        .with_sketches_from(&other);
    assert!(source.name().contains("s_sketches"));
    let err = Loader::new(source.clone(), cfg.clone(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("000002.png"), "{err}");

    save_png(other.join("000002.png"), &stroke9).unwrap();
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    let b = loader.batch(&[0, 2]).unwrap();
    let sk = b.sketches.unwrap();
    for i in 0..2 {
        let s = sk.get(i).unwrap().get(0).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!((s[3][5], s[3][9]), (1.0, -1.0));
    }
    // The images are still the dataset's.
    let v = b.images.get(1).unwrap().to_vec3::<f32>().unwrap();
    assert_eq!(v[0][0][0], unit(2));
}

#[test]
fn shuffles_are_seeded_per_epoch_and_cover_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_folder(dir.path(), 10);
    let source = DatasetSource::image_folder(&images, None, None).unwrap();
    let cfg = LoaderConfig {
        shuffle_seed: Some(7),
        ..config(3)
    };
    let loader = Loader::new(source.clone(), cfg.clone(), &Device::Cpu).unwrap();
    let again = Loader::new(source.clone(), cfg, &Device::Cpu).unwrap();
    let e0 = loader.epoch_order(0);
    assert_eq!(e0, again.epoch_order(0));
    assert_ne!(e0, loader.epoch_order(1));
    assert_ne!(e0, (0..10).collect::<Vec<_>>());
    // The batches follow the order, and one epoch visits every item exactly once.
    let ids: Vec<String> = loader.epoch(1).flat_map(|b| b.unwrap().ids).collect();
    let expected: Vec<String> = loader
        .epoch_order(1)
        .iter()
        .map(|&i| source.items()[i].id.clone())
        .collect();
    assert_eq!(ids, expected);
    let mut sorted = ids.clone();
    sorted.sort();
    let all: Vec<String> = (0..10).map(|i| format!("img_{i:02}")).collect();
    assert_eq!(sorted, all);
    // Without a seed every epoch is in source (file name) order.
    let plain = Loader::new(source, config(4), &Device::Cpu).unwrap();
    assert_eq!(plain.epoch_order(3), (0..10).collect::<Vec<_>>());
    let first = plain.epoch(3).next().unwrap().unwrap();
    assert_eq!(first.ids[..2], all[..2]);
}

#[test]
fn drop_last_drops_only_the_short_batch() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_folder(dir.path(), 5);
    let source = DatasetSource::image_folder(&images, None, None).unwrap();
    let cfg = LoaderConfig {
        drop_last: true,
        shuffle_seed: Some(1),
        ..config(2)
    };
    let loader = Loader::new(source.clone(), cfg, &Device::Cpu).unwrap();
    assert_eq!(loader.num_batches(), 2);
    let sizes: Vec<usize> = loader
        .epoch(0)
        .map(|b| b.unwrap().images.dim(0).unwrap())
        .collect();
    assert_eq!(sizes, vec![2, 2]);
    let keep = Loader::new(source.clone(), config(2), &Device::Cpu).unwrap();
    let sizes: Vec<usize> = keep.epoch(0).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    // A batch larger than the source: one short batch, or none with drop_last.
    let big = LoaderConfig {
        drop_last: true,
        ..config(8)
    };
    assert_eq!(
        Loader::new(source, big, &Device::Cpu)
            .unwrap()
            .epoch(0)
            .count(),
        0
    );
}

#[test]
fn image_folder_pairs_masks_and_sketches_by_stem() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_folder(dir.path(), 3);
    // A JPEG is listed too; hidden files and other extensions are not.
    save_png(images.join(".hidden.png"), &test_image(0)).unwrap();
    std::fs::write(images.join("notes.txt"), "x").unwrap();
    let jpg = images.join("zz.jpg");
    test_image(9).save(&jpg).unwrap();
    let masks = dir.path().join("masks");
    let sketches = dir.path().join("sketches");
    std::fs::create_dir_all(&masks).unwrap();
    std::fs::create_dir_all(&sketches).unwrap();
    for stem in ["img_00", "img_01", "img_02", "zz"] {
        save_png(masks.join(format!("{stem}.png")), &test_mask()).unwrap();
        save_png(sketches.join(format!("{stem}.png")), &test_sketch()).unwrap();
    }
    let source = DatasetSource::image_folder(&images, Some(&masks), Some(&sketches)).unwrap();
    let ids: Vec<&str> = source.items().iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["img_00", "img_01", "img_02", "zz"]);
    assert_eq!(source.items()[3].mask, Some(masks.join("zz.png")));
    let cfg = LoaderConfig {
        load_masks: true,
        load_sketches: true,
        size: Some(S),
        ..config(4)
    };
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    let b = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(b.images.dims(), &[4, 3, 32, 32]);
    assert_eq!(b.masks.unwrap().dims(), &[4, 32, 32]);

    // A missing mask names the image and the expected mask file.
    std::fs::remove_file(masks.join("img_01.png")).unwrap();
    let err = DatasetSource::image_folder(&images, Some(&masks), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("img_01.png") && err.contains("mask"), "{err}");
    // Asking for masks a folder source does not have is an error too.
    let plain = DatasetSource::image_folder(&images, None, None).unwrap();
    let cfg = LoaderConfig {
        load_masks: true,
        ..config(2)
    };
    let err = Loader::new(plain, cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("masks"), "{err}");
}

#[test]
fn freehand_split_reads_the_freehand_sketches() {
    let dir = tempfile::tempdir().unwrap();
    write_phantom(dir.path(), 1);
    std::fs::write(dir.path().join("splits/freehand.txt"), "ref000000\n").unwrap();
    let source = DatasetSource::phantom(dir.path(), Split::Freehand).unwrap();
    let sketch = source.items()[0].sketch.clone().unwrap();
    assert_eq!(sketch, dir.path().join("freehand").join("ref000000.png"));
}

#[test]
fn corrupt_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_folder(dir.path(), 3);
    std::fs::write(images.join("img_01.png"), b"garbage, not a png").unwrap();
    let source = DatasetSource::image_folder(&images, None, None).unwrap();
    let loader = Loader::new(source, config(3), &Device::Cpu).unwrap();
    let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(err.contains("img_01.png"), "{err}");
}

#[test]
fn wrong_size_names_file_and_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_folder(dir.path(), 3);
    save_png(images.join("img_02.png"), &RgbImage::new(32, 24)).unwrap();
    let source = DatasetSource::image_folder(&images, None, None).unwrap();
    let loader = Loader::new(source.clone(), config(3), &Device::Cpu).unwrap();
    assert_eq!(loader.image_size(), (32, 32));
    let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("img_02.png") && err.contains("32x24") && err.contains("32x32"),
        "{err}"
    );
    // An explicit size is checked against every file.
    let cfg = LoaderConfig {
        size: Some(64),
        ..config(1)
    };
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(err.contains("img_00.png") && err.contains("64x64"), "{err}");
}

#[test]
fn invalid_label_names_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    write_phantom(dir.path(), 2);
    let bad = Layout::new(dir.path()).mask("000001");
    save_png(&bad, &GrayImage::from_pixel(S, S, Luma([200]))).unwrap();
    let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
    let cfg = LoaderConfig {
        load_masks: true,
        ..config(2)
    };
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("masks") && err.contains("000001.png") && err.contains("200"),
        "{err}"
    );
}

#[test]
fn dataset_folder_errors() {
    let dir = tempfile::tempdir().unwrap();
    // No manifest: an interrupted or foreign folder.
    let err = DatasetSource::phantom(dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no manifest.json") && err.contains(&*dir.path().to_string_lossy()),
        "{err}"
    );

    write_phantom(dir.path(), 2);
    let manifest = Layout::new(dir.path()).manifest();
    // A type error names the field.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"size\": 32", "\"size\": \"big\"")).unwrap();
    let err = DatasetSource::phantom(dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("manifest.json") && err.contains("`size`"),
        "{err}"
    );
    // So does a missing field.
    std::fs::write(&manifest, text.replace("\"size\": 32,", "")).unwrap();
    let err = DatasetSource::phantom(dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`size`"), "{err}");
    std::fs::write(&manifest, &text).unwrap();

    // A missing file is found before any decoding.
    std::fs::remove_file(Layout::new(dir.path()).sketch("000001")).unwrap();
    let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
    let cfg = LoaderConfig {
        load_sketches: true,
        ..config(2)
    };
    let err = Loader::new(source.clone(), cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sketches") && err.contains("000001.png"),
        "{err}"
    );
    // A size other than the manifest's is rejected up front.
    let cfg = LoaderConfig {
        size: Some(64),
        ..config(2)
    };
    let err = Loader::new(source.clone(), cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("manifest.json") && err.contains("32") && err.contains("64"),
        "{err}"
    );
    // Zero batch size and an empty split.
    assert!(matches!(
        Loader::new(source, config(0), &Device::Cpu),
        Err(LoaderError::ZeroBatchSize)
    ));
    std::fs::write(Layout::new(dir.path()).split(Split::Train), "\n").unwrap();
    let empty = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
    let err = Loader::new(empty, config(2), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty") && err.contains("train"), "{err}");
    // A missing split list names the file.
    let err = DatasetSource::phantom(dir.path(), Split::SegVal)
        .unwrap_err()
        .to_string();
    assert!(err.contains("seg_val.txt"), "{err}");
}

#[test]
fn resize_to_shrinks_images_sketches_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    write_phantom(dir.path(), 3);
    let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
    let cfg = LoaderConfig {
        load_masks: true,
        load_sketches: true,
        resize_to: Some(S / 2),
        ..config(3)
    };
    let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
    assert_eq!(loader.output_size(), (S / 2, S / 2));
    let b = loader.batch(&[0, 1, 2]).unwrap();
    assert_eq!(b.images.dims(), &[3, 3, (S / 2) as usize, (S / 2) as usize]);
    assert_eq!(
        b.sketches.unwrap().dims(),
        &[3, 1, (S / 2) as usize, (S / 2) as usize]
    );
    // Nearest-neighbour masks hold only labels present in the originals.
    let masks: Vec<u8> = b.masks.unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(
        masks
            .iter()
            .all(|&v| v == 0 || s2m_core::anatomy::decode_label(v).is_some())
    );
    let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
    let zero = LoaderConfig {
        resize_to: Some(0),
        ..config(1)
    };
    assert!(matches!(
        Loader::new(source, zero, &Device::Cpu),
        Err(LoaderError::ZeroResize)
    ));
}
