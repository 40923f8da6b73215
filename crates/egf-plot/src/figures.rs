//! Density figures: torus heat maps, equirectangular world maps with a lat/lon
//! graticule, data points, colour bars, the target / learned / sampler comparison of
//! `egf train`, and grids of panels with zooms around a point of the torus (the
//! fixed point 0 of the SL₂(Z) family, spec section 2).
//!
//! Densities are with respect to the manifold's reference measure (spec section 1).
//! Heat maps are computed into an RGB image and blitted, frames and graticules are
//! plotters lines and rectangles, points are plotters circles ([`crate::render`]).

use egf_data::PointSet;
use egf_manifold::coords::unit_to_latlon_deg;
use egf_manifold::Manifold;
use egf_train::DensityGrid;

use crate::numfmt::sig;
use crate::render::{colormap, Canvas, DARK, GREY, RED, WHITE};
use crate::{PlotError, Result};

/// Maps density values to `[0, 1]` for the colour map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorScale {
    /// The value drawn with the bottom colour (and everything below it).
    pub lo: f64,
    /// The value drawn with the top colour (and everything above it).
    pub hi: f64,
    /// Logarithmic (true) or linear spacing between `lo` and `hi`.
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
/// A grid whose values do not fill `rows × cols` (or that is empty) reads as NaN (grey).
fn interpolate(grid: &DensityGrid, a: f64, b: f64) -> f64 {
    if grid.rows == 0 || grid.cols == 0 || grid.values.len() != grid.rows * grid.cols {
        return f64::NAN;
    }
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
    /// Left edge in pixels.
    pub x: i64,
    /// Top edge in pixels.
    pub y: i64,
    /// Width in pixels.
    pub w: i64,
    /// Height in pixels.
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

/// Fills `panel` with the colour of `value(u, v)`, `u ∈ (0, 1)` from left to right and
/// `v ∈ (0, 1)` from top to bottom (pixel centres), as one image blitted through plotters.
fn fill_panel(canvas: &mut Canvas, panel: Panel, scale: &ColorScale, value: impl Fn(f64, f64) -> f64) {
    if panel.w <= 0 || panel.h <= 0 {
        return;
    }
    let mut image = Vec::with_capacity((panel.w * panel.h * 3) as usize);
    for py in 0..panel.h {
        for px in 0..panel.w {
            let (u, v) = ((px as f64 + 0.5) / panel.w as f64, (py as f64 + 0.5) / panel.h as f64);
            image.extend_from_slice(&colormap(scale.norm(value(u, v))));
        }
    }
    // the image has exactly the panel's size, so the blit cannot fail
    let _ = canvas.blit(panel.x, panel.y, panel.w as u32, panel.h as u32, &image);
}

/// Fills `panel` with the colour-mapped density of `grid` (bilinear interpolation).
pub fn draw_field(canvas: &mut Canvas, panel: Panel, grid: &DensityGrid, scale: &ColorScale) {
    fill_panel(canvas, panel, scale, |u, v| match grid.manifold {
        Manifold::Sphere { .. } => interpolate(grid, 90.0 - 180.0 * v, -180.0 + 360.0 * u),
        _ => interpolate(grid, u, 1.0 - v),
    });
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
/// Points of another manifold than `T^2` or `S^2` are skipped.
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

/// One map with title, axes (torus) or graticule (sphere), optional points and a colour
/// bar: a 512 × 512 heat map of `T^2` or a 1024 × 512 equirectangular world map of `S^2`.
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
/// (counts divided by `n` and by the cell's measure, so it estimates the density);
/// `None` on manifolds other than `T^2` and `S^2` and for `resolution = 0`.
pub fn histogram_grid(samples: &PointSet, resolution: usize) -> Option<DensityGrid> {
    if resolution == 0 {
        return None;
    }
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

/// A density on a square window of the torus `T^2` centred anywhere (it may straddle
/// the edges, e.g. centred at 0 to look at the fixed point of the SL₂(Z) maps, spec
/// section 2): `n × n` cell centres, `values[iy * n + ix]` at
/// `x1 = c1 − r + (ix + ½)·2r/n`, `x2 = c2 − r + (iy + ½)·2r/n` (so row 0 is the bottom).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowGrid {
    /// Centre `(c1, c2)` of the window, torus coordinates.
    pub center: [f64; 2],
    /// Half-width `r` of the window, in `(0, 0.5]`.
    pub half_width: f64,
    /// Cells per side.
    pub n: usize,
    /// Density values, row-major from the bottom row.
    pub values: Vec<f64>,
}

impl WindowGrid {
    /// The `n²` cell centres of the window (row-major from the bottom row), wrapped into
    /// `[0, 1)²`, as `(x1, x2)` pairs: evaluate the density there and pass the values to
    /// [`with_values`](Self::with_values). Errors for `n = 0`, a non-finite centre or
    /// `r ∉ (0, 0.5]`.
    pub fn points(center: [f64; 2], half_width: f64, n: usize) -> Result<Vec<[f64; 2]>> {
        if n == 0 || !(half_width > 0.0 && half_width <= 0.5) || !center.iter().all(|c| c.is_finite()) {
            return Err(PlotError::invalid(format!(
                "a torus window needs n > 0, a finite centre and a half-width in (0, 0.5]; got n = {n}, \
                 centre {center:?}, half-width {half_width}"
            )));
        }
        let step = 2.0 * half_width / n as f64;
        let at = |c: f64, k: usize| (c - half_width + (k as f64 + 0.5) * step).rem_euclid(1.0);
        Ok((0..n).flat_map(|iy| (0..n).map(move |ix| [at(center[0], ix), at(center[1], iy)])).collect())
    }

    /// The window with the density `values` at its [`points`](Self::points) (same order).
    pub fn with_values(center: [f64; 2], half_width: f64, n: usize, values: Vec<f64>) -> Result<Self> {
        Self::points(center, half_width, n)?;
        if values.len() != n * n {
            return Err(PlotError::invalid(format!("a {n} × {n} window needs {} values, got {}", n * n, values.len())));
        }
        Ok(Self { center, half_width, n, values })
    }

    /// The window of `density` evaluated at every cell centre.
    pub fn from_fn(center: [f64; 2], half_width: f64, n: usize, density: impl Fn([f64; 2]) -> f64) -> Result<Self> {
        let values = Self::points(center, half_width, n)?.into_iter().map(density).collect();
        Self::with_values(center, half_width, n, values)
    }

    /// The value of the cell under panel fraction `(u, v)` (`v` from the top).
    fn at(&self, u: f64, v: f64) -> f64 {
        let n = self.n;
        let ix = ((u * n as f64) as usize).min(n - 1);
        let iy = (((1.0 - v) * n as f64) as usize).min(n - 1);
        self.values[iy * n + ix]
    }
}

/// What one cell of [`panel_grid_figure`] shows.
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    /// A density on the whole of `T^2` or `S^2`.
    Grid(&'a DensityGrid),
    /// A density on a window of `T^2`.
    Window(&'a WindowGrid),
}

impl Field<'_> {
    fn values(&self) -> &[f64] {
        match self {
            Field::Grid(g) => &g.values,
            Field::Window(w) => &w.values,
        }
    }
}

/// One panel of [`panel_grid_figure`]: a title, a field, optional points and an
/// optional marked torus point (drawn as a ring wherever it falls in the panel,
/// at all four corners for 0 on the whole torus).
#[derive(Clone, Debug)]
pub struct GridCell<'a> {
    /// Title above the panel (short; drawn in the bitmap font).
    pub title: String,
    /// The density shown.
    pub field: Field<'a>,
    /// Points drawn over the density.
    pub points: Option<&'a PointSet>,
    /// A torus point `(x1, x2)` to mark.
    pub marker: Option<[f64; 2]>,
}

/// Pixel positions of a torus point in a panel showing the whole torus (its copies on
/// the edges included: 0 is at the four corners) or a window.
fn marker_positions(panel: Panel, field: &Field, p: [f64; 2]) -> Vec<(f64, f64)> {
    let (w, h) = (panel.w as f64, panel.h as f64);
    match field {
        Field::Grid(g) if g.manifold.is_torus() => {
            let (a, b) = (p[0].rem_euclid(1.0), p[1].rem_euclid(1.0));
            let xs = if a == 0.0 { vec![0.0, 1.0] } else { vec![a] };
            let ys = if b == 0.0 { vec![0.0, 1.0] } else { vec![b] };
            xs.iter()
                .flat_map(|x| ys.iter().map(move |y| (panel.x as f64 + x * w, panel.y as f64 + (1.0 - y) * h)))
                .collect()
        }
        Field::Window(win) => {
            // the copy of p nearest the window centre
            let d = |k: usize| (p[k] - win.center[k] + 0.5).rem_euclid(1.0) - 0.5;
            let (u, v) = (0.5 + d(0) / (2.0 * win.half_width), 0.5 + d(1) / (2.0 * win.half_width));
            if (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v) {
                vec![(panel.x as f64 + u * w, panel.y as f64 + (1.0 - v) * h)]
            } else {
                vec![]
            }
        }
        Field::Grid(_) => vec![],
    }
}

/// Axes of a window panel: frame and ticks at both ends and the centre, labelled with
/// torus coordinates (negative below 0, so a window centred at 0 reads −r … 0 … r).
fn window_axes(canvas: &mut Canvas, panel: Panel, win: &WindowGrid) {
    canvas.rect_outline(panel.x - 1, panel.y - 1, panel.w + 2, panel.h + 2, DARK);
    for k in [0.0, 0.5, 1.0] {
        let px = panel.x + (k * panel.w as f64) as i64;
        let py = panel.y + ((1.0 - k) * panel.h as f64) as i64;
        let lx = sig(win.center[0] - win.half_width + 2.0 * k * win.half_width, 3);
        let ly = sig(win.center[1] - win.half_width + 2.0 * k * win.half_width, 3);
        canvas.line(px, panel.y + panel.h, px, panel.y + panel.h + 4, DARK, 1.0);
        canvas.text_centered(px, panel.y + panel.h + 7, &lx, 1, DARK);
        canvas.line(panel.x - 5, py, panel.x - 1, py, DARK, 1.0);
        canvas.text(panel.x - 8 - Canvas::text_width(&ly, 1), py - 3, &ly, 1, DARK);
    }
}

/// One row of [`panel_grid_figure`]: its panels and their colour scale.
#[derive(Clone, Debug)]
pub struct GridRow<'a> {
    /// The panels, left to right.
    pub cells: Vec<GridCell<'a>>,
    /// The colour scale of every panel of the row (one colour bar per row).
    pub scale: ColorScale,
}

/// Rows of square panels (whole-torus maps, torus windows, or whole-sphere maps drawn
/// 2:1), each with a title, axes, optional points and marker; each row on its own
/// colour scale with its colour bar at the right end of the figure, and a caption line
/// per entry of `caption` at the bottom. Errors for no rows or a row without panels.
pub fn panel_grid_figure(rows: &[GridRow], caption: &[String]) -> Result<Canvas> {
    if rows.is_empty() || rows.iter().any(|r| r.cells.is_empty()) {
        return Err(PlotError::invalid("a panel grid needs at least one panel in every row"));
    }
    let sphere =
        rows.iter().flat_map(|r| &r.cells).any(|c| matches!(c.field, Field::Grid(g) if !g.manifold.is_torus()));
    let (pw, ph) = if sphere { (560, 280) } else { (300, 300) };
    let (left, top, right, gap, row_gap) = (60, 40, 120, 50, 64);
    let ncols = rows.iter().map(|r| r.cells.len()).max().unwrap_or(1) as i64;
    let nrows = rows.len() as i64;
    let width = left + ncols * pw + (ncols - 1) * gap + right;
    let height = top + nrows * ph + (nrows - 1) * row_gap + 36 + 14 * caption.len() as i64;
    let mut canvas = Canvas::new(width as u32, height as u32, WHITE);
    for (r, row) in rows.iter().enumerate() {
        let scale = &row.scale;
        for (k, cell) in row.cells.iter().enumerate() {
            let (x, y) = (left + k as i64 * (pw + gap), top + r as i64 * (ph + row_gap));
            let panel = Panel { x, y, w: pw, h: ph };
            canvas.text(x, y - 24, &cell.title, 2, DARK);
            match cell.field {
                Field::Grid(g) => draw_field(&mut canvas, panel, g, scale),
                Field::Window(win) => fill_panel(&mut canvas, panel, scale, |u, v| win.at(u, v)),
            }
            if let Some(points) = cell.points {
                draw_points(&mut canvas, panel, points);
            }
            match cell.field {
                Field::Grid(g) if g.manifold.is_torus() => torus_axes(&mut canvas, panel),
                Field::Grid(_) => graticule(&mut canvas, panel),
                Field::Window(win) => window_axes(&mut canvas, panel, win),
            }
            if let Some(p) = cell.marker {
                for (mx, my) in marker_positions(panel, &cell.field, p) {
                    canvas.ring(mx, my, 9.0, RED);
                    canvas.ring(mx, my, 10.0, WHITE);
                }
            }
        }
        let bar_label = if scale.log { "DENSITY (LOG)" } else { "DENSITY" };
        let bar_top = top + r as i64 * (ph + row_gap) + 16;
        colorbar(&mut canvas, width - right + 24, bar_top, ph - 32, scale, bar_label);
    }
    let first_caption = top + nrows * ph + (nrows - 1) * row_gap + 30;
    for (i, line) in caption.iter().enumerate() {
        canvas.text(left, first_caption + 14 * i as i64, line, 1, GREY);
    }
    Ok(canvas)
}

/// A colour scale covering the values of `fields` (see [`ColorScale::covering`]).
pub fn covering_scale(fields: &[Field], log: bool) -> ColorScale {
    ColorScale::covering(fields.iter().flat_map(|f| f.values().iter()), log)
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
        // a malformed grid is drawn grey instead of panicking
        let short = DensityGrid { values: vec![1.0; 3], ..grid.clone() };
        assert!(interpolate(&short, 0.25, 0.25).is_nan());
        let c = density_figure(&short, &ColorScale::covering(&short.values, false), "BAD", None);
        assert_eq!(c.get(60 + 256, 44 + 256), GREY);
    }

    #[test]
    fn histograms_integrate_to_one() {
        let t2 = Manifold::Torus { dim: 2 };
        let pts = PointSet::new(t2, vec![0.1, 0.2, 0.6, 0.9, 0.99, 0.0]).unwrap();
        assert!(histogram_grid(&pts, 0).is_none());
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

    #[test]
    fn windows_wrap_and_validate() {
        let pts = WindowGrid::points([0.0, 0.0], 0.1, 2).unwrap();
        // cell centres at ±0.05, wrapped into [0, 1)
        assert!((pts[0][0] - 0.95).abs() < 1e-12 && (pts[0][1] - 0.95).abs() < 1e-12, "{pts:?}");
        assert!((pts[3][0] - 0.05).abs() < 1e-12 && (pts[3][1] - 0.05).abs() < 1e-12, "{pts:?}");
        assert!(WindowGrid::points([0.0, 0.0], 0.0, 2).is_err());
        assert!(WindowGrid::points([f64::NAN, 0.0], 0.1, 2).is_err());
        assert!(WindowGrid::with_values([0.0, 0.0], 0.1, 2, vec![1.0; 3]).is_err());
        let w = WindowGrid::from_fn([0.5, 0.5], 0.25, 4, |p| p[0]).unwrap();
        // bottom-left cell under (u, v) = (0, 1), top-right under (1, 0)
        assert!((w.at(0.01, 0.99) - 0.3125).abs() < 1e-12);
        assert!((w.at(0.99, 0.01) - 0.6875).abs() < 1e-12);
    }

    #[test]
    fn markers_of_zero_sit_in_the_corners_and_the_window_centre() {
        let panel = Panel { x: 10, y: 20, w: 100, h: 100 };
        let grid = DensityGrid { manifold: Manifold::Torus { dim: 2 }, rows: 2, cols: 2, values: vec![1.0; 4] };
        let mut corners = marker_positions(panel, &Field::Grid(&grid), [0.0, 0.0]);
        corners.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(corners, vec![(10.0, 20.0), (10.0, 120.0), (110.0, 20.0), (110.0, 120.0)]);
        let win = WindowGrid::from_fn([0.0, 0.0], 0.125, 4, |_| 1.0).unwrap();
        assert_eq!(marker_positions(panel, &Field::Window(&win), [0.0, 0.0]), vec![(60.0, 70.0)]);
        assert!(marker_positions(panel, &Field::Window(&win), [0.5, 0.5]).is_empty());
    }

    #[test]
    fn panel_grids_draw_every_panel() {
        let t2 = Manifold::Torus { dim: 2 };
        let low = DensityGrid { manifold: t2, rows: 2, cols: 2, values: vec![0.0; 4] };
        let high = DensityGrid { manifold: t2, rows: 2, cols: 2, values: vec![2.0; 4] };
        let win = WindowGrid::from_fn([0.0, 0.0], 0.1, 8, |_| 1.0).unwrap();
        let cell = |title: &str, field| GridCell { title: title.into(), field, points: None, marker: Some([0.0, 0.0]) };
        let scale = covering_scale(&[Field::Grid(&low), Field::Grid(&high), Field::Window(&win)], false);
        let rows = vec![
            GridRow { cells: vec![cell("LOW", Field::Grid(&low)), cell("HIGH", Field::Grid(&high))], scale },
            GridRow {
                cells: vec![cell("ZOOM", Field::Window(&win))],
                scale: covering_scale(&[Field::Window(&win)], true),
            },
        ];
        let c = panel_grid_figure(&rows, &["CAPTION".into()]).unwrap();
        // panel interiors: bottom and top colours of the first row's scale; the window,
        // constant 1 on a log scale of its own, takes the top colour
        assert_eq!(c.get(60 + 150, 40 + 150), colormap(0.0));
        assert_eq!(c.get(60 + 350 + 150, 40 + 150), colormap(1.0));
        assert_eq!(c.get(60 + 100, 40 + 300 + 64 + 100), colormap(1.0));
        assert!(panel_grid_figure(&[], &[]).is_err());
        assert!(panel_grid_figure(&[GridRow { cells: vec![], scale }], &[]).is_err());
    }
}
