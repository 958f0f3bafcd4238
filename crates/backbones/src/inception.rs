//! pytorch-fid's FID Inception-v3 (`pytorch_fid.inception.fid_inception_v3` wrapped by
//! `InceptionV3`), with torchvision `Inception3` parameter names (`Conv2d_1a_3x3.conv.weight`,
//! `Conv2d_1a_3x3.bn.{weight,bias,running_mean,running_var}`, `Mixed_5b.branch1x1.conv.weight`,
//! ...), which is how `pt_inception-2015-12-05-6726825d.pth` is keyed (its `fc.*` is ignored).
//!
//! Differences from torchvision's Inception3 that the FID network needs (TF graph quirks):
//! - Mixed_5b/5c/5d (`FIDInceptionA`), Mixed_6b..6e (`FIDInceptionC`) and Mixed_7b
//!   (`FIDInceptionE_1`): the pool branch is a 3x3/s1/p1 average pool with
//!   `count_include_pad=False`;
//! - Mixed_7c (`FIDInceptionE_2`): the pool branch is a 3x3/s1/p1 **max** pool;
//! - BasicConv2d = conv (no bias) + BN (eps 0.001) + ReLU.
//!
//! Input handling as pytorch-fid's `InceptionV3(resize_input=True, normalize_input=True)`: the
//! input is in [0, 1]; it is resized to 299x299 with bilinear interpolation
//! (`align_corners=False`, no antialias) and mapped to [-1, 1] by 2x - 1.
//!
//! Taps: `block0` (64 ch, 73x73 for a 299 input, after the first max pool), `block1` (192 ch,
//! 35x35), `block2` (768 ch, 17x17), `pool3` (`[B, 2048]`, the FID feature).
//!
//! Parity: `tests/parity.rs` against the pytorch-fid 0.3.0 package itself (its `InceptionV3`
//! blocks 0..3; only the weights download stubbed), fixture from
//! `tools/fid_inception_fixture.py`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Result, check_nchw};
use crate::features::FeatureMaps;
use crate::norm::BatchNorm2d;
use crate::ops;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FidInceptionConfig {
    /// Bilinear resize to 299x299 first (pytorch-fid default `resize_input=True`).
    pub resize_input: bool,
    /// Map [0, 1] input to [-1, 1] (pytorch-fid default `normalize_input=True`).
    pub normalize_input: bool,
}

impl Default for FidInceptionConfig {
    fn default() -> Self {
        Self {
            resize_input: true,
            normalize_input: true,
        }
    }
}

/// torchvision `BasicConv2d` with a possibly rectangular kernel and padding.
#[derive(Debug, Clone)]
pub struct BasicConv2d {
    weight: Tensor,
    bn: BatchNorm2d,
    stride: usize,
    pad: (usize, usize),
}

impl BasicConv2d {
    pub fn new(
        cin: usize,
        cout: usize,
        k: (usize, usize),
        stride: usize,
        pad: (usize, usize),
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.pp("conv").get((cout, cin, k.0, k.1), "weight")?,
            bn: BatchNorm2d::new(cout, 1e-3, vb.pp("bn"))?,
            stride,
            pad,
        })
    }

    fn sq(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::new(cin, cout, (k, k), stride, (pad, pad), vb)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's conv2d takes one padding for both axes: pad rectangular cases explicitly.
        let (ph, pw) = self.pad;
        let y = if ph == pw {
            x.conv2d(&self.weight, ph, self.stride, 1, 1)?
        } else {
            x.pad_with_zeros(2, ph, ph)?
                .pad_with_zeros(3, pw, pw)?
                .conv2d(&self.weight, 0, self.stride, 1, 1)?
        };
        Ok(self.bn.forward_eval(&y)?.relu()?)
    }
}

fn seq(convs: &[BasicConv2d], x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for c in convs {
        h = c.forward(&h)?;
    }
    Ok(h)
}

/// `FIDInceptionA`.
#[derive(Debug, Clone)]
struct InceptionA {
    b1: BasicConv2d,
    b5: [BasicConv2d; 2],
    b3: [BasicConv2d; 3],
    pool: BasicConv2d,
}

impl InceptionA {
    fn new(cin: usize, pool_features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            b1: BasicConv2d::sq(cin, 64, 1, 1, 0, vb.pp("branch1x1"))?,
            b5: [
                BasicConv2d::sq(cin, 48, 1, 1, 0, vb.pp("branch5x5_1"))?,
                BasicConv2d::sq(48, 64, 5, 1, 2, vb.pp("branch5x5_2"))?,
            ],
            b3: [
                BasicConv2d::sq(cin, 64, 1, 1, 0, vb.pp("branch3x3dbl_1"))?,
                BasicConv2d::sq(64, 96, 3, 1, 1, vb.pp("branch3x3dbl_2"))?,
                BasicConv2d::sq(96, 96, 3, 1, 1, vb.pp("branch3x3dbl_3"))?,
            ],
            pool: BasicConv2d::sq(cin, pool_features, 1, 1, 0, vb.pp("branch_pool"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.pool.forward(&ops::avg_pool2d(x, 3, 1, 1, false)?)?;
        Ok(Tensor::cat(
            &[
                &self.b1.forward(x)?,
                &seq(&self.b5, x)?,
                &seq(&self.b3, x)?,
                &p,
            ],
            1,
        )?)
    }
}

/// torchvision `InceptionB` (Mixed_6a), unchanged in FID.
#[derive(Debug, Clone)]
struct InceptionB {
    b3: BasicConv2d,
    b3dbl: [BasicConv2d; 3],
}

impl InceptionB {
    fn new(cin: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            b3: BasicConv2d::sq(cin, 384, 3, 2, 0, vb.pp("branch3x3"))?,
            b3dbl: [
                BasicConv2d::sq(cin, 64, 1, 1, 0, vb.pp("branch3x3dbl_1"))?,
                BasicConv2d::sq(64, 96, 3, 1, 1, vb.pp("branch3x3dbl_2"))?,
                BasicConv2d::sq(96, 96, 3, 2, 0, vb.pp("branch3x3dbl_3"))?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = ops::max_pool2d(x, 3, 2, 0)?;
        Ok(Tensor::cat(
            &[&self.b3.forward(x)?, &seq(&self.b3dbl, x)?, &p],
            1,
        )?)
    }
}

/// `FIDInceptionC`.
#[derive(Debug, Clone)]
struct InceptionC {
    b1: BasicConv2d,
    b7: [BasicConv2d; 3],
    b7dbl: [BasicConv2d; 5],
    pool: BasicConv2d,
}

impl InceptionC {
    fn new(cin: usize, c7: usize, vb: VarBuilder) -> Result<Self> {
        let row = |a, b, name: &str| BasicConv2d::new(a, b, (1, 7), 1, (0, 3), vb.pp(name));
        let col = |a, b, name: &str| BasicConv2d::new(a, b, (7, 1), 1, (3, 0), vb.pp(name));
        Ok(Self {
            b1: BasicConv2d::sq(cin, 192, 1, 1, 0, vb.pp("branch1x1"))?,
            b7: [
                BasicConv2d::sq(cin, c7, 1, 1, 0, vb.pp("branch7x7_1"))?,
                row(c7, c7, "branch7x7_2")?,
                col(c7, 192, "branch7x7_3")?,
            ],
            b7dbl: [
                BasicConv2d::sq(cin, c7, 1, 1, 0, vb.pp("branch7x7dbl_1"))?,
                col(c7, c7, "branch7x7dbl_2")?,
                row(c7, c7, "branch7x7dbl_3")?,
                col(c7, c7, "branch7x7dbl_4")?,
                row(c7, 192, "branch7x7dbl_5")?,
            ],
            pool: BasicConv2d::sq(cin, 192, 1, 1, 0, vb.pp("branch_pool"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.pool.forward(&ops::avg_pool2d(x, 3, 1, 1, false)?)?;
        Ok(Tensor::cat(
            &[
                &self.b1.forward(x)?,
                &seq(&self.b7, x)?,
                &seq(&self.b7dbl, x)?,
                &p,
            ],
            1,
        )?)
    }
}

/// torchvision `InceptionD` (Mixed_7a), unchanged in FID.
#[derive(Debug, Clone)]
struct InceptionD {
    b3: [BasicConv2d; 2],
    b7: [BasicConv2d; 4],
}

impl InceptionD {
    fn new(cin: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            b3: [
                BasicConv2d::sq(cin, 192, 1, 1, 0, vb.pp("branch3x3_1"))?,
                BasicConv2d::sq(192, 320, 3, 2, 0, vb.pp("branch3x3_2"))?,
            ],
            b7: [
                BasicConv2d::sq(cin, 192, 1, 1, 0, vb.pp("branch7x7x3_1"))?,
                BasicConv2d::new(192, 192, (1, 7), 1, (0, 3), vb.pp("branch7x7x3_2"))?,
                BasicConv2d::new(192, 192, (7, 1), 1, (3, 0), vb.pp("branch7x7x3_3"))?,
                BasicConv2d::sq(192, 192, 3, 2, 0, vb.pp("branch7x7x3_4"))?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = ops::max_pool2d(x, 3, 2, 0)?;
        Ok(Tensor::cat(
            &[&seq(&self.b3, x)?, &seq(&self.b7, x)?, &p],
            1,
        )?)
    }
}

/// `FIDInceptionE_1` (`max_pool == false`) and `FIDInceptionE_2` (`max_pool == true`).
#[derive(Debug, Clone)]
struct InceptionE {
    b1: BasicConv2d,
    b3_1: BasicConv2d,
    b3_2a: BasicConv2d,
    b3_2b: BasicConv2d,
    bd_1: BasicConv2d,
    bd_2: BasicConv2d,
    bd_3a: BasicConv2d,
    bd_3b: BasicConv2d,
    pool: BasicConv2d,
    max_pool: bool,
}

impl InceptionE {
    fn new(cin: usize, max_pool: bool, vb: VarBuilder) -> Result<Self> {
        let row = |a, b, name: &str| BasicConv2d::new(a, b, (1, 3), 1, (0, 1), vb.pp(name));
        let col = |a, b, name: &str| BasicConv2d::new(a, b, (3, 1), 1, (1, 0), vb.pp(name));
        Ok(Self {
            b1: BasicConv2d::sq(cin, 320, 1, 1, 0, vb.pp("branch1x1"))?,
            b3_1: BasicConv2d::sq(cin, 384, 1, 1, 0, vb.pp("branch3x3_1"))?,
            b3_2a: row(384, 384, "branch3x3_2a")?,
            b3_2b: col(384, 384, "branch3x3_2b")?,
            bd_1: BasicConv2d::sq(cin, 448, 1, 1, 0, vb.pp("branch3x3dbl_1"))?,
            bd_2: BasicConv2d::sq(448, 384, 3, 1, 1, vb.pp("branch3x3dbl_2"))?,
            bd_3a: row(384, 384, "branch3x3dbl_3a")?,
            bd_3b: col(384, 384, "branch3x3dbl_3b")?,
            pool: BasicConv2d::sq(cin, 192, 1, 1, 0, vb.pp("branch_pool"))?,
            max_pool,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b3 = self.b3_1.forward(x)?;
        let b3 = Tensor::cat(&[&self.b3_2a.forward(&b3)?, &self.b3_2b.forward(&b3)?], 1)?;
        let bd = self.bd_2.forward(&self.bd_1.forward(x)?)?;
        let bd = Tensor::cat(&[&self.bd_3a.forward(&bd)?, &self.bd_3b.forward(&bd)?], 1)?;
        let p = if self.max_pool {
            ops::max_pool2d(x, 3, 1, 1)?
        } else {
            ops::avg_pool2d(x, 3, 1, 1, false)?
        };
        let p = self.pool.forward(&p)?;
        Ok(Tensor::cat(&[&self.b1.forward(x)?, &b3, &bd, &p], 1)?)
    }
}

/// pytorch-fid's Inception-v3 feature extractor (see the module docs).
#[derive(Debug, Clone)]
pub struct FidInceptionV3 {
    config: FidInceptionConfig,
    stem0: [BasicConv2d; 3],
    stem1: [BasicConv2d; 2],
    mixed5: [InceptionA; 3],
    mixed6a: InceptionB,
    mixed6: [InceptionC; 4],
    mixed7a: InceptionD,
    mixed7: [InceptionE; 2],
}

impl FidInceptionV3 {
    pub fn new(config: FidInceptionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            config,
            stem0: [
                BasicConv2d::sq(3, 32, 3, 2, 0, vb.pp("Conv2d_1a_3x3"))?,
                BasicConv2d::sq(32, 32, 3, 1, 0, vb.pp("Conv2d_2a_3x3"))?,
                BasicConv2d::sq(32, 64, 3, 1, 1, vb.pp("Conv2d_2b_3x3"))?,
            ],
            stem1: [
                BasicConv2d::sq(64, 80, 1, 1, 0, vb.pp("Conv2d_3b_1x1"))?,
                BasicConv2d::sq(80, 192, 3, 1, 0, vb.pp("Conv2d_4a_3x3"))?,
            ],
            mixed5: [
                InceptionA::new(192, 32, vb.pp("Mixed_5b"))?,
                InceptionA::new(256, 64, vb.pp("Mixed_5c"))?,
                InceptionA::new(288, 64, vb.pp("Mixed_5d"))?,
            ],
            mixed6a: InceptionB::new(288, vb.pp("Mixed_6a"))?,
            mixed6: [
                InceptionC::new(768, 128, vb.pp("Mixed_6b"))?,
                InceptionC::new(768, 160, vb.pp("Mixed_6c"))?,
                InceptionC::new(768, 160, vb.pp("Mixed_6d"))?,
                InceptionC::new(768, 192, vb.pp("Mixed_6e"))?,
            ],
            mixed7a: InceptionD::new(768, vb.pp("Mixed_7a"))?,
            mixed7: [
                InceptionE::new(1280, false, vb.pp("Mixed_7b"))?,
                InceptionE::new(2048, true, vb.pp("Mixed_7c"))?,
            ],
        })
    }

    /// Loads converted pytorch-fid weights (torchvision Inception3 names; `fc.*` ignored).
    pub fn load(
        path: &std::path::Path,
        config: FidInceptionConfig,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> Result<Self> {
        crate::weights::load_verified(path, dtype, device, |vb| Self::new(config, vb))
    }

    pub fn config(&self) -> &FidInceptionConfig {
        &self.config
    }

    /// Runs the extractor on `[B, 3, H, W]` in [0, 1] (without resizing, H and W must be at
    /// least 75). Returns `block0`, `block1`, `block2`, `pool3`.
    pub fn forward(&self, x: &Tensor) -> Result<FeatureMaps> {
        let min = if self.config.resize_input { 1 } else { 75 };
        check_nchw("FID Inception input", x, 3, min)?;
        let mut h = if self.config.resize_input {
            ops::resize_bilinear(x, 299, 299)?
        } else {
            x.clone()
        };
        if self.config.normalize_input {
            h = h.affine(2.0, -1.0)?;
        }
        let mut maps = FeatureMaps::new();
        let h = ops::max_pool2d(&seq(&self.stem0, &h)?, 3, 2, 0)?;
        maps.push("block0", h.clone());
        let mut h = ops::max_pool2d(&seq(&self.stem1, &h)?, 3, 2, 0)?;
        maps.push("block1", h.clone());
        for m in &self.mixed5 {
            h = m.forward(&h)?;
        }
        h = self.mixed6a.forward(&h)?;
        for m in &self.mixed6 {
            h = m.forward(&h)?;
        }
        maps.push("block2", h.clone());
        h = self.mixed7a.forward(&h)?;
        for m in &self.mixed7 {
            h = m.forward(&h)?;
        }
        maps.push("pool3", ops::global_avg_pool(&h)?);
        Ok(maps)
    }
}

impl Module for BasicConv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        BasicConv2d::forward(self, x).map_err(crate::norm::to_candle)
    }
}
