//! Measures each drawer style's mean chamfer distance on phantom references, in batches of
//! 16 sketches, to calibrate `DrawerStyle::expected_chamfer`:
//! `cargo run --release -p pharynx-phantom --example calibrate_freehand -- [batches] [size]`.
use pharynx_phantom::sample::draw_freehand;
use pharynx_phantom::{Stream, generate};
use rayon::prelude::*;
use sketch_synth::{SketchConfig, drawer_styles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let batches: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let size: u32 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let cfg = SketchConfig::default();
    println!("| style | mean | batch min | batch max | configured |");
    println!("|---|---|---|---|---|");
    for (k, style) in drawer_styles().iter().enumerate() {
        let means: Vec<f32> = (0..batches)
            .into_par_iter()
            .map(|b| {
                let v: Vec<f32> = (0..16)
                    .map(|i| {
                        let idx = b * 16 + i;
                        let s = generate(b as u64, Stream::Reference, idx, size, &cfg).unwrap();
                        draw_freehand(&s, style, 1000 + k as u64, idx)
                            .unwrap()
                            .3
                            .unwrap()
                    })
                    .collect();
                v.iter().sum::<f32>() / v.len() as f32
            })
            .collect();
        let mean = means.iter().sum::<f32>() / means.len() as f32;
        let lo = means.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = means.iter().cloned().fold(0.0, f32::max);
        println!(
            "| {} | {mean:.2} | {lo:.2} | {hi:.2} | {:.1}-{:.1} |",
            style.name, style.expected_chamfer[0], style.expected_chamfer[1]
        );
    }
    Ok(())
}
