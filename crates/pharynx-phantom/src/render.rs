//! Rendering a phantom: geometry -> visible surfaces and label map -> height field and albedo
//! (with splatted details) -> flash shading with wet specular highlights -> camera (vignetting,
//! blur, sensor noise, tone curve).
//!
//! NOTE: this is a procedural stand-in for the paper's private photographs. It is meant to
//! exercise every part of the method (shapes, occlusion, texture, lighting variation), not to
//! be clinically faithful.

use crate::error::{PhantomError, Result};
use crate::params::PhantomParams;
use crate::scene::{Geometry, Scene, Surface};
use crate::texture::{TILE, TextureBank, bank};
use image::RgbImage;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use s2m_core::anatomy::{Class, LabelMap, encode_label};
use s2m_core::rng::{Rng, rng_from_seed};

/// A rendered phantom: the photo-like image and its instance label map.
#[derive(Debug, Clone)]
pub struct Phantom {
    pub image: RgbImage,
    pub labels: LabelMap,
    /// Number of visible tonsil instances (0-2) in `labels`.
    pub tonsil_count: u8,
}

/// Smallest visible tonsil kept as an instance, as a fraction of the image area. Smaller
/// slivers are treated as pharyngeal wall so that masks never hold unlabelable specks.
const MIN_TONSIL_AREA: f32 = 0.0015;

/// Largest image side the phantom renders (a 4096² image already takes seconds and 64 MB of
/// label, height and colour buffers; a dataset at this size is gigabytes).
pub const MAX_SIZE: u32 = 4096;

/// Checks an image size: a multiple of 8, from 32 to [`MAX_SIZE`].
pub fn check_size(size: u32) -> Result<()> {
    if !(32..=MAX_SIZE).contains(&size) || !size.is_multiple_of(8) {
        return Err(PhantomError::BadSize(size));
    }
    Ok(())
}

/// Scene units per texel for each texture use (larger = finer pattern).
const MOTTLE_FREQ: f32 = 150.0;
const VESSEL_FREQ: f32 = 110.0;
const PAPILLA_FREQ: f32 = 900.0;
const LOBE_FREQ: f32 = 160.0;
const SHEEN_FREQ: f32 = 420.0;
/// Distance from the flash to the scene plane h = 0, in scene units (sets the light falloff).
const CAMERA_DISTANCE: f32 = 3.2;

struct Colours {
    mucosa: [f32; 3],
    wall: [f32; 3],
    tonsil: [f32; 3],
    uvula: [f32; 3],
    tongue: [f32; 3],
    lips: [f32; 3],
    vessel: [f32; 3],
    follicle: [f32; 3],
    coating: [f32; 3],
    exudate: [f32; 3],
}

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale3(a: [f32; 3], s: [f32; 3]) -> [f32; 3] {
    [a[0] * s[0], a[1] * s[1], a[2] * s[2]]
}

impl Colours {
    fn new(p: &PhantomParams) -> Self {
        let i = p.inflammation;
        let mucosa = lerp3([0.87, 0.50, 0.49], [0.86, 0.25, 0.23], i);
        Self {
            mucosa,
            wall: scale3(mucosa, [0.96, 0.88, 0.88]),
            tonsil: lerp3(
                scale3(mucosa, [0.97, 0.86, 0.86]),
                [0.80, 0.20, 0.20],
                0.3 + 0.5 * i,
            ),
            uvula: scale3(mucosa, [1.0, 0.95, 0.95]),
            tongue: lerp3([0.88, 0.55, 0.55], [0.86, 0.36, 0.36], 0.6 * i),
            lips: [0.58, 0.27, 0.25],
            vessel: [0.55, 0.08, 0.10],
            follicle: lerp3([0.92, 0.60, 0.55], [0.90, 0.33, 0.28], i),
            coating: [0.90, 0.80, 0.76],
            exudate: [0.97, 0.95, 0.84],
        }
    }
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Renders a phantom at `size` x `size` pixels.
pub fn render(p: &PhantomParams, size: u32) -> Result<Phantom> {
    check_size(size)?;
    let scene = Scene::new(p);
    let bank = bank();
    let mut rng = rng_from_seed(p.detail_seed);
    let camera = Camera::new(p, size as usize);
    let colours = Colours::new(p);

    let mut visible = visible_surfaces(p, &scene, bank, &camera);
    let tonsil_count = drop_tonsil_slivers(&mut visible.surf);
    let labels = label_map(&visible.surf, size);
    let mut fields = surface_fields(p, &scene, bank, &colours, &visible);
    splat_details(p, &camera, &colours, &visible.surf, &mut fields, &mut rng);
    let mut rgb = flash_shading(p, &camera, &visible.surf, &fields);
    draw_bubbles(
        &mut rgb,
        &visible.surf,
        camera.n,
        camera.unit_px,
        p,
        &mut rng,
        &|x, y| camera.surface_at(&visible.surf, x, y),
    );
    apply_lens(p, &mut rgb, camera.n);
    let image = sensor_image(p, &rgb, size, &mut rng);
    Ok(Phantom {
        image,
        labels,
        tonsil_count,
    })
}

/// The pixel <-> scene mapping of one rendering.
struct Camera<'a> {
    p: &'a PhantomParams,
    /// Image side in pixels.
    n: usize,
    sin_r: f32,
    cos_r: f32,
    inv_zoom: f32,
    /// Pixels per scene unit, for derivatives and splat radii.
    unit_px: f32,
}

impl<'a> Camera<'a> {
    fn new(p: &'a PhantomParams, n: usize) -> Self {
        let (sin_r, cos_r) = p.rotation_deg.to_radians().sin_cos();
        Self {
            p,
            n,
            sin_r,
            cos_r,
            inv_zoom: 1.0 / p.zoom,
            unit_px: n as f32 * 0.5 * p.zoom,
        }
    }

    /// Pixel -> scene (inverse camera): scene = R(-roll) (frame - shift) / zoom.
    fn to_scene(&self, px: f32, py: f32) -> (f32, f32) {
        let (n, p) = (self.n, self.p);
        let fx = px / n as f32 * 2.0 - 1.0 - p.shift[0];
        let fy = py / n as f32 * 2.0 - 1.0 - p.shift[1];
        (
            (self.cos_r * fx + self.sin_r * fy) * self.inv_zoom,
            (-self.sin_r * fx + self.cos_r * fy) * self.inv_zoom,
        )
    }

    /// The pixel index under scene point (x, y) and its surface, if inside the image.
    fn surface_at(&self, surf: &[u8], x: f32, y: f32) -> Option<(usize, u8)> {
        let (n, p) = (self.n, self.p);
        let (fx, fy) = ((x * p.zoom) + 0.0, (y * p.zoom) + 0.0);
        // Forward camera: frame = R(roll) scene * zoom + shift.
        let frx = self.cos_r * fx - self.sin_r * fy + p.shift[0];
        let fry = self.sin_r * fx + self.cos_r * fy + p.shift[1];
        let px = ((frx + 1.0) * 0.5 * n as f32) as isize;
        let py = ((fry + 1.0) * 0.5 * n as f32) as isize;
        (px >= 0 && py >= 0 && (px as usize) < n && (py as usize) < n).then(|| {
            (
                py as usize * n + px as usize,
                surf[py as usize * n + px as usize],
            )
        })
    }
}

/// Per pixel: the warped scene coordinates and the visible surface (`Surface as u8`).
struct Visible {
    wxs: Vec<f32>,
    wys: Vec<f32>,
    surf: Vec<u8>,
}

/// Pass 1: warped scene coordinates and visible surfaces.
fn visible_surfaces(
    p: &PhantomParams,
    scene: &Scene,
    bank: &TextureBank,
    camera: &Camera,
) -> Visible {
    let n = camera.n;
    let npx = n * n;
    let [ox, oy] = p.texture_offset;
    let mut wxs = vec![0f32; npx];
    let mut wys = vec![0f32; npx];
    let mut surf = vec![0u8; npx];
    for py in 0..n {
        for px in 0..n {
            let (x, y) = camera.to_scene(px as f32 + 0.5, py as f32 + 0.5);
            let tx = x * 48.0 + ox;
            let ty = y * 48.0 + oy;
            let wx = x + p.outline_warp * bank.warp.sample(tx, ty);
            let wy = y + p.outline_warp * bank.warp.sample(tx + 97.0, ty + 31.0);
            let g = scene.geometry(wx, wy);
            let lobe = 0.05 * bank.fbm.sample(wx * LOBE_FREQ + oy, wy * LOBE_FREQ + ox);
            let i = py * n + px;
            wxs[i] = wx;
            wys[i] = wy;
            surf[i] = scene.surface(&g, [lobe, lobe]) as u8;
        }
    }
    Visible { wxs, wys, surf }
}

/// Turns tiny tonsil slivers into wall; returns the number of tonsils left visible.
fn drop_tonsil_slivers(surf: &mut [u8]) -> u8 {
    let npx = surf.len();
    let mut tonsil_area = [0usize; 2];
    for &s in surf.iter() {
        match Surface::from_u8(s) {
            Surface::TonsilLeft => tonsil_area[0] += 1,
            Surface::TonsilRight => tonsil_area[1] += 1,
            _ => {}
        }
    }
    for (side, area) in tonsil_area.iter_mut().enumerate() {
        if *area > 0 && (*area as f32) < MIN_TONSIL_AREA * npx as f32 {
            let id = if side == 0 {
                Surface::TonsilLeft
            } else {
                Surface::TonsilRight
            } as u8;
            surf.iter_mut()
                .filter(|s| **s == id)
                .for_each(|s| *s = Surface::Wall as u8);
            *area = 0;
        }
    }
    tonsil_area.iter().filter(|a| **a > 0).count() as u8
}

/// The instance label map of the visible surfaces.
fn label_map(surf: &[u8], size: u32) -> LabelMap {
    let mut labels = LabelMap::new(size, size);
    for (l, &s) in labels.as_raw_mut().iter_mut().zip(surf) {
        *l = match Surface::from_u8(s) {
            Surface::Lips | Surface::Palate => 0,
            Surface::Wall => encode_label(Class::PharyngealWall, 0),
            Surface::TonsilLeft => encode_label(Class::Tonsil, 0),
            Surface::TonsilRight => encode_label(Class::Tonsil, 1),
            Surface::Uvula => encode_label(Class::Uvula, 0),
            Surface::Tongue => encode_label(Class::Tongue, 0),
        };
    }
    labels
}

/// Per pixel: height, albedo and wetness of the visible surface.
struct Fields {
    height: Vec<f32>,
    albedo: Vec<[f32; 3]>,
    wet: Vec<f32>,
}

/// Pass 2: height field, albedo and wetness per surface.
fn surface_fields(
    p: &PhantomParams,
    scene: &Scene,
    bank: &TextureBank,
    col: &Colours,
    visible: &Visible,
) -> Fields {
    let Visible { wxs, wys, surf } = visible;
    let npx = surf.len();
    let [ox, oy] = p.texture_offset;
    let mut height = vec![0f32; npx];
    let mut albedo = vec![[0f32; 3]; npx];
    let mut wet = vec![0f32; npx];
    let aw = scene.arch_half_width();
    let cx = scene.center_x();
    for i in 0..npx {
        let (wx, wy) = (wxs[i], wys[i]);
        let g: Geometry = scene.geometry(wx, wy);
        let mottle = bank
            .fbm
            .sample(wx * MOTTLE_FREQ + ox, wy * MOTTLE_FREQ + oy);
        let fine = bank.fbm2.sample(wx * SHEEN_FREQ + oy, wy * SHEEN_FREQ + ox);
        let vessel_noise = bank
            .fbm2
            .sample(wx * VESSEL_FREQ + ox * 0.5, wy * VESSEL_FREQ + 11.0);
        let vessel = (1.0 - smoothstep(0.0, 0.07, vessel_noise.abs())) * p.vessels;
        let (h, a, w) = match Surface::from_u8(surf[i]) {
            Surface::Lips => {
                let ring = (-((g.mouth_r - 1.05) / 0.05).powi(2)).exp();
                let h = 0.1 + 0.12 * ring - 0.5 * (g.mouth_r - 1.0).max(0.0);
                let a = lerp3(
                    col.lips,
                    [0.25, 0.12, 0.11],
                    smoothstep(1.02, 1.3, g.mouth_r),
                );
                (h, a, 0.4 * ring)
            }
            Surface::Palate => {
                let out = (-g.open * aw).max(0.0);
                let mut h =
                    -0.3 + 0.14 * smoothstep(0.0, 0.07, out) + 0.1 * smoothstep(0.1, 0.5, out);
                // The uvula's root continues into the soft palate as a ridge.
                if g.uvula > -0.6 {
                    let ridge = smoothstep(-0.6, 0.3, g.uvula) * (1.0 - smoothstep(0.0, 0.15, out));
                    h = h + (-0.28 + 0.06 * g.uvula.max(0.0).sqrt() - h) * ridge;
                }
                let a = lerp3(col.mucosa, col.vessel, 0.45 * vessel);
                (h, a, 0.8)
            }
            Surface::Wall => {
                let lateral = ((wx - cx) / aw).clamp(-1.3, 1.3);
                let h = -0.72 + 0.25 * lateral * lateral + 0.02 * mottle;
                let a = lerp3(col.wall, col.vessel, 0.35 * vessel);
                let a = scale3(a, [1.0 + 0.06 * fine, 1.0 + 0.08 * fine, 1.0 + 0.08 * fine]);
                (h, a, 0.9)
            }
            Surface::TonsilLeft | Surface::TonsilRight => {
                let side = if surf[i] == Surface::TonsilLeft as u8 {
                    0
                } else {
                    1
                };
                let r = g.tonsil_r[side].min(1.0);
                let lob = bank.bumps.sample(wx * 200.0 + ox, wy * 200.0 + oy);
                let crypt = 1.0 - smoothstep(0.0, 0.12, (fine + 0.3 * mottle).abs());
                let h = -0.6 + 0.3 * (1.0 - r * r).sqrt() + 0.006 * lob - 0.008 * crypt;
                let a = lerp3(
                    col.tonsil,
                    scale3(col.tonsil, [0.7, 0.55, 0.55]),
                    0.45 * crypt,
                );
                (h, a, 0.9)
            }
            Surface::Uvula => {
                let u = g.uvula.clamp(0.0, 1.0);
                let h = -0.4 + 0.12 * u.sqrt() + 0.12 * (1.0 - g.uvula_t);
                let a = lerp3(col.uvula, col.vessel, 0.2 * vessel);
                (h, a, 1.0)
            }
            Surface::Tongue => {
                let dome = (g.tongue / 0.35).clamp(0.0, 1.0).sqrt();
                let groove = 0.05 * (-(wx / 0.06).powi(2)).exp() * smoothstep(0.0, 0.3, g.tongue);
                let papillae = bank
                    .bumps
                    .sample(wx * PAPILLA_FREQ + ox, wy * PAPILLA_FREQ + oy);
                let h = -0.08 + 0.25 * dome - groove + 0.004 * papillae;
                let coat = 0.8
                    * p.tongue_coating
                    * smoothstep(-0.2, 0.9, mottle + 0.8 - 1.5 * wx.abs())
                    * smoothstep(0.0, 0.12, g.tongue);
                let base = lerp3(col.tongue, [0.86, 0.38, 0.40], 0.35 * papillae);
                (h, lerp3(base, col.coating, coat), 0.7)
            }
        };
        height[i] = h + 0.004 * fine;
        let m = 1.0 + 0.07 * mottle;
        albedo[i] = [a[0] * m, a[1] * m, a[2] * m];
        wet[i] = w * smoothstep(-0.6, 0.9, bank.fbm.sample(wx * 90.0 + oy, wy * 90.0 + ox));
    }

    Fields {
        height,
        albedo,
        wet,
    }
}

/// Splatted details: lymphoid follicles on the wall, exudate spots on the tonsils.
fn splat_details(
    p: &PhantomParams,
    camera: &Camera,
    col: &Colours,
    surf: &[u8],
    fields: &mut Fields,
    rng: &mut Rng,
) {
    let n = camera.n;
    let unit_px = camera.unit_px;
    let Fields { height, albedo, .. } = fields;
    let mut splat = |rng: &mut Rng,
                     count: usize,
                     target: &[Surface],
                     radius: (f32, f32),
                     bump: f32,
                     colour: [f32; 3],
                     opacity: f32| {
        let mut placed = 0;
        for _ in 0..count * 12 {
            if placed == count {
                break;
            }
            let x = rng.random::<f32>() * 2.4 - 1.2;
            let y = rng.random::<f32>() * 2.4 - 1.2;
            let Some((centre, s)) = camera.surface_at(surf, x, y) else {
                continue;
            };
            if !target.iter().any(|t| *t as u8 == s) {
                continue;
            }
            placed += 1;
            let r_px = (radius.0 + (radius.1 - radius.0) * rng.random::<f32>()) * unit_px;
            let ri = r_px.ceil() as isize;
            let (cxp, cyp) = ((centre % n) as isize, (centre / n) as isize);
            for dy in -ri..=ri {
                for dx in -ri..=ri {
                    let (qx, qy) = (cxp + dx, cyp + dy);
                    if qx < 0 || qy < 0 || qx >= n as isize || qy >= n as isize {
                        continue;
                    }
                    let q = qy as usize * n + qx as usize;
                    if surf[q] != s {
                        continue;
                    }
                    let d = ((dx * dx + dy * dy) as f32).sqrt() / r_px.max(0.5);
                    if d < 1.0 {
                        let cap = 0.5 + 0.5 * (std::f32::consts::PI * d).cos();
                        height[q] += bump * cap;
                        albedo[q] = lerp3(albedo[q], colour, opacity * cap.sqrt());
                    }
                }
            }
        }
    };
    splat(
        rng,
        p.follicles as usize,
        &[Surface::Wall],
        (0.015, 0.035),
        0.008,
        col.follicle,
        0.5,
    );
    let spots = (p.exudate * 16.0).round() as usize;
    splat(
        rng,
        spots,
        &[Surface::TonsilLeft, Surface::TonsilRight],
        (0.008, 0.025),
        0.01,
        col.exudate,
        0.9,
    );
}

/// Pass 3: flash shading (diffuse, wet specular highlights, light falloff, ambient
/// occlusion) of the height field and albedo.
fn flash_shading(
    p: &PhantomParams,
    camera: &Camera,
    surf: &[u8],
    fields: &Fields,
) -> Vec<[f32; 3]> {
    let (n, unit_px) = (camera.n, camera.unit_px);
    let Fields {
        height,
        albedo,
        wet,
    } = fields;
    // Ambient occlusion: points lower than their surroundings (crevices, the wall next to the
    // uvula and tonsils) receive less light.
    let blurred = box_blur(height, n, ((0.05 * unit_px) as usize).max(1));

    let light = normalise([0.0, -0.22, 1.0]);
    let half = normalise([light[0], light[1], light[2] + 1.0]);
    let step = 1.0 / unit_px; // scene units per pixel
    let mut rgb = vec![[0f32; 3]; n * n];
    for py in 0..n {
        for px in 0..n {
            let i = py * n + px;
            let s = surf[i];
            // One-sided differences at surface boundaries: heights of different surfaces
            // are not one continuous field.
            let hl = if px > 0 && surf[i - 1] == s {
                height[i - 1]
            } else {
                height[i]
            };
            let hr = if px + 1 < n && surf[i + 1] == s {
                height[i + 1]
            } else {
                height[i]
            };
            let hu = if py > 0 && surf[i - n] == s {
                height[i - n]
            } else {
                height[i]
            };
            let hd = if py + 1 < n && surf[i + n] == s {
                height[i + n]
            } else {
                height[i]
            };
            let gx = (hr - hl) / (2.0 * step);
            let gy = (hd - hu) / (2.0 * step);
            let nrm = normalise([-gx, -gy, 1.0]);
            let diffuse = dot(nrm, light).max(0.0);
            let spec_dot = dot(nrm, half).max(0.0);
            let dist = CAMERA_DISTANCE - height[i];
            let falloff = (CAMERA_DISTANCE / dist).powi(2);
            let ao = (1.0 - 0.9 * (blurred[i] - height[i]).max(0.0)).clamp(0.5, 1.0);
            let shade = (0.1 + 0.95 * diffuse) * falloff * ao * p.exposure;
            let spec =
                p.wetness * wet[i] * (0.9 * spec_dot.powi(90) + 0.06 * spec_dot.powi(10)) * falloff;
            let a = albedo[i];
            rgb[i] = [
                a[0] * shade + spec,
                a[1] * shade + spec,
                a[2] * shade + spec,
            ];
        }
    }
    rgb
}

/// Camera optics: vignetting, white balance and blur.
fn apply_lens(p: &PhantomParams, rgb: &mut [[f32; 3]], n: usize) {
    for py in 0..n {
        for px in 0..n {
            let fx = (px as f32 + 0.5) / n as f32 * 2.0 - 1.0;
            let fy = (py as f32 + 0.5) / n as f32 * 2.0 - 1.0;
            let r2 = (fx * fx + fy * fy) * 0.5;
            let v = 1.0 - p.vignette * r2 * r2.sqrt();
            let c = &mut rgb[py * n + px];
            for (ck, wb) in c.iter_mut().zip(p.white_balance) {
                *ck *= v * wb;
            }
        }
    }
    let sigma = p.blur_px * n as f32 / 256.0;
    gaussian_blur_rgb(rgb, n, sigma);
}

/// The sensor: noise and tone curve, quantised to 8 bits.
fn sensor_image(p: &PhantomParams, rgb: &[[f32; 3]], size: u32, rng: &mut Rng) -> RgbImage {
    let mut image = RgbImage::new(size, size);
    for (px, c) in image.pixels_mut().zip(rgb) {
        for (out, &ck) in px.0.iter_mut().zip(c) {
            let noise: f32 = StandardNormal.sample(rng);
            let v = tone(ck) + p.noise * noise;
            *out = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }

    image
}

/// Saliva bubbles: small transparent spheres with a bright rim and a specular dot.
fn draw_bubbles(
    rgb: &mut [[f32; 3]],
    surf: &[u8],
    n: usize,
    unit_px: f32,
    p: &PhantomParams,
    rng: &mut Rng,
    surface_at: &dyn Fn(f32, f32) -> Option<(usize, u8)>,
) {
    let targets = [
        Surface::Tongue as u8,
        Surface::Wall as u8,
        Surface::Uvula as u8,
    ];
    let mut placed = 0;
    for _ in 0..p.bubbles * 12 {
        if placed == p.bubbles {
            break;
        }
        let x = rng.random::<f32>() * 2.0 - 1.0;
        let y = rng.random::<f32>() * 2.0 - 1.0;
        let Some((centre, s)) = surface_at(x, y) else {
            continue;
        };
        if !targets.contains(&s) {
            continue;
        }
        placed += 1;
        let r = (0.008 + 0.022 * rng.random::<f32>()) * unit_px;
        let ri = (r * 1.3).ceil() as isize;
        let (cx, cy) = ((centre % n) as isize, (centre / n) as isize);
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                let (qx, qy) = (cx + dx, cy + dy);
                if qx < 0 || qy < 0 || qx >= n as isize || qy >= n as isize {
                    continue;
                }
                let q = qy as usize * n + qx as usize;
                if surf[q] != s {
                    continue;
                }
                let d = ((dx * dx + dy * dy) as f32).sqrt() / r.max(0.5);
                let rim = (-((d - 0.92) / 0.12).powi(2)).exp() * 0.35;
                let hx = dx as f32 / r + 0.35;
                let hy = dy as f32 / r + 0.35;
                let glint = (-(hx * hx + hy * hy) / 0.03).exp();
                let inner = if d < 1.0 { 0.06 } else { 0.0 };
                for ck in rgb[q].iter_mut() {
                    *ck = *ck * (1.0 - rim * 0.3) + rim + inner + 0.9 * glint;
                }
            }
        }
    }
}

/// Soft shoulder so that highlights saturate gradually, as a camera's tone curve does.
fn tone(v: f32) -> f32 {
    if v < 0.8 {
        v
    } else {
        let e = v - 0.8;
        0.8 + e / (1.0 + 5.0 * e)
    }
}

#[inline]
fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
fn normalise(v: [f32; 3]) -> [f32; 3] {
    let l = dot(v, v).sqrt().max(1e-12);
    [v[0] / l, v[1] / l, v[2] / l]
}

/// Separable box blur of a square scalar field (clamped borders), via running sums.
fn box_blur(src: &[f32], n: usize, r: usize) -> Vec<f32> {
    let pass = |src: &[f32], stride_outer: usize, stride_inner: usize| -> Vec<f32> {
        let mut out = vec![0f32; n * n];
        let norm = 1.0 / (2 * r + 1) as f32;
        for o in 0..n {
            let at = |k: isize| {
                src[o * stride_outer + (k.clamp(0, n as isize - 1) as usize) * stride_inner]
            };
            let mut acc: f32 = (-(r as isize)..=r as isize).map(at).sum();
            for k in 0..n {
                out[o * stride_outer + k * stride_inner] = acc * norm;
                acc += at(k as isize + r as isize + 1) - at(k as isize - r as isize);
            }
        }
        out
    };
    let h = pass(src, n, 1);
    pass(&h, 1, n)
}

/// Separable Gaussian blur of an RGB field in place (clamped borders).
fn gaussian_blur_rgb(rgb: &mut [[f32; 3]], n: usize, sigma: f32) {
    if sigma < 0.2 {
        return;
    }
    let radius = (2.5 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|k| (-(k * k) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let mut tmp = vec![[0f32; 3]; n * n];
    let last = n as isize - 1;
    for y in 0..n {
        let row = &rgb[y * n..(y + 1) * n];
        for x in 0..n {
            let mut acc = [0f32; 3];
            for (j, w) in kernel.iter().enumerate() {
                let sx = (x as isize + j as isize - radius).clamp(0, last) as usize;
                let c = row[sx];
                acc[0] += w * c[0];
                acc[1] += w * c[1];
                acc[2] += w * c[2];
            }
            tmp[y * n + x] = acc;
        }
    }
    for y in 0..n {
        for x in 0..n {
            let mut acc = [0f32; 3];
            for (j, w) in kernel.iter().enumerate() {
                let sy = (y as isize + j as isize - radius).clamp(0, last) as usize;
                let c = tmp[sy * n + x];
                acc[0] += w * c[0];
                acc[1] += w * c[1];
                acc[2] += w * c[2];
            }
            rgb[y * n + x] = acc;
        }
    }
}

#[allow(dead_code)]
const _: () = assert!(TILE.is_power_of_two());
