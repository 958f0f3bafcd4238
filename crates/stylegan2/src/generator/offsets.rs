//! HyperStyle's per-sample weight offsets Δ of the modulated convs, keyed by offset slot, and
//! the geometry of every slot (`weights_deltas` order).

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::config::StyleGan2Config;
use crate::error::{Result, StyleGan2Error, check_finite};
use crate::generator::Generator;

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

impl Generator {
    /// Geometry of every modulated conv, in offset-slot order.
    pub fn modulated_layer_shapes(&self) -> Vec<ModulatedLayerShape> {
        modulated_layer_shapes(&self.cfg).unwrap_or_default()
    }

    /// Checks offsets against the slot table before any compute.
    pub(super) fn check_offsets(&self, offsets: &WeightOffsets, b: usize) -> Result<()> {
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
}
