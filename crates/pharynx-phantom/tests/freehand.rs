//! Free-hand sketches drawn from phantom references are displaced from the true contours by
//! the amount each drawer style is configured for.

use pharynx_phantom::sample::draw_freehand;
use pharynx_phantom::{Stream, generate};
use sketch_synth::{SketchConfig, drawer_styles};

#[test]
fn each_style_is_displaced_within_its_configured_range_on_phantoms() {
    let styles = drawer_styles();
    let cfg = SketchConfig::default();
    let refs: Vec<_> = (0..16)
        .map(|i| generate(3, Stream::Reference, i, 128, &cfg).unwrap())
        .collect();
    let mut means = Vec::new();
    for (k, style) in styles.iter().enumerate() {
        let values: Vec<f32> = refs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (image, _, _, chamfer) = draw_freehand(s, style, 100 + k as u64, i).unwrap();
                assert_eq!(image.dimensions(), (128, 128));
                chamfer.expect("a free-hand sketch has ink")
            })
            .collect();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let [lo, hi] = style.expected_chamfer;
        assert!(
            (lo..=hi).contains(&mean),
            "style {} mean chamfer {mean:.2} px outside its range {lo}-{hi}",
            style.name
        );
        means.push(mean);
    }
    // Every style is measurably displaced compared with the synthesized training sketch.
    let synthesized: f32 = refs
        .iter()
        .map(|s| {
            sketch_synth::chamfer_to_true_contours(&s.sketch, &s.phantom.labels)
                .unwrap()
                .unwrap()
        })
        .sum::<f32>()
        / refs.len() as f32;
    for (m, style) in means.iter().zip(&styles) {
        assert!(
            *m > synthesized * 1.5,
            "{}: {m} vs synthesized {synthesized}",
            style.name
        );
    }
}
