//! Training sketches from masks: geometry, border handling, thresholds, errors, determinism.

use image::{GrayImage, Luma};
use imageproc::distance_transform::euclidean_squared_distance_transform;
use s2m_core::rng::rng_from_seed;
use s2m_core::{Class, InstanceMask, LabelMap};
use sketch_synth::demo::synthetic_pharynx;
use sketch_synth::{
    SketchConfig, SketchError, Stroke, contour_strokes, draw_strokes, is_blank, render_label_map,
    render_sketch,
};

fn pharynx(seed: u64) -> LabelMap {
    synthetic_pharynx(256, &mut rng_from_seed(seed))
}

/// 255 where a pixel's 4-neighbourhood (inside the image) holds a different label.
fn label_boundaries(labels: &LabelMap) -> GrayImage {
    let (w, h) = (labels.width(), labels.height());
    GrayImage::from_fn(w, h, |x, y| {
        let v = labels.get(x, y);
        let neighbours = [
            (x.wrapping_sub(1), y),
            (x + 1, y),
            (x, y.wrapping_sub(1)),
            (x, y + 1),
        ];
        let differs = neighbours
            .iter()
            .any(|&(nx, ny)| nx < w && ny < h && labels.get(nx, ny) != v);
        Luma([if differs { 255 } else { 0 }])
    })
}

fn dark_pixels(image: &GrayImage, below: u8) -> usize {
    image.as_raw().iter().filter(|&&v| v < below).count()
}

fn mask_instance(mask: GrayImage, score: f32) -> InstanceMask {
    InstanceMask {
        class: Class::Tonsil,
        mask,
        score,
    }
}

fn disc_mask(size: u32, cx: f32, cy: f32, r: f32) -> GrayImage {
    GrayImage::from_fn(size, size, |x, y| {
        let inside = (x as f32 + 0.5 - cx).hypot(y as f32 + 0.5 - cy) <= r;
        Luma([if inside { 255 } else { 0 }])
    })
}

#[test]
fn contours_lie_on_label_boundaries() {
    for seed in 0..3 {
        let labels = pharynx(seed);
        let config = SketchConfig::default();
        let sketch = render_label_map(&labels, &config).unwrap();
        let distance_squared = euclidean_squared_distance_transform(&label_boundaries(&labels));
        let allowed = config.stroke_width / 2.0 + 1.5;
        let mut ink = 0;
        for (x, y, p) in sketch.enumerate_pixels() {
            if p.0[0] < 200 {
                ink += 1;
                let d = distance_squared.get_pixel(x, y).0[0].sqrt() as f32;
                assert!(
                    d <= allowed,
                    "seed {seed}: ink at ({x}, {y}) is {d} px from any boundary"
                );
            }
        }
        // The boundaries are long (>1000 px); a sketch with little ink would pass vacuously.
        assert!(ink > 1000, "seed {seed}: only {ink} ink pixels");
    }
}

#[test]
fn every_boundary_is_drawn() {
    // The converse: interior label boundaries (away from the image edge) all get ink nearby.
    let labels = pharynx(4);
    let sketch = render_label_map(&labels, &SketchConfig::default()).unwrap();
    let ink = GrayImage::from_fn(256, 256, |x, y| {
        Luma([if sketch.get_pixel(x, y).0[0] < 128 {
            255
        } else {
            0
        }])
    });
    let to_ink = euclidean_squared_distance_transform(&ink);
    let boundaries = label_boundaries(&labels);
    for (x, y, p) in boundaries.enumerate_pixels() {
        if p.0[0] == 255 && (2..254).contains(&x) && (2..254).contains(&y) {
            let d = to_ink.get_pixel(x, y).0[0].sqrt();
            assert!(d <= 1.5, "boundary pixel ({x}, {y}) is {d} px from ink");
        }
    }
}

#[test]
fn nothing_is_drawn_along_the_image_border() {
    let labels = pharynx(1);
    // The wall runs off the top edge and the tongue off the bottom and sides.
    let touches_edge = |label: u8| {
        (0..256).any(|i| {
            labels.get(i, 0) == label
                || labels.get(i, 255) == label
                || labels.get(0, i) == label
                || labels.get(255, i) == label
        })
    };
    assert!(
        touches_edge(32) && touches_edge(64),
        "fixture no longer touches the border"
    );
    let sketch = render_label_map(&labels, &SketchConfig::default()).unwrap();
    let border_values: Vec<u8> = (0..256)
        .flat_map(|i| {
            [
                sketch.get_pixel(i, 0).0[0],
                sketch.get_pixel(i, 255).0[0],
                sketch.get_pixel(0, i).0[0],
                sketch.get_pixel(255, i).0[0],
            ]
        })
        .collect();
    let darkest = border_values.iter().copied().min().unwrap();
    // Strokes ending one pixel inside may graze the edge pixels with anti-aliasing only.
    assert!(
        darkest > 160,
        "ink on the border: darkest edge pixel {darkest}"
    );

    // The mask of a region covering the whole image has only edge contours: nothing drawn.
    let full = mask_instance(GrayImage::from_pixel(40, 30, Luma([255])), 1.0);
    assert!(
        contour_strokes(std::slice::from_ref(&full), 0.5)
            .unwrap()
            .is_empty()
    );
    assert!(is_blank(
        &render_sketch(&[full], &SketchConfig::default()).unwrap()
    ));
}

#[test]
fn borders_touching_the_edge_become_open_strokes_and_holes_stay_closed() {
    let labels = pharynx(2);
    let wall = labels
        .to_instance_masks()
        .into_iter()
        .find(|m| m.class == Class::PharyngealWall)
        .unwrap();
    let strokes = contour_strokes(&[wall], 0.35).unwrap();
    // The outer border runs off the top edge (open); the uvula's hole is closed.
    assert!(
        strokes.iter().any(|s| !s.closed),
        "{} strokes",
        strokes.len()
    );
    let hole = strokes
        .iter()
        .find(|s| s.closed)
        .expect("no closed hole contour");
    assert!(hole.length() > 50.0);
    for s in &strokes {
        for p in &s.points {
            assert!(
                p[0] > 1.0 && p[1] > 1.0 && p[0] < 255.0 && p[1] < 255.0,
                "{p:?} on edge"
            );
            // Pixel centres.
            assert_eq!(p[0].fract(), 0.5);
            assert_eq!(p[1].fract(), 0.5);
        }
    }
}

#[test]
fn score_threshold_drops_low_score_instances() {
    // At 64 px the 1.5 px pen (at 256 px) is 0.375 px wide: count every touched pixel as ink.
    let confident = mask_instance(disc_mask(64, 20.0, 32.0, 10.0), 0.9);
    let unsure = mask_instance(disc_mask(64, 45.0, 32.0, 10.0), 0.2);
    let config = SketchConfig::default();
    let both = render_sketch(&[confident.clone(), unsure.clone()], &config).unwrap();
    let left_half_ink = |img: &GrayImage| {
        (0..64)
            .flat_map(|y| (0..32).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 255)
            .count()
    };
    let right_half_ink = |img: &GrayImage| dark_pixels(img, 255) - left_half_ink(img);
    assert!(left_half_ink(&both) > 30);
    assert_eq!(right_half_ink(&both), 0, "the 0.2-score disc was drawn");
    let permissive = SketchConfig {
        score_threshold: 0.1,
        ..config.clone()
    };
    let all = render_sketch(&[confident, unsure.clone()], &permissive).unwrap();
    assert!(right_half_ink(&all) > 30);
    // Nothing above the threshold: a valid blank page of the right size.
    let blank = render_sketch(&[unsure], &config).unwrap();
    assert_eq!(blank.dimensions(), (64, 64));
    assert!(is_blank(&blank));
    assert!(!is_blank(&all));
}

#[test]
fn empty_label_map_gives_blank_page() {
    let page = render_label_map(&LabelMap::new(100, 80), &SketchConfig::default()).unwrap();
    assert_eq!(page.dimensions(), (100, 80));
    assert!(is_blank(&page));
}

#[test]
fn label_map_and_instance_masks_render_identically() {
    let labels = pharynx(3);
    let config = SketchConfig::default();
    let from_map = render_label_map(&labels, &config).unwrap();
    let from_masks = render_sketch(&labels.to_instance_masks(), &config).unwrap();
    assert_eq!(from_map, from_masks);
    assert_eq!(
        from_map,
        render_label_map(&labels, &config).unwrap(),
        "not deterministic"
    );
}

#[test]
fn stroke_width_and_ink_are_honoured_and_scale_with_size() {
    let labels = pharynx(5);
    let thin = render_label_map(&labels, &SketchConfig::default()).unwrap();
    let thick_config = SketchConfig {
        stroke_width: 4.0,
        ink: 90,
        ..SketchConfig::default()
    };
    let thick = render_label_map(&labels, &thick_config).unwrap();
    let (thin_ink, thick_ink) = (dark_pixels(&thin, 200), dark_pixels(&thick, 200));
    assert!(
        2 * thick_ink > 3 * thin_ink,
        "ink {thin_ink} at width 1.5, {thick_ink} at 4"
    );
    assert_eq!(thick.as_raw().iter().copied().min(), Some(90));
    assert_eq!(thin.as_raw().iter().copied().min(), Some(0));
    // The same disc at 512 px has a pen twice as wide and a contour twice as long: ~4x the ink.
    let disc_ink = |size: u32| {
        let s = size as f32;
        let disc = mask_instance(disc_mask(size, 0.5 * s, 0.5 * s, 0.3 * s), 1.0);
        // Ink mass (sum of coverage), not a pixel count: counts depend on how the pen's edges
        // fall on the pixel grid.
        let page = render_sketch(&[disc], &SketchConfig::default()).unwrap();
        page.as_raw()
            .iter()
            .map(|&v| f32::from(255 - v) / 255.0)
            .sum::<f32>()
    };
    let ratio = disc_ink(512) / disc_ink(256);
    assert!((3.5..4.5).contains(&ratio), "ink ratio 512/256 = {ratio}");
}

#[test]
fn variable_width_strokes_are_thicker_where_pressed() {
    let points: Vec<[f32; 2]> = (0..=40).map(|i| [10.0 + 2.0 * i as f32, 50.0]).collect();
    let widths: Vec<f32> = (0..=40).map(|i| 1.0 + 7.0 * i as f32 / 40.0).collect();
    let stroke = Stroke {
        points,
        widths,
        closed: false,
    };
    let page = draw_strokes(&[stroke], 100, 100, 0).unwrap();
    let column_ink = |x: u32| {
        (0..100)
            .filter(|&y| page.get_pixel(x, y).0[0] < 128)
            .count()
    };
    let (light, heavy) = (column_ink(15), column_ink(85));
    assert!(
        light <= 2 && heavy >= 6,
        "thickness {light} at the light end, {heavy} at the heavy end"
    );
}

#[test]
fn bad_inputs_are_rejected() {
    let ok = mask_instance(disc_mask(32, 16.0, 16.0, 6.0), 1.0);
    let config = SketchConfig::default();
    let mismatched = mask_instance(disc_mask(33, 16.0, 16.0, 6.0), 1.0);
    assert!(matches!(
        render_sketch(&[ok.clone(), mismatched], &config),
        Err(SketchError::MaskSizeMismatch { index: 1, .. })
    ));
    let empty = mask_instance(GrayImage::new(0, 5), 1.0);
    assert!(matches!(
        render_sketch(&[empty], &config),
        Err(SketchError::EmptyImage { .. })
    ));
    assert_eq!(render_sketch(&[], &config), Err(SketchError::NoInstances));
    for width in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let bad = SketchConfig {
            stroke_width: width,
            ..config.clone()
        };
        assert!(matches!(
            render_sketch(std::slice::from_ref(&ok), &bad),
            Err(SketchError::InvalidStrokeWidth(_))
        ));
    }
    for threshold in [-0.1, 1.5, f32::NAN] {
        let bad = SketchConfig {
            score_threshold: threshold,
            ..config.clone()
        };
        assert!(matches!(
            render_sketch(std::slice::from_ref(&ok), &bad),
            Err(SketchError::InvalidThreshold(_))
        ));
        assert!(matches!(
            contour_strokes(std::slice::from_ref(&ok), threshold),
            Err(SketchError::InvalidThreshold(_))
        ));
    }
    assert!(matches!(
        render_label_map(&LabelMap::new(0, 0), &config),
        Err(SketchError::EmptyImage { .. })
    ));
    let stroke = Stroke::uniform(vec![[1.0, 1.0], [5.0, 5.0]], 1.0, false);
    assert!(matches!(
        draw_strokes(std::slice::from_ref(&stroke), 0, 10, 0),
        Err(SketchError::EmptyImage { .. })
    ));
    let mut nan_point = stroke.clone();
    nan_point.points[1][0] = f32::NAN;
    assert!(matches!(
        draw_strokes(&[nan_point], 10, 10, 0),
        Err(SketchError::NonFinitePoint {
            stroke: 0,
            point: 1
        })
    ));
    let mut short_widths = stroke.clone();
    short_widths.widths.pop();
    assert!(matches!(
        draw_strokes(&[short_widths], 10, 10, 0),
        Err(SketchError::WidthCountMismatch { .. })
    ));
    let mut zero_width = stroke;
    zero_width.widths[0] = 0.0;
    assert!(matches!(
        draw_strokes(&[zero_width], 10, 10, 0),
        Err(SketchError::InvalidStrokeWidth(_))
    ));
}

#[test]
fn config_round_trips_through_json_with_defaults() {
    let config: SketchConfig = serde_json::from_str("{\"ink\": 40}").unwrap();
    assert_eq!(config.ink, 40);
    assert_eq!(config.stroke_width, 1.5);
    assert_eq!(config.score_threshold, 0.35);
    let back: SketchConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}
