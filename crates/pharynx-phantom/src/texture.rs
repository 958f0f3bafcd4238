//! A bank of tileable procedural textures, generated once per process from a fixed seed.
//!
//! Every phantom samples these tiles at its own random offsets, scales and orientations, which
//! is far cheaper than evaluating fractal noise per pixel (the generator must reach 100 images/s
//! at 256 px on 2 cores) while every image still gets its own pattern. The bank's seed is part
//! of the generator version: changing it changes every image.

use rand::Rng as _;
use s2m_core::rng::{Rng, rng_from_seed};
use std::sync::OnceLock;

/// Side of every texture tile, in texels (a power of two, so wrapping is a mask).
pub const TILE: usize = 256;
const MASK: i32 = TILE as i32 - 1;
const BANK_SEED: u64 = 0x005E_ED0F_7417;

/// One tileable scalar texture.
pub struct Texture {
    data: Vec<f32>,
}

impl Texture {
    /// Bilinear sample at texel coordinates, wrapping around the tile.
    #[inline]
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let xf = x.floor();
        let yf = y.floor();
        let fx = x - xf;
        let fy = y - yf;
        let x0 = (xf as i32) & MASK;
        let y0 = (yf as i32) & MASK;
        let x1 = (x0 + 1) & MASK;
        let y1 = (y0 + 1) & MASK;
        let row0 = y0 as usize * TILE;
        let row1 = y1 as usize * TILE;
        let a = self.data[row0 + x0 as usize];
        let b = self.data[row0 + x1 as usize];
        let c = self.data[row1 + x0 as usize];
        let d = self.data[row1 + x1 as usize];
        let top = a + (b - a) * fx;
        let bottom = c + (d - c) * fx;
        top + (bottom - top) * fy
    }
}

/// The textures every phantom draws from.
pub struct TextureBank {
    /// Smooth fractal noise (5 octaves), zero mean, unit standard deviation.
    pub fbm: Texture,
    /// A second, independent fractal noise (mottling, wetness, coating).
    pub fbm2: Texture,
    /// Low-frequency noise (2 octaves) for smooth warps of anatomy outlines.
    pub warp: Texture,
    /// Dense small rounded bumps in [0, 1] (tongue papillae, tonsil surface lobules).
    pub bumps: Texture,
}

/// The process-wide texture bank.
pub fn bank() -> &'static TextureBank {
    static BANK: OnceLock<TextureBank> = OnceLock::new();
    BANK.get_or_init(|| {
        let mut rng = rng_from_seed(BANK_SEED);
        TextureBank {
            fbm: fractal_noise(&mut rng, 4, 5),
            fbm2: fractal_noise(&mut rng, 4, 5),
            warp: fractal_noise(&mut rng, 2, 2),
            bumps: bump_field(&mut rng, 2200, 1.6, 3.2),
        }
    })
}

/// Tileable value noise: `octaves` octaves starting at `base` lattice cells per tile.
fn fractal_noise(rng: &mut Rng, base: usize, octaves: usize) -> Texture {
    let mut data = vec![0f32; TILE * TILE];
    let mut amplitude = 1.0f32;
    let mut cells = base;
    for _ in 0..octaves {
        let lattice: Vec<f32> = (0..cells * cells)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect();
        let step = TILE as f32 / cells as f32;
        for y in 0..TILE {
            let gy = y as f32 / step;
            let iy = gy.floor() as usize;
            let ty = smooth(gy - iy as f32);
            let (y0, y1) = (iy % cells, (iy + 1) % cells);
            for x in 0..TILE {
                let gx = x as f32 / step;
                let ix = gx.floor() as usize;
                let tx = smooth(gx - ix as f32);
                let (x0, x1) = (ix % cells, (ix + 1) % cells);
                let a = lattice[y0 * cells + x0];
                let b = lattice[y0 * cells + x1];
                let c = lattice[y1 * cells + x0];
                let d = lattice[y1 * cells + x1];
                let v = (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
                data[y * TILE + x] += amplitude * v;
            }
        }
        amplitude *= 0.5;
        cells *= 2;
    }
    normalise(&mut data);
    Texture { data }
}

/// Many small smooth bumps (cosine caps) at random positions, wrapped, clamped to [0, 1].
fn bump_field(rng: &mut Rng, count: usize, r_min: f32, r_max: f32) -> Texture {
    let mut data = vec![0f32; TILE * TILE];
    for _ in 0..count {
        let cx = rng.random::<f32>() * TILE as f32;
        let cy = rng.random::<f32>() * TILE as f32;
        let r = r_min + rng.random::<f32>() * (r_max - r_min);
        let ri = r.ceil() as i32 + 1;
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                let px = (cx.floor() as i32 + dx) & MASK;
                let py = (cy.floor() as i32 + dy) & MASK;
                let ddx = cx.floor() + dx as f32 + 0.5 - cx;
                let ddy = cy.floor() + dy as f32 + 0.5 - cy;
                let d = (ddx * ddx + ddy * ddy).sqrt() / r;
                if d < 1.0 {
                    let v = 0.5 + 0.5 * (std::f32::consts::PI * d).cos();
                    let cell = &mut data[py as usize * TILE + px as usize];
                    *cell = cell.max(v);
                }
            }
        }
    }
    Texture { data }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

fn normalise(data: &mut [f32]) {
    let n = data.len() as f32;
    let mean = data.iter().sum::<f32>() / n;
    let var = data.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let std = var.sqrt().max(1e-6);
    for v in data.iter_mut() {
        *v = (*v - mean) / std;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textures_are_normalised_and_tile() {
        let b = bank();
        for t in [&b.fbm, &b.fbm2, &b.warp] {
            let mean = t.data.iter().sum::<f32>() / t.data.len() as f32;
            assert!(mean.abs() < 1e-3);
            // Wrapping: sampling one tile further lands on the same value.
            let a = t.sample(10.3, 20.7);
            let c = t.sample(10.3 + TILE as f32, 20.7 - TILE as f32);
            assert!((a - c).abs() < 1e-5);
        }
        let max = b.bumps.data.iter().cloned().fold(0.0, f32::max);
        assert!(max > 0.9 && max <= 1.0);
    }
}
