//! rosinality `Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp)`:
//! mapping network `style.*`, `input.input`, `conv1`, `to_rgb1`, `convs.i`, `to_rgbs.i` and the
//! noise buffers `noises.noise_i`, with HyperStyle's per-sample weight offsets.
//!
//! Latent bookkeeping (rosinality `forward`): z's go through the mapping network, a single w is
//! broadcast to all `n_latent` entries, two styles are mixed at `inject_index`, truncation pulls
//! every style towards a mean latent.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use s2m_core::rng::{Rng, derive_seed, randn_vec, rng_from_seed};

use crate::config::StyleGan2Config;
use crate::error::{Result, StyleGan2Error, check_finite, check_shape};
use crate::layers::{
    ConstantInput, EqualLinear, EqualLinearConfig, ModulatedConv2dConfig, PixelNorm, StyledConv,
    ToRgb, ToRgbConfig,
};

/// rosinality `style` = `nn.Sequential(PixelNorm, EqualLinear × n_mlp)`: z `[B,S]` → w `[B,S]`.
#[derive(Debug, Clone)]
pub struct MappingNetwork {
    layers: Vec<EqualLinear>,
    style_dim: usize,
}

impl MappingNetwork {
    /// `vb` is the mapping network's root (`style`); the layers are `style.1 … style.n_mlp`
    /// (`style.0` is the parameter-free PixelNorm).
    pub fn new(cfg: &StyleGan2Config, vb: VarBuilder) -> Result<Self> {
        let s = cfg.style_dim;
        let layer = EqualLinearConfig::fused_lrelu(s, s).with_lr_mul(cfg.lr_mlp);
        let layers = (1..=cfg.n_mlp)
            .map(|i| EqualLinear::new(&layer, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            style_dim: s,
        })
    }

    /// z `[B,S]` -> w `[B,S]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        check_shape(z, "z", &[None, Some(self.style_dim)])?;
        let mut x = PixelNorm.forward(z)?;
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        Ok(x)
    }
}

crate::layers::impl_module!(MappingNetwork);

/// The latent input of [`Generator::forward`].
#[derive(Debug, Clone)]
pub enum Latents {
    /// One or two z `[B,S]` (two = style mixing), mapped through the mapping network.
    Z(Vec<Tensor>),
    /// One or two w `[B,S]` (rosinality `input_is_latent=True` with 2-D styles).
    W(Vec<Tensor>),
    /// W+ `[B, n_latent, S]`, used as is.
    WPlus(Tensor),
}

/// Where the noise inputs of the synthesis convs come from.
#[derive(Debug, Clone, Default)]
pub enum NoiseMode {
    /// The stored buffers `noises.noise_i` `[1,1,r,r]` (rosinality `randomize_noise=False`,
    /// NVlabs `noise_mode='const'`). HyperStyle training and inference use this.
    #[default]
    Const,
    /// Fresh N(0,1) noise `[B,1,r,r]` per layer, drawn from a seeded stream (rosinality's
    /// default `randomize_noise=True`, used in GAN training). Layer i uses
    /// `derive_seed(seed, NOISE_STREAM, i)`.
    Random { seed: u64 },
    /// No noise at all (NVlabs `noise_mode='none'`).
    Zero,
    /// Caller-provided noise per layer, `[B or 1, 1, r, r]`, `num_noise_layers` entries.
    Explicit(Vec<Tensor>),
}

/// Stream id for [`NoiseMode::Random`] ("noise" in ASCII).
pub const NOISE_STREAM: u64 = 0x6e_6f_69_73_65;

/// Per-sample weight offsets Δ for the modulated convs, keyed by slot (see
/// [`Generator::modulated_layer_shapes`]). A missing slot means no offset there.
#[derive(Debug, Clone, Default)]
pub struct WeightOffsets {
    slots: BTreeMap<usize, Tensor>,
}

impl WeightOffsets {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the offset of `slot`: `[B or 1, out, in, 1 or k, 1 or k]`.
    pub fn insert(&mut self, slot: usize, delta: Tensor) -> Option<Tensor> {
        self.slots.insert(slot, delta)
    }
    pub fn get(&self, slot: usize) -> Option<&Tensor> {
        self.slots.get(&slot)
    }
    pub fn slots(&self) -> impl Iterator<Item = (usize, &Tensor)> {
        self.slots.iter().map(|(k, v)| (*k, v))
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl FromIterator<(usize, Tensor)> for WeightOffsets {
    fn from_iter<I: IntoIterator<Item = (usize, Tensor)>>(iter: I) -> Self {
        Self {
            slots: iter.into_iter().collect(),
        }
    }
}

/// Geometry of one modulated conv (one offset slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulatedLayerShape {
    /// Slot index: `conv1`, `to_rgb1`, then per resolution `convs[2j]`, `convs[2j+1]`,
    /// `to_rgbs[j]` (HyperStyle's `weights_deltas` order).
    pub slot: usize,
    /// rosinality module path of the conv, e.g. `convs.3.conv`.
    pub name: String,
    pub out_ch: usize,
    pub in_ch: usize,
    pub kernel: usize,
    /// Output resolution of the layer.
    pub resolution: u32,
    /// W+ entry that drives it.
    pub latent_index: usize,
    pub upsample: bool,
    pub is_to_rgb: bool,
}

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

/// Draws a style-mixing crossover uniformly in `1..=n_latent-1` (rosinality
/// `random.randint(1, n_latent - 1)`).
pub fn random_inject_index(rng: &mut Rng, n_latent: usize) -> usize {
    use rand::Rng as _;
    rng.random_range(1..n_latent.max(2))
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

/// Shape of noise buffer `i`: `[1,1,r,r]` with r = 2^((i+5)/2).
pub(crate) fn noise_resolution(i: usize) -> usize {
    1usize << ((i + 5) / 2)
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
        Self::new_with_noise_buffers(cfg, vb, noises)
    }

    /// Builds the generator with the given noise buffers (e.g. from [`random_noise_buffers`]
    /// for a fresh model whose parameters live in a `VarMap`).
    pub fn new_with_noise_buffers(
        cfg: &StyleGan2Config,
        vb: VarBuilder,
        noises: Vec<Tensor>,
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

    /// Mapping network z `[B,S]` → w `[B,S]` (rosinality `get_latent`).
    pub fn mapping(&self, z: &Tensor) -> Result<Tensor> {
        check_shape(z, "z", &[None, Some(self.cfg.style_dim)])?;
        check_finite(z, "z")?;
        self.style.forward(z)
    }

    /// Mean of the mapping of `n` seeded N(0,1) z's, `[1,S]`, detached (rosinality
    /// `mean_latent`; `generate.py` uses 4096, HyperStyle 1e5). Runs in chunks of 4096.
    pub fn mean_latent(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        if n == 0 {
            return Err(StyleGan2Error::Input("mean_latent needs n >= 1".into()));
        }
        let s = self.cfg.style_dim;
        let mut sum = Tensor::zeros((1, s), DType::F64, &self.device)?;
        let mut done = 0;
        while done < n {
            let m = (n - done).min(4096);
            let z = Tensor::from_vec(randn_vec(rng, m * s), (m, s), &self.device)?
                .to_dtype(self.dtype)?;
            let w = self.style.forward(&z)?.detach();
            sum = (sum + w.to_dtype(DType::F64)?.sum_keepdim(0)?)?;
            done += m;
        }
        Ok((sum / n as f64)?.to_dtype(self.dtype)?)
    }

    /// Geometry of every modulated conv, in offset-slot order.
    pub fn modulated_layer_shapes(&self) -> Vec<ModulatedLayerShape> {
        modulated_layer_shapes(&self.cfg).unwrap_or_default()
    }

    /// Resolves `input.latents` (mapping, truncation, mixing) into W+ `[B,n_latent,S]`.
    pub fn resolve_latents(&self, input: &GeneratorInput) -> Result<Tensor> {
        let s = self.cfg.style_dim;
        let n = self.cfg.n_latent();
        let mut styles: Vec<Tensor> = match &input.latents {
            Latents::Z(zs) | Latents::W(zs) => {
                let is_z = matches!(input.latents, Latents::Z(_));
                let what = if is_z { "z" } else { "w" };
                if zs.is_empty() || zs.len() > 2 {
                    return Err(StyleGan2Error::Input(format!(
                        "expected 1 or 2 {what} tensors (2 = style mixing), got {}",
                        zs.len()
                    )));
                }
                let b = zs[0].dims().first().copied();
                let mut out = Vec::new();
                for (i, t) in zs.iter().enumerate() {
                    let name = format!("{what}[{i}]");
                    check_shape(t, &name, &[b, Some(s)])?;
                    check_finite(t, &name)?;
                    out.push(if is_z {
                        self.style.forward(t)?
                    } else {
                        t.clone()
                    });
                }
                out
            }
            Latents::WPlus(w) => {
                check_shape(w, "W+ latents", &[None, Some(n), Some(s)])?;
                check_finite(w, "W+ latents")?;
                vec![w.clone()]
            }
        };
        if let Some((psi, mean)) = &input.truncation {
            if !psi.is_finite() {
                return Err(StyleGan2Error::Input(format!("truncation ψ = {psi}")));
            }
            check_shape(mean, "truncation mean latent", &[Some(1), Some(s)])?;
            check_finite(mean, "truncation mean latent")?;
            styles = styles
                .iter()
                .map(|st| {
                    // [1,S] broadcasts against [B,S] and [B,n_latent,S].
                    let d = (st.broadcast_sub(mean)? * *psi)?;
                    Ok(d.broadcast_add(mean)?)
                })
                .collect::<Result<Vec<_>>>()?;
        }
        let b = styles[0].dim(0)?;
        if styles.len() == 1 {
            let st = &styles[0];
            if st.rank() == 3 {
                return Ok(st.clone());
            }
            // [B,S] -> [B,1,S] -> [B,n,S]; contiguous so per-layer slices feed matmul cheaply.
            return Ok(st.unsqueeze(1)?.broadcast_as((b, n, s))?.contiguous()?);
        }
        let idx = input.inject_index.ok_or_else(|| {
            StyleGan2Error::Input(
                "two styles given (style mixing) but no inject_index; draw one with \
                 random_inject_index"
                    .into(),
            )
        })?;
        if !(1..n).contains(&idx) {
            return Err(StyleGan2Error::Input(format!(
                "inject_index must be in 1..{n}, got {idx}"
            )));
        }
        let a = styles[0].unsqueeze(1)?.broadcast_as((b, idx, s))?;
        let c = styles[1].unsqueeze(1)?.broadcast_as((b, n - idx, s))?;
        Ok(Tensor::cat(&[a, c], 1)?)
    }

    /// Noise per layer for a batch of `b`, `None` where no noise is added.
    fn noise_inputs(&self, mode: &NoiseMode, b: usize) -> Result<Vec<Option<Tensor>>> {
        let num = self.cfg.num_noise_layers();
        match mode {
            NoiseMode::Const => Ok(self.noises.iter().cloned().map(Some).collect()),
            NoiseMode::Zero => Ok(vec![None; num]),
            NoiseMode::Random { seed } => (0..num)
                .map(|i| {
                    let r = noise_resolution(i);
                    let mut rng = rng_from_seed(derive_seed(*seed, NOISE_STREAM, i as u64));
                    let v = randn_vec(&mut rng, b * r * r);
                    Ok(Some(
                        Tensor::from_vec(v, (b, 1, r, r), &self.device)?.to_dtype(self.dtype)?,
                    ))
                })
                .collect(),
            NoiseMode::Explicit(list) => {
                if list.len() != num {
                    return Err(StyleGan2Error::Input(format!(
                        "explicit noise needs {num} tensors, got {}",
                        list.len()
                    )));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let r = noise_resolution(i);
                        let name = format!("noise[{i}]");
                        check_shape(t, &name, &[None, Some(1), Some(r), Some(r)])?;
                        let tb = t.dim(0)?;
                        if tb != b && tb != 1 {
                            return Err(StyleGan2Error::Shape {
                                what: name,
                                expected: format!("[{b} or 1, 1, {r}, {r}]"),
                                got: t.dims().to_vec(),
                            });
                        }
                        check_finite(t, &name)?;
                        Ok(Some(t.clone()))
                    })
                    .collect()
            }
        }
    }

    /// Checks offsets against the slot table before any compute.
    fn check_offsets(&self, offsets: &WeightOffsets, b: usize) -> Result<()> {
        let shapes = modulated_layer_shapes(&self.cfg)?;
        for (slot, t) in offsets.slots() {
            let Some(l) = shapes.get(slot) else {
                return Err(StyleGan2Error::Input(format!(
                    "weight offset for slot {slot}, but the generator has {} modulated convs",
                    shapes.len()
                )));
            };
            let name = format!("weight offset slot {slot} ({})", l.name);
            let d = t.dims();
            let ok = d.len() == 5
                && (d[0] == b || d[0] == 1)
                && d[1] == l.out_ch
                && d[2] == l.in_ch
                && ((d[3] == 1 && d[4] == 1) || (d[3] == l.kernel && d[4] == l.kernel));
            if !ok {
                return Err(StyleGan2Error::Shape {
                    what: name,
                    expected: format!(
                        "[{b} or 1, {}, {}, 1 or {k}, 1 or {k}]",
                        l.out_ch,
                        l.in_ch,
                        k = l.kernel
                    ),
                    got: d.to_vec(),
                });
            }
            check_finite(t, &name)?;
        }
        Ok(())
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

/// Geometry of every modulated conv of a generator with config `cfg`, in offset-slot order:
/// `conv1, to_rgb1`, then per resolution `convs[2j], convs[2j+1], to_rgbs[j]`.
pub fn modulated_layer_shapes(cfg: &StyleGan2Config) -> Result<Vec<ModulatedLayerShape>> {
    cfg.validate()?;
    let c4 = cfg.channels_at(4)?;
    let mut v = vec![
        ModulatedLayerShape {
            slot: 0,
            name: "conv1.conv".into(),
            out_ch: c4,
            in_ch: c4,
            kernel: 3,
            resolution: 4,
            latent_index: 0,
            upsample: false,
            is_to_rgb: false,
        },
        ModulatedLayerShape {
            slot: 1,
            name: "to_rgb1.conv".into(),
            out_ch: 3,
            in_ch: c4,
            kernel: 1,
            resolution: 4,
            latent_index: 1,
            upsample: false,
            is_to_rgb: true,
        },
    ];
    let mut in_ch = c4;
    for (j, res) in cfg.resolutions().into_iter().skip(1).enumerate() {
        let out_ch = cfg.channels_at(res)?;
        let base = ModulatedLayerShape {
            slot: 2 + 3 * j,
            name: format!("convs.{}.conv", 2 * j),
            out_ch,
            in_ch,
            kernel: 3,
            resolution: res,
            latent_index: 1 + 2 * j,
            upsample: true,
            is_to_rgb: false,
        };
        v.push(ModulatedLayerShape {
            slot: 3 + 3 * j,
            name: format!("convs.{}.conv", 2 * j + 1),
            in_ch: out_ch,
            latent_index: 2 + 2 * j,
            upsample: false,
            ..base.clone()
        });
        v.push(ModulatedLayerShape {
            slot: 4 + 3 * j,
            name: format!("to_rgbs.{j}.conv"),
            out_ch: 3,
            in_ch: out_ch,
            kernel: 1,
            latent_index: 3 + 2 * j,
            upsample: false,
            is_to_rgb: true,
            ..base.clone()
        });
        v.insert(v.len() - 2, base);
        in_ch = out_ch;
    }
    Ok(v)
}

/// Fresh N(0,1) noise buffers `noises.noise_i` from a seeded stream (rosinality registers
/// `torch.randn` buffers at construction).
pub fn random_noise_buffers(
    cfg: &StyleGan2Config,
    rng: &mut Rng,
    dtype: DType,
    dev: &Device,
) -> Result<Vec<Tensor>> {
    cfg.validate()?;
    (0..cfg.num_noise_layers())
        .map(|i| {
            let r = noise_resolution(i);
            Ok(Tensor::from_vec(randn_vec(rng, r * r), (1, 1, r, r), dev)?.to_dtype(dtype)?)
        })
        .collect()
}
