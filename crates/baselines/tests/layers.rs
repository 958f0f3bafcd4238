//! Every op of `baselines::layers` against central differences in f64 (candle's backward for
//! some ops is missing or wrong, see the candle notes): conv2d with zero padding (stride 2 and
//! 1, kernel 4), conv2d after a reflection pad, conv_transpose2d 4/2/1 and 3/2/1 with
//! output_padding 1, BatchNorm2d in train mode, InstanceNorm2d, dropout with a given mask,
//! LeakyReLU 0.2 and Tanh; plus the values of the reflection pad and the running-statistics
//! update of BatchNorm.

use std::collections::HashMap;

use baselines::layers::{
    BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, DropoutMode, NormMode, Padding, instance_norm2d,
    leaky_relu_02, reflection_pad2d, tanh,
};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, VarBuilder};
use s2m_train::gradcheck::check_grads;

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn randn64(shape: &[usize], seed: u64) -> Tensor {
    s2m_core::testing::randn(shape, seed)
        .to_dtype(DType::F64)
        .unwrap()
}

/// A VarBuilder over the given tensors (so the gradient check can perturb them).
fn vb_of(named: &[(&str, &Tensor)]) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = named
        .iter()
        .map(|(n, t)| (n.to_string(), (*t).clone()))
        .collect();
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

/// `sum(y * r)` with a fixed random `r`, so every output element matters differently.
fn weighted_sum(y: &Tensor, seed: u64) -> candle_core::Result<Tensor> {
    let r = randn64(y.dims(), seed);
    (y * r)?.sum_all()
}

fn assert_all(checks: Vec<s2m_train::gradcheck::GradCheck>, what: &str) {
    for (i, c) in checks.iter().enumerate() {
        assert!(c.has_grad, "{what}: input {i} has no gradient");
        assert!(
            c.passes(TOL),
            "{what}: input {i} rel err {:e} (worst index {})",
            c.max_rel_err,
            c.worst_index
        );
    }
}

fn conv_check(padding: Padding, stride: usize, k: usize, size: usize, what: &str) {
    let x = randn64(&[2, 2, size, size], 1);
    let w = (randn64(&[3, 2, k, k], 2) * 0.3).unwrap();
    let b = randn64(&[3], 3);
    let f = |ts: &[Tensor]| {
        let conv = Conv2d::new(
            2,
            3,
            k,
            stride,
            padding,
            true,
            Init::Const(0.0),
            vb_of(&[("weight", &ts[1]), ("bias", &ts[2])]),
        )
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        weighted_sum(&conv.forward(&ts[0])?, 4)
    };
    assert_all(check_grads(f, &[x, w, b], EPS).unwrap(), what);
}

#[test]
fn conv2d_zero_padding_stride_2_and_1() {
    conv_check(Padding::Zero(1), 2, 4, 6, "conv 4/2/1");
    conv_check(Padding::Zero(1), 1, 4, 5, "conv 4/1/1");
}

#[test]
fn conv2d_after_reflection_pad() {
    conv_check(Padding::Reflect(2), 1, 3, 5, "reflect 2 + conv 3/1/0");
    conv_check(Padding::Reflect(1), 2, 3, 6, "reflect 1 + conv 3/2/0");
}

#[test]
fn reflection_pad_values_match_pytorch() {
    // nn.ReflectionPad2d(2) on [[0, 1, 2]]: rows/cols mirror without repeating the edge.
    let x = Tensor::new(
        &[[[[0f32, 1., 2.], [3., 4., 5.], [6., 7., 8.]]]],
        &Device::Cpu,
    )
    .unwrap();
    let y = reflection_pad2d(&x, 2).unwrap();
    assert_eq!(y.dims(), &[1, 1, 7, 7]);
    let row0: Vec<f32> = y
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .get(2)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(row0, vec![2., 1., 0., 1., 2., 1., 0.]);
    let col0: Vec<f32> = y
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .narrow(1, 2, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(col0, vec![6., 3., 0., 3., 6., 3., 0.]);
    assert!(reflection_pad2d(&x, 3).is_err(), "PyTorch needs p < H");
}

/// Gradient check of `ConvTranspose2d(3 -> 2, k, stride 2, padding 1, output_padding)` on a
/// `[2, 3, size, size]` input (output side `out`), inputs drawn from `seed..seed + 4`.
fn conv_transpose_check(
    k: usize,
    output_padding: usize,
    size: usize,
    out: usize,
    seed: u64,
    what: &str,
) {
    let x = randn64(&[2, 3, size, size], seed);
    let w = (randn64(&[3, 2, k, k], seed + 1) * 0.3).unwrap();
    let b = randn64(&[2], seed + 2);
    let f = |ts: &[Tensor]| {
        let conv = ConvTranspose2d::new(
            3,
            2,
            k,
            2,
            1,
            output_padding,
            true,
            Init::Const(0.0),
            vb_of(&[("weight", &ts[1]), ("bias", &ts[2])]),
        )
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let y = conv.forward(&ts[0])?;
        assert_eq!(y.dims(), &[2, 2, out, out]);
        weighted_sum(&y, seed + 3)
    };
    assert_all(check_grads(f, &[x, w, b], EPS).unwrap(), what);
}

#[test]
fn conv_transpose2d_4_2_1() {
    conv_transpose_check(4, 0, 3, 6, 5, "convT 4/2/1");
}

/// CycleGAN's up-convs: ConvTranspose2d(3, stride 2, padding 1, output_padding 1), which doubles
/// the side exactly (candle's backward ignores output_padding; the shapes still work out and the
/// gradients must match central differences, the extra row/column included).
#[test]
fn conv_transpose2d_3_2_1_output_padding_1() {
    conv_transpose_check(3, 1, 4, 8, 15, "convT 3/2/1 output_padding 1");
}

#[test]
fn batch_norm_train_mode_gradients_and_running_stats() {
    let x = ((randn64(&[2, 3, 3, 3], 9) * 2.0).unwrap() + 0.5).unwrap();
    let w = ((randn64(&[3], 10) * 0.2).unwrap() + 1.0).unwrap();
    let b = randn64(&[3], 11);
    let rm = Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap();
    let rv = Tensor::ones(3, DType::F64, &Device::Cpu).unwrap();
    let nbt = Tensor::zeros((), DType::I64, &Device::Cpu).unwrap();
    let f = |ts: &[Tensor]| {
        let vb = vb_of(&[
            ("weight", &ts[1]),
            ("bias", &ts[2]),
            ("running_mean", &rm),
            ("running_var", &rv),
            ("num_batches_tracked", &nbt),
        ]);
        let bn = BatchNorm2d::new(3, vb).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let y = bn
            .forward(&ts[0], NormMode::Train)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        weighted_sum(&y, 12)
    };
    assert_all(
        check_grads(f, &[x.clone(), w, b], EPS).unwrap(),
        "BatchNorm2d train",
    );

    // Running statistics: momentum 0.1, unbiased variance, as PyTorch.
    let (bn, _) =
        s2m_core::init::seeded_var_map(0, DType::F64, &Device::Cpu, |vb| BatchNorm2d::new(3, vb))
            .unwrap();
    bn.forward(&x, NormMode::Train).unwrap();
    let xt = x.transpose(0, 1).unwrap().flatten_from(1).unwrap(); // [C, N]
    let n = xt.dim(1).unwrap() as f64;
    let mean = xt.mean_keepdim(1).unwrap();
    let var_unbiased = (xt
        .broadcast_sub(&mean)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_keepdim(1)
        .unwrap()
        / (n - 1.0))
        .unwrap();
    let want_rm = (mean.flatten_all().unwrap() * 0.1).unwrap();
    let want_rv = ((var_unbiased.flatten_all().unwrap() * 0.1).unwrap() + 0.9).unwrap();
    let d = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert!(d(bn.running_mean(), &want_rm) < 1e-12);
    assert!(d(bn.running_var(), &want_rv) < 1e-12);
    assert_eq!(bn.num_batches_tracked().unwrap(), 1);
    // Eval mode uses them and changes nothing.
    bn.forward(&x, NormMode::Eval).unwrap();
    assert_eq!(bn.num_batches_tracked().unwrap(), 1);
}

#[test]
fn instance_norm_gradients_and_statistics() {
    let x = ((randn64(&[2, 3, 3, 3], 13) * 3.0).unwrap() + 1.0).unwrap();
    assert_all(
        check_grads(
            |ts| weighted_sum(&instance_norm2d(&ts[0])?, 14),
            std::slice::from_ref(&x),
            EPS,
        )
        .unwrap(),
        "InstanceNorm2d",
    );
    // Per (sample, channel): mean 0 and biased variance 1 - eps/(var + eps).
    let y = instance_norm2d(&x).unwrap().flatten_from(2).unwrap();
    let mean = y.mean_keepdim(2).unwrap().abs().unwrap().max_all().unwrap();
    assert!(mean.to_scalar::<f64>().unwrap() < 1e-12);
}

#[test]
fn dropout_with_a_given_mask_and_activations() {
    let x = randn64(&[1, 2, 2, 2], 15);
    let mask = Tensor::new(&[1f64, 0., 1., 1., 0., 0., 1., 0.], &Device::Cpu)
        .unwrap()
        .reshape((1, 2, 2, 2))
        .unwrap();
    let mut masks = HashMap::new();
    masks.insert("d".to_string(), mask.clone());
    let drop = Dropout::new(0.5, "d").unwrap();
    let f = |ts: &[Tensor]| {
        let y = drop
            .forward(&ts[0], &mut DropoutMode::Given(&masks))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        weighted_sum(&tanh(&leaky_relu_02(&y)?)?, 16)
    };
    assert_all(
        check_grads(f, std::slice::from_ref(&x), EPS).unwrap(),
        "dropout/lrelu/tanh",
    );
    let y = drop.forward(&x, &mut DropoutMode::Given(&masks)).unwrap();
    let want = ((&x * &mask).unwrap() * 2.0).unwrap();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        want.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    );
}

#[test]
fn seeded_dropout_is_reproducible_and_keeps_half() {
    let x = Tensor::ones((4, 8, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let drop = Dropout::new(0.5, "d").unwrap();
    let run = |seed| {
        let mut rng = s2m_core::rng::rng_from_seed(seed);
        drop.forward(&x, &mut DropoutMode::Seeded(&mut rng))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    assert!(a.iter().all(|v| *v == 0.0 || *v == 2.0));
    let kept = a.iter().filter(|v| **v > 0.0).count() as f64 / a.len() as f64;
    assert!((kept - 0.5).abs() < 0.03, "kept {kept}");
    let off = drop.forward(&x, &mut DropoutMode::Off).unwrap();
    assert_eq!(
        off.sum_all().unwrap().to_scalar::<f32>().unwrap(),
        x.elem_count() as f32
    );
}
