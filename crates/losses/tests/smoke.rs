//! 20-step smoke optimisation: an image (a `Var`, 1x3x32x32, another phantom image plus a
//! deterministic noise pattern) is optimised towards a phantom target with `L_sim`
//! (ST-LPIPS-alex with the shipped weights + L2, no MoCo) and `s2m_train::optim::Adam`.
//! The loss must fall to well under half of its start.
//!
//! The image pairs come from `tests/fixtures/pairs/`, generated (with the reference values) by
//! `.venv/bin/python tools/losses_fixtures.py --phantom /tmp/ph` after
//! `cargo run --release -- phantom build --out /tmp/ph --scale 0.0025 --size 64`.

mod common;

use candle_core::{DType, Device, Var};
use common::{pairs, wave};
use losses::weights::shipped_weights_dir;
use losses::{LpipsNet, Perceptual, SimilarityLoss, StLpips};
use s2m_train::optim::{Adam, AdamConfig};

#[test]
fn similarity_loss_optimisation_decreases() {
    let (refs, _) = pairs(DType::F32);
    let crop = |i: usize| {
        refs.narrow(0, i, 1)
            .unwrap()
            .narrow(2, 16, 32)
            .unwrap()
            .narrow(3, 16, 32)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let target = crop(0);
    let start = (crop(3) + wave(&[1, 3, 32, 32], 0.61, 0.3, DType::F32)).unwrap();
    let st = StLpips::from_dir(
        LpipsNet::Alex,
        &shipped_weights_dir(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let loss = SimilarityLoss::new(Perceptual::StLpips(st), None);
    assert_eq!(loss.notes().len(), 1, "{:?}", loss.notes());
    let x = Var::from_tensor(&start).unwrap();
    let mut opt = Adam::new(
        vec![("image".to_string(), x.clone())],
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    )
    .unwrap();
    let mut history = Vec::new();
    for _ in 0..20 {
        let terms = loss.forward(x.as_tensor(), &target).unwrap();
        let (total, l2, p, moco) = terms.values().unwrap();
        assert!(moco.is_none());
        assert!((total - (l2 + 0.8 * p)).abs() < 1e-5 * total.max(1.0));
        history.push((total, l2, p));
        let grads = terms.total.backward().unwrap();
        opt.step(&grads).unwrap();
    }
    let last = loss
        .forward(x.as_tensor(), &target)
        .unwrap()
        .values()
        .unwrap();
    for (i, (t, l2, p)) in history.iter().enumerate() {
        println!("step {i:2}: L_sim {t:.5} (L2 {l2:.5}, ST-LPIPS {p:.5})");
    }
    println!(
        "final  : L_sim {:.5} (L2 {:.5}, ST-LPIPS {:.5})",
        last.0, last.1, last.2
    );
    let first = history[0];
    assert!(last.0 < 0.4 * first.0, "L_sim {} -> {}", first.0, last.0);
    assert!(last.1 < first.1 && last.2 < first.2, "both terms must fall");
}
