//! Pictures: loss curves (plotters) and detections drawn on images (imageproc), text in the font
//! shipped in `assets/fonts` (DejaVu Sans Mono, Bitstream Vera licence: see
//! `assets/fonts/DejaVu-LICENSE.txt`).

use std::path::Path;
use std::sync::Once;

use ab_glyph::{FontRef, PxScale};
use anyhow::{Context, anyhow};
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;
use plotters::prelude::*;
use ssd_train::LossPoint;

/// The font, compiled into the binary.
pub static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansMono.ttf");

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT_BYTES).expect("the shipped font parses (checked by a test)")
}

/// One curve of a chart: name (in the legend), points, colour.
pub type Curve = (String, Vec<(f64, f64)>, RGBColor);

/// The axes of a chart: title, x and y descriptions and ranges.
pub struct Axes<'a> {
    /// Caption.
    pub title: &'a str,
    /// x axis description.
    pub x_desc: &'a str,
    /// y axis description.
    pub y_desc: &'a str,
    /// x range.
    pub x: std::ops::Range<f64>,
    /// y range.
    pub y: std::ops::Range<f64>,
}

/// Draws line curves into a PNG (900x500, legend when there are at most 24 curves), written
/// atomically.
pub fn plot_curves(axes: &Axes<'_>, curves: &[Curve], path: &Path) -> anyhow::Result<()> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Registration can only fail for an invalid font, which a test rules out.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
    let (width, height) = (900u32, 500u32);
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(axes.x.clone(), axes.y.clone())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        for (name, data, color) in curves {
            let color = *color;
            let series = chart
                .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(&e))?;
            if curves.len() <= 24 {
                series
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        if curves.len() <= 24 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    let image = RgbImage::from_raw(width, height, buffer).context("plot buffer size")?;
    save_image_atomically(&image, path)
}

/// Draws the loss curves (total, loc, conf; moving average over a fiftieth of the points) into
/// a PNG, written atomically.
pub fn plot_losses(points: &[LossPoint], title: &str, path: &Path) -> anyhow::Result<()> {
    let smooth = |f: fn(&LossPoint) -> f64| -> Vec<(f64, f64)> {
        let window = (points.len() / 50).max(1);
        let mut out = Vec::with_capacity(points.len());
        let mut sum = 0.0;
        for (i, p) in points.iter().enumerate() {
            sum += f(p);
            if i >= window {
                sum -= f(&points[i - window]);
            }
            out.push((p.iteration as f64, sum / (i + 1).min(window) as f64));
        }
        out
    };
    let curves = [
        ("loss".to_owned(), smooth(|p| p.loss), RED),
        ("loc".to_owned(), smooth(|p| p.loc), BLUE),
        ("conf".to_owned(), smooth(|p| p.conf), GREEN),
    ];
    let x_max = points.last().map_or(1.0, |p| p.iteration as f64).max(1.0);
    let x_min = points
        .first()
        .map_or(0.0, |p| p.iteration as f64)
        .min(x_max - 1.0);
    let y_max = curves
        .iter()
        .flat_map(|(_, s, _)| s.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let axes = Axes {
        title,
        x_desc: "iteration",
        y_desc: "loss (moving average)",
        x: x_min..x_max,
        y: 0.0..y_max,
    };
    plot_curves(&axes, &curves, path)
}

/// Precision-recall curves of an evaluation, one per class (`pr_curves.png`), and for metrics
/// over several IoU thresholds (COCO's) AP against the threshold (`ap_by_iou.png`), in `dir`.
/// Returns the files.
pub fn plot_evaluation(
    report: &ssd_eval::Report,
    dir: &Path,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let drawn = report.curves();
    let curves: Vec<Curve> = drawn
        .precision_recall
        .into_iter()
        .map(|curve| {
            let c = class_color(curve.index + 1);
            (curve.name, curve.points, RGBColor(c[0], c[1], c[2]))
        })
        .collect();
    let path = dir.join("pr_curves.png");
    let axes = Axes {
        title: &drawn.title,
        x_desc: "recall",
        y_desc: "precision",
        x: 0.0..1.0,
        y: 0.0..1.02,
    };
    plot_curves(&axes, &curves, &path)?;
    let mut written = vec![path];
    if let Some(ap) = drawn.ap_by_iou {
        let path = dir.join("ap_by_iou.png");
        let axes = Axes {
            title: "AP against the IoU threshold",
            x_desc: "IoU threshold",
            y_desc: "AP",
            x: 0.5..0.95,
            y: 0.0..1.0,
        };
        plot_curves(&axes, &[("AP".to_owned(), ap, RED)], &path)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes an image (format from the extension) under a temporary name, then renames it.
pub fn save_image_atomically(image: &RgbImage, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("png");
    let tmp = path.with_extension(format!("partial.{ext}"));
    // A failure (a full disk) leaves neither a partial file nor a damaged `path`.
    image
        .save(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            e.context(format!("cannot write {}", path.display()))
        })
}

/// A box to draw: pixel corners (0-based), caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// `[xmin, ymin, xmax, ymax]` in pixels.
    pub bbox: [f32; 4],
    /// Class index (picks the colour).
    pub class: usize,
    /// Text above the box.
    pub caption: String,
}

/// A distinct, saturated colour per class.
pub fn class_color(class: usize) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
    ];
    Rgb(PALETTE[class % PALETTE.len()])
}

/// Draws boxes with captions (class and score) on `image`: a 2-pixel frame per box and the
/// caption on a filled band above it (inside when there is no room above).
pub fn draw_detections(image: &mut RgbImage, boxes: &[Labelled]) {
    let font = font();
    let (w, h) = image.dimensions();
    let size = (h.min(w) as f32 / 30.0).clamp(11.0, 22.0);
    let scale = PxScale::from(size);
    for b in boxes {
        let color = class_color(b.class);
        let x0 = b.bbox[0].max(0.0).round() as i32;
        let y0 = b.bbox[1].max(0.0).round() as i32;
        let x1 = (b.bbox[2].round() as i32).min(w as i32 - 1);
        let y1 = (b.bbox[3].round() as i32).min(h as i32 - 1);
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        for t in 0..2 {
            let (bw, bh) = ((x1 - x0 - 2 * t).max(1), (y1 - y0 - 2 * t).max(1));
            draw_hollow_rect_mut(
                image,
                Rect::at(x0 + t, y0 + t).of_size(bw as u32, bh as u32),
                color,
            );
        }
        let (tw, th) = text_size(scale, &font, &b.caption);
        let band = th as i32 + 4;
        let top = if y0 >= band { y0 - band } else { y0 };
        draw_filled_rect_mut(image, Rect::at(x0, top).of_size(tw + 6, band as u32), color);
        let luminance =
            0.299 * f32::from(color[0]) + 0.587 * f32::from(color[1]) + 0.114 * f32::from(color[2]);
        let ink = if luminance > 140.0 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        };
        draw_text_mut(image, ink, x0 + 3, top + 1, scale, &font, &b.caption);
    }
}

/// Draws a track's trail (its centres over the last frames, oldest first) as a line in the
/// colour of `class` (see [`class_color`]), 2 pixels wide.
pub fn draw_trail(image: &mut RgbImage, points: &[(f32, f32)], class: usize) {
    let color = class_color(class);
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)] {
            draw_line_segment_mut(image, (a.0 + dx, a.1 + dy), (b.0 + dx, b.1 + dy), color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_parses_and_boxes_are_drawn() {
        assert!(FontRef::try_from_slice(FONT_BYTES).is_ok());
        let mut image = RgbImage::from_pixel(120, 90, Rgb([10, 10, 10]));
        draw_detections(
            &mut image,
            &[Labelled {
                bbox: [20.0, 40.0, 100.0, 80.0],
                class: 0,
                caption: "circle 0.93".to_owned(),
            }],
        );
        assert_eq!(*image.get_pixel(60, 40), class_color(0), "top edge");
        assert_eq!(
            *image.get_pixel(60, 60),
            Rgb([10, 10, 10]),
            "inside untouched"
        );
        let band = (20..100)
            .flat_map(|x| (20..40).map(move |y| (x, y)))
            .filter(|&(x, y)| *image.get_pixel(x, y) != Rgb([10, 10, 10]))
            .count();
        assert!(band > 200, "caption band drawn above the box: {band} px");
    }

    #[test]
    fn loss_plot_is_written() {
        let dir = std::env::temp_dir().join(format!("ssd-plot-{}", std::process::id()));
        let path = dir.join("loss.png");
        let points: Vec<LossPoint> = (1..=40)
            .map(|i| LossPoint {
                iteration: i,
                loss: 10.0 / i as f64,
                loc: 3.0 / i as f64,
                conf: 7.0 / i as f64,
                lr: 1e-3,
                grad_norm: 1.0,
            })
            .collect();
        plot_losses(&points, "test", &path).expect("plot");
        let image = image::open(&path).expect("png").to_rgb8();
        assert_eq!(image.dimensions(), (900, 500));
        let red = image.pixels().filter(|p| p[0] > 200 && p[1] < 60).count();
        assert!(red > 100, "the loss curve is drawn ({red} red px)");
        let _ = std::fs::remove_dir_all(dir);
    }
}
