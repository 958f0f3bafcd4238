//! Times the generator forward of a preset: `cargo run --release -p stylegan2 --example
//! forward_timing -- [paper_256|phantom_64] [batch] [repeats]`.
use candle_core::{DType, Device, Tensor};
use s2m_core::rng::{randn_vec, rng_from_seed};
use stylegan2::init::init_generator_frozen;
use stylegan2::{GeneratorInput, NoiseMode, StyleGan2Config};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let cfg = match args.get(1).map(String::as_str).unwrap_or("paper_256") {
        "phantom_64" => StyleGan2Config::phantom_64(),
        _ => StyleGan2Config::paper_256(),
    };
    let batch: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let repeats: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let mut rng = rng_from_seed(0);
    let g = init_generator_frozen(&cfg, &mut rng, DType::F32, &Device::Cpu)?;
    let z = Tensor::from_vec(
        randn_vec(&mut rng, batch * cfg.style_dim),
        (batch, cfg.style_dim),
        &Device::Cpu,
    )?;
    for i in 0..repeats {
        let t = std::time::Instant::now();
        let out = g.forward(&GeneratorInput::z(vec![z.clone()]).with_noise(NoiseMode::Const))?;
        let _ = out.image.sum_all()?.to_scalar::<f32>()?;
        println!("run {i}: {:.3} s", t.elapsed().as_secs_f64());
    }
    Ok(())
}
