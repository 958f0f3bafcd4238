//! Sketch normalisation: one drawing at any canvas size and pen width gives the same prepared
//! sketch (ink masks agree with the 64 px, 1 px pen rendering).

/// Ink as the pipeline counts it (`sketch2medi::INK_THRESHOLD`).
const INK: u8 = 200;

use image::GrayImage;
use sketch_synth::normalise::{NormaliseConfig, normalise_sketch};
use sketch_synth::{Stroke, draw_strokes};

/// A throat-like drawing in unit coordinates: the arch of the wall, the uvula, two tonsils and
/// the tongue's upper edge.
fn drawing() -> Vec<(Vec<[f32; 2]>, bool)> {
    let ellipse = |cx: f32, cy: f32, rx: f32, ry: f32, from: f32, to: f32, n: usize| {
        (0..=n)
            .map(|i| {
                let t = from + (to - from) * i as f32 / n as f32;
                [cx + rx * t.cos(), cy + ry * t.sin()]
            })
            .collect::<Vec<_>>()
    };
    let pi = std::f32::consts::PI;
    vec![
        (ellipse(0.5, 0.62, 0.36, 0.45, pi, 2.0 * pi, 80), false),
        (ellipse(0.5, 0.42, 0.05, 0.11, 0.0, 2.0 * pi, 40), true),
        (ellipse(0.22, 0.55, 0.07, 0.13, 0.0, 2.0 * pi, 40), true),
        (ellipse(0.78, 0.55, 0.07, 0.13, 0.0, 2.0 * pi, 40), true),
        (
            ellipse(0.5, 1.02, 0.42, 0.22, 1.05 * pi, 1.95 * pi, 60),
            false,
        ),
    ]
}

fn render(canvas: u32, pen_px: f32) -> GrayImage {
    let strokes: Vec<Stroke> = drawing()
        .into_iter()
        .map(|(points, closed)| {
            let scaled = points
                .iter()
                .map(|p| [p[0] * canvas as f32, p[1] * canvas as f32])
                .collect();
            Stroke::uniform(scaled, pen_px, closed)
        })
        .collect();
    draw_strokes(&strokes, canvas, canvas, 0).unwrap()
}

fn ink(image: &GrayImage) -> Vec<bool> {
    image.as_raw().iter().map(|&v| v < INK).collect()
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    inter as f64 / union.max(1) as f64
}

#[test]
fn one_drawing_at_any_canvas_and_pen_normalises_alike() {
    let cfg = NormaliseConfig::for_size(64);
    let reference = ink(&normalise_sketch(&render(64, 1.0), 64, &cfg).unwrap());
    let mut worst = (1.0, 0, 0.0);
    let mut cases = 0;
    for canvas in [64u32, 128, 256, 512, 1024] {
        // Pens up to 8 px, and up to 5 % of the canvas: a wider pen paints over the 6 px wide
        // uvula of this drawing on the 64 px canvas, so there is no outline left to recover.
        for pen in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] {
            if pen > canvas as f32 / 20.0 && pen > 1.0 {
                continue;
            }
            cases += 1;
            let out = normalise_sketch(&render(canvas, pen), 64, &cfg).unwrap();
            let score = iou(&ink(&out), &reference);
            if score < worst.0 {
                worst = (score, canvas, pen);
            }
        }
    }
    assert_eq!(cases, 3 + 6 + 8 + 8 + 8);
    assert!(
        worst.0 >= 0.8,
        "worst IoU {:.3} at canvas {} pen {}",
        worst.0,
        worst.1,
        worst.2
    );
}

#[test]
fn a_thin_pen_on_a_large_canvas_keeps_dark_ink() {
    let cfg = NormaliseConfig::for_size(64);
    let plain = image::imageops::resize(
        &render(1024, 1.5),
        64,
        64,
        image::imageops::FilterType::Triangle,
    );
    let normalised = normalise_sketch(&render(1024, 1.5), 64, &cfg).unwrap();
    let darkest = |img: &GrayImage| img.as_raw().iter().copied().min().unwrap();
    let inked = |img: &GrayImage| img.as_raw().iter().filter(|&&v| v < 128).count();
    // A plain resize fades the pen to grey; normalisation keeps full-strength strokes.
    assert!(
        darkest(&plain) > 128,
        "plain resize darkest {}",
        darkest(&plain)
    );
    assert!(
        darkest(&normalised) < 40,
        "normalised darkest {}",
        darkest(&normalised)
    );
    let reference = inked(&normalise_sketch(&render(64, 1.0), 64, &cfg).unwrap());
    let found = inked(&normalised);
    assert!(
        found as f64 > 0.8 * reference as f64,
        "{found} dark pixels against {reference} at 64 px"
    );
}

#[test]
fn a_thick_marker_is_thinned_to_the_training_pen() {
    let cfg = NormaliseConfig::for_size(64);
    let inked = |img: &GrayImage| img.as_raw().iter().filter(|&&v| v < INK).count();
    let thin = inked(&normalise_sketch(&render(64, 1.0), 64, &cfg).unwrap());
    let marker = render(256, 12.0);
    let plain = image::imageops::resize(&marker, 64, 64, image::imageops::FilterType::Triangle);
    let normalised = inked(&normalise_sketch(&marker, 64, &cfg).unwrap());
    assert!(
        inked(&plain) as f64 > 2.0 * thin as f64,
        "the marker is thick when resized"
    );
    assert!(
        (normalised as f64) < 1.25 * thin as f64,
        "{normalised} ink pixels after normalisation against {thin} for the 1 px pen"
    );
}
