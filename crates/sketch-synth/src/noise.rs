//! Smooth random functions: 1-D value noise along a stroke (tremor, pressure, retrace drift) and
//! a low-frequency 2-D displacement field over the page (elastic distortion of the drawing).

use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use s2m_core::rng::Rng;
use std::f32::consts::TAU;

/// A standard-normal sample as `f32`.
pub(crate) fn gaussian(rng: &mut Rng) -> f32 {
    StandardNormal.sample(rng)
}

/// 1-D value noise: Gaussian values (std `amplitude`) at knots `wavelength` apart, blended with
/// a smoothstep so the function is continuous with a continuous slope.
pub(crate) struct SmoothNoise1d {
    knots: Vec<f32>,
    wavelength: f32,
    phase: f32,
}

impl SmoothNoise1d {
    /// Noise covering arc lengths `0..=length`. A zero amplitude gives the zero function and
    /// draws nothing from `rng`.
    pub(crate) fn new(rng: &mut Rng, amplitude: f32, wavelength: f32, length: f32) -> Self {
        if !(amplitude > 0.0 && wavelength > 0.0) {
            return Self {
                knots: Vec::new(),
                wavelength: 1.0,
                phase: 0.0,
            };
        }
        // A random phase keeps knots from lining up with the stroke start.
        let phase = rng.random::<f32>() * wavelength;
        let count = ((length + phase) / wavelength).ceil() as usize + 2;
        let knots = (0..count).map(|_| amplitude * gaussian(rng)).collect();
        Self {
            knots,
            wavelength,
            phase,
        }
    }

    /// The noise value at arc length `s` (clamped to the covered range).
    pub(crate) fn at(&self, s: f32) -> f32 {
        if self.knots.len() < 2 {
            return 0.0;
        }
        let u = ((s + self.phase) / self.wavelength).max(0.0);
        let i = (u.floor() as usize).min(self.knots.len() - 2);
        let t = (u - i as f32).clamp(0.0, 1.0);
        let blend = t * t * (3.0 - 2.0 * t);
        self.knots[i] + (self.knots[i + 1] - self.knots[i]) * blend
    }
}

/// Number of plane waves in the elastic field: enough to look irregular, few enough to stay
/// low-frequency and cheap.
const ELASTIC_MODES: usize = 4;

/// A smooth random displacement field: a sum of plane sine waves with random directions,
/// wavelengths near `wavelength`, phases, and Gaussian displacement vectors whose combined RMS
/// per axis is about `amplitude / sqrt(2)`.
pub(crate) struct ElasticField {
    /// (wave vector x, wave vector y, phase, displacement x, displacement y)
    modes: Vec<[f32; 5]>,
}

impl ElasticField {
    /// A random field; a zero amplitude gives the identity and draws nothing from `rng`.
    pub(crate) fn new(rng: &mut Rng, amplitude: f32, wavelength: f32) -> Self {
        if !(amplitude > 0.0 && wavelength > 0.0) {
            return Self { modes: Vec::new() };
        }
        let per_mode = amplitude / (ELASTIC_MODES as f32).sqrt();
        let modes = (0..ELASTIC_MODES)
            .map(|_| {
                let direction = rng.random::<f32>() * TAU;
                let k = TAU / (wavelength * rng.random_range(0.75f32..1.33));
                let phase = rng.random::<f32>() * TAU;
                [
                    k * direction.cos(),
                    k * direction.sin(),
                    phase,
                    per_mode * gaussian(rng),
                    per_mode * gaussian(rng),
                ]
            })
            .collect();
        Self { modes }
    }

    /// The displacement at `p`.
    pub(crate) fn displacement(&self, p: [f32; 2]) -> [f32; 2] {
        self.modes.iter().fold([0.0, 0.0], |acc, m| {
            let wave = (m[0] * p[0] + m[1] * p[1] + m[2]).sin();
            [acc[0] + m[3] * wave, acc[1] + m[4] * wave]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s2m_core::rng::rng_from_seed;

    #[test]
    fn smooth_noise_is_continuous_and_scaled() {
        let mut rng = rng_from_seed(5);
        let noise = SmoothNoise1d::new(&mut rng, 2.0, 10.0, 1000.0);
        let values: Vec<f32> = (0..10_000).map(|i| noise.at(i as f32 * 0.1)).collect();
        let max_step = values
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_step < 0.2, "jump {max_step}");
        let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
        assert!(rms > 0.8 && rms < 3.0, "rms {rms}");
        let flat = SmoothNoise1d::new(&mut rng, 0.0, 10.0, 100.0);
        assert_eq!(flat.at(42.0), 0.0);
    }

    #[test]
    fn elastic_field_is_smooth() {
        let field = ElasticField::new(&mut rng_from_seed(9), 4.0, 100.0);
        let a = field.displacement([50.0, 50.0]);
        let b = field.displacement([51.0, 50.0]);
        assert!((a[0] - b[0]).abs() < 0.5 && (a[1] - b[1]).abs() < 0.5);
        let big = (0..100)
            .map(|i| field.displacement([i as f32 * 2.56, 128.0]))
            .any(|d| d[0].hypot(d[1]) > 0.5);
        assert!(big, "field is (nearly) zero everywhere");
    }
}
