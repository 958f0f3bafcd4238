//! DICE exactness on synthetic label maps with known overlap, the empty/empty rule, file
//! pairing and the phantom's ground-truth masks.

use image::{GrayImage, Luma};
use metrics::dice::{dice_from_masks, dice_per_class, image_dice, summarize};
use s2m_core::anatomy::{Class, LabelMap, encode_label};
use s2m_core::progress::NoProgress;

/// A label map with `class` (instance `inst`) on the rectangle [x0, x1) x [y0, y1).
fn rect(m: &mut GrayImage, class: Class, inst: u8, x0: u32, x1: u32, y0: u32, y1: u32) {
    for y in y0..y1 {
        for x in x0..x1 {
            m.put_pixel(x, y, Luma([encode_label(class, inst)]));
        }
    }
}

#[test]
fn dice_is_exact_on_rectangles() {
    let mut a = GrayImage::new(20, 10);
    let mut b = GrayImage::new(20, 10);
    // Uvula: A 10x10 = 100 px, B shifted by 5 -> overlap 50: Dice = 100 / 200 = 0.5.
    rect(&mut a, Class::Uvula, 0, 0, 10, 0, 10);
    rect(&mut b, Class::Uvula, 0, 5, 15, 0, 10);
    // Tonsil: two instances in A (left 2x10 + right 2x10 = 40 px), one instance in B covering
    // only the left one (20 px): union semantics -> 2*20 / (40 + 20) = 2/3.
    rect(&mut a, Class::Tonsil, 0, 15, 17, 0, 10);
    rect(&mut a, Class::Tonsil, 1, 18, 20, 0, 10);
    rect(&mut b, Class::Tonsil, 1, 15, 17, 0, 10);
    // Tongue: only in B (10 px) -> 0. Pharyngeal wall: empty in both -> excluded.
    rect(&mut b, Class::Tongue, 0, 17, 18, 0, 10);
    let (a, b) = (
        LabelMap::from_gray(a, "a").unwrap(),
        LabelMap::from_gray(b, "b").unwrap(),
    );
    let d = dice_per_class(&a, &b).unwrap();
    assert_eq!(d[Class::Uvula.index()], Some(0.5));
    assert_eq!(d[Class::PharyngealWall.index()], None);
    assert_eq!(d[Class::Tonsil.index()], Some(2.0 / 3.0));
    assert_eq!(d[Class::Tongue.index()], Some(0.0));
    let m = image_dice(&d).unwrap();
    assert!((m - (0.5 + 2.0 / 3.0 + 0.0) / 3.0).abs() < 1e-15);
    // Symmetric, and 1 against itself.
    assert_eq!(dice_per_class(&b, &a).unwrap(), d);
    let s = dice_per_class(&a, &a).unwrap();
    assert_eq!(s, [Some(1.0), None, Some(1.0), None]);

    // Set summary: per-class means over images where present; empty/empty pairs excluded.
    let empty = LabelMap::new(20, 10);
    let e = dice_per_class(&empty, &empty).unwrap();
    assert_eq!(image_dice(&e), None);
    let sum = summarize(&[d, s, e]).unwrap();
    assert_eq!(sum.images, 3);
    assert_eq!(sum.images_all_empty, 1);
    assert!((sum.mean - (m + 1.0) / 2.0).abs() < 1e-15);
    assert!((sum.std - (1.0 - m) / 2.0).abs() < 1e-15);
    assert_eq!(sum.per_class["uvula"], Some(0.75));
    assert_eq!(sum.per_class["pharyngeal wall"], None);
    assert_eq!(sum.per_class["tongue"], Some(0.0));
    assert!(summarize(&[e]).is_err());
    // Size mismatch is an error naming both sizes.
    let err = dice_per_class(&a, &LabelMap::new(5, 5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("20x10") && err.contains("5x5"), "{err}");
}

#[test]
fn dice_from_phantom_masks_and_pairing_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ph");
    let cfg = pharynx_phantom::export::BuildConfig {
        out: root.clone(),
        scale: 0.0025,
        size: 48,
        seed: 5,
        force: false,
        sketch: sketch_synth::SketchConfig::default(),
        command: "test".into(),
    };
    pharynx_phantom::export::build_dataset(&cfg, &NoProgress).unwrap();
    let masks = root.join("masks");
    let r = dice_from_masks(&masks, &masks).unwrap();
    assert!(r.summary.images >= 10, "{}", r.summary.images);
    assert_eq!(r.summary.mean, 1.0);
    assert_eq!(r.summary.std, 0.0);

    // A folder missing one mask: the error names it.
    let other = dir.path().join("gen");
    std::fs::create_dir(&other).unwrap();
    let files = metrics::features::image_files(&masks).unwrap();
    for f in &files[1..] {
        std::fs::copy(f, other.join(f.file_name().unwrap())).unwrap();
    }
    let e = dice_from_masks(&masks, &other).unwrap_err().to_string();
    let missing = files[0].file_stem().unwrap().to_string_lossy().to_string();
    assert!(
        e.contains(&missing) && e.contains("cannot be paired"),
        "{e}"
    );
    // An unreadable mask names the file.
    std::fs::write(other.join(files[0].file_name().unwrap()), b"not a png").unwrap();
    let e = dice_from_masks(&masks, &other).unwrap_err().to_string();
    assert!(e.contains(&missing), "{e}");
}
