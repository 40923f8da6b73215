//! Figures: torus heat maps, equirectangular world maps with a lat/lon graticule,
//! data points, colour bars, and the target / learned / sampler comparison of `egf train`.

use egf_data::PointSet;
use egf_manifold::coords::unit_to_latlon_deg;
use egf_manifold::Manifold;
use egf_train::DensityGrid;

use crate::numfmt::sig;
use crate::render::{colormap, Canvas, DARK, GREY, RED, WHITE};

/// Maps density values to `[0, 1]` for the colour map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorScale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl ColorScale {
    /// A scale covering `values`: linear from 0 to the maximum, or logarithmic over at
    /// most four decades below the maximum.
    pub fn covering<'a>(values: impl IntoIterator<Item = &'a f64>, log: bool) -> Self {
        let finite: Vec<f64> = values.into_iter().copied().filter(|v| v.is_finite()).collect();
        let hi = finite.iter().copied().fold(0.0f64, f64::max);
        let hi = if hi > 0.0 { hi } else { 1.0 };
        if log {
            let min_pos = finite.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            let lo = if min_pos.is_finite() { min_pos.max(hi * 1e-4) } else { hi * 1e-4 };
            let lo = if lo < hi { lo } else { hi * 1e-4 };
            Self { lo, hi, log }
        } else {
            Self { lo: 0.0, hi, log }
        }
    }

    /// `v` mapped to `[0, 1]` (clamped).
    pub fn norm(&self, v: f64) -> f64 {
        if !v.is_finite() {
            return if v == f64::INFINITY { 1.0 } else { f64::NAN };
        }
        let f = if self.log {
            (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        f.clamp(0.0, 1.0)
    }

    /// The value at fraction `f ∈ [0, 1]` of the bar.
    pub fn value_at(&self, f: f64) -> f64 {
        if self.log {
            (self.lo.ln() + f * (self.hi.ln() - self.lo.ln())).exp()
        } else {
            self.lo + f * (self.hi - self.lo)
        }
    }
}

/// Bilinear interpolation of a [`DensityGrid`] at torus coordinates `(x1, x2)` (periodic)
/// or at latitude/longitude in degrees (periodic in longitude, clamped in latitude).
fn interpolate(grid: &DensityGrid, a: f64, b: f64) -> f64 {
    let (rows, cols) = (grid.rows as f64, grid.cols as f64);
    let (fi, fj, periodic_rows) = match grid.manifold {
        Manifold::Sphere { .. } => {
            (((90.0 - a) / 180.0 * rows - 0.5).clamp(0.0, rows - 1.0), (b + 180.0) / 360.0 * cols - 0.5, false)
        }
        Manifold::Torus { .. } => (a * rows - 0.5, b * cols - 0.5, true),
    };
    let wrap = |k: i64, n: usize| k.rem_euclid(n as i64) as usize;
    let (i0, j0) = (fi.floor(), fj.floor());
    let (di, dj) = (fi - i0, fj - j0);
    let (i0, j0) = (i0 as i64, j0 as i64);
    let row = |k: i64| if periodic_rows { wrap(k, grid.rows) } else { k.clamp(0, grid.rows as i64 - 1) as usize };
    let at = |i: usize, j: usize| grid.values[i * grid.cols + j];
    let (r0, r1) = (row(i0), row(i0 + 1));
    let (c0, c1) = (wrap(j0, grid.cols), wrap(j0 + 1, grid.cols));
    (1.0 - di) * ((1.0 - dj) * at(r0, c0) + dj * at(r0, c1)) + di * ((1.0 - dj) * at(r1, c0) + dj * at(r1, c1))
}

/// A rectangle of the canvas holding one map.
#[derive(Clone, Copy, Debug)]
pub struct Panel {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Panel {
    /// Pixel position of a manifold point (torus `x1` right, `x2` up; sphere longitude
    /// right, latitude up), or `None` for a point that cannot be placed.
    fn position(&self, manifold: Manifold, p: &[f64]) -> Option<(f64, f64)> {
        match manifold {
            Manifold::Torus { dim: 2 } => {
                Some((self.x as f64 + p[0] * self.w as f64, self.y as f64 + (1.0 - p[1]) * self.h as f64))
            }
            Manifold::Sphere { dim: 2 } => {
                let (lat, lon) = unit_to_latlon_deg(p).ok()?;
                Some((
                    self.x as f64 + (lon + 180.0) / 360.0 * self.w as f64,
                    self.y as f64 + (90.0 - lat) / 180.0 * self.h as f64,
                ))
            }
            _ => None,
        }
    }
}

/// Fills `panel` with the colour-mapped density of `grid`.
pub fn draw_field(canvas: &mut Canvas, panel: Panel, grid: &DensityGrid, scale: &ColorScale) {
    for py in 0..panel.h {
        for px in 0..panel.w {
            let (u, v) = ((px as f64 + 0.5) / panel.w as f64, (py as f64 + 0.5) / panel.h as f64);
            let value = match grid.manifold {
                Manifold::Sphere { .. } => interpolate(grid, 90.0 - 180.0 * v, -180.0 + 360.0 * u),
                _ => interpolate(grid, u, 1.0 - v),
            };
            canvas.set(panel.x + px, panel.y + py, colormap(scale.norm(value)));
        }
    }
}

/// Axes of a torus panel: frame and ticks at 0, 0.5, 1 with labels `x1` (right) and `x2` (up).
pub fn torus_axes(canvas: &mut Canvas, panel: Panel) {
    canvas.rect_outline(panel.x - 1, panel.y - 1, panel.w + 2, panel.h + 2, DARK);
    for (k, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
        let px = panel.x + (k * panel.w as f64) as i64;
        let py = panel.y + ((1.0 - k) * panel.h as f64) as i64;
        canvas.line(px, panel.y + panel.h, px, panel.y + panel.h + 4, DARK, 1.0);
        canvas.text_centered(px, panel.y + panel.h + 7, label, 1, DARK);
        canvas.line(panel.x - 5, py, panel.x - 1, py, DARK, 1.0);
        canvas.text(panel.x - 8 - Canvas::text_width(label, 1), py - 3, label, 1, DARK);
    }
    canvas.text_centered(panel.x + panel.w / 2, panel.y + panel.h + 18, "X1", 1, DARK);
    canvas.text(panel.x - 20, panel.y + panel.h / 4 - 3, "X2", 1, DARK);
}

fn lat_label(lat: i64) -> String {
    match lat {
        0 => "0".into(),
        l if l > 0 => format!("{l}N"),
        l => format!("{}S", -l),
    }
}

fn lon_label(lon: i64) -> String {
    match lon {
        0 => "0".into(),
        180 | -180 => "180".into(),
        l if l > 0 => format!("{l}E"),
        l => format!("{}W", -l),
    }
}

/// A latitude/longitude graticule every 30° over a world-map panel, with labels.
/// (No coastline data ship with egf, so the graticule is the geographic reference.)
pub fn graticule(canvas: &mut Canvas, panel: Panel) {
    for lat in (-60..=60).step_by(30) {
        let py = panel.y + ((90.0 - lat as f64) / 180.0 * panel.h as f64).round() as i64;
        canvas.line(panel.x, py, panel.x + panel.w - 1, py, WHITE, if lat == 0 { 0.55 } else { 0.3 });
        let label = lat_label(lat);
        canvas.text(panel.x - 6 - Canvas::text_width(&label, 1), py - 3, &label, 1, DARK);
    }
    for lon in (-180..=180).step_by(30) {
        let px = panel.x + ((lon as f64 + 180.0) / 360.0 * panel.w as f64).round() as i64;
        if lon > -180 && lon < 180 {
            canvas.line(px, panel.y, px, panel.y + panel.h - 1, WHITE, if lon == 0 { 0.55 } else { 0.3 });
        }
        canvas.text_centered(px, panel.y + panel.h + 6, &lon_label(lon), 1, DARK);
    }
    canvas.rect_outline(panel.x - 1, panel.y - 1, panel.w + 2, panel.h + 2, DARK);
}

/// Draws points as small dots (red on the sphere map, white on torus heat maps).
pub fn draw_points(canvas: &mut Canvas, panel: Panel, points: &PointSet) {
    let manifold = points.manifold();
    let (color, radius, alpha) = match manifold {
        Manifold::Sphere { .. } => (RED, 1.6, 0.85),
        _ => (WHITE, 1.3, 0.7),
    };
    for p in points.iter() {
        if let Some((x, y)) = panel.position(manifold, p) {
            canvas.dot(x, y, radius, color, alpha);
        }
    }
}

/// A vertical colour bar with labels at the bottom, middle and top.
pub fn colorbar(canvas: &mut Canvas, x: i64, y: i64, h: i64, scale: &ColorScale, label: &str) {
    let w = 16;
    for py in 0..h {
        let f = 1.0 - (py as f64 + 0.5) / h as f64;
        canvas.fill_rect(x, y + py, w, 1, colormap(f));
    }
    canvas.rect_outline(x - 1, y - 1, w + 2, h + 2, DARK);
    for f in [0.0, 0.5, 1.0] {
        let py = y + ((1.0 - f) * (h - 1) as f64).round() as i64;
        canvas.line(x + w, py, x + w + 3, py, DARK, 1.0);
        canvas.text(x + w + 6, py - 3, &sig(scale.value_at(f), 3), 1, DARK);
    }
    canvas.text(x - 2, y - 14, label, 1, DARK);
}

/// One map with title, axes or graticule, optional points and a colour bar.
pub fn density_figure(grid: &DensityGrid, scale: &ColorScale, title: &str, points: Option<&PointSet>) -> Canvas {
    let (pw, ph) = match grid.manifold {
        Manifold::Sphere { .. } => (1024, 512),
        _ => (512, 512),
    };
    let (left, top, right, bottom) = (60, 44, 110, 44);
    let mut canvas = Canvas::new((left + pw + right) as u32, (top + ph + bottom) as u32, WHITE);
    canvas.text(left, 12, title, 2, DARK);
    let panel = Panel { x: left, y: top, w: pw, h: ph };
    draw_field(&mut canvas, panel, grid, scale);
    if let Some(points) = points {
        draw_points(&mut canvas, panel, points);
    }
    match grid.manifold {
        Manifold::Sphere { .. } => graticule(&mut canvas, panel),
        _ => torus_axes(&mut canvas, panel),
    }
    let bar_label = if scale.log { "DENSITY (LOG)" } else { "DENSITY" };
    colorbar(&mut canvas, left + pw + 24, top + 16, ph - 32, scale, bar_label);
    canvas
}

/// Several maps of one manifold on a shared colour scale, side by side on the torus and
/// stacked on the sphere; `points` are drawn on the panels whose flag is set.
pub fn comparison_figure(
    panels: &[(String, &DensityGrid, bool)],
    scale: &ColorScale,
    points: Option<&PointSet>,
    caption: &str,
) -> Canvas {
    let sphere = panels.first().is_some_and(|p| matches!(p.1.manifold, Manifold::Sphere { .. }));
    let (pw, ph) = if sphere { (720, 360) } else { (360, 360) };
    let (left, top, right, gap) = (60, 40, 120, 50);
    let n = panels.len() as i64;
    let (width, height) = if sphere {
        (left + pw + right, top + n * (ph + gap) + 24)
    } else {
        (left + n * pw + (n - 1) * gap + right, top + ph + gap + 24)
    };
    let mut canvas = Canvas::new(width as u32, height as u32, WHITE);
    for (k, (title, grid, with_points)) in panels.iter().enumerate() {
        let k = k as i64;
        let (x, y) = if sphere { (left, top + k * (ph + gap)) } else { (left + k * (pw + gap), top) };
        let panel = Panel { x, y, w: pw, h: ph };
        canvas.text(x, y - 26, title, 2, DARK);
        draw_field(&mut canvas, panel, grid, scale);
        if *with_points {
            if let Some(points) = points {
                draw_points(&mut canvas, panel, points);
            }
        }
        if sphere {
            graticule(&mut canvas, panel);
        } else {
            torus_axes(&mut canvas, panel);
        }
    }
    let bar_x = width - right + 24;
    let bar_label = if scale.log { "DENSITY (LOG)" } else { "DENSITY" };
    colorbar(&mut canvas, bar_x, top + 16, ph - 32, scale, bar_label);
    canvas.text(left, height - 16, caption, 1, GREY);
    canvas
}

/// A normalized histogram of `samples` on the picture grid of `resolution`
/// (counts divided by `n` and by the cell's measure, so it estimates the density).
pub fn histogram_grid(samples: &PointSet, resolution: usize) -> Option<DensityGrid> {
    let manifold = samples.manifold();
    let n = samples.len().max(1) as f64;
    match manifold {
        Manifold::Torus { dim: 2 } => {
            let r = resolution;
            let mut values = vec![0.0; r * r];
            for p in samples.iter() {
                let i = ((p[0] * r as f64) as usize).min(r - 1);
                let j = ((p[1] * r as f64) as usize).min(r - 1);
                values[i * r + j] += 1.0;
            }
            let cell = 1.0 / (r * r) as f64;
            values.iter_mut().for_each(|v| *v /= n * cell);
            Some(DensityGrid { manifold, rows: r, cols: r, values })
        }
        Manifold::Sphere { dim: 2 } => {
            let (rows, cols) = (resolution, 2 * resolution);
            let mut values = vec![0.0; rows * cols];
            for p in samples.iter() {
                if let Ok((lat, lon)) = unit_to_latlon_deg(p) {
                    let i = (((90.0 - lat) / 180.0 * rows as f64) as usize).min(rows - 1);
                    let j = (((lon + 180.0) / 360.0 * cols as f64) as usize).min(cols - 1);
                    values[i * cols + j] += 1.0;
                }
            }
            let (dlat, dlon) = (std::f64::consts::PI / rows as f64, 2.0 * std::f64::consts::PI / cols as f64);
            for i in 0..rows {
                let top = std::f64::consts::FRAC_PI_2 - i as f64 * dlat;
                let area = dlon * (top.sin() - (top - dlat).sin());
                for j in 0..cols {
                    values[i * cols + j] /= n * area;
                }
            }
            Some(DensityGrid { manifold, rows, cols, values })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales() {
        let v = [0.0, 1.0, 4.0];
        let lin = ColorScale::covering(&v, false);
        assert_eq!((lin.lo, lin.hi), (0.0, 4.0));
        assert_eq!(lin.norm(2.0), 0.5);
        let log = ColorScale::covering(&v, true);
        assert_eq!(log.hi, 4.0);
        assert!((log.lo - 1.0).abs() < 1e-12);
        assert!((log.norm(2.0) - 0.5).abs() < 1e-12);
        assert!((log.value_at(0.5) - 2.0).abs() < 1e-12);
        assert_eq!(log.norm(0.0), 0.0);
    }

    #[test]
    fn interpolation_is_exact_at_cell_centres_and_periodic() {
        let grid =
            DensityGrid { manifold: Manifold::Torus { dim: 2 }, rows: 2, cols: 2, values: vec![1.0, 2.0, 3.0, 4.0] };
        assert!((interpolate(&grid, 0.25, 0.75) - 2.0).abs() < 1e-12);
        assert!((interpolate(&grid, 0.75, 0.25) - 3.0).abs() < 1e-12);
        // x1 = 0 lies halfway between the centres 0.75 (wrapped) and 0.25
        assert!((interpolate(&grid, 0.0, 0.25) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn histograms_integrate_to_one() {
        let t2 = Manifold::Torus { dim: 2 };
        let pts = PointSet::new(t2, vec![0.1, 0.2, 0.6, 0.9, 0.99, 0.0]).unwrap();
        let h = histogram_grid(&pts, 4).unwrap();
        let total: f64 = h.values.iter().sum::<f64>() / 16.0;
        assert!((total - 1.0).abs() < 1e-12);
        let s2 = Manifold::Sphere { dim: 2 };
        let pts = PointSet::new(s2, vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0]).unwrap();
        let h = histogram_grid(&pts, 6).unwrap();
        let grid = egf_manifold::QuadratureGrid::sphere_equiangular(6, 12).unwrap();
        let total: f64 = (0..grid.len()).map(|k| grid.weights()[k] * h.values[k]).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }
}
