//! Training curves: panels of line charts drawn with plotters' chart API
//! (`ChartBuilder`, `LineSeries`, the mesh of `configure_mesh`), one line per run, the
//! same colour for a run in every panel, and a legend on the right.
//!
//! plotters lays out the axes, the grid lines at its own "nice" key points and the
//! lines; it draws no text (see [`crate::render`]): the tick numbers at plotters'
//! key points, the axis titles and the legend are written with the bitmap font at the
//! pixel positions plotters' coordinate map gives.

use std::ops::Range;

use plotters::chart::{ChartBuilder, ChartContext};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::drawing::DrawingArea;
use plotters::prelude::{BitMapBackend, Cartesian2d, IntoLogRange, LineSeries, Palette, Palette99};
use plotters::style::{Color, RGBColor};

use crate::numfmt::sig;
use crate::render::{Canvas, Rgb, DARK, GREY, WHITE};
use crate::{PlotError, Result};

/// One line: a label and `(x, y)` points in order of `x`.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label (short; drawn in the bitmap font).
    pub label: String,
    /// The points; non-finite ones (and, on a log axis, non-positive ones) are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, the y-axis title, linear or logarithmic y axis, and one
/// [`Series`] per run (series `k` gets colour `k` in every panel).
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePanel {
    /// Title above the chart.
    pub title: String,
    /// Title of the y axis (drawn vertically).
    pub y_label: String,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// The colour of series `k`: the `k`-th colour of plotters' 99-colour palette that
/// stands out on white (luminance below 170; the palette's yellows are skipped).
pub fn series_color(k: usize) -> Rgb {
    let lum = |(r, g, b): (u8, u8, u8)| 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
    let dark: Vec<(u8, u8, u8)> = Palette99::COLORS.iter().copied().filter(|c| lum(*c) < 170.0).collect();
    let (r, g, b) = dark[k % dark.len()];
    [r, g, b]
}

/// The drawable points of a series (finite, and positive on a log axis).
fn drawable(series: &Series, log_y: bool) -> Vec<(f64, f64)> {
    series.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0)).collect()
}

/// The x range and y range of a panel, padded by 5 % (a factor 1.25 on a log axis);
/// `None` when no series has a drawable point.
fn ranges(panel: &CurvePanel) -> Option<(Range<f64>, Range<f64>)> {
    let pts: Vec<(f64, f64)> = panel.series.iter().flat_map(|s| drawable(s, panel.log_y)).collect();
    if pts.is_empty() {
        return None;
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        pts.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (x0, x1) = fold(|p| p.0);
    let (y0, y1) = fold(|p| p.1);
    let x = if x1 > x0 { x0..x1 } else { x0 - 0.5..x0 + 0.5 };
    let y = if panel.log_y {
        let (lo, hi) = if y1 > y0 { (y0, y1) } else { (y0 / 2.0, y0 * 2.0) };
        lo / 1.25..hi * 1.25
    } else if y1 > y0 {
        let pad = 0.05 * (y1 - y0);
        y0 - pad..y1 + pad
    } else {
        let pad = if y0 == 0.0 { 1.0 } else { 0.1 * y0.abs() };
        y0 - pad..y0 + pad
    };
    Some((x, y))
}

/// A short tick label: 3 significant digits, trailing zeros dropped.
fn tick_label(v: f64) -> String {
    let s = sig(v, 3);
    if s.contains('e') || !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Pixel positions and labels of the ticks of one chart.
struct Ticks {
    x: Vec<(i32, String)>,
    y: Vec<(i32, String)>,
}

/// Draws the mesh and the lines of one chart into `area` and returns where its ticks are.
fn draw_chart<Y>(area: &DrawingArea<BitMapBackend<'_>, Shift>, x: Range<f64>, y: Y, panel: &CurvePanel) -> Result<Ticks>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Display| PlotError::Draw { path: Default::default(), reason: e.to_string() };
    // no label areas: plotters then never calls its (absent) font back end
    let mut chart: ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, Y::CoordDescType>> =
        ChartBuilder::on(area).build_cartesian_2d(x, y).map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .bold_line_style(RGBColor(200, 200, 200))
        .light_line_style(RGBColor(238, 238, 238))
        .axis_style(RGBColor(40, 40, 40))
        .draw()
        .map_err(|e| err(&e))?;
    for (k, series) in panel.series.iter().enumerate() {
        let pts = drawable(series, panel.log_y);
        if pts.is_empty() {
            continue;
        }
        let [r, g, b] = series_color(k);
        chart.draw_series(LineSeries::new(pts, RGBColor(r, g, b).stroke_width(2))).map_err(|e| err(&e))?;
    }
    let spec = chart.as_coord_spec();
    let (xs, ys) = (spec.x_spec(), spec.y_spec());
    let (y0, x0) = (ys.range().start, xs.range().start);
    let mut y_values = ys.key_points(6);
    if panel.log_y && y_values.len() < 3 {
        // less than a decade or two: plotters labels only powers of ten
        y_values = log_ticks(ys.range());
    }
    let x = xs.key_points(6).into_iter().map(|v| (chart.backend_coord(&(v, y0)).0, tick_label(v))).collect();
    let y = y_values.into_iter().map(|v| (chart.backend_coord(&(x0, v)).1, tick_label(v))).collect();
    Ok(Ticks { x, y })
}

/// Ticks at 1, 2 and 5 times the powers of ten inside a positive range.
fn log_ticks(range: Range<f64>) -> Vec<f64> {
    let (lo, hi) = (range.start.max(f64::MIN_POSITIVE), range.end);
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi && out.len() < 30 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// Panels of training curves in a grid of `columns` columns (each chart 460 × 300
/// pixels), the x axis titled `x_label`, a legend of the series labels of the first
/// panel on the right, and the lines of `caption` at the bottom. A panel with no
/// drawable point shows "NO DATA". Errors for no panels or `columns = 0`.
pub fn curves_figure(panels: &[CurvePanel], columns: usize, x_label: &str, caption: &[String]) -> Result<Canvas> {
    if panels.is_empty() || columns == 0 {
        return Err(PlotError::invalid("a curve figure needs at least one panel and one column"));
    }
    let (pw, ph) = (460i64, 300i64);
    let (left, top, gap_x, gap_y) = (78i64, 44i64, 96i64, 84i64);
    let labels: Vec<&str> = panels[0].series.iter().map(|s| s.label.as_str()).collect();
    let legend_w = 24 + labels.iter().map(|l| Canvas::text_width(l, 1)).max().unwrap_or(0) + 16;
    let ncols = columns.min(panels.len()) as i64;
    let nrows = panels.len().div_ceil(columns) as i64;
    let width = left + ncols * pw + (ncols - 1) * gap_x + 24 + legend_w;
    let height = top + nrows * ph + (nrows - 1) * gap_y + 40 + 14 * caption.len() as i64 + 8;
    let mut canvas = Canvas::new(width as u32, height as u32, WHITE);
    for (i, panel) in panels.iter().enumerate() {
        let (col, row) = ((i % columns) as i64, (i / columns) as i64);
        let (x, y) = (left + col * (pw + gap_x), top + row * (ph + gap_y));
        canvas.text(x, y - 26, &panel.title, 2, DARK);
        let Some((xr, yr)) = ranges(panel) else {
            canvas.rect_outline(x, y, pw, ph, DARK);
            canvas.text_centered(x + pw / 2, y + ph / 2 - 3, "NO DATA", 1, GREY);
            continue;
        };
        let ticks = {
            let root = canvas.drawing_area();
            let area = root.shrink((x as i32, y as i32), (pw as u32, ph as u32));
            if panel.log_y {
                draw_chart(&area, xr, yr.log_scale(), panel)?
            } else {
                draw_chart(&area, xr, yr, panel)?
            }
        };
        canvas.rect_outline(x, y, pw, ph, DARK);
        for (px, label) in &ticks.x {
            let px = *px as i64;
            canvas.line(px, y + ph, px, y + ph + 4, DARK, 1.0);
            canvas.text_centered(px, y + ph + 8, label, 1, DARK);
        }
        for (py, label) in &ticks.y {
            let py = *py as i64;
            canvas.line(x - 5, py, x - 1, py, DARK, 1.0);
            canvas.text(x - 8 - Canvas::text_width(label, 1), py - 3, label, 1, DARK);
        }
        canvas.text_centered(x + pw / 2, y + ph + 24, x_label, 1, DARK);
        let label = if panel.log_y { format!("{} (LOG)", panel.y_label) } else { panel.y_label.clone() };
        let ly = y + ph / 2 + Canvas::text_width(&label, 1) / 2;
        canvas.text_vertical(x - 70, ly, &label, 1, DARK);
    }
    let lx = left + ncols * pw + (ncols - 1) * gap_x + 24;
    for (k, label) in labels.iter().enumerate() {
        let ly = top + 8 + 18 * k as i64;
        let c = series_color(k);
        canvas.fill_rect(lx, ly + 2, 16, 3, c);
        canvas.text(lx + 22, ly, label, 1, DARK);
    }
    let first_caption = top + nrows * ph + (nrows - 1) * gap_y + 40;
    for (i, line) in caption.iter().enumerate() {
        canvas.text(left, first_caption + 14 * i as i64, line, 1, GREY);
    }
    Ok(canvas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(label: &str, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points }
    }

    #[test]
    fn ranges_pad_and_skip_what_cannot_be_drawn() {
        let p = CurvePanel {
            title: "T".into(),
            y_label: "Y".into(),
            log_y: false,
            series: vec![series("A", vec![(0.0, 1.0), (10.0, 3.0), (11.0, f64::NAN)])],
        };
        let (x, y) = ranges(&p).unwrap();
        assert_eq!(x, 0.0..10.0);
        assert!((y.start - 0.9).abs() < 1e-12 && (y.end - 3.1).abs() < 1e-12, "{y:?}");
        let log = CurvePanel { log_y: true, series: vec![series("A", vec![(0.0, 0.0), (1.0, 10.0)])], ..p.clone() };
        let (_, y) = ranges(&log).unwrap();
        assert!((y.start - 4.0).abs() < 1e-12 && (y.end - 25.0).abs() < 1e-12, "{y:?}");
        let empty = CurvePanel { series: vec![series("A", vec![(f64::NAN, 1.0)])], ..p };
        assert!(ranges(&empty).is_none());
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(2.0), "2");
        let t = log_ticks(0.3..30.0);
        assert_eq!(t.len(), 6, "{t:?}");
        assert!([0.5, 1.0, 2.0, 5.0, 10.0, 20.0].iter().zip(&t).all(|(a, b)| (a - b).abs() < 1e-12), "{t:?}");
    }

    #[test]
    fn lines_are_drawn_in_their_colours_with_ticks_from_plotters() {
        let rising = series("RISING", (0..=10).map(|i| (i as f64 * 10.0, i as f64)).collect());
        let flat = series("FLAT", (0..=10).map(|i| (i as f64 * 10.0, 5.0)).collect());
        let panels = vec![
            CurvePanel {
                title: "LINEAR".into(),
                y_label: "VALUE".into(),
                log_y: false,
                series: vec![rising.clone(), flat.clone()],
            },
            CurvePanel { title: "LOG".into(), y_label: "VALUE".into(), log_y: true, series: vec![rising, flat] },
            CurvePanel { title: "EMPTY".into(), y_label: "VALUE".into(), log_y: false, series: vec![] },
        ];
        let c = curves_figure(&panels, 2, "STEP", &["CAPTION".into()]).unwrap();
        let count = |rgb: Rgb| {
            (0..c.height as i64)
                .flat_map(|y| (0..c.width as i64).map(move |x| (x, y)))
                .filter(|&(x, y)| c.get(x, y) == rgb)
                .count()
        };
        // both colours appear as lines (hundreds of pixels), not only in the legend
        assert!(count(series_color(0)) > 300, "{}", count(series_color(0)));
        assert!(count(series_color(1)) > 300, "{}", count(series_color(1)));
        // the flat line of the linear panel sits on one row, in the middle of the y range
        let (left, top, ph) = (78, 44, 300);
        let row: Vec<i64> = (top..top + ph).filter(|&y| c.get(left + 230, y) == series_color(1)).collect();
        assert!(!row.is_empty() && row.iter().all(|&y| (y - (top + ph / 2)).abs() < 40), "{row:?}");
        assert!(curves_figure(&[], 1, "X", &[]).is_err());
        assert!(curves_figure(&panels, 0, "X", &[]).is_err());
    }
}
