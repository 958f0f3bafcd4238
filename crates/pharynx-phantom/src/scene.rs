//! The geometry of a phantom throat: which anatomical surface a scene point belongs to, and the
//! quantities its height field and colour are computed from.
//!
//! Seen through the open mouth, front to back: the lips frame the view; the tongue fills the
//! bottom; the uvula hangs from the soft palate in the middle of the faucial isthmus (the
//! opening between the anterior pillars); the tonsils bulge from behind the pillars at both
//! sides of the isthmus; the posterior pharyngeal wall is what remains visible behind. The
//! occlusion order is therefore tongue > uvula > tonsils > wall, and masks are visible regions.

use crate::params::PhantomParams;

/// Surfaces in the scene. The first two are unlabeled background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Surface {
    /// Outside the mouth opening: lips and beyond.
    Lips = 0,
    /// Inside the mouth but outside the isthmus: soft palate, pillars, cheeks.
    Palate = 1,
    Wall = 2,
    TonsilLeft = 3,
    TonsilRight = 4,
    Uvula = 5,
    Tongue = 6,
}

impl Surface {
    pub fn from_u8(v: u8) -> Surface {
        match v {
            0 => Surface::Lips,
            1 => Surface::Palate,
            2 => Surface::Wall,
            3 => Surface::TonsilLeft,
            4 => Surface::TonsilRight,
            5 => Surface::Uvula,
            _ => Surface::Tongue,
        }
    }
}

/// Derived, per-phantom geometry constants.
pub struct Scene {
    mouth_rx: f32,
    mouth_ry: f32,
    cx: f32,
    yc: f32,
    aw: f32,
    ah: f32,
    uvula_y0: f32,
    uvula_len: f32,
    uvula_w: f32,
    uvula_tip_r: f32,
    uvula_tilt: f32,
    tongue_top: f32,
    tongue_curv: f32,
    tongue_tilt: f32,
    /// Per side (left, right): Some((centre x, centre y, radius x, radius y)).
    tonsils: [Option<[f32; 4]>; 2],
}

/// Geometric quantities at one scene point.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Normalised radius in the mouth ellipse (< 1 inside the mouth).
    pub mouth_r: f32,
    /// Inside-ness of the isthmus, about (distance to its edge) / half width; > 0 inside.
    pub open: f32,
    /// Depth below the tongue's outline in scene units; > 0 on the tongue.
    pub tongue: f32,
    /// Inside-ness of the uvula in [0, 1] (0 at its outline), negative outside.
    pub uvula: f32,
    /// Position along the uvula, 0 at its root, 1 at its tip.
    pub uvula_t: f32,
    /// Normalised radius in each tonsil ellipse (< 1 inside), infinity where absent.
    pub tonsil_r: [f32; 2],
}

/// Protrusion of a tonsil of each grade as a fraction of the isthmus half width.
const GRADE_PROTRUSION: [f32; 5] = [0.0, 0.12, 0.3, 0.55, 0.8];

impl Scene {
    pub fn new(p: &PhantomParams) -> Self {
        let cx = p.asymmetry;
        let yc = p.arch_center_y;
        let aw = p.arch_half_width;
        let ah = p.arch_height;
        let uvula_y0 = yc - ah - 0.08;
        let uvula_len = p.uvula_length + 0.08;
        let tonsils = [0usize, 1].map(|side| {
            let grade = p.tonsil_grade[side].min(4) as usize;
            if grade == 0 {
                return None;
            }
            let s = if side == 0 { -1.0 } else { 1.0 };
            let frac = (GRADE_PROTRUSION[grade] + p.tonsil_jitter[side]).clamp(0.05, 0.92);
            let medial = cx + s * aw * (1.0 - frac);
            let rx = (frac * aw * 1.5).max(0.08);
            let ry = 0.13 + 0.045 * grade as f32;
            Some([medial + s * rx, yc + 0.06 + 0.03 * grade as f32, rx, ry])
        });
        Self {
            mouth_rx: 1.2 * p.mouth_width,
            mouth_ry: 1.1 * p.mouth_open,
            cx,
            yc,
            aw,
            ah,
            uvula_y0,
            uvula_len,
            uvula_w: p.uvula_width,
            uvula_tip_r: 0.85 * p.uvula_width,
            uvula_tilt: p.uvula_tilt,
            tongue_top: p.tongue_top,
            tongue_curv: p.tongue_curvature,
            tongue_tilt: p.tongue_tilt,
            tonsils,
        }
    }

    /// Half width of the isthmus.
    pub fn arch_half_width(&self) -> f32 {
        self.aw
    }

    /// Lateral centre of the isthmus.
    pub fn center_x(&self) -> f32 {
        self.cx
    }

    /// Evaluates the geometry at a (warped) scene point.
    #[inline]
    pub fn geometry(&self, x: f32, y: f32) -> Geometry {
        let mx = x / self.mouth_rx;
        let my = (y - 0.04) / self.mouth_ry;
        let mouth_r = (mx * mx + my * my).sqrt();

        let dx = x - self.cx;
        let open = if y < self.yc {
            let ex = dx / self.aw;
            let ey = (y - self.yc) / self.ah;
            1.0 - (ex * ex + ey * ey).sqrt()
        } else {
            let hw = self.aw * (1.0 + 0.3 * (y - self.yc));
            1.0 - dx.abs() / hw
        };

        let tongue = y - (self.tongue_top + self.tongue_curv * x * x + self.tongue_tilt * x);

        // The uvula: a tapering body from the palate down to a round bulb at the tip.
        let body_end = self.uvula_y0 + self.uvula_len - self.uvula_tip_r;
        let t = ((y - self.uvula_y0) / (body_end - self.uvula_y0)).clamp(0.0, 1.0);
        let axis = self.cx + self.uvula_tilt * t * t;
        let half = self.uvula_w * (1.1 - 0.35 * t);
        // The body continues upwards into the palate (as a ridge there); only its part inside
        // the isthmus is labelled uvula.
        let body = if y <= body_end {
            1.0 - (x - axis).abs() / half
        } else {
            -1.0
        };
        let bx = x - (self.cx + self.uvula_tilt);
        let by = y - body_end;
        let bulb = 1.0 - (bx * bx + by * by).sqrt() / self.uvula_tip_r;
        let uvula = body.max(bulb);
        let uvula_t = if y > body_end { 1.0 } else { t * 0.9 };

        let tonsil_r = self.tonsils.map(|t| match t {
            Some([tx, ty, rx, ry]) => {
                let ex = (x - tx) / rx;
                let ey = (y - ty) / ry;
                (ex * ex + ey * ey).sqrt()
            }
            None => f32::INFINITY,
        });

        Geometry {
            mouth_r,
            open,
            tongue,
            uvula,
            uvula_t,
            tonsil_r,
        }
    }

    /// The visible surface, applying the occlusion order. `lobes` perturbs the tonsil outline.
    #[inline]
    pub fn surface(&self, g: &Geometry, lobes: [f32; 2]) -> Surface {
        if g.mouth_r >= 1.0 {
            Surface::Lips
        } else if g.tongue > 0.0 {
            Surface::Tongue
        } else if g.open > 0.0 {
            if g.uvula > 0.0 {
                Surface::Uvula
            } else if g.tonsil_r[0] + lobes[0] < 1.0 {
                Surface::TonsilLeft
            } else if g.tonsil_r[1] + lobes[1] < 1.0 {
                Surface::TonsilRight
            } else {
                Surface::Wall
            }
        } else {
            Surface::Palate
        }
    }
}
