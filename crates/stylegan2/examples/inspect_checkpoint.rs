//! Opens a converted checkpoint, verifies it and renders one image from a seeded z:
//! `cargo run -p stylegan2 --example inspect_checkpoint -- model.safetensors [prefix]`.

use candle_core::{DType, Device, Tensor};
use s2m_core::rng::{randn_vec, rng_from_seed};
use stylegan2::weights::Checkpoint;
use stylegan2::{GeneratorInput, Part};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: inspect_checkpoint FILE [prefix]")?;
    let prefix = args.next().unwrap_or_else(|| "g_ema".to_string());
    let ckpt = Checkpoint::open(&path)?;
    println!("config: {:?}", ckpt.config());
    println!("{} tensors", ckpt.shapes().len());
    ckpt.verify(Part::Generator, &prefix)?;
    let dev = Device::Cpu;
    let g = ckpt.generator(&prefix, DType::F32, &dev)?;
    let s = ckpt.config().style_dim;
    let z = Tensor::from_vec(randn_vec(&mut rng_from_seed(0), s), (1, s), &dev)?;
    let mut input = GeneratorInput::z(vec![z]);
    if let Some(avg) = ckpt.latent_avg(DType::F32, &dev)? {
        input = input.with_truncation(0.7, avg);
    }
    let img = g.forward(&input)?.image;
    println!(
        "image {:?}, mean {:.4}, std {:.4}",
        img.dims(),
        img.mean_all()?.to_scalar::<f32>()?,
        img.flatten_all()?.var(0)?.sqrt()?.to_scalar::<f32>()?
    );
    Ok(())
}
