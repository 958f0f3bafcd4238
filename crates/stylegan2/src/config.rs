//! Model configuration: the arguments of rosinality's `Generator(size, style_dim, n_mlp,
//! channel_multiplier, blur_kernel, lr_mlp)` and `Discriminator(size, channel_multiplier,
//! blur_kernel)`, plus an explicit channel table for narrow CPU models.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StyleGan2Error};

/// Channels per resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelTable {
    /// rosinality's table: 512 at resolutions <= 32, then 256·m, 128·m, 64·m, 32·m, 16·m.
    Multiplier(u32),
    /// Explicit `resolution -> channels`; must cover every resolution from 4 to `size`.
    Explicit(BTreeMap<u32, usize>),
}

impl ChannelTable {
    fn get(&self, res: u32) -> Option<usize> {
        match self {
            ChannelTable::Multiplier(m) => {
                let m = *m as usize;
                match res {
                    4 | 8 | 16 | 32 => Some(512),
                    64 => Some(256 * m),
                    128 => Some(128 * m),
                    256 => Some(64 * m),
                    512 => Some(32 * m),
                    1024 => Some(16 * m),
                    _ => None,
                }
            }
            ChannelTable::Explicit(map) => map.get(&res).copied(),
        }
    }
}

/// StyleGAN2 hyper-parameters shared by G and D.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleGan2Config {
    /// Output resolution (power of two, 8..=1024).
    pub size: u32,
    /// Dimension S of z and w.
    pub style_dim: usize,
    /// Number of EqualLinear layers in the mapping network (`style.1..=n_mlp`).
    pub n_mlp: usize,
    /// Learning-rate multiplier of the mapping network (0.01 in every consumer).
    pub lr_mlp: f64,
    /// Channels per resolution.
    pub channels: ChannelTable,
    /// 1-D blur kernel taps; the 2-D kernel is their outer product (rosinality `make_kernel`).
    pub blur_kernel: Vec<f32>,
}

impl StyleGan2Config {
    /// The configuration the e4e/HyperStyle consumers hard-code at 256 px: S=512, 8 mapping
    /// layers, channel multiplier 2 ("config-f").
    pub fn paper_256() -> Self {
        Self {
            size: 256,
            style_dim: 512,
            n_mlp: 8,
            lr_mlp: 0.01,
            channels: ChannelTable::Multiplier(2),
            blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
        }
    }

    /// FFHQ 1024 px config-f.
    pub fn ffhq_1024() -> Self {
        Self {
            size: 1024,
            ..Self::paper_256()
        }
    }

    /// The narrowed config of the parity fixture `sg2_tiny.safetensors`.
    pub fn tiny_fixture() -> Self {
        Self {
            size: 64,
            style_dim: 64,
            n_mlp: 8,
            lr_mlp: 0.01,
            channels: ChannelTable::Explicit(BTreeMap::from([
                (4, 32),
                (8, 32),
                (16, 32),
                (32, 32),
                (64, 16),
            ])),
            blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
        }
    }

    /// A narrow 64 px model meant to be trainable on a 2-core CPU in hours: S=128, 4 mapping
    /// layers, channels 128/128/128/64/32 at 4/8/16/32/64. About 1.3 M generator parameters.
    pub fn phantom_64() -> Self {
        Self {
            size: 64,
            style_dim: 128,
            n_mlp: 4,
            lr_mlp: 0.01,
            channels: ChannelTable::Explicit(BTreeMap::from([
                (4, 128),
                (8, 128),
                (16, 128),
                (32, 64),
                (64, 32),
            ])),
            blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
        }
    }

    /// Checks every invariant the model relies on; called by every constructor.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(StyleGan2Error::Config(m));
        if !(8..=1024).contains(&self.size) || !self.size.is_power_of_two() {
            return bad(format!(
                "size must be a power of two in 8..=1024, got {}",
                self.size
            ));
        }
        if self.style_dim == 0 {
            return bad("style_dim must be > 0".into());
        }
        if self.n_mlp == 0 {
            return bad("n_mlp must be >= 1".into());
        }
        if !(self.lr_mlp.is_finite() && self.lr_mlp > 0.0) {
            return bad(format!(
                "lr_mlp must be finite and > 0, got {}",
                self.lr_mlp
            ));
        }
        if let ChannelTable::Multiplier(0) = self.channels {
            return bad("channel multiplier must be >= 1".into());
        }
        for res in self.resolutions() {
            match self.channels.get(res) {
                Some(c) if c > 0 => {}
                Some(_) => return bad(format!("channels at resolution {res} must be > 0")),
                None => return bad(format!("channel table has no entry for resolution {res}")),
            }
        }
        // The blur pads below assume a 4-tap kernel (rosinality hard-codes the same formulas
        // for any length, but only [1,3,3,1] is used anywhere and tested here).
        if self.blur_kernel.len() != 4 {
            return bad(format!(
                "blur_kernel must have 4 taps, got {:?}",
                self.blur_kernel
            ));
        }
        let sum: f32 = self.blur_kernel.iter().sum();
        if self.blur_kernel.iter().any(|v| !v.is_finite()) || sum == 0.0 {
            return bad(format!(
                "blur_kernel must be finite with a non-zero sum, got {:?}",
                self.blur_kernel
            ));
        }
        Ok(())
    }

    /// log2(size).
    pub fn log_size(&self) -> usize {
        self.size.trailing_zeros() as usize
    }

    /// Number of W+ entries: 2·log2(size) − 2 (14 at 256 px).
    pub fn n_latent(&self) -> usize {
        self.log_size() * 2 - 2
    }

    /// Number of noise inputs (`noises.noise_i`): 2·(log2(size) − 2) + 1.
    pub fn num_noise_layers(&self) -> usize {
        2 * (self.log_size() - 2) + 1
    }

    /// Resolutions 4, 8, …, size.
    pub fn resolutions(&self) -> Vec<u32> {
        (2..=self.log_size()).map(|l| 1u32 << l).collect()
    }

    /// Channels at resolution `res`. Panics never: returns a config error for an unknown res.
    pub fn channels_at(&self, res: u32) -> Result<usize> {
        self.channels.get(res).ok_or_else(|| {
            StyleGan2Error::Config(format!("channel table has no entry for resolution {res}"))
        })
    }

    /// Rebuilds a config from the safetensors header metadata written by the fixture generator
    /// and by `tools/convert_stylegan2.py` (`size`, `style_dim`, `n_mlp`, `lr_mlp`, `channels`
    /// as a JSON object, `blur_kernel` as a JSON list).
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Self> {
        fn field<'a>(meta: &'a HashMap<String, String>, k: &str) -> Result<&'a str> {
            meta.get(k).map(|s| s.as_str()).ok_or_else(|| {
                StyleGan2Error::Config(format!("safetensors metadata has no `{k}` entry"))
            })
        }
        fn parse<T: std::str::FromStr>(meta: &HashMap<String, String>, k: &str) -> Result<T> {
            let v = field(meta, k)?;
            v.trim().parse().map_err(|_| {
                StyleGan2Error::Config(format!("metadata `{k}` = {v:?} is not a valid value"))
            })
        }
        let size: u32 = parse(meta, "size")?;
        let channels = match meta.get("channels") {
            Some(c) => {
                let raw: BTreeMap<String, usize> = serde_json::from_str(c).map_err(|e| {
                    StyleGan2Error::Config(format!("metadata `channels` is not a JSON map: {e}"))
                })?;
                let mut map = BTreeMap::new();
                for (k, v) in raw {
                    let res: u32 = k.parse().map_err(|_| {
                        StyleGan2Error::Config(format!("metadata `channels` key {k:?}"))
                    })?;
                    // Keep only resolutions the model uses, so the table round-trips cleanly.
                    if res <= size {
                        map.insert(res, v);
                    }
                }
                ChannelTable::Explicit(map)
            }
            None => ChannelTable::Multiplier(parse(meta, "channel_multiplier")?),
        };
        let blur_kernel = match meta.get("blur_kernel") {
            Some(b) => serde_json::from_str(b).map_err(|e| {
                StyleGan2Error::Config(format!("metadata `blur_kernel` is not a JSON list: {e}"))
            })?,
            None => vec![1.0, 3.0, 3.0, 1.0],
        };
        let cfg = Self {
            size,
            style_dim: parse(meta, "style_dim")?,
            n_mlp: parse(meta, "n_mlp")?,
            lr_mlp: parse(meta, "lr_mlp")?,
            channels,
            blur_kernel,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_derive() {
        for c in [
            StyleGan2Config::paper_256(),
            StyleGan2Config::ffhq_1024(),
            StyleGan2Config::tiny_fixture(),
            StyleGan2Config::phantom_64(),
        ] {
            c.validate().unwrap();
        }
        let p = StyleGan2Config::paper_256();
        assert_eq!(p.n_latent(), 14);
        assert_eq!(p.num_noise_layers(), 13);
        assert_eq!(p.channels_at(64).unwrap(), 512);
        assert_eq!(p.channels_at(256).unwrap(), 128);
        assert_eq!(StyleGan2Config::tiny_fixture().n_latent(), 10);
        assert_eq!(StyleGan2Config::ffhq_1024().n_latent(), 18);
    }

    #[test]
    fn validate_rejects_bad_configs() {
        let mut c = StyleGan2Config::tiny_fixture();
        c.size = 48;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("power of two")
        );
        let mut c = StyleGan2Config::tiny_fixture();
        c.size = 128;
        assert!(c.validate().unwrap_err().to_string().contains("128"));
        let mut c = StyleGan2Config::tiny_fixture();
        c.blur_kernel = vec![1.0, 2.0, 1.0];
        assert!(c.validate().is_err());
    }

    #[test]
    fn serde_round_trip() {
        for c in [
            StyleGan2Config::paper_256(),
            StyleGan2Config::tiny_fixture(),
        ] {
            let s = serde_json::to_string(&c).unwrap();
            let back: StyleGan2Config = serde_json::from_str(&s).unwrap();
            assert_eq!(back, c);
        }
    }
}
