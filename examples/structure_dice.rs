//! DICE of the structure net (`refiner structure-net`) on folders of generated images against
//! the references' label maps: how the refiner's structure loss sees an output, to compare
//! with the DICE that S gives the same images (`sketch2medi evaluate --metrics dice`).
//!
//! ```text
//! cargo run --release --example structure_dice -- weights/structure_phantom64 MASKS DIR [DIR ...]
//! ```
//! `MASKS` holds the references' label maps (`class_id * 16 + instance`); every `DIR` the
//! generated images under the same file stems. Prints per-class DICE pooled over pixels and
//! their mean.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::{Device, Tensor};
use metrics::dice::{load_label_map, pair_by_stem};
use metrics::features::image_files;
use refiner_aids::StructureBundle;
use refiner_aids::structure::{HeldOutDice, hard_dice_counts, label_classes};

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: structure_dice STRUCTURE_DIR MASKS_DIR GENERATED_DIR [GENERATED_DIR ...]"
    );
    let dev = Device::Cpu;
    let net = StructureBundle::load(&args[0], &dev)?.net;
    let masks = image_files(&args[1])?;
    for dir in &args[2..] {
        let pairs = pair_by_stem(&image_files(dir)?, &masks, &dir.display().to_string())?;
        anyhow::ensure!(!pairs.is_empty(), "{}: no images", dir.display());
        let mut sums = [(0.0, 0.0); 4];
        for (image_path, mask_path) in &pairs {
            let image = s2m_core::imageio::load_rgb(image_path)?;
            let labels = load_label_map(mask_path)?;
            anyhow::ensure!(
                (labels.width(), labels.height()) == image.dimensions(),
                "{}: label map {}x{} vs image {:?}",
                mask_path.display(),
                labels.width(),
                labels.height(),
                image.dimensions()
            );
            let (w, h) = image.dimensions();
            let labels = Tensor::from_slice(labels.as_raw(), (1, h as usize, w as usize), &dev)?;
            let image = s2m_core::imageio::rgb_to_tensor(&image, &dev)?.unsqueeze(0)?;
            let counts = hard_dice_counts(&net.forward(&image)?, &label_classes(&labels)?)
                .with_context(|| format!("{}", image_path.display()))?;
            for (s, c) in sums.iter_mut().zip(counts) {
                s.0 += c.0;
                s.1 += c.1;
            }
        }
        let d = HeldOutDice::from_counts(dir.display().to_string(), &sums);
        println!(
            "{}: uvula {:.4} wall {:.4} tonsil {:.4} tongue {:.4} mean {:.4} ({} images)",
            d.data,
            d.per_class[0],
            d.per_class[1],
            d.per_class[2],
            d.per_class[3],
            d.mean,
            pairs.len()
        );
    }
    Ok(())
}
