//! Measures each drawer style's directed chamfer distance (sketch -> true contours) on
//! synthetic pharynx label maps, to calibrate `DrawerStyle::expected_chamfer`, and times
//! `render_label_map`.
//!
//! `cargo run --release -p sketch-synth --example calibrate_styles [batches] [out_dir]`
//! prints, per style, the mean and the spread of the mean over batches of 16 sketches; with
//! `out_dir` it also writes one example sketch per style as PNG.

use s2m_core::rng::{derive_seed, rng_from_seed};
use sketch_synth::demo::synthetic_pharynx;
use sketch_synth::{
    SketchConfig, chamfer_to_true_contours, drawer_styles, render_label_map,
    simulate_freehand_label_map,
};
use std::time::Instant;

const SKETCHES_PER_BATCH: u64 = 16;
const SIZE: u32 = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let batches: u64 = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(30);
    let out_dir = args.get(2).map(std::path::PathBuf::from);

    let map = synthetic_pharynx(SIZE, &mut rng_from_seed(1));
    let config = SketchConfig::default();
    let runs = 500;
    let started = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(render_label_map(&map, &config)?);
    }
    let per_call = started.elapsed().as_secs_f64() * 1e3 / f64::from(runs);
    let training_sketch = render_label_map(&map, &config)?;
    let baseline = chamfer_to_true_contours(&training_sketch, &map)?.unwrap_or(f32::NAN);
    println!("training sketch (1.5 px pen) -> true contours: {baseline:.2} px");
    println!(
        "render_label_map {SIZE}px, {} instances: {per_call:.3} ms",
        map.instances().len()
    );

    println!(
        "{:<22} {:>6} {:>6} {:>6} {:>6}  configured",
        "style", "mean", "min", "max", "sd1"
    );
    for (style_index, style) in drawer_styles().iter().enumerate() {
        let mut batch_means = Vec::new();
        let mut singles = Vec::new();
        for batch in 0..batches {
            let mut sum = 0.0;
            for i in 0..SKETCHES_PER_BATCH {
                let index = batch * SKETCHES_PER_BATCH + i;
                let map = synthetic_pharynx(SIZE, &mut rng_from_seed(derive_seed(77, 0, index)));
                let mut rng = rng_from_seed(derive_seed(77, 1 + style_index as u64, index));
                let sketch = simulate_freehand_label_map(&map, style, &mut rng)?;
                let d = chamfer_to_true_contours(&sketch.image, &map)?.unwrap_or(f32::NAN);
                singles.push(d);
                sum += d;
                if let (Some(dir), 0) = (&out_dir, index) {
                    std::fs::create_dir_all(dir)?;
                    let name = style.name.replace(' ', "_");
                    sketch
                        .image
                        .save(dir.join(format!("{style_index:02}_{name}.png")))?;
                    render_label_map(&map, &config)?.save(dir.join("true.png"))?;
                }
            }
            batch_means.push(sum / SKETCHES_PER_BATCH as f32);
        }
        let mean = batch_means.iter().sum::<f32>() / batch_means.len() as f32;
        let min = batch_means.iter().copied().fold(f32::INFINITY, f32::min);
        let max = batch_means.iter().copied().fold(0.0, f32::max);
        let single_mean = singles.iter().sum::<f32>() / singles.len() as f32;
        let sd = (singles
            .iter()
            .map(|d| (d - single_mean).powi(2))
            .sum::<f32>()
            / singles.len() as f32)
            .sqrt();
        println!(
            "{:<22} {mean:>6.2} {min:>6.2} {max:>6.2} {sd:>6.2}  {:?}",
            style.name, style.expected_chamfer
        );
    }
    Ok(())
}
