//! Wall-clock split of one SOLOv2 training step (forward, loss, backward) and of inference,
//! for choosing the CPU preset: `cargo run --release -p sketch-synth --example solov2_timing
//! -- [preset] [input_size] [batch]`.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use sketch_synth::solov2::{GtInstance, SoloV2, SoloV2Config, build_targets, solo_loss};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("phantom_r18", |s| s.as_str());
    let mut cfg = SoloV2Config::preset(preset)?;
    if let Some(s) = args.get(2) {
        cfg = cfg.with_input_size(s.parse()?);
    }
    let batch: usize = args.get(3).map_or(Ok(8), |s| s.parse())?;
    let dev = Device::Cpu;
    let (model, _vars) =
        s2m_core::init::seeded_var_map(0, DType::F32, &dev, |vb| SoloV2::new(cfg.clone(), vb))?;
    let s = cfg.input_size;
    let x = Tensor::from_vec(
        s2m_core::rng::randn_vec(&mut s2m_core::rng::rng_from_seed(1), batch * 3 * s * s),
        (batch, 3, s, s),
        &dev,
    )?;
    // One square instance per class.
    let gts: Vec<GtInstance> = (0..4)
        .map(|k| {
            let mut mask = vec![0u8; s * s];
            let (y0, x0, w) = (s / 8 + k * s / 5, s / 8 + k * s / 6, s / 4);
            for y in y0..(y0 + w).min(s) {
                for x in x0..(x0 + w).min(s) {
                    mask[y * s + x] = 1;
                }
            }
            GtInstance { label: k, mask }
        })
        .collect();
    let targets: Vec<_> = (0..batch)
        .map(|_| build_targets(&gts, (s, s), &cfg))
        .collect::<Result<_, _>>()?;
    for round in 0..3 {
        let t0 = Instant::now();
        let out = model.forward_t(&x, true)?;
        let t1 = Instant::now();
        let loss = solo_loss(&out, &targets, &cfg)?;
        let t2 = Instant::now();
        let grads = loss.total.backward()?;
        let t3 = Instant::now();
        drop(grads);
        let t4 = Instant::now();
        let _ = model.forward(&x)?;
        let t5 = Instant::now();
        println!(
            "round {round}: {preset} {s} px batch {batch}: forward {:.3} s, loss {:.3} s, backward {:.3} s, eval forward {:.3} s",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t5 - t4).as_secs_f64()
        );
    }
    Ok(())
}
