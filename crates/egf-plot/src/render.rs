//! A small RGB raster (rectangles, lines, dots, a 5×7 bitmap font, a viridis-like
//! colour map) written to PNG through plotters' `BitMapBackend`.
//!
//! plotters is built without a font back end in this workspace (no system fonts are
//! assumed), so text is drawn here from a built-in bitmap font.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::backend::{BitMapBackend, DrawingBackend};

/// An RGB colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
#[cfg(test)]
pub const BLACK: Rgb = [0, 0, 0];
pub const DARK: Rgb = [40, 40, 40];
pub const GREY: Rgb = [150, 150, 150];
pub const RED: Rgb = [230, 40, 40];

/// A `width × height` RGB image, row-major from the top-left corner.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Rgb) -> Self {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..width as usize * height as usize {
            pixels.extend_from_slice(&background);
        }
        Self { width, height, pixels }
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        (x >= 0 && y >= 0 && x < self.width as i64 && y < self.height as i64)
            .then(|| (y as usize * self.width as usize + x as usize) * 3)
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Blends `c` over one pixel with opacity `alpha ∈ [0, 1]`.
    pub fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f64) {
        if let Some(i) = self.index(x, y) {
            for (px, ck) in self.pixels[i..i + 3].iter_mut().zip(c) {
                let old = *px as f64;
                *px = (old + alpha * (ck as f64 - old)).round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// The colour of one pixel (black outside).
    #[cfg(test)]
    pub fn get(&self, x: i64, y: i64) -> Rgb {
        self.index(x, y).map(|i| [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]).unwrap_or(BLACK)
    }

    /// Fills the rectangle `[x, x + w) × [y, y + h)`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// The outline of the rectangle `[x, x + w) × [y, y + h)`.
    pub fn rect_outline(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        self.line(x, y, x + w - 1, y, c, 1.0);
        self.line(x, y + h - 1, x + w - 1, y + h - 1, c, 1.0);
        self.line(x, y, x, y + h - 1, c, 1.0);
        self.line(x + w - 1, y, x + w - 1, y + h - 1, c, 1.0);
    }

    /// A straight line (Bresenham), blended with opacity `alpha`.
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb, alpha: f64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.blend(x, y, c, alpha);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A filled disc of radius `r` pixels centred at `(cx, cy)` (sub-pixel centre).
    pub fn dot(&mut self, cx: f64, cy: f64, r: f64, c: Rgb, alpha: f64) {
        let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
        let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (ddx, ddy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                if ddx * ddx + ddy * ddy <= r * r {
                    self.blend(x, y, c, alpha);
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale × scale`.
    /// Lower-case letters are drawn as capitals; unknown characters as `?`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        let mut pen = x;
        for ch in text.chars() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        self.fill_rect(pen + col * scale, y + r as i64 * scale, scale, scale, c);
                    }
                }
            }
            pen += 6 * scale;
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: i64) -> i64 {
        let n = text.chars().count() as i64;
        if n == 0 {
            0
        } else {
            (6 * n - 1) * scale
        }
    }

    /// Draws `text` horizontally centred on `cx`.
    pub fn text_centered(&mut self, cx: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        self.text(cx - Self::text_width(text, scale) / 2, y, text, scale, c);
    }

    /// Writes the canvas as a PNG file (through plotters' bitmap back end).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(anyhow!("cannot write {}: directory {} does not exist", path.display(), parent.display()));
            }
        }
        let mut backend = BitMapBackend::new(path, (self.width, self.height));
        backend
            .blit_bitmap((0, 0), (self.width, self.height), &self.pixels)
            .map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))?;
        backend.present().map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(())
    }
}

/// Viridis-like colour map: `v ∈ [0, 1]` (clamped; NaN is grey) to RGB, by linear
/// interpolation between nine anchor colours from dark purple through teal to yellow.
pub fn colormap(v: f64) -> Rgb {
    const ANCHORS: [[f64; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    if v.is_nan() {
        return GREY;
    }
    let s = v.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let i = (s.floor() as usize).min(ANCHORS.len() - 2);
    let f = s - i as f64;
    let mut out = [0u8; 3];
    for k in 0..3 {
        out[k] = (ANCHORS[i][k] + f * (ANCHORS[i + 1][k] - ANCHORS[i][k])).round() as u8;
    }
    out
}

/// The 5×7 bitmap of a character: seven rows, bit 4 the leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        'B' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110],
        'C' => [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
        'D' => [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110],
        'E' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        'F' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        'G' => [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
        'H' => [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        'I' => [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        'J' => [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
        'K' => [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
        'L' => [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
        'M' => [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
        'N' => [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
        'O' => [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        'P' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        'Q' => [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101],
        'R' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        'S' => [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
        'T' => [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        'U' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        'V' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
        'W' => [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
        'X' => [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
        'Y' => [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100],
        'Z' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111],
        '0' => [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        '1' => [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        '2' => [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        '3' => [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
        '4' => [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        '5' => [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        '6' => [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        '7' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        '8' => [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        '9' => [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0b01100, 0b01100],
        ',' => [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
        '-' => [0, 0, 0, 0b11111, 0, 0, 0],
        '+' => [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
        ':' => [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
        '=' => [0, 0, 0b11111, 0, 0b11111, 0, 0],
        '(' => [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010],
        ')' => [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000],
        '[' => [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110],
        ']' => [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110],
        '/' => [0, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0],
        '%' => [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011],
        '^' => [0b00100, 0b01010, 0b10001, 0, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0b11111],
        '<' => [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010],
        '>' => [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000],
        '*' => [0, 0b10101, 0b01110, 0b11111, 0b01110, 0b10101, 0],
        '|' => [0b00100; 7],
        _ => [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_ends_and_clamping() {
        assert_eq!(colormap(0.0), [68, 1, 84]);
        assert_eq!(colormap(1.0), [253, 231, 37]);
        assert_eq!(colormap(-3.0), colormap(0.0));
        assert_eq!(colormap(7.0), colormap(1.0));
        assert_eq!(colormap(f64::NAN), GREY);
        // brightness grows along the map
        let lum = |c: Rgb| 0.3 * c[0] as f64 + 0.59 * c[1] as f64 + 0.11 * c[2] as f64;
        assert!((0..10).all(|i| lum(colormap(i as f64 / 10.0)) < lum(colormap((i + 1) as f64 / 10.0))));
    }

    #[test]
    fn drawing_and_png() {
        let mut c = Canvas::new(40, 20, WHITE);
        c.text(1, 1, "A1", 1, BLACK);
        assert_eq!(c.get(2, 1), BLACK); // top bar of A
        assert_eq!(Canvas::text_width("A1", 2), 22);
        c.line(0, 19, 39, 19, RED, 1.0);
        assert_eq!(c.get(20, 19), RED);
        c.dot(30.0, 10.0, 2.0, RED, 1.0);
        assert_eq!(c.get(30, 10), RED);
        let path = std::env::temp_dir().join(format!("egf-cli-render-{}.png", std::process::id()));
        c.save_png(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(&[0x89, b'P', b'N', b'G']));
        std::fs::remove_file(&path).unwrap();
        assert!(c.save_png(Path::new("/nonexistent-dir-egf/x.png")).is_err());
    }
}
