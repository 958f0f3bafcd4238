//! Properties of rendered phantoms: determinism, masks, occlusion, parameter effects.

use pharynx_phantom::{MAX_SIZE, PhantomParams, Stream, check_size, generate, render};
use s2m_core::anatomy::{Class, decode_label};
use s2m_core::rng::rng_from_seed;
use sketch_synth::SketchConfig;

fn params(seed: u64) -> PhantomParams {
    PhantomParams::sample(&mut rng_from_seed(seed))
}

#[test]
fn same_seed_gives_identical_bytes() {
    let cfg = SketchConfig::default();
    let a = generate(11, Stream::Train, 3, 128, &cfg).unwrap();
    let b = generate(11, Stream::Train, 3, 128, &cfg).unwrap();
    assert_eq!(a.phantom.image.as_raw(), b.phantom.image.as_raw());
    assert_eq!(a.phantom.labels, b.phantom.labels);
    assert_eq!(a.sketch.as_raw(), b.sketch.as_raw());
}

#[test]
fn different_seeds_differ() {
    let cfg = SketchConfig::default();
    let a = generate(11, Stream::Train, 3, 64, &cfg).unwrap();
    let b = generate(11, Stream::Train, 4, 64, &cfg).unwrap();
    let c = generate(12, Stream::Train, 3, 64, &cfg).unwrap();
    assert_ne!(a.phantom.image.as_raw(), b.phantom.image.as_raw());
    assert_ne!(a.phantom.image.as_raw(), c.phantom.image.as_raw());
    assert_ne!(a.phantom.labels, b.phantom.labels);
}

#[test]
fn masks_are_valid_nonempty_and_cover_the_claimed_classes() {
    for seed in 0..24 {
        let p = params(seed);
        let ph = render(&p, 96).unwrap();
        let inst = ph.labels.instances();
        // Every pixel carries a single valid label: disjointness holds by construction of the
        // encoding; here we check that every value decodes and areas add up.
        let labelled: u32 = inst.iter().map(|i| i.area).sum();
        let nonzero = ph.labels.as_raw().iter().filter(|v| **v != 0).count() as u32;
        assert_eq!(labelled, nonzero, "seed {seed}: undecodable labels");
        for v in ph.labels.as_raw() {
            assert!(
                *v == 0 || decode_label(*v).is_some(),
                "seed {seed}: bad label {v}"
            );
        }
        let has = |c: Class| inst.iter().any(|i| i.class == c && i.area > 0);
        assert!(has(Class::Tongue), "seed {seed}: no tongue");
        assert!(has(Class::Uvula), "seed {seed}: no uvula");
        assert!(has(Class::PharyngealWall), "seed {seed}: no wall");
        let tonsils = inst.iter().filter(|i| i.class == Class::Tonsil).count();
        assert_eq!(tonsils, ph.tonsil_count as usize, "seed {seed}");
        assert!(tonsils <= 2);
        // A grade-0 side never yields a tonsil; instance 0 is the image's left tonsil.
        for (side, grade) in p.tonsil_grade.iter().enumerate() {
            if *grade == 0 {
                assert!(
                    !inst
                        .iter()
                        .any(|i| i.class == Class::Tonsil && i.instance == side as u8),
                    "seed {seed}: grade-0 tonsil on side {side} is visible"
                );
            }
        }
        for i in inst.iter().filter(|i| i.class == Class::Tonsil) {
            let mask = ph.labels.mask_of(i.label);
            let (mut sx, mut n) = (0u64, 0u64);
            for (x, _, px) in mask.enumerate_pixels() {
                if px.0[0] != 0 {
                    sx += x as u64;
                    n += 1;
                }
            }
            let cx = sx as f32 / n as f32;
            let mid = 96.0 / 2.0;
            // Left tonsil lies left of the right one; check against the image centre with
            // generous slack for camera roll and shift.
            if i.instance == 0 {
                assert!(cx < mid + 20.0, "seed {seed}: left tonsil at x={cx}");
            } else {
                assert!(cx > mid - 20.0, "seed {seed}: right tonsil at x={cx}");
            }
        }
    }
}

#[test]
fn occlusion_order_tongue_in_front_of_uvula_and_wall() {
    // A high tongue and a long uvula: the uvula's tip must be hidden by the tongue, so no
    // uvula pixel lies below the tongue's top anywhere in its column.
    let mut p = params(5);
    p.rotation_deg = 0.0;
    p.shift = [0.0, 0.0];
    p.zoom = 1.0;
    p.outline_warp = 0.0;
    p.uvula_tilt = 0.0;
    p.asymmetry = 0.0;
    p.tongue_tilt = 0.0;
    p.tongue_top = 0.1;
    p.uvula_length = 0.5;
    p.arch_center_y = 0.0;
    p.arch_height = 0.35;
    let ph = render(&p, 128).unwrap();
    let uvula = s2m_core::anatomy::encode_label(Class::Uvula, 0);
    let tongue = s2m_core::anatomy::encode_label(Class::Tongue, 0);
    let x = 64;
    let first_tongue = (0..128).find(|&y| ph.labels.get(x, y) == tongue).unwrap();
    assert!((first_tongue..128).all(|y| ph.labels.get(x, y) != uvula));
    // ...and the uvula is visible above it, in front of the wall.
    assert!((0..first_tongue).any(|y| ph.labels.get(x, y) == uvula));
}

#[test]
fn tonsil_grade_controls_tonsil_size() {
    let mut areas = Vec::new();
    for grade in 1..=4u8 {
        let mut p = params(3);
        p.tonsil_grade = [grade, grade];
        p.tonsil_jitter = [0.0, 0.0];
        p.tongue_top = 0.55;
        let ph = render(&p, 96).unwrap();
        let area: u32 = ph
            .labels
            .instances()
            .iter()
            .filter(|i| i.class == Class::Tonsil)
            .map(|i| i.area)
            .sum();
        areas.push(area);
    }
    assert!(areas.windows(2).all(|w| w[0] <= w[1]), "{areas:?}");
    assert!(areas[3] > 3 * areas[0].max(1), "{areas:?}");
}

#[test]
fn image_looks_like_a_photo_not_flat_fills() {
    // Shaded, textured, noisy: within any single class region the colour varies smoothly but
    // substantially, and there are specular highlights brighter than the mucosa.
    let ph = render(&params(9), 128).unwrap();
    let wall = s2m_core::anatomy::encode_label(Class::PharyngealWall, 0);
    let reds: Vec<f32> = ph
        .image
        .pixels()
        .zip(ph.labels.as_raw())
        .filter(|(_, l)| **l == wall)
        .map(|(p, _)| p.0[0] as f32)
        .collect();
    let mean = reds.iter().sum::<f32>() / reds.len() as f32;
    let std = (reds.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / reds.len() as f32).sqrt();
    assert!(std > 4.0, "wall red channel std {std}: flat fill?");
    // Mucosa is red-dominant.
    let (mut r, mut g) = (0f64, 0f64);
    for p in ph.image.pixels() {
        r += p.0[0] as f64;
        g += p.0[1] as f64;
    }
    assert!(r > 1.3 * g, "not a mucosa colour: r={r} g={g}");
}

#[test]
fn any_valid_size_renders_and_bad_sizes_are_rejected() {
    for size in [32u32, 40, 64, 256] {
        let ph = render(&params(1), size).unwrap();
        assert_eq!(ph.image.dimensions(), (size, size));
        assert_eq!(ph.labels.width(), size);
    }
    for bad in [0u32, 8, 24, 33, 100, MAX_SIZE + 8, 65_536] {
        let err = check_size(bad).unwrap_err().to_string();
        assert!(err.contains(&bad.to_string()), "{err}");
        assert!(err.contains(&MAX_SIZE.to_string()), "names the cap: {err}");
        assert!(render(&params(1), bad).is_err());
    }
    assert!(check_size(MAX_SIZE).is_ok());
}

#[test]
fn rendering_is_size_consistent() {
    // The same parameters at two sizes give the same anatomy: class fractions agree.
    let p = params(21);
    let frac = |size: u32| -> Vec<f32> {
        let ph = render(&p, size).unwrap();
        Class::ALL
            .iter()
            .map(|c| {
                let m = ph.labels.class_mask(*c);
                m.as_raw().iter().filter(|v| **v != 0).count() as f32 / (size * size) as f32
            })
            .collect()
    };
    let (a, b) = (frac(64), frac(192));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 0.03, "{a:?} vs {b:?}");
    }
}
