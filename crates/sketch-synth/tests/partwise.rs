//! The part-wise drawer styles: the twelve styles are unchanged by the part-wise parameters,
//! per-part errors move parts independently, parts are left out at the configured rate, and
//! bad values are rejected.

use s2m_core::LabelMap;
use s2m_core::rng::{derive_seed, rng_from_seed};
use sketch_synth::demo::synthetic_pharynx;
use sketch_synth::{
    DrawerStyle, FreehandSketch, SketchError, Stroke, drawer_styles, partwise_styles,
    simulate_freehand_label_map,
};

const TEST_SEED: u64 = 5151;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pharynx(seed: u64, index: u64, size: u32) -> LabelMap {
    synthetic_pharynx(size, &mut rng_from_seed(derive_seed(seed, 0, index)))
}

fn draw(labels: &LabelMap, style: &DrawerStyle, seed: u64) -> FreehandSketch {
    simulate_freehand_label_map(labels, style, &mut rng_from_seed(seed)).unwrap()
}

/// Hashes of the twelve styles' sketches (128 px synthetic pharynx, seeds 1, 7, 4242) as the
/// simulator drew them before the part-wise parameters existed.
const GOLDEN: [u64; 36] = [
    0x899457b3fe46a146,
    0x38eed0e40fffff64,
    0x7b93088847168f5c,
    0xfa27b2252801ab25,
    0x2c2b1645a139c33a,
    0x4867b5714a7340c,
    0x792b7473ec0ad1bf,
    0xc3289a0e9c117377,
    0xf1027406cdeb908,
    0xe5123be5b598570e,
    0x7dcc64a759f82314,
    0xec05fc991381fec,
    0x301fcdaba250d174,
    0xbcade03451eb971,
    0x1b259809f8575a35,
    0xaa80d51f45b37dc8,
    0x12e929bfeaeb57ce,
    0x6a80228e15ed17a,
    0xdc8ebcf24538a277,
    0x9235eaa040771642,
    0x44bcccdcb775ad29,
    0x3957f635beb1f948,
    0x8dab2e28911e5808,
    0x9bd9e2f4529a037f,
    0x6c9d21adca00fa0e,
    0x5ab39ac730a60239,
    0x70c5bc4cd42a60ae,
    0x784e1cb219044580,
    0xbb65daed8baec3d6,
    0x2d3713b0bbd36328,
    0x82ba393b8927c186,
    0xf6e9d98bf9621e26,
    0x4463d067bb7295f1,
    0x178a7803c94ce69a,
    0x7ff3848b01520926,
    0x1822ca6343fd5818,
];

/// The twelve styles with every part-wise parameter written out as off.
fn with_partwise_off(style: &DrawerStyle) -> DrawerStyle {
    DrawerStyle {
        part_shift_px: 0.0,
        part_rotation_deg: 0.0,
        part_scale_log_std: 0.0,
        close_loops: false,
        drop_any_part_probability: 0.0,
        partial_stroke_probability: 0.0,
        partial_stroke_min_fraction: 0.3,
        ..style.clone()
    }
}

#[test]
fn the_twelve_styles_draw_the_same_bytes_as_before() {
    let mut hashes = Vec::new();
    let mut off_hashes = Vec::new();
    for seed in [1u64, 7, 4242] {
        let labels = synthetic_pharynx(128, &mut rng_from_seed(derive_seed(seed, 0, 0)));
        for (i, style) in drawer_styles().iter().enumerate() {
            let stream = derive_seed(seed, 1, i as u64);
            hashes.push(fnv1a(draw(&labels, style, stream).image.as_raw()));
            let off = with_partwise_off(style);
            off_hashes.push(fnv1a(draw(&labels, &off, stream).image.as_raw()));
        }
    }
    assert_eq!(hashes, GOLDEN);
    assert_eq!(off_hashes, GOLDEN);
}

#[test]
fn partwise_styles_are_valid_named_distinct_and_deterministic() {
    let styles = partwise_styles();
    assert!((4..=6).contains(&styles.len()));
    let old: Vec<String> = drawer_styles().into_iter().map(|s| s.name).collect();
    let labels = pharynx(TEST_SEED, 0, 128);
    let mut names = Vec::new();
    for (i, style) in styles.iter().enumerate() {
        style.validate().unwrap();
        assert!(!old.contains(&style.name), "name '{}' reused", style.name);
        assert!(!names.contains(&style.name));
        names.push(style.name.clone());
        let seed = derive_seed(TEST_SEED, 2, i as u64);
        let a = draw(&labels, style, seed);
        let b = draw(&labels, style, seed);
        assert_eq!(a, b, "style '{}' not deterministic", style.name);
        assert!(
            !sketch_synth::is_blank(&a.image),
            "style '{}' blank",
            style.name
        );
        let other = draw(&labels, style, seed + 1);
        assert_ne!(
            a.image, other.image,
            "style '{}' ignores the seed",
            style.name
        );
    }
}

/// Style that only draws what is there, with an optional per-part shift.
fn exact(part_shift_px: f32, shift_px: f32) -> DrawerStyle {
    DrawerStyle {
        shift_px,
        part_shift_px,
        ..DrawerStyle::faithful("exact")
    }
}

/// The true contours of each instance of the label map, in label order: a faithful drawing of
/// the instance alone.
fn part_contours(labels: &LabelMap) -> Vec<Vec<Stroke>> {
    let mut present: Vec<u8> = labels
        .as_raw()
        .iter()
        .copied()
        .filter(|&v| v != 0)
        .collect();
    present.sort_unstable();
    present.dedup();
    present
        .into_iter()
        .map(|label| {
            let mut single = labels.clone();
            single
                .as_raw_mut()
                .iter_mut()
                .for_each(|v| *v = if *v == label { label } else { 0 });
            draw(&single, &DrawerStyle::faithful("truth"), 0).strokes
        })
        .filter(|strokes| !strokes.is_empty())
        .collect()
}

fn points(strokes: &[Stroke]) -> Vec<[f32; 2]> {
    strokes
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect()
}

fn mean_point(points: &[[f32; 2]]) -> [f32; 2] {
    let n = points.len() as f32;
    let s = points
        .iter()
        .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
    [s[0] / n, s[1] / n]
}

/// Mean distance from each point of `from` to the nearest point of `to`.
fn point_chamfer(from: &[[f32; 2]], to: &[[f32; 2]]) -> f32 {
    let total: f32 = from
        .iter()
        .map(|a| {
            to.iter()
                .map(|b| (a[0] - b[0]).hypot(a[1] - b[1]))
                .fold(f32::INFINITY, f32::min)
        })
        .sum();
    total / from.len() as f32
}

/// Mean over parts of the chamfer from each part's drawn strokes to its own true contour,
/// after removing the mean displacement of the whole drawing (so a global shift costs
/// nothing and only parts moving relative to each other count). The style must draw every
/// contour once, whole, in order (no omission, overshoot, gaps or retracing).
fn relative_part_error(labels: &LabelMap, style: &DrawerStyle, draws: u64) -> f32 {
    let parts = part_contours(labels);
    let mut total = 0.0;
    let mut count = 0;
    for d in 0..draws {
        let sketch = draw(labels, style, derive_seed(TEST_SEED, 3, d));
        assert_eq!(
            sketch.strokes.len(),
            parts.iter().map(Vec::len).sum::<usize>()
        );
        let mut drawn = sketch.strokes.as_slice();
        let mut pairs = Vec::new();
        for part in &parts {
            let (mine, rest) = drawn.split_at(part.len());
            drawn = rest;
            pairs.push((points(mine), points(part)));
        }
        let offsets: Vec<[f32; 2]> = pairs
            .iter()
            .map(|(mine, truth)| {
                let (a, b) = (mean_point(mine), mean_point(truth));
                [a[0] - b[0], a[1] - b[1]]
            })
            .collect();
        let global = mean_point(&offsets);
        for (mine, truth) in &pairs {
            let moved: Vec<[f32; 2]> = mine
                .iter()
                .map(|p| [p[0] - global[0], p[1] - global[1]])
                .collect();
            total += point_chamfer(&moved, truth);
            count += 1;
        }
    }
    total / count as f32
}

#[test]
fn part_shifts_move_parts_relative_to_each_other_and_global_shifts_do_not() {
    let labels = pharynx(TEST_SEED, 1, 256);
    let draws = 8;
    let still = relative_part_error(&labels, &exact(0.0, 0.0), draws);
    let global = relative_part_error(&labels, &exact(0.0, 10.0), draws);
    let small = relative_part_error(&labels, &exact(4.0, 0.0), draws);
    let large = relative_part_error(&labels, &exact(12.0, 0.0), draws);
    println!(
        "relative part error: still {still:.2} global {global:.2} part 4 {small:.2} part 12 {large:.2}"
    );
    assert!(still < 1.0, "faithful drawing off its parts: {still}");
    assert!(
        global < still + 0.5,
        "a global shift moved parts apart: {global}"
    );
    assert!(
        small > still + 1.0,
        "part shift 4 px had no effect: {small}"
    );
    assert!(
        large > small + 2.0,
        "part error does not grow with part_shift_px: {large}"
    );
}

#[test]
fn any_part_is_left_out_at_the_configured_rate() {
    let labels = pharynx(TEST_SEED, 2, 128);
    // `omitted` counts contours: a part left out counts each of its contours.
    let contours: usize = part_contours(&labels).iter().map(Vec::len).sum();
    let p = 0.3;
    let style = DrawerStyle {
        drop_any_part_probability: p,
        ..DrawerStyle::faithful("forgetful parts")
    };
    let draws = 400;
    let omitted: usize = (0..draws)
        .map(|d| draw(&labels, &style, derive_seed(TEST_SEED, 4, d)).omitted)
        .sum();
    let rate = omitted as f32 / (draws as f32 * contours as f32);
    // Blank pages are avoided by keeping the longest outline, which lowers the rate by at most
    // p^parts; the binomial standard error is about 0.01.
    assert!((rate - p).abs() < 0.05, "omission rate {rate} for p = {p}");
}

#[test]
fn partial_strokes_shorten_outlines_and_close_loops_closes_edge_parts() {
    let labels = pharynx(TEST_SEED, 3, 128);
    let full = draw(&labels, &DrawerStyle::faithful("full"), 9);
    let partial = DrawerStyle {
        partial_stroke_probability: 1.0,
        partial_stroke_min_fraction: 0.3,
        ..DrawerStyle::faithful("partial")
    };
    let partial = draw(&labels, &partial, 9);
    let ink = |s: &FreehandSketch| -> f32 { s.strokes.iter().map(|s| s.length()).sum() };
    assert!(
        ink(&partial) < 0.9 * ink(&full),
        "{} vs {}",
        ink(&partial),
        ink(&full)
    );
    assert!(partial.strokes.iter().all(|s| !s.closed));

    let loops = DrawerStyle {
        close_loops: true,
        ..DrawerStyle::faithful("loops")
    };
    let looped = draw(&labels, &loops, 9);
    let open_before = full.strokes.iter().filter(|s| !s.closed).count();
    let open_after = looped.strokes.iter().filter(|s| !s.closed).count();
    assert!(
        open_before > 0,
        "the test pharynx should touch the image edge"
    );
    assert_eq!(open_after, 0);
}

/// Sets one field of a style to a bad value.
type Spoil = fn(&mut DrawerStyle);

#[test]
fn bad_partwise_values_are_rejected_with_the_field_name() {
    let cases: [(&str, Spoil); 6] = [
        ("part_shift_px", |s| s.part_shift_px = -1.0),
        ("part_rotation_deg", |s| s.part_rotation_deg = f32::NAN),
        ("part_scale_log_std", |s| {
            s.part_scale_log_std = f32::INFINITY
        }),
        ("drop_any_part_probability", |s| {
            s.drop_any_part_probability = 1.5
        }),
        ("partial_stroke_probability", |s| {
            s.partial_stroke_probability = -0.1
        }),
        ("partial_stroke_min_fraction", |s| {
            s.partial_stroke_min_fraction = 0.0
        }),
    ];
    for (field, spoil) in cases {
        let mut style = DrawerStyle::faithful("bad");
        spoil(&mut style);
        match style.validate() {
            Err(SketchError::InvalidStyle { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidStyle, got {other:?}"),
        }
    }
}

#[test]
fn styles_saved_before_the_partwise_fields_still_load_with_them_off() {
    let mut json = serde_json::to_value(&drawer_styles()[0]).unwrap();
    let object = json.as_object_mut().unwrap();
    for key in [
        "part_shift_px",
        "part_rotation_deg",
        "part_scale_log_std",
        "close_loops",
        "drop_any_part_probability",
        "partial_stroke_probability",
        "partial_stroke_min_fraction",
    ] {
        assert!(object.remove(key).is_some(), "{key}");
    }
    let loaded: DrawerStyle = serde_json::from_value(json).unwrap();
    assert_eq!(loaded, drawer_styles()[0]);
}
