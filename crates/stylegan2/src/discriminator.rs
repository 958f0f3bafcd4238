//! rosinality `Discriminator(size, channel_multiplier, blur_kernel)`: `convs.0` =
//! `ConvLayer(3, ch[size], 1)`, `convs.1..` = ResBlocks down to 4×4, minibatch standard
//! deviation (group 4, 1 feature), `final_conv` = `ConvLayer(ch[4]+1, ch[4], 3)`,
//! `final_linear.0` = `EqualLinear(ch[4]·16, ch[4], fused_lrelu)`, `final_linear.1` =
//! `EqualLinear(ch[4], 1)`.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use crate::config::StyleGan2Config;
use crate::error::{Result, StyleGan2Error, check_finite, check_shape};
use crate::layers::{
    ConvLayer, ConvLayerConfig, EqualLinear, EqualLinearConfig, ResBlock, ResBlockConfig,
};

/// StyleGAN2 residual discriminator.
#[derive(Debug, Clone)]
pub struct Discriminator {
    size: usize,
    stem: ConvLayer,
    blocks: Vec<ResBlock>,
    final_conv: ConvLayer,
    final_linear0: EqualLinear,
    final_linear1: EqualLinear,
    stddev_group: usize,
}

impl Discriminator {
    pub fn new(cfg: &StyleGan2Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let blur = &cfg.blur_kernel;
        let size = cfg.size as usize;
        let mut in_ch = cfg.channels_at(cfg.size)?;
        let stem = ConvLayer::new(&ConvLayerConfig::new(3, in_ch, 1), vb.pp("convs.0"))?;
        let mut blocks = Vec::new();
        // One ResBlock per resolution size, size/2, …, 8 (each halves it).
        for (i, log) in (3..=cfg.log_size()).rev().enumerate() {
            let out_ch = cfg.channels_at(1u32 << (log - 1))?;
            blocks.push(ResBlock::new(
                &ResBlockConfig::new(in_ch, out_ch).with_blur_kernel(blur),
                vb.pp(format!("convs.{}", i + 1)),
            )?);
            in_ch = out_ch;
        }
        let c4 = cfg.channels_at(4)?;
        let final_conv =
            ConvLayer::new(&ConvLayerConfig::new(in_ch + 1, c4, 3), vb.pp("final_conv"))?;
        let final_linear0 = EqualLinear::new(
            &EqualLinearConfig::fused_lrelu(c4 * 16, c4),
            vb.pp("final_linear.0"),
        )?;
        let final_linear1 =
            EqualLinear::new(&EqualLinearConfig::new(c4, 1), vb.pp("final_linear.1"))?;
        Ok(Self {
            size,
            stem,
            blocks,
            final_conv,
            final_linear0,
            final_linear1,
            stddev_group: 4,
        })
    }

    /// Minibatch-stddev group size (rosinality 4; NVlabs `paper256` uses 8).
    pub fn with_stddev_group(mut self, group: usize) -> Self {
        self.stddev_group = group.max(1);
        self
    }

    /// Images `[B,3,size,size]` → logits `[B,1]`. B must be divisible by min(B, group).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.size;
        check_shape(x, "discriminator input", &[None, Some(3), Some(s), Some(s)])?;
        check_finite(x, "discriminator input")?;
        let b = x.dim(0)?;
        let group = b.min(self.stddev_group);
        if group == 0 || b % group != 0 {
            return Err(StyleGan2Error::Input(format!(
                "discriminator batch {b} is not divisible by the minibatch-stddev group {group}"
            )));
        }
        let mut out = self.stem.forward(x)?;
        for blk in &self.blocks {
            out = blk.forward(&out)?;
        }
        let out = minibatch_stddev(&out, group)?;
        let out = self.final_conv.forward(&out)?;
        // [B,C,4,4] -> [B, C·16] in (C,H,W) order, as torch's view(batch, -1).
        let out = out.flatten_from(1)?;
        let out = self.final_linear0.forward(&out)?;
        self.final_linear1.forward(&out)
    }
}

crate::layers::impl_module!(Discriminator);

/// Appends one feature map: the std over groups of `group` samples (sample b is grouped with
/// b ± B/group), averaged over C,H,W, tiled to `[B,1,H,W]`.
pub fn minibatch_stddev(x: &Tensor, group: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let m = b / group;
    // [B,C,H,W] -> [G, B/G, C, H, W]: index b = g·(B/G) + m, as torch's view(group, -1, ...).
    let y = x.reshape((group, m, c, h, w))?;
    let mean = y.mean_keepdim(0)?;
    // Biased variance over the group axis, + 1e-8, sqrt: [B/G, C, H, W].
    let var = y.broadcast_sub(&mean)?.sqr()?.mean(0)?;
    let std = (var + 1e-8)?.sqrt()?;
    // Mean over C,H,W -> [B/G] -> [1,B/G,1,1,1] -> [G,B/G,1,H,W] -> [B,1,H,W].
    let std = std.flatten_from(1)?.mean(D::Minus1)?;
    let std = std
        .reshape((1, m, 1, 1, 1))?
        .broadcast_as((group, m, 1, h, w))?
        .reshape((b, 1, h, w))?;
    Ok(Tensor::cat(&[x, &std], 1)?)
}
