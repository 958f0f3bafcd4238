//! Expected state-dict keys (rosinality names and shapes, derived from the config) and loading
//! from safetensors with a JSON config beside (`model.safetensors` + `model.json`) or the
//! config in the safetensors header metadata (the parity fixture, the converter output).
//!
//! Every expected key and shape is verified **before** anything is built, and all problems are
//! reported at once (missing / unexpected / mis-shaped, by name with the expected shape).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::BufferedSafetensors;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::config::StyleGan2Config;
use crate::discriminator::Discriminator;
use crate::error::{MisShapedKey, Result, StyleGan2Error};
use crate::generator::{Generator, noise_resolution};
use crate::ops::make_kernel;

/// Which network a key list describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Generator,
    Discriminator,
}

/// How a key is initialised / treated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyKind {
    /// Trainable parameter, rosinality init N(0, std²).
    Randn { std: f64 },
    /// Trainable parameter, rosinality init constant.
    Const(f64),
    /// Blur/upsample kernel buffer (`make_kernel(blur) · factor²`), not trainable.
    Kernel { factor: usize },
    /// Noise buffer `noises.noise_i`, not trainable.
    Noise,
}

impl KeyKind {
    pub fn is_param(&self) -> bool {
        matches!(self, KeyKind::Randn { .. } | KeyKind::Const(_))
    }
}

/// One expected state-dict entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: KeyKind,
}

fn spec(v: &mut Vec<KeySpec>, name: impl Into<String>, shape: &[usize], kind: KeyKind) {
    v.push(KeySpec {
        name: name.into(),
        shape: shape.to_vec(),
        kind,
    });
}

const RANDN: KeyKind = KeyKind::Randn { std: 1.0 };
const ZERO: KeyKind = KeyKind::Const(0.0);

fn modconv_keys(v: &mut Vec<KeySpec>, p: &str, out: usize, inp: usize, k: usize, s: usize) {
    spec(v, format!("{p}.weight"), &[1, out, inp, k, k], RANDN);
    spec(v, format!("{p}.modulation.weight"), &[inp, s], RANDN);
    spec(
        v,
        format!("{p}.modulation.bias"),
        &[inp],
        KeyKind::Const(1.0),
    );
}

/// Every key of rosinality's generator state dict for `cfg` (parameters and buffers).
pub fn generator_keys(cfg: &StyleGan2Config) -> Result<Vec<KeySpec>> {
    cfg.validate()?;
    let s = cfg.style_dim;
    let blur_len = cfg.blur_kernel.len();
    let mut v = Vec::new();
    for i in 1..=cfg.n_mlp {
        spec(
            &mut v,
            format!("style.{i}.weight"),
            &[s, s],
            KeyKind::Randn {
                std: 1.0 / cfg.lr_mlp,
            },
        );
        spec(&mut v, format!("style.{i}.bias"), &[s], ZERO);
    }
    let c4 = cfg.channels_at(4)?;
    spec(&mut v, "input.input", &[1, c4, 4, 4], RANDN);
    modconv_keys(&mut v, "conv1.conv", c4, c4, 3, s);
    spec(&mut v, "conv1.noise.weight", &[1], ZERO);
    spec(&mut v, "conv1.activate.bias", &[c4], ZERO);
    spec(&mut v, "to_rgb1.bias", &[1, 3, 1, 1], ZERO);
    modconv_keys(&mut v, "to_rgb1.conv", 3, c4, 1, s);
    let mut in_ch = c4;
    for (j, res) in cfg.resolutions().into_iter().skip(1).enumerate() {
        let out = cfg.channels_at(res)?;
        for (idx, cin, up) in [(2 * j, in_ch, true), (2 * j + 1, out, false)] {
            let p = format!("convs.{idx}");
            modconv_keys(&mut v, &format!("{p}.conv"), out, cin, 3, s);
            if up {
                spec(
                    &mut v,
                    format!("{p}.conv.blur.kernel"),
                    &[blur_len, blur_len],
                    KeyKind::Kernel { factor: 2 },
                );
            }
            spec(&mut v, format!("{p}.noise.weight"), &[1], ZERO);
            spec(&mut v, format!("{p}.activate.bias"), &[out], ZERO);
        }
        let p = format!("to_rgbs.{j}");
        spec(&mut v, format!("{p}.bias"), &[1, 3, 1, 1], ZERO);
        spec(
            &mut v,
            format!("{p}.upsample.kernel"),
            &[blur_len, blur_len],
            KeyKind::Kernel { factor: 2 },
        );
        modconv_keys(&mut v, &format!("{p}.conv"), 3, out, 1, s);
        in_ch = out;
    }
    for i in 0..cfg.num_noise_layers() {
        let r = noise_resolution(i);
        spec(
            &mut v,
            format!("noises.noise_{i}"),
            &[1, 1, r, r],
            KeyKind::Noise,
        );
    }
    Ok(v)
}

/// Every key of rosinality's discriminator state dict for `cfg`.
pub fn discriminator_keys(cfg: &StyleGan2Config) -> Result<Vec<KeySpec>> {
    cfg.validate()?;
    let bl = cfg.blur_kernel.len();
    let kernel = KeyKind::Kernel { factor: 1 };
    let mut v = Vec::new();
    let mut in_ch = cfg.channels_at(cfg.size)?;
    spec(&mut v, "convs.0.0.weight", &[in_ch, 3, 1, 1], RANDN);
    spec(&mut v, "convs.0.1.bias", &[in_ch], ZERO);
    for (i, log) in (3..=cfg.log_size()).rev().enumerate() {
        let out = cfg.channels_at(1u32 << (log - 1))?;
        let p = format!("convs.{}", i + 1);
        spec(
            &mut v,
            format!("{p}.conv1.0.weight"),
            &[in_ch, in_ch, 3, 3],
            RANDN,
        );
        spec(&mut v, format!("{p}.conv1.1.bias"), &[in_ch], ZERO);
        spec(&mut v, format!("{p}.conv2.0.kernel"), &[bl, bl], kernel);
        spec(
            &mut v,
            format!("{p}.conv2.1.weight"),
            &[out, in_ch, 3, 3],
            RANDN,
        );
        spec(&mut v, format!("{p}.conv2.2.bias"), &[out], ZERO);
        spec(&mut v, format!("{p}.skip.0.kernel"), &[bl, bl], kernel);
        spec(
            &mut v,
            format!("{p}.skip.1.weight"),
            &[out, in_ch, 1, 1],
            RANDN,
        );
        in_ch = out;
    }
    let c4 = cfg.channels_at(4)?;
    spec(&mut v, "final_conv.0.weight", &[c4, in_ch + 1, 3, 3], RANDN);
    spec(&mut v, "final_conv.1.bias", &[c4], ZERO);
    spec(&mut v, "final_linear.0.weight", &[c4, c4 * 16], RANDN);
    spec(&mut v, "final_linear.0.bias", &[c4], ZERO);
    spec(&mut v, "final_linear.1.weight", &[1, c4], RANDN);
    spec(&mut v, "final_linear.1.bias", &[1], ZERO);
    Ok(v)
}

/// Expected keys of `part`.
pub fn expected_keys(cfg: &StyleGan2Config, part: Part) -> Result<Vec<KeySpec>> {
    match part {
        Part::Generator => generator_keys(cfg),
        Part::Discriminator => discriminator_keys(cfg),
    }
}

/// `"g_ema"`, `"g_ema."` → `"g_ema."`; `""` → `""`.
fn normalise_prefix(prefix: &str) -> String {
    let p = prefix.trim_end_matches('.');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}.")
    }
}

/// Compares `available` (full key → shape) with `expected` under `prefix`. Keys outside the
/// prefix are ignored (a file holds `g.`, `d.`, `g_ema.` side by side).
pub fn verify_keys(
    source_name: &str,
    available: &BTreeMap<String, Vec<usize>>,
    prefix: &str,
    expected: &[KeySpec],
) -> Result<()> {
    let prefix = normalise_prefix(prefix);
    let mut missing = Vec::new();
    let mut mis_shaped = Vec::new();
    let mut wanted = std::collections::BTreeSet::new();
    for k in expected {
        let full = format!("{prefix}{}", k.name);
        match available.get(&full) {
            None => missing.push((full.clone(), k.shape.clone())),
            Some(s) if *s != k.shape => mis_shaped.push(MisShapedKey {
                name: full.clone(),
                expected: k.shape.clone(),
                got: s.clone(),
            }),
            Some(_) => {}
        }
        wanted.insert(full);
    }
    let unexpected: Vec<String> = available
        .keys()
        .filter(|k| k.starts_with(&prefix) && !wanted.contains(*k))
        .cloned()
        .collect();
    if missing.is_empty() && mis_shaped.is_empty() && unexpected.is_empty() {
        Ok(())
    } else {
        Err(StyleGan2Error::Keys {
            source_name: format!("{source_name} (prefix {prefix:?})"),
            missing,
            unexpected,
            mis_shaped,
        })
    }
}

/// A safetensors checkpoint with its StyleGAN2 config.
pub struct Checkpoint {
    path: PathBuf,
    st: BufferedSafetensors,
    shapes: BTreeMap<String, Vec<usize>>,
    metadata: HashMap<String, String>,
    config: StyleGan2Config,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("keys", &self.shapes.len())
            .field("config", &self.config)
            .finish()
    }
}

impl Checkpoint {
    /// Opens `path`; the config comes from `path` with extension `.json` if that file exists,
    /// else from the safetensors header metadata.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_inner(path.as_ref(), None)
    }

    /// Opens `path` with an explicit config (ignores any JSON / metadata config).
    pub fn open_with_config(path: impl AsRef<Path>, config: StyleGan2Config) -> Result<Self> {
        Self::open_inner(path.as_ref(), Some(config))
    }

    fn open_inner(path: &Path, config: Option<StyleGan2Config>) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| StyleGan2Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |message: String| StyleGan2Error::Parse {
            path: path.to_path_buf(),
            message,
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(&data)
            .map_err(|e| parse_err(format!("not a safetensors file: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let shapes: BTreeMap<String, Vec<usize>> = meta
            .tensors()
            .into_iter()
            .map(|(k, info)| (k, info.shape.clone()))
            .collect();
        let config = match config {
            Some(c) => c,
            None => {
                let json = path.with_extension("json");
                if json.exists() {
                    let text =
                        std::fs::read_to_string(&json).map_err(|source| StyleGan2Error::Io {
                            path: json.clone(),
                            source,
                        })?;
                    serde_json::from_str(&text).map_err(|e| StyleGan2Error::Parse {
                        path: json.clone(),
                        message: e.to_string(),
                    })?
                } else {
                    StyleGan2Config::from_metadata(&metadata).map_err(|e| {
                        parse_err(format!(
                            "no config: {} does not exist and the header metadata is \
                             incomplete ({e})",
                            json.display()
                        ))
                    })?
                }
            }
        };
        config.validate()?;
        let st = BufferedSafetensors::new(data)
            .map_err(|e| parse_err(format!("cannot read tensors: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            st,
            shapes,
            metadata,
            config,
        })
    }

    pub fn config(&self) -> &StyleGan2Config {
        &self.config
    }
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }
    /// All keys with their shapes.
    pub fn shapes(&self) -> &BTreeMap<String, Vec<usize>> {
        &self.shapes
    }
    pub fn contains(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// Loads one tensor by full name, converted to `dtype`.
    pub fn tensor(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        if !self.contains(name) {
            return Err(StyleGan2Error::Keys {
                source_name: self.path.display().to_string(),
                missing: vec![(name.to_string(), vec![])],
                unexpected: vec![],
                mis_shaped: vec![],
            });
        }
        Ok(self.st.load(name, dev)?.to_dtype(dtype)?)
    }

    /// `latent_avg` `[S]` or `[1,S]` as `[1,S]`, if the checkpoint has it (the converters store
    /// TF `dlatent_avg` / NVlabs `mapping.w_avg` there; rosinality `train.py` does not).
    pub fn latent_avg(&self, dtype: DType, dev: &Device) -> Result<Option<Tensor>> {
        if !self.contains("latent_avg") {
            return Ok(None);
        }
        let t = self.tensor("latent_avg", dtype, dev)?;
        let s = self.config.style_dim;
        if t.elem_count() != s {
            return Err(StyleGan2Error::Shape {
                what: "latent_avg".into(),
                expected: format!("[{s}] or [1, {s}]"),
                got: t.dims().to_vec(),
            });
        }
        Ok(Some(t.reshape((1, s))?))
    }

    /// Verifies keys and shapes of `part` under `prefix`, and the kernel buffers' values.
    pub fn verify(&self, part: Part, prefix: &str) -> Result<Vec<KeySpec>> {
        let expected = expected_keys(&self.config, part)?;
        verify_keys(
            &self.path.display().to_string(),
            &self.shapes,
            prefix,
            &expected,
        )?;
        let prefix = normalise_prefix(prefix);
        for k in &expected {
            if let KeyKind::Kernel { factor } = k.kind {
                let name = format!("{prefix}{}", k.name);
                let got: Vec<f32> = self
                    .st
                    .load(&name, &Device::Cpu)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1()?;
                let want = make_kernel(&self.config.blur_kernel, factor);
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                if err > 1e-6 {
                    return Err(StyleGan2Error::Buffer {
                        source_name: self.path.display().to_string(),
                        name,
                        detail: format!(
                            "holds {got:?}, but blur_kernel {:?} × {}² gives {want:?}",
                            self.config.blur_kernel, factor
                        ),
                    });
                }
            }
        }
        Ok(expected)
    }

    /// Loads every tensor of `part` under `prefix` (prefix stripped) after verification.
    fn load_part(
        &self,
        part: Part,
        prefix: &str,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Vec<KeySpec>, HashMap<String, Tensor>)> {
        let expected = self.verify(part, prefix)?;
        let p = normalise_prefix(prefix);
        let mut map = HashMap::new();
        for k in &expected {
            if matches!(k.kind, KeyKind::Kernel { .. }) {
                continue; // recomputed from the config, values checked in `verify`
            }
            map.insert(
                k.name.clone(),
                self.tensor(&format!("{p}{}", k.name), dtype, dev)?,
            );
        }
        Ok((expected, map))
    }

    /// Frozen generator (inference, HyperStyle): parameters are plain tensors.
    pub fn generator(&self, prefix: &str, dtype: DType, dev: &Device) -> Result<Generator> {
        let (_, map) = self.load_part(Part::Generator, prefix, dtype, dev)?;
        Generator::new(&self.config, VarBuilder::from_tensors(map, dtype, dev))
    }

    /// Frozen discriminator.
    pub fn discriminator(&self, prefix: &str, dtype: DType, dev: &Device) -> Result<Discriminator> {
        let (_, map) = self.load_part(Part::Discriminator, prefix, dtype, dev)?;
        Discriminator::new(&self.config, VarBuilder::from_tensors(map, dtype, dev))
    }

    /// Trainable generator: parameters become `Var`s of the returned `VarMap` (names without
    /// prefix); noise buffers stay constants.
    pub fn trainable_generator(
        &self,
        prefix: &str,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Generator, VarMap)> {
        let (expected, map) = self.load_part(Part::Generator, prefix, dtype, dev)?;
        let (varmap, noises) = split_params(&expected, map)?;
        let vb = VarBuilder::from_varmap(&varmap, dtype, dev);
        let g = Generator::new_with_noise_buffers(&self.config, noises, vb)?;
        Ok((g, varmap))
    }

    /// Trainable discriminator (parameters in the returned `VarMap`).
    pub fn trainable_discriminator(
        &self,
        prefix: &str,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Discriminator, VarMap)> {
        let (expected, map) = self.load_part(Part::Discriminator, prefix, dtype, dev)?;
        let (varmap, _) = split_params(&expected, map)?;
        let vb = VarBuilder::from_varmap(&varmap, dtype, dev);
        Ok((Discriminator::new(&self.config, vb)?, varmap))
    }
}

/// Parameters → `VarMap`; noise buffers → list ordered by index.
pub(crate) fn split_params(
    expected: &[KeySpec],
    mut map: HashMap<String, Tensor>,
) -> Result<(VarMap, Vec<Tensor>)> {
    let varmap = VarMap::new();
    let mut noises = Vec::new();
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| StyleGan2Error::Input("VarMap lock poisoned".into()))?;
        for k in expected {
            let Some(t) = map.remove(&k.name) else {
                continue;
            };
            match k.kind {
                KeyKind::Noise => noises.push(t),
                KeyKind::Kernel { .. } => {}
                _ => {
                    data.insert(k.name.clone(), Var::from_tensor(&t)?);
                }
            }
        }
    }
    Ok((varmap, noises))
}
