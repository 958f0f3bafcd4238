//! Training curves as PNG images.
//!
//! [`plot_curves`] draws `(step, value)` series either all in one chart with a legend
//! ([`Layout::Overlay`]) or one panel per series in a grid ([`Layout::Panels`]), optionally on a
//! log-10 value axis and with exponential-moving-average smoothing (the raw curve is then drawn
//! faintly behind the smoothed one, as TensorBoard does).
//!
//! Rules on data:
//! - non-finite values are skipped; on a log axis, values `<= 0` are skipped too;
//! - a series with nothing left to draw gets an empty panel marked "no data" (panels) or only
//!   its legend entry (overlay);
//! - if no series has anything to draw (including an empty `series` slice), it is an error:
//!   there is no chart to make.
//!
//! Rendering uses plotters' in-memory bitmap backend; the RGB buffer is encoded with the `image`
//! crate and written atomically ([`s2m_core::imageio::save_png`]). Text uses DejaVu Sans, bundled
//! in `assets/` (licence in `assets/DejaVu-LICENSE.txt`), so no system font is needed.

use image::RgbImage;
use plotters::prelude::*;
use s2m_core::error::{CoreError, Result};
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (see `assets/DejaVu-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The font family name the bundled font is registered under.
const FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "plot font",
            "the bundled DejaVuSans.ttf could not be parsed",
        ))
    }
}

/// How several series are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// All series in one chart, with a legend.
    #[default]
    Overlay,
    /// One panel per series, in a near-square grid, titled with the series name.
    Panels,
}

/// Options of [`plot_curves`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Arrangement of the series.
    pub layout: Layout,
    /// Log-10 value axis (values `<= 0` are skipped).
    pub log_y: bool,
    /// EMA smoothing weight in `[0, 1)`: `s_t = a s_{t-1} + (1 - a) x_t`, `s_0 = x_0`.
    /// `None` or `Some(0.0)` draws the raw values only.
    pub ema: Option<f64>,
    /// Label of the horizontal axis.
    pub x_label: String,
}

impl Default for PlotOptions {
    /// 960x540, overlay, linear axis, no smoothing, x label "step".
    fn default() -> Self {
        Self {
            width: 960,
            height: 540,
            layout: Layout::Overlay,
            log_y: false,
            ema: None,
            x_label: "step".into(),
        }
    }
}

/// Exponential moving average of `values` with weight `a` (see [`PlotOptions::ema`]).
pub fn ema_smooth(values: &[f64], a: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut s = None;
    for &x in values {
        let next = match s {
            None => x,
            Some(prev) => a * prev + (1.0 - a) * x,
        };
        s = Some(next);
        out.push(next);
    }
    out
}

/// One series prepared for drawing: points on the (possibly log) axis.
struct Prepared {
    name: String,
    raw: Vec<(f64, f64)>,
    smooth: Option<Vec<(f64, f64)>>,
}

fn prepare(name: &str, points: &[(f64, f64)], opts: &PlotOptions) -> Prepared {
    let kept: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!opts.log_y || *y > 0.0))
        .collect();
    let smooth = opts.ema.filter(|a| *a > 0.0).map(|a| {
        let ys: Vec<f64> = kept.iter().map(|p| p.1).collect();
        kept.iter()
            .zip(ema_smooth(&ys, a))
            .map(|(p, s)| (p.0, s))
            .collect::<Vec<_>>()
    });
    let axis = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        if opts.log_y {
            pts.into_iter().map(|(x, y)| (x, y.log10())).collect()
        } else {
            pts
        }
    };
    Prepared {
        name: name.to_string(),
        raw: axis(kept),
        smooth: smooth.map(axis),
    }
}

/// A padded range over values; a degenerate range is widened.
fn range(values: impl Iterator<Item = f64>, pad: f64) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let d = (hi.abs() * 0.1).max(0.5);
        return (lo - d)..(hi + d);
    }
    let p = (hi - lo) * pad;
    (lo - p)..(hi + p)
}

/// Tick label of a value (on a log axis, the value is `10^v`).
fn tick_label(v: f64, log_y: bool) -> String {
    let x = if log_y { 10f64.powf(v) } else { v };
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{x:.1e}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else {
        // Three significant digits, trailing zeros trimmed.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

fn plot_err(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(format!("plot {what}"), e.to_string())
}

/// Draws one chart (a panel or the overlay) of `series` into `area`.
fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    series: &[(usize, &Prepared)],
    opts: &PlotOptions,
    legend: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| plot_err(caption, e);
    let all = || {
        series
            .iter()
            .flat_map(|(_, p)| p.raw.iter().chain(p.smooth.iter().flatten()))
    };
    let has_data = all().next().is_some();
    let xr = range(all().map(|p| p.0), 0.0);
    let yr = range(all().map(|p| p.1), 0.05);
    let (w, h) = area.dim_in_pixel();
    let font_px = (h as f64 / 22.0).clamp(11.0, 20.0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, font_px * 1.2))
        .margin(8)
        .x_label_area_size(font_px * 2.6)
        .y_label_area_size((font_px * 4.2).min(w as f64 / 4.0))
        .build_cartesian_2d(xr, yr)
        .map_err(e)?;
    let log_y = opts.log_y;
    let y_fmt = move |v: &f64| tick_label(*v, log_y);
    let x_fmt = |v: &f64| tick_label(*v, false);
    chart
        .configure_mesh()
        .x_desc(opts.x_label.as_str())
        .y_desc(if log_y { "value (log)" } else { "value" })
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FAMILY, font_px))
        .axis_desc_style((FAMILY, font_px))
        .x_labels(6)
        .y_labels(6)
        .draw()
        .map_err(e)?;
    if !has_data {
        let (cw, ch) = chart.plotting_area().dim_in_pixel();
        chart
            .plotting_area()
            .strip_coord_spec()
            .draw(&Text::new(
                "no data",
                (cw as i32 / 2 - 3 * font_px as i32, ch as i32 / 2),
                (FAMILY, font_px * 1.5).into_font().color(&RED),
            ))
            .map_err(e)?;
        return Ok(());
    }
    for (i, p) in series {
        let color = Palette99::pick(*i).to_rgba();
        let (main, faint) = match &p.smooth {
            Some(s) => (s, Some(&p.raw)),
            None => (&p.raw, None),
        };
        if let Some(raw) = faint {
            chart
                .draw_series(LineSeries::new(raw.iter().copied(), color.mix(0.25)))
                .map_err(e)?;
        }
        let drawn = chart
            .draw_series(LineSeries::new(main.iter().copied(), color.stroke_width(2)))
            .map_err(e)?;
        if legend {
            drawn.label(p.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font((FAMILY, font_px))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// Renders the curves to an RGB image (what [`plot_curves`] writes).
pub fn render_curves(
    title: &str,
    series: &[(&str, &[(f64, f64)])],
    opts: &PlotOptions,
) -> Result<RgbImage> {
    if opts.width < 64 || opts.height < 64 || opts.width > 16384 || opts.height > 16384 {
        return Err(CoreError::invalid(
            "plot size",
            format!("{}x{} must be within 64..=16384", opts.width, opts.height),
        ));
    }
    if let Some(a) = opts.ema
        && !(0.0..1.0).contains(&a)
    {
        return Err(CoreError::invalid(
            "plot EMA weight",
            format!("{a} must be in [0, 1)"),
        ));
    }
    let prepared: Vec<Prepared> = series
        .iter()
        .map(|(name, pts)| prepare(name, pts, opts))
        .collect();
    if prepared.iter().all(|p| p.raw.is_empty()) {
        return Err(CoreError::invalid(
            format!("plot `{title}`"),
            format!(
                "no data to draw ({} series, no finite{} point)",
                series.len(),
                if opts.log_y { " positive" } else { "" }
            ),
        ));
    }
    ensure_font()?;
    let (w, h) = (opts.width, opts.height);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |e| plot_err(title, e);
        root.fill(&WHITE).map_err(e)?;
        match opts.layout {
            Layout::Overlay => {
                let all: Vec<(usize, &Prepared)> = prepared.iter().enumerate().collect();
                draw_chart(&root, title, &all, opts, true)?;
            }
            Layout::Panels => {
                let title_px = (h as f64 / 18.0).clamp(14.0, 28.0);
                let body = if title.is_empty() {
                    root.clone()
                } else {
                    root.titled(title, (FAMILY, title_px)).map_err(e)?
                };
                let n = prepared.len();
                let cols = (n as f64).sqrt().ceil() as usize;
                let rows = n.div_ceil(cols);
                let panels = body.split_evenly((rows, cols));
                for (i, (p, area)) in prepared.iter().zip(panels.iter()).enumerate() {
                    draw_chart(area, &p.name, &[(i, p)], opts, false)?;
                }
            }
        }
        root.present().map_err(e)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| {
        CoreError::invalid("plot buffer", "size does not match the image dimensions")
    })
}

/// Draws `(step, value)` series (see the [module docs](self)) and writes a PNG at `path`
/// atomically.
pub fn plot_curves(
    path: impl AsRef<Path>,
    title: &str,
    series: &[(&str, &[(f64, f64)])],
    opts: &PlotOptions,
) -> Result<()> {
    let path = path.as_ref();
    let img = render_curves(title, series, opts).map_err(|e| e.in_file(path))?;
    s2m_core::imageio::save_png(path, &img)
}

/// The training runs' loss figure: redraws `png` from the CSV log at `log_csv`, one panel
/// (EMA 0.9 over the raw values) per column of `columns` that has a finite value; writes
/// nothing when none has.
pub fn plot_training_log(
    log_csv: impl AsRef<Path>,
    png: impl AsRef<Path>,
    title: &str,
    columns: &[&str],
) -> Result<()> {
    let log = crate::logcsv::read_csv_log(log_csv)?;
    let series: Vec<(&str, Vec<(f64, f64)>)> = columns
        .iter()
        .filter_map(|c| log.series(c).map(|s| (*c, s)))
        .filter(|(_, s)| s.iter().any(|(_, v)| v.is_finite()))
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&str, &[(f64, f64)])> = series.iter().map(|(n, s)| (*n, s.as_slice())).collect();
    let opts = PlotOptions {
        layout: Layout::Panels,
        ema: Some(0.9),
        ..PlotOptions::default()
    };
    plot_curves(png, title, &refs, &opts)
}

/// One bar of [`render_interval_bars`]: a mean with its confidence interval.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalBar {
    /// The series the bar belongs to (one colour and one legend entry per series).
    pub series: String,
    pub mean: f64,
    /// Lower and upper end of the interval (e.g. a 95% bootstrap CI).
    pub lo: f64,
    pub hi: f64,
}

/// Grouped bars with interval whiskers: one group per `(group name, bars)` on the x axis, the
/// bars of a group side by side, coloured by series, with a legend. Errors on no finite bar, a
/// bar whose interval does not contain its mean, or a size outside 64..=16384.
pub fn render_interval_bars(
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<IntervalBar>)],
    width: u32,
    height: u32,
) -> Result<RgbImage> {
    if width < 64 || height < 64 || width > 16384 || height > 16384 {
        return Err(CoreError::invalid(
            "plot size",
            format!("{width}x{height} must be within 64..=16384"),
        ));
    }
    let bars = groups.iter().flat_map(|(_, b)| b);
    let mut series: Vec<&str> = Vec::new();
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for b in bars {
        if ![b.mean, b.lo, b.hi].iter().all(|v| v.is_finite()) || b.lo > b.mean || b.mean > b.hi {
            return Err(CoreError::invalid(
                format!("plot `{title}`"),
                format!(
                    "bar `{}`: interval [{}, {}] must be finite and contain the mean {}",
                    b.series, b.lo, b.hi, b.mean
                ),
            ));
        }
        if !series.contains(&b.series.as_str()) {
            series.push(&b.series);
        }
        y_min = y_min.min(b.lo);
        y_max = y_max.max(b.hi);
    }
    if series.is_empty() {
        return Err(CoreError::invalid(
            format!("plot `{title}`"),
            "no bars to draw",
        ));
    }
    ensure_font()?;
    let y_lo = y_min.min(0.0);
    // Head room above the highest whisker for the legend.
    let y_hi = y_max + 0.3 * (y_max - y_lo).max(1e-9);
    let n_series = series.len() as f64;
    let mut buf = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let e = |e| plot_err(title, e);
        root.fill(&WHITE).map_err(e)?;
        let names: Vec<String> = groups.iter().map(|(g, _)| g.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..groups.len() as f64, y_lo..y_hi)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 1e-6 && i < names.len() {
                    names[i].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .label_style((FAMILY, 12))
            .draw()
            .map_err(e)?;
        for (si, name) in series.iter().enumerate() {
            let colour = Palette99::pick(si).to_rgba();
            let mut rects = Vec::new();
            let mut whiskers = Vec::new();
            for (gi, (_, bars)) in groups.iter().enumerate() {
                for b in bars.iter().filter(|b| b.series == *name) {
                    let x0 = gi as f64 + (si as f64 + 0.5) / (n_series + 1.0);
                    let x1 = x0 + 0.9 / (n_series + 1.0);
                    let xm = 0.5 * (x0 + x1);
                    rects.push(Rectangle::new([(x0, 0.0), (x1, b.mean)], colour.filled()));
                    whiskers.push(PathElement::new(vec![(xm, b.lo), (xm, b.hi)], BLACK));
                    for y in [b.lo, b.hi] {
                        let cap = vec![(xm - 0.15 * (x1 - x0), y), (xm + 0.15 * (x1 - x0), y)];
                        whiskers.push(PathElement::new(cap, BLACK));
                    }
                }
            }
            chart
                .draw_series(rects)
                .map_err(e)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            chart.draw_series(whiskers).map_err(e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FAMILY, 12))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    RgbImage::from_raw(width, height, buf).ok_or_else(|| {
        CoreError::invalid("plot buffer", "size does not match the image dimensions")
    })
}

/// [`render_interval_bars`] written atomically as a PNG at `path`.
pub fn plot_interval_bars(
    path: impl AsRef<Path>,
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<IntervalBar>)],
    width: u32,
    height: u32,
) -> Result<()> {
    let path = path.as_ref();
    let img =
        render_interval_bars(title, y_label, groups, width, height).map_err(|e| e.in_file(path))?;
    s2m_core::imageio::save_png(path, &img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (i as f64 * 10.0, f(i as f64))).collect()
    }

    fn non_white(img: &RgbImage) -> usize {
        img.pixels().filter(|p| p.0 != [255, 255, 255]).count()
    }

    fn differing(a: &RgbImage, b: &RgbImage) -> usize {
        a.pixels().zip(b.pixels()).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn writes_a_png_of_the_right_size_with_curves_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("loss.png");
        let a = curve(200, |i| 2.0 * (-i / 50.0).exp() + 0.1 * (i * 0.7).sin());
        let b = curve(200, |i| 1.0 + 0.2 * (i * 0.3).cos());
        let opts = PlotOptions {
            width: 640,
            height: 400,
            ema: Some(0.9),
            ..Default::default()
        };
        plot_curves(&p, "GAN losses", &[("loss_g", &a), ("loss_d", &b)], &opts).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (640, 400));
        let inked = non_white(&img);
        assert!(inked > 2_000, "too few drawn pixels: {inked}");
        assert!(inked < 640 * 400 / 2, "mostly non-white: {inked}");
        // Strongly coloured pixels exist (the curves, not just black axes and text).
        let coloured = img
            .pixels()
            .filter(|p| {
                let [r, g, b] = p.0.map(|c| c as i32);
                (r - g).abs() + (g - b).abs() + (r - b).abs() > 120
            })
            .count();
        assert!(coloured > 300, "no curves drawn: {coloured}");
        // The font works: a title changes pixels.
        let series: [(&str, &[(f64, f64)]); 1] = [("loss_g", &a)];
        let with = render_curves("A TITLE", &series, &opts).unwrap();
        let without = render_curves("", &series, &opts).unwrap();
        assert!(differing(&with, &without) > 50, "title not rendered");
    }

    #[test]
    fn panels_log_scale_and_smoothing_change_the_picture() {
        let a = curve(100, |i| 10f64.powf(-i / 20.0));
        let b = curve(100, |i| (i - 50.0).abs());
        let series: [(&str, &[(f64, f64)]); 3] = [("a", &a), ("b", &b), ("empty", &[])];
        let base = PlotOptions {
            width: 600,
            height: 450,
            layout: Layout::Panels,
            ..Default::default()
        };
        let lin = render_curves("t", &series, &base).unwrap();
        let log = render_curves(
            "t",
            &series,
            &PlotOptions {
                log_y: true,
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!(lin.dimensions(), (600, 450));
        assert!(non_white(&lin) > 2_000);
        assert!(differing(&lin, &log) > 500);
        let overlay = render_curves(
            "t",
            &series,
            &PlotOptions {
                layout: Layout::Overlay,
                ..base.clone()
            },
        )
        .unwrap();
        assert!(differing(&lin, &overlay) > 500);
    }

    #[test]
    fn no_data_is_an_error_and_bad_options_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        let err = plot_curves(&p, "t", &[], &PlotOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no data") && err.contains("x.png"), "{err}");
        assert!(!p.exists());
        let nan = [(0.0, f64::NAN), (1.0, f64::INFINITY)];
        assert!(render_curves("t", &[("nan", &nan)], &PlotOptions::default()).is_err());
        let neg = [(0.0, -1.0), (1.0, 0.0)];
        let log = PlotOptions {
            log_y: true,
            ..Default::default()
        };
        assert!(render_curves("t", &[("neg", &neg)], &log).is_err());
        assert!(render_curves("t", &[("neg", &neg)], &PlotOptions::default()).is_ok());
        let one = [(5.0, 1.0)];
        assert!(render_curves("t", &[("one", &one)], &PlotOptions::default()).is_ok());
        let bad_ema = PlotOptions {
            ema: Some(1.0),
            ..Default::default()
        };
        assert!(render_curves("t", &[("one", &one)], &bad_ema).is_err());
        let tiny = PlotOptions {
            width: 10,
            ..Default::default()
        };
        assert!(render_curves("t", &[("one", &one)], &tiny).is_err());
    }

    #[test]
    fn ema_matches_the_formula() {
        let s = ema_smooth(&[1.0, 3.0, 3.0], 0.5);
        assert_eq!(s, vec![1.0, 2.0, 2.5]);
        assert_eq!(tick_label(2.0, true), "100");
        assert_eq!(tick_label(0.25, false), "0.25");
        assert_eq!(tick_label(1e-5, false), "1.0e-5");
        assert_eq!(tick_label(0.5f64.log10(), true), "0.5");
        assert_eq!(tick_label(0.31623, false), "0.316");
        assert_eq!(tick_label(6.3096, false), "6.31");
        assert_eq!(tick_label(-12.0, false), "-12");
        assert_eq!(tick_label(1234.4, false), "1234");
    }

    #[test]
    fn interval_bars_draw_and_reject_bad_intervals() {
        let bar = |series: &str, mean: f64| IntervalBar {
            series: series.into(),
            mean,
            lo: mean - 0.02,
            hi: mean + 0.03,
        };
        let groups = vec![
            ("a".to_string(), vec![bar("E", 0.6), bar("E+H", 0.65)]),
            ("b".to_string(), vec![bar("E", 0.4), bar("E+H", 0.36)]),
        ];
        let img = render_interval_bars("t", "DICE", &groups, 400, 300).unwrap();
        assert_eq!(img.dimensions(), (400, 300));
        // Something besides the white page was drawn, in colour (the bars).
        let coloured = img
            .pixels()
            .filter(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2])
            .count();
        assert!(coloured > 1000, "{coloured} coloured pixels");
        let mut bad = groups.clone();
        bad[0].1[0].lo = 0.7;
        let e = render_interval_bars("t", "DICE", &bad, 400, 300)
            .unwrap_err()
            .to_string();
        assert!(e.contains("contain the mean"), "{e}");
        assert!(render_interval_bars("t", "DICE", &[], 400, 300).is_err());
        assert!(render_interval_bars("t", "DICE", &groups, 10, 300).is_err());
    }
}
