//! Redraws the free-hand references of a phantom build on another canvas and with another pen:
//! the same anatomy, drawer style and seed as `phantom build --seed SEED`, so the drawings pair
//! with that build's references (`ref000000.png`, ...).
//!
//! ```text
//! cargo run --release --example redraw_freehand -- SEED COUNT CANVAS PEN_PX OUT_DIR
//! cargo run --release --example redraw_freehand -- 7 99 512 2 /tmp/thin512
//! ```
//! `PEN_PX` is the pen width on the CANVAS-px page (a 2 px pen on a 512 px drawing UI).

use anyhow::Context;
use sketch2medi::pharynx_phantom::layout::reference_id;
use sketch2medi::pharynx_phantom::sample::{Stream, draw_freehand, generate};
use sketch2medi::sketch_synth::{SketchConfig, drawer_styles};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seed, count, canvas, pen, out] = args.as_slice() else {
        anyhow::bail!("usage: redraw_freehand SEED COUNT CANVAS PEN_PX OUT_DIR");
    };
    let (seed, count): (u64, usize) = (seed.parse()?, count.parse()?);
    let (canvas, pen): (u32, f32) = (canvas.parse()?, pen.parse()?);
    std::fs::create_dir_all(out)?;
    let styles = drawer_styles();
    for i in 0..count {
        let sample = generate(seed, Stream::Reference, i, canvas, &SketchConfig::default())?;
        let mut style = styles[i % styles.len()].clone();
        // Style widths are given at 256 px and scaled by canvas / 256 when drawn.
        style.stroke_width_px = pen * 256.0 / canvas as f32;
        let (sketch, ..) = draw_freehand(&sample, &style, seed, i)?;
        let path = std::path::Path::new(out).join(format!("{}.png", reference_id(i)));
        sketch.save(&path).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote {count} sketches ({canvas} px canvas, {pen} px pen) to {out}");
    Ok(())
}
