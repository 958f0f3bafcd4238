//! Generate a synthetic throat image from a free-hand sketch with the shipped pipeline
//! (encoder E, StyleGAN2 generator G, refiner H; `weights/sketch2medi_phantom64`).
//!
//! ```text
//! cargo run --release --example generate -- [SKETCH] [OUT]
//! cargo run --release --example generate -- examples/sketches/freehand_careful.png out/throat.png
//! ```
//!
//! The PNG carries provenance text chunks (weights' SHA-256, "synthetic image" note).
//! Synthetic images only; not for diagnosis.

use sketch2medi::{Sketch2MedI, load_sketch};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sketch_path = args
        .next()
        .unwrap_or_else(|| "examples/sketches/freehand_careful.png".into());
    let out_path = args.next().unwrap_or_else(|| "throat.png".into());

    let model = Sketch2MedI::load("weights/sketch2medi_phantom64")?;
    let sketch = load_sketch(&sketch_path)?; // any PNG/JPEG, any size or colour mode
    let generation = model.generate(&sketch)?; // E -> w -> G, then T refinements by H
    for warning in &generation.warnings {
        println!("{sketch_path}: {warning}");
    }
    model.save_png(&generation, &out_path)?; // atomic write, with provenance chunks
    println!("{sketch_path} -> {out_path}");
    Ok(())
}
