//! rosinality `Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp)`:
//! mapping network `style.*`, `input.input`, `conv1`, `to_rgb1`, `convs.i`, `to_rgbs.i` and the
//! noise buffers `noises.noise_i`, with HyperStyle's per-sample weight offsets.
//!
//! - this module: the synthesis network and [`Generator::forward`];
//! - `latents`: mapping network, mean latent, truncation and style mixing ([`Latents`]);
//! - `noise`: the noise inputs ([`NoiseMode`]);
//! - `offsets`: per-sample weight offsets ([`WeightOffsets`]) and the modulated layers'
//!   geometry ([`modulated_layer_shapes`]).

mod latents;
mod noise;
mod offsets;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::StyleGan2Config;
use crate::error::{Result, StyleGan2Error, check_shape};
use crate::layers::{ConstantInput, ModulatedConv2dConfig, StyledConv, ToRgb, ToRgbConfig};

pub use latents::{Latents, MappingNetwork, random_inject_index};
pub(crate) use noise::noise_resolution;
pub use noise::{NOISE_STREAM, NoiseMode, random_noise_buffers};
pub use offsets::{ModulatedLayerShape, WeightOffsets, modulated_layer_shapes};

/// Arguments of [`Generator::forward`]. Build with [`GeneratorInput::z`], [`GeneratorInput::w`]
/// or [`GeneratorInput::w_plus`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct GeneratorInput<'a> {
    pub latents: Latents,
    /// `(ψ, mean latent [1,S])`: w ← mean + ψ·(w − mean) for every style. Unlike rosinality,
    /// which skips truncation when ψ ≥ 1, ψ is always applied (ψ = 1 is the identity).
    pub truncation: Option<(f64, Tensor)>,
    /// Style-mixing crossover for two styles: W+ entries `0..inject_index` take the first,
    /// the rest the second. Required (1..n_latent) when two styles are given; draw it with
    /// [`random_inject_index`] for training.
    pub inject_index: Option<usize>,
    pub noise: NoiseMode,
    pub offsets: Option<&'a WeightOffsets>,
}

impl<'a> GeneratorInput<'a> {
    fn new(latents: Latents) -> Self {
        Self {
            latents,
            truncation: None,
            inject_index: None,
            noise: NoiseMode::Const,
            offsets: None,
        }
    }
    /// Style(s) as z `[B,S]` (one, or two for mixing).
    pub fn z(z: Vec<Tensor>) -> Self {
        Self::new(Latents::Z(z))
    }
    /// Style(s) as w `[B,S]`.
    pub fn w(w: Vec<Tensor>) -> Self {
        Self::new(Latents::W(w))
    }
    /// W+ `[B, n_latent, S]`.
    pub fn w_plus(w: Tensor) -> Self {
        Self::new(Latents::WPlus(w))
    }
    pub fn with_truncation(mut self, psi: f64, mean_latent: Tensor) -> Self {
        self.truncation = Some((psi, mean_latent));
        self
    }
    pub fn with_inject_index(mut self, i: usize) -> Self {
        self.inject_index = Some(i);
        self
    }
    pub fn with_noise(mut self, noise: NoiseMode) -> Self {
        self.noise = noise;
        self
    }
    pub fn with_offsets(mut self, offsets: &'a WeightOffsets) -> Self {
        self.offsets = Some(offsets);
        self
    }
}

/// Output of [`Generator::forward`].
#[derive(Debug, Clone)]
pub struct GeneratorOutput {
    /// RGB image `[B,3,size,size]`, nominal range [−1,1], not clamped.
    pub image: Tensor,
    /// The W+ `[B,n_latent,S]` actually used (rosinality `return_latents=True`).
    pub latents: Tensor,
}

/// StyleGAN2 generator.
#[derive(Debug, Clone)]
pub struct Generator {
    cfg: StyleGan2Config,
    style: MappingNetwork,
    input: ConstantInput,
    conv1: StyledConv,
    to_rgb1: ToRgb,
    convs: Vec<StyledConv>,
    to_rgbs: Vec<ToRgb>,
    noises: Vec<Tensor>,
    device: Device,
    dtype: DType,
}

impl Generator {
    /// Builds the generator and loads the noise buffers `noises.noise_i` from `vb` (a
    /// checkpoint). Buffers are detached: they are constants, never trained.
    pub fn new(cfg: &StyleGan2Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let noises = (0..cfg.num_noise_layers())
            .map(|i| {
                let r = noise_resolution(i);
                Ok(vb
                    .pp("noises")
                    .get((1, 1, r, r), &format!("noise_{i}"))?
                    .detach())
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new_with_noise_buffers(cfg, noises, vb)
    }

    /// Builds the generator with the given noise buffers (e.g. from [`random_noise_buffers`]
    /// for a fresh model whose parameters live in a `VarMap`).
    pub fn new_with_noise_buffers(
        cfg: &StyleGan2Config,
        noises: Vec<Tensor>,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        if noises.len() != cfg.num_noise_layers() {
            return Err(StyleGan2Error::Input(format!(
                "expected {} noise buffers, got {}",
                cfg.num_noise_layers(),
                noises.len()
            )));
        }
        for (i, n) in noises.iter().enumerate() {
            let r = noise_resolution(i);
            check_shape(
                n,
                &format!("noises.noise_{i}"),
                &[Some(1), Some(1), Some(r), Some(r)],
            )?;
        }
        let s = cfg.style_dim;
        let blur = &cfg.blur_kernel;
        let style = MappingNetwork::new(cfg, vb.pp("style"))?;
        let c4 = cfg.channels_at(4)?;
        let input = ConstantInput::new(c4, vb.pp("input"))?;
        let conv1 = StyledConv::new(&ModulatedConv2dConfig::new(c4, c4, 3, s), vb.pp("conv1"))?;
        let to_rgb1 = ToRgb::new(&ToRgbConfig::new(c4, s), vb.pp("to_rgb1"))?;
        let mut convs = Vec::new();
        let mut to_rgbs = Vec::new();
        let mut in_ch = c4;
        for (j, res) in cfg.resolutions().into_iter().skip(1).enumerate() {
            let out_ch = cfg.channels_at(res)?;
            convs.push(StyledConv::new(
                &ModulatedConv2dConfig::new(in_ch, out_ch, 3, s).upsample(blur),
                vb.pp(format!("convs.{}", 2 * j)),
            )?);
            convs.push(StyledConv::new(
                &ModulatedConv2dConfig::new(out_ch, out_ch, 3, s),
                vb.pp(format!("convs.{}", 2 * j + 1)),
            )?);
            to_rgbs.push(ToRgb::new(
                &ToRgbConfig::new(out_ch, s).upsample(blur),
                vb.pp(format!("to_rgbs.{j}")),
            )?);
            in_ch = out_ch;
        }
        Ok(Self {
            cfg: cfg.clone(),
            style,
            input,
            conv1,
            to_rgb1,
            convs,
            to_rgbs,
            noises: noises.iter().map(|n| n.detach()).collect(),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &StyleGan2Config {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn n_latent(&self) -> usize {
        self.cfg.n_latent()
    }
    /// The stored noise buffers (`noises.noise_i`).
    pub fn noise_buffers(&self) -> &[Tensor] {
        &self.noises
    }

    /// Constant tensors a rosinality state dict holds besides the parameters (noise buffers and
    /// blur kernels), under their rosinality names, for saving a compatible checkpoint.
    pub fn buffer_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        let kup = crate::ops::kernel_tensor(&self.cfg.blur_kernel, 2, self.dtype, &self.device)?;
        for j in 0..self.to_rgbs.len() {
            out.push((format!("convs.{}.conv.blur.kernel", 2 * j), kup.clone()));
            out.push((format!("to_rgbs.{j}.upsample.kernel"), kup.clone()));
        }
        for (i, n) in self.noises.iter().enumerate() {
            out.push((format!("noises.noise_{i}"), n.clone()));
        }
        Ok(out)
    }

    /// Full forward pass: latents → W+ → image.
    pub fn forward(&self, input: &GeneratorInput) -> Result<GeneratorOutput> {
        let latents = self.resolve_latents(input)?;
        let image = self.synthesis(&latents, &input.noise, input.offsets)?;
        Ok(GeneratorOutput { image, latents })
    }

    /// Synthesis network only, from W+ `[B,n_latent,S]`.
    pub fn synthesis(
        &self,
        w_plus: &Tensor,
        noise: &NoiseMode,
        offsets: Option<&WeightOffsets>,
    ) -> Result<Tensor> {
        let n = self.cfg.n_latent();
        check_shape(
            w_plus,
            "W+ latents",
            &[None, Some(n), Some(self.cfg.style_dim)],
        )?;
        let b = w_plus.dim(0)?;
        if let Some(o) = offsets {
            self.check_offsets(o, b)?;
        }
        let noise = self.noise_inputs(noise, b)?;
        // W+ entry i: [B,n,S] -> [B,S]
        let lat = |i: usize| -> Result<Tensor> { Ok(w_plus.narrow(1, i, 1)?.squeeze(1)?) };
        let off = |slot: usize| offsets.and_then(|o| o.get(slot));
        let mut out = self.input.forward(b)?;
        out = self
            .conv1
            .forward(&out, &lat(0)?, noise[0].as_ref(), off(0))?;
        let mut skip = self.to_rgb1.forward(&out, &lat(1)?, None, off(1))?;
        for (j, to_rgb) in self.to_rgbs.iter().enumerate() {
            let (i, slot) = (1 + 2 * j, 2 + 3 * j);
            out = self.convs[2 * j].forward(&out, &lat(i)?, noise[i].as_ref(), off(slot))?;
            out = self.convs[2 * j + 1].forward(
                &out,
                &lat(i + 1)?,
                noise[i + 1].as_ref(),
                off(slot + 1),
            )?;
            skip = to_rgb.forward(&out, &lat(i + 2)?, Some(&skip), off(slot + 2))?;
        }
        Ok(skip)
    }
}
