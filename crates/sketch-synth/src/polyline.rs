//! Polyline geometry used by the free-hand simulator: simplification, smoothing, resampling,
//! normals and end extensions.

use crate::stroke::{distance, polyline_length};
use imageproc::geometry::approximate_polygon_dp;
use imageproc::point::Point;

/// Whether `x > 0` (false for NaN): the guard for lengths that switch an effect off.
pub(crate) fn is_positive(x: f32) -> bool {
    x > 0.0
}

/// Douglas-Peucker simplification with tolerance `epsilon` (pixels); `epsilon <= 0` or fewer
/// than three points returns the input.
///
/// imageproc's implementation treats a curve as open between its first and last point, so a
/// closed curve is split at the point farthest from its start and each half simplified.
pub(crate) fn simplify(points: &[[f32; 2]], epsilon: f32, closed: bool) -> Vec<[f32; 2]> {
    if !is_positive(epsilon) || points.len() < 3 {
        return points.to_vec();
    }
    let as_points: Vec<Point<f32>> = points.iter().map(|p| Point::new(p[0], p[1])).collect();
    let eps = f64::from(epsilon);
    let simplified: Vec<Point<f32>> = if closed {
        let start = points[0];
        let far = (1..points.len())
            .max_by(|&a, &b| distance(points[a], start).total_cmp(&distance(points[b], start)))
            .unwrap_or(1);
        let mut first_half = approximate_polygon_dp(&as_points[..=far], eps, false);
        let mut second_half: Vec<Point<f32>> = as_points[far..].to_vec();
        second_half.push(as_points[0]);
        let second_half = approximate_polygon_dp(&second_half, eps, false);
        // Both halves share the far point; the second ends on the start point again.
        first_half.pop();
        first_half.extend_from_slice(&second_half[..second_half.len() - 1]);
        first_half
    } else {
        approximate_polygon_dp(&as_points, eps, false)
    };
    simplified.iter().map(|p| [p.x, p.y]).collect()
}

/// One round of Chaikin corner cutting: every segment is replaced by its 1/4 and 3/4 points.
/// Open curves keep their end points.
pub(crate) fn chaikin(points: &[[f32; 2]], closed: bool) -> Vec<[f32; 2]> {
    let n = points.len();
    if n < 3 {
        return points.to_vec();
    }
    let cut =
        |a: [f32; 2], b: [f32; 2], t: f32| [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
    let mut out = Vec::with_capacity(2 * n + 2);
    if closed {
        for i in 0..n {
            let (a, b) = (points[i], points[(i + 1) % n]);
            out.push(cut(a, b, 0.25));
            out.push(cut(a, b, 0.75));
        }
    } else {
        out.push(points[0]);
        for w in points.windows(2) {
            out.push(cut(w[0], w[1], 0.25));
            out.push(cut(w[0], w[1], 0.75));
        }
        out.push(points[n - 1]);
    }
    out
}

/// Points spaced `step` pixels apart along the polyline (closed curves include the closing
/// segment and do not repeat their start; open curves keep their last point).
pub(crate) fn resample(points: &[[f32; 2]], step: f32, closed: bool) -> Vec<[f32; 2]> {
    let total = polyline_length(points, closed);
    if points.len() < 2 || !is_positive(step) || total <= step {
        return points.to_vec();
    }
    let mut vertices = points.to_vec();
    if closed {
        vertices.push(points[0]);
    }
    let mut out = vec![vertices[0]];
    let mut next_at = step;
    let mut walked = 0.0;
    for w in vertices.windows(2) {
        let seg = distance(w[0], w[1]);
        while seg > 0.0 && next_at <= walked + seg {
            let t = (next_at - walked) / seg;
            out.push([
                w[0][0] + (w[1][0] - w[0][0]) * t,
                w[0][1] + (w[1][1] - w[0][1]) * t,
            ]);
            next_at += step;
        }
        walked += seg;
    }
    if closed {
        // Drop a last sample that (nearly) coincides with the start.
        if out.len() > 2 && distance(out[out.len() - 1], out[0]) < 0.5 * step {
            out.pop();
        }
    } else if let (Some(&last_sample), Some(&end)) = (out.last(), points.last())
        && distance(last_sample, end) > 1e-3
    {
        out.push(end);
    }
    out
}

/// Cumulative arc length at each point.
pub(crate) fn arc_lengths(points: &[[f32; 2]]) -> Vec<f32> {
    let mut s = 0.0;
    let mut out = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            s += distance(points[i - 1], *p);
        }
        out.push(s);
    }
    out
}

/// Unit normals (tangent rotated by 90 degrees) from central differences; zero where the curve
/// does not move.
pub(crate) fn normals(points: &[[f32; 2]], closed: bool) -> Vec<[f32; 2]> {
    let n = points.len();
    (0..n)
        .map(|i| {
            let (prev, next) = if closed {
                (points[(i + n - 1) % n], points[(i + 1) % n])
            } else {
                (points[i.saturating_sub(1)], points[(i + 1).min(n - 1)])
            };
            let (tx, ty) = (next[0] - prev[0], next[1] - prev[1]);
            let len = tx.hypot(ty);
            if len > 1e-6 {
                [-ty / len, tx / len]
            } else {
                [0.0, 0.0]
            }
        })
        .collect()
}

/// Points continuing straight on from `end` in the direction `from -> end`, every `step`
/// pixels for `length` pixels (empty if the direction is undefined).
pub(crate) fn straight_extension(
    from: [f32; 2],
    end: [f32; 2],
    length: f32,
    step: f32,
) -> Vec<[f32; 2]> {
    let (dx, dy) = (end[0] - from[0], end[1] - from[1]);
    let norm = dx.hypot(dy);
    if norm < 1e-6 || !is_positive(length) || !is_positive(step) {
        return Vec::new();
    }
    let (ux, uy) = (dx / norm, dy / norm);
    let count = (length / step).ceil() as usize;
    (1..=count)
        .map(|k| {
            let t = (k as f32 * step).min(length);
            [end[0] + ux * t, end[1] + uy * t]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(side: f32, per_side: usize) -> Vec<[f32; 2]> {
        let mut pts = Vec::new();
        let corners = [[0.0, 0.0], [side, 0.0], [side, side], [0.0, side]];
        for c in 0..4 {
            let (a, b) = (corners[c], corners[(c + 1) % 4]);
            for k in 0..per_side {
                let t = k as f32 / per_side as f32;
                pts.push([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]);
            }
        }
        pts
    }

    #[test]
    fn closed_simplification_keeps_the_corners() {
        let pts = square(10.0, 10);
        let simple = simplify(&pts, 0.5, true);
        assert_eq!(simple.len(), 4, "{simple:?}");
        for c in [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]] {
            assert!(simple.contains(&c), "{c:?} missing from {simple:?}");
        }
    }

    #[test]
    fn resampling_spaces_points_evenly_and_keeps_length() {
        let pts = square(10.0, 1);
        let even = resample(&pts, 1.0, true);
        assert_eq!(even.len(), 40);
        let gaps: Vec<f32> = even.windows(2).map(|w| distance(w[0], w[1])).collect();
        assert!(gaps.iter().all(|g| (g - 1.0).abs() < 1e-4), "{gaps:?}");
        let open = resample(&[[0.0, 0.0], [0.0, 4.5]], 1.0, false);
        assert_eq!(open.len(), 6);
        assert_eq!(open[5], [0.0, 4.5]);
    }

    #[test]
    fn chaikin_smooths_inside_the_hull() {
        let pts = square(10.0, 1);
        let smooth = chaikin(&pts, true);
        assert_eq!(smooth.len(), 8);
        assert!(!smooth.contains(&[0.0, 0.0]));
        let open = chaikin(&[[0.0, 0.0], [4.0, 0.0], [4.0, 4.0]], false);
        assert_eq!(open.first(), Some(&[0.0, 0.0]));
        assert_eq!(open.last(), Some(&[4.0, 4.0]));
    }

    #[test]
    fn extension_continues_the_direction() {
        let ext = straight_extension([0.0, 0.0], [1.0, 0.0], 2.5, 1.0);
        assert_eq!(ext, vec![[2.0, 0.0], [3.0, 0.0], [3.5, 0.0]]);
    }
}
