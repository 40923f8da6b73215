//! A small RGB raster drawn with plotters: [`Canvas`] wraps an in-memory RGB buffer
//! and draws into it through plotters' `BitMapBackend` (filled and outlined
//! rectangles, alpha-blended lines, filled circles, bitmap blits for heat maps), takes
//! its colour map from plotters ([`colormap`] is plotters' viridis), hands its buffer
//! to plotters' chart API ([`Canvas::drawing_area`], used by [`crate::curves`]), and
//! writes PNG files through the same back end.
//!
//! **Text is the one thing drawn here by hand.** plotters draws text only through a
//! font back end: `ttf` loads system fonts through font-kit (CI machines have none,
//! and figures would depend on the machine), and `ab_glyph` needs the bytes of a font
//! file compiled in, which this project does not ship (no font of clear licence is
//! vendored). Without either, plotters' text calls panic. So labels, titles and tick
//! numbers are drawn from a built-in 5×7 bitmap font (upper-case letters, digits and a
//! few signs; lower case is drawn as capitals), kept to short labels, and plotters'
//! charts are built with no label areas so that they never call the font back end.

use std::path::Path;

use plotters::backend::{BitMapBackend, DrawingBackend};
use plotters::coord::Shift;
use plotters::drawing::{DrawingArea, IntoDrawingArea};
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::{Color, RGBColor};

use crate::{PlotError, Result};

/// An RGB colour.
pub type Rgb = [u8; 3];

/// White, the background of every figure.
pub const WHITE: Rgb = [255, 255, 255];
/// Black.
pub const BLACK: Rgb = [0, 0, 0];
/// Near-black, for frames and text.
pub const DARK: Rgb = [40, 40, 40];
/// Grey, for captions and NaN cells.
pub const GREY: Rgb = [150, 150, 150];
/// Red, for data points on world maps.
pub const RED: Rgb = [230, 40, 40];

/// The plotters colour of an [`Rgb`].
pub fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// A `width × height` RGB image, row-major from the top-left corner, drawn through
/// plotters' bitmap back end. Drawing outside the canvas is clipped.
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
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

    /// plotters' back end over the pixel buffer.
    fn backend(&mut self) -> BitMapBackend<'_> {
        BitMapBackend::with_buffer(&mut self.pixels, (self.width, self.height))
    }

    /// The whole canvas as a plotters drawing area, for plotters' element and chart API.
    /// Never draw text through it (see the [module documentation](self)).
    pub fn drawing_area(&mut self) -> DrawingArea<BitMapBackend<'_>, Shift> {
        let size = (self.width, self.height);
        BitMapBackend::with_buffer(&mut self.pixels, size).into_drawing_area()
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        self.blend(x, y, c, 1.0);
    }

    /// Blends `c` over one pixel with opacity `alpha ∈ [0, 1]`.
    pub fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f64) {
        let (Ok(x), Ok(y)) = (i32::try_from(x), i32::try_from(y)) else { return };
        // drawing into a memory buffer cannot fail
        let _ = self.backend().draw_pixel((x, y), rgb(c).mix(alpha).to_backend_color());
    }

    /// The colour of one pixel (black outside the canvas).
    pub fn get(&self, x: i64, y: i64) -> Rgb {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return BLACK;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Fills the rectangle `[x, x + w) × [y, y + h)`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        if w <= 0 || h <= 0 {
            return;
        }
        let (x0, y0, x1, y1) = (clip(x), clip(y), clip(x + w), clip(y + h));
        let _ = self.backend().draw_rect((x0, y0), (x1, y1), &rgb(c), true);
    }

    /// The one-pixel outline of the rectangle `[x, x + w) × [y, y + h)`.
    pub fn rect_outline(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        if w <= 0 || h <= 0 {
            return;
        }
        let (x0, y0, x1, y1) = (clip(x), clip(y), clip(x + w - 1), clip(y + h - 1));
        let _ = self.backend().draw_rect((x0, y0), (x1, y1), &rgb(c), false);
    }

    /// A one-pixel straight line between two pixels (both included), blended with opacity `alpha`.
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb, alpha: f64) {
        let style = rgb(c).mix(alpha);
        let _ = self.backend().draw_line((clip(x0), clip(y0)), (clip(x1), clip(y1)), &style);
    }

    /// A filled disc of radius `r` pixels centred at `(cx, cy)` (rounded to whole pixels).
    pub fn dot(&mut self, cx: f64, cy: f64, r: f64, c: Rgb, alpha: f64) {
        if !(cx.is_finite() && cy.is_finite() && r.is_finite()) {
            return;
        }
        let centre = (clip(cx.floor() as i64), clip(cy.floor() as i64));
        let style = rgb(c).mix(alpha);
        let _ = self.backend().draw_circle(centre, r.round().max(1.0) as u32, &style, true);
    }

    /// A circle outline of radius `r` pixels centred at `(cx, cy)`.
    pub fn ring(&mut self, cx: f64, cy: f64, r: f64, c: Rgb) {
        if !(cx.is_finite() && cy.is_finite() && r.is_finite()) {
            return;
        }
        let centre = (clip(cx.floor() as i64), clip(cy.floor() as i64));
        let _ = self.backend().draw_circle(centre, r.round().max(1.0) as u32, &rgb(c), false);
    }

    /// Copies a `w × h` RGB image (row-major, `3 w h` bytes) with its top-left corner at
    /// `(x, y)` (clipped to the canvas); a buffer of another size is an error.
    pub fn blit(&mut self, x: i64, y: i64, w: u32, h: u32, rgb_bytes: &[u8]) -> Result<()> {
        if rgb_bytes.len() != 3 * w as usize * h as usize {
            return Err(PlotError::invalid(format!(
                "an image of {w} × {h} pixels needs {} bytes, got {}",
                3 * w as usize * h as usize,
                rgb_bytes.len()
            )));
        }
        self.backend()
            .blit_bitmap((clip(x), clip(y)), (w, h), rgb_bytes)
            .map_err(|e| PlotError::Draw { path: Default::default(), reason: e.to_string() })
    }

    /// Draws `text` with its top-left corner at `(x, y)` in the built-in 5×7 bitmap font,
    /// each font pixel a `scale × scale` square. Lower-case letters are drawn as capitals;
    /// characters the font lacks as `?`.
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

    /// Draws `text` rotated a quarter turn counter-clockwise (reading bottom to top),
    /// with the bottom-left corner of its first character at `(x, y)`: for vertical axis titles.
    pub fn text_vertical(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        let mut pen = y;
        for ch in text.chars() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        // font column → up the page, font row → right
                        self.fill_rect(x + r as i64 * scale, pen - (col + 1) * scale, scale, scale, c);
                    }
                }
            }
            pen -= 6 * scale;
        }
    }

    /// The raw RGB bytes, row-major from the top-left corner.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Writes the canvas as a PNG file through plotters' bitmap back end. A missing
    /// directory is an error that names it.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(PlotError::Write {
                    path: path.to_path_buf(),
                    reason: format!("directory {} does not exist", parent.display()),
                });
            }
        }
        let mut backend = BitMapBackend::new(path, (self.width, self.height));
        backend
            .blit_bitmap((0, 0), (self.width, self.height), &self.pixels)
            .map_err(|e| PlotError::Draw { path: path.to_path_buf(), reason: e.to_string() })?;
        backend.present().map_err(|e| PlotError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(())
    }
}

/// A pixel coordinate clamped into plotters' `i32` range (far outside any canvas).
fn clip(v: i64) -> i32 {
    v.clamp(-(1 << 24), 1 << 24) as i32
}

/// plotters' viridis colour map: `v ∈ [0, 1]` (clamped) from dark purple through teal
/// to yellow; NaN is [`GREY`].
pub fn colormap(v: f64) -> Rgb {
    if v.is_nan() {
        return GREY;
    }
    let RGBColor(r, g, b) = ViridisRGB::get_color(v.clamp(0.0, 1.0));
    [r, g, b]
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
        assert_eq!(colormap(-3.0), colormap(0.0));
        assert_eq!(colormap(7.0), colormap(1.0));
        assert_eq!(colormap(f64::NAN), GREY);
        // dark purple at 0, yellow at 1
        let (lo, hi) = (colormap(0.0), colormap(1.0));
        assert!(lo[2] > lo[1] && lo[0] < 100, "{lo:?}");
        assert!(hi[0] > 200 && hi[1] > 200 && hi[2] < 100, "{hi:?}");
        // brightness grows along the map
        let lum = |c: Rgb| 0.3 * c[0] as f64 + 0.59 * c[1] as f64 + 0.11 * c[2] as f64;
        assert!((0..10).all(|i| lum(colormap(i as f64 / 10.0)) < lum(colormap((i + 1) as f64 / 10.0))));
    }

    #[test]
    fn shapes_cover_exactly_their_pixels() {
        let mut c = Canvas::new(40, 20, WHITE);
        c.fill_rect(2, 3, 4, 5, RED);
        assert_eq!(c.get(2, 3), RED);
        assert_eq!(c.get(5, 7), RED);
        assert_eq!(c.get(6, 7), WHITE);
        assert_eq!(c.get(5, 8), WHITE);
        assert_eq!(c.get(1, 3), WHITE);
        c.rect_outline(10, 10, 5, 5, DARK);
        assert_eq!(c.get(10, 10), DARK);
        assert_eq!(c.get(14, 14), DARK);
        assert_eq!(c.get(12, 12), WHITE);
        assert_eq!(c.get(15, 14), WHITE);
        c.line(0, 19, 39, 19, RED, 1.0);
        assert_eq!(c.get(20, 19), RED);
        c.line(0, 0, 39, 0, BLACK, 0.5);
        let half = c.get(20, 0);
        assert!(half[0] > 100 && half[0] < 155 && half[0] == half[1], "{half:?}");
        c.dot(30.0, 10.0, 2.0, RED, 1.0);
        assert_eq!(c.get(30, 10), RED);
        assert_eq!(c.get(30, 5), WHITE);
        // out of range draws are clipped, not panics
        c.fill_rect(-100, -100, 1_000_000, 3, BLACK);
        c.line(-5, -5, 1 << 40, 3, BLACK, 1.0);
        c.set(-1, 0, BLACK);
        assert_eq!(c.get(-1, 0), BLACK);
    }

    #[test]
    fn text_and_blit() {
        let mut c = Canvas::new(40, 20, WHITE);
        c.text(1, 1, "A1", 1, BLACK);
        assert_eq!(c.get(2, 1), BLACK); // top bar of A
        assert_eq!(c.get(1, 1), WHITE); // A's top-left corner is empty
        assert_eq!(Canvas::text_width("A1", 2), 22);
        assert_eq!(Canvas::text_width("", 2), 0);
        let img = vec![7u8; 3 * 2 * 3];
        c.blit(30, 10, 2, 3, &img).unwrap();
        assert_eq!(c.get(31, 12), [7, 7, 7]);
        assert_eq!(c.get(32, 12), WHITE);
        assert!(c.blit(0, 0, 2, 2, &img).is_err());
        let mut v = Canvas::new(20, 40, WHITE);
        v.text_vertical(2, 30, "I", 1, BLACK);
        // an I on its side: its stem is horizontal
        assert_eq!(v.get(5, 27), BLACK);
    }

    #[test]
    fn png_files() {
        let mut c = Canvas::new(40, 20, WHITE);
        c.fill_rect(0, 0, 10, 10, RED);
        let path = std::env::temp_dir().join(format!("egf-plot-render-{}.png", std::process::id()));
        c.save_png(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(&[0x89, b'P', b'N', b'G']));
        // IHDR: width and height, big-endian, at bytes 16..24
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 40);
        assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 20);
        std::fs::remove_file(&path).unwrap();
        let err = c.save_png(Path::new("/nonexistent-dir-egf/x.png")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir-egf"), "{err}");
    }
}
