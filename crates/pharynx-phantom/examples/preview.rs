//! Renders a grid of phantoms for a quick look: `cargo run --release -p pharynx-phantom --example preview -- out.png [seed] [size]`.
use pharynx_phantom::{PhantomParams, render};
use s2m_core::rng::{derive_seed, rng_from_seed};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).cloned().unwrap_or_else(|| "preview.png".into());
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let size: u32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let (cols, rows) = (4u32, 3u32);
    let mut grid = image::RgbImage::new(cols * size, rows * size);
    let t = std::time::Instant::now();
    for i in 0..cols * rows {
        let mut rng = rng_from_seed(derive_seed(seed, 0, i as u64));
        let p = render(&PhantomParams::sample(&mut rng), size)?;
        image::imageops::replace(
            &mut grid,
            &p.image,
            ((i % cols) * size) as i64,
            ((i / cols) * size) as i64,
        );
    }
    eprintln!(
        "{:.1} ms/image",
        t.elapsed().as_secs_f64() * 1000.0 / (cols * rows) as f64
    );
    grid.save(&out)?;
    Ok(())
}
