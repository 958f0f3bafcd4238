//! DICE of the structure net (`refiner structure-net`) on folders of generated images against
//! the references' label maps: how the refiner's structure loss sees an output, to compare
//! with the DICE that S gives the same images (`sketch2medi evaluate --metrics dice`).
//!
//! ```text
//! cargo run --release --example structure_dice -- weights/structure_phantom64 MASKS DIR [DIR ...]
//! ```
//! `MASKS` holds `<name>.png` label maps (`class_id * 16 + instance`); every `DIR` the generated
//! images under the same names. Prints per-class DICE pooled over pixels and their mean.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use hyperstyle_refiner::StructureBundle;
use hyperstyle_refiner::structure::{hard_dice_counts, label_classes};

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: structure_dice STRUCTURE_DIR MASKS_DIR GENERATED_DIR [GENERATED_DIR ...]"
    );
    let dev = Device::Cpu;
    let net = StructureBundle::load(&args[0], &dev)?.net;
    for dir in &args[2..] {
        let mut sums = [(0.0, 0.0); 4];
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "png"))
            .collect();
        names.sort();
        anyhow::ensure!(!names.is_empty(), "{}: no PNG images", dir.display());
        for path in &names {
            let (image, classes) = load_pair(path, &args[1], &dev)?;
            let counts = hard_dice_counts(&net.forward(&image)?, &classes)?;
            for (s, c) in sums.iter_mut().zip(counts) {
                s.0 += c.0;
                s.1 += c.1;
            }
        }
        let dice: Vec<f64> = sums.iter().map(|(i, d)| 2.0 * i / d.max(1.0)).collect();
        println!(
            "{}: uvula {:.4} wall {:.4} tonsil {:.4} tongue {:.4} mean {:.4} ({} images)",
            dir.display(),
            dice[0],
            dice[1],
            dice[2],
            dice[3],
            dice.iter().sum::<f64>() / 4.0,
            names.len()
        );
    }
    Ok(())
}

/// The generated image `[1, 3, H, W]` and the class indices `[1, H, W]` of its reference.
fn load_pair(path: &Path, masks: &Path, dev: &Device) -> anyhow::Result<(Tensor, Tensor)> {
    let image = s2m_core::imageio::load_rgb(path)?;
    let name = path.file_name().context("file name")?;
    let mask_path = masks.join(name);
    let mask = image::open(&mask_path)
        .with_context(|| format!("reading {}", mask_path.display()))?
        .to_luma8();
    anyhow::ensure!(
        mask.dimensions() == image.dimensions(),
        "{}: label map {:?} vs image {:?}",
        mask_path.display(),
        mask.dimensions(),
        image.dimensions()
    );
    let (w, h) = mask.dimensions();
    let labels = Tensor::from_vec(mask.into_raw(), (1, h as usize, w as usize), dev)?;
    let image = s2m_core::imageio::rgb_to_tensor(&image, dev)?.unsqueeze(0)?;
    Ok((image, label_classes(&labels)?))
}
