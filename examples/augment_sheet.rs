//! A contact sheet of the training-sketch augmentation (`sketch_synth::augment`): for the first
//! images of a phantom build's `train` split, the image, its own sketch (normalised), and
//! augmented sketches from successive steps' streams, one row per image.
//!
//! ```text
//! cargo run --release --example augment_sheet -- --data data/phantom64 --out augment.png
//! ```

use std::path::PathBuf;

use clap::Parser;
use image::{DynamicImage, GrayImage};
use s2m_core::LabelMap;
use s2m_core::rng::{derive_seed, rng_from_seed};
use sketch2medi::sketch_synth::augment::{AugmentConfig, augment_sketch};
use sketch2medi::sketch_synth::normalise::{NormaliseConfig, normalise_sketch};

#[derive(Parser)]
struct Args {
    /// A phantom build.
    #[arg(long)]
    data: PathBuf,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Rows (training images).
    #[arg(long, default_value_t = 8)]
    rows: usize,
    /// Augmented sketches per row.
    #[arg(long, default_value_t = 8)]
    draws: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ids = std::fs::read_to_string(args.data.join("splits/train.txt"))?;
    let size = 64;
    let cfg = AugmentConfig {
        normalise: NormaliseConfig::for_size(size),
        ..AugmentConfig::default()
    };
    let mut tiles = Vec::new();
    for (row, id) in ids.lines().take(args.rows).enumerate() {
        let image =
            s2m_core::imageio::load_rgb(args.data.join("images").join(format!("{id}.png")))?;
        let own = image::open(args.data.join("sketches").join(format!("{id}.png")))?.to_luma8();
        let labels = LabelMap::from_gray(
            image::open(args.data.join("masks").join(format!("{id}.png")))?.to_luma8(),
            id,
        )?;
        tiles.push(image);
        let gray = |g: GrayImage| DynamicImage::ImageLuma8(g).to_rgb8();
        tiles.push(gray(normalise_sketch(&own, size, &cfg.normalise)?));
        for k in 0..args.draws {
            let seed = derive_seed(derive_seed(args.seed, 0xA06, k as u64), 0, row as u64);
            let (sketch, _) = augment_sketch(&labels, &own, size, &cfg, &mut rng_from_seed(seed))?;
            tiles.push(gray(sketch));
        }
    }
    let sheet = s2m_core::imageio::image_grid(&tiles, args.draws + 2, 2)?;
    sheet.save(&args.out)?;
    println!("{}", args.out.display());
    Ok(())
}
