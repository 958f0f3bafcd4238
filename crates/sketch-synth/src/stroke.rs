//! A pen stroke: a polyline with a width (pressure) per point.

use serde::{Deserialize, Serialize};

/// One pen stroke in pixel coordinates (pixel `(x, y)` has its centre at `(x + 0.5, y + 0.5)`).
///
/// `widths[i]` is the pen width in pixels at `points[i]`; varying widths model pen pressure.
/// A closed stroke also joins its last point back to the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stroke {
    /// Polyline vertices, `[x, y]` in pixels.
    pub points: Vec<[f32; 2]>,
    /// Pen width in pixels at each vertex (same length as `points`).
    pub widths: Vec<f32>,
    /// Whether the last vertex connects back to the first.
    pub closed: bool,
}

impl Stroke {
    /// A stroke with the same width at every point.
    pub fn uniform(points: Vec<[f32; 2]>, width: f32, closed: bool) -> Self {
        let widths = vec![width; points.len()];
        Self {
            points,
            widths,
            closed,
        }
    }

    /// Sets every point's width to `width`.
    pub fn set_uniform_width(&mut self, width: f32) {
        self.widths.clear();
        self.widths.resize(self.points.len(), width);
    }

    /// Length of the polyline in pixels (including the closing segment of a closed stroke).
    pub fn length(&self) -> f32 {
        polyline_length(&self.points, self.closed)
    }
}

/// Length of a polyline; `closed` adds the segment from the last point back to the first.
pub(crate) fn polyline_length(points: &[[f32; 2]], closed: bool) -> f32 {
    let open: f32 = points.windows(2).map(|w| distance(w[0], w[1])).sum();
    match (closed, points.first(), points.last()) {
        (true, Some(&first), Some(&last)) if points.len() > 2 => open + distance(last, first),
        _ => open,
    }
}

/// Euclidean distance between two points.
pub(crate) fn distance(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}
