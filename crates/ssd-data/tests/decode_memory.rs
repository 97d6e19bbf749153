//! `probe_image`'s `decode_bytes` is an upper bound of what `decode_rgb` allocates at once, for
//! every kind of file an upload may be: PNG in 8 and 16 bits, gray, RGB and RGBA; JPEG baseline
//! and progressive, 4:2:0 and 4:4:4, gray and CMYK. Measured with a counting allocator (the whole
//! process's, so this file holds one test and nothing runs beside it); `ssd serve` reserves the
//! bound from its memory budget before it decodes an upload.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use peak_alloc::PeakAlloc;
use ssd_data::{decode_rgb, probe_image};

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

const W: u32 = 1600;
const H: u32 = 1200;

fn value(x: u32, y: u32, k: u32) -> u8 {
    ((x * (3 + k) + y * (5 + 2 * k) + (x * y) % 7) % 251) as u8
}

fn png(image: DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("encode");
    out.into_inner()
}

fn jpeg(color: ColorType, channels: u32, sampling: SamplingFactor, progressive: bool) -> Vec<u8> {
    let data: Vec<u8> = (0..W * H * channels)
        .map(|i| value((i / channels) % W, (i / channels) / W, i % channels))
        .collect();
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&mut out, 85);
    encoder.set_sampling_factor(sampling);
    encoder.set_progressive(progressive);
    encoder
        .encode(&data, W as u16, H as u16, color)
        .expect("encode");
    out
}

#[test]
fn the_probe_bounds_what_decoding_allocates() {
    let rgba16 = ImageBuffer::<Rgba<u16>, _>::from_fn(W, H, |x, y| {
        Rgba([0, 1, 2, 3].map(|k| u16::from(value(x, y, k)) * 257))
    });
    let rgb16 = ImageBuffer::<Rgb<u16>, _>::from_fn(W, H, |x, y| {
        Rgb([0, 1, 2].map(|k| u16::from(value(x, y, k)) * 255))
    });
    let rgb8 =
        ImageBuffer::<Rgb<u8>, _>::from_fn(W, H, |x, y| Rgb([0, 1, 2].map(|k| value(x, y, k))));
    let rgba8 = ImageBuffer::<Rgba<u8>, _>::from_fn(W, H, |x, y| {
        Rgba([0, 1, 2, 3].map(|k| value(x, y, k)))
    });
    let gray8 = ImageBuffer::<Luma<u8>, _>::from_fn(W, H, |x, y| Luma([value(x, y, 0)]));
    let gray16 =
        ImageBuffer::<Luma<u16>, _>::from_fn(W, H, |x, y| Luma([u16::from(value(x, y, 0)) * 3]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("png rgba16", png(DynamicImage::ImageRgba16(rgba16))),
        ("png rgb16", png(DynamicImage::ImageRgb16(rgb16))),
        ("png rgb8", png(DynamicImage::ImageRgb8(rgb8))),
        ("png rgba8", png(DynamicImage::ImageRgba8(rgba8))),
        ("png gray8", png(DynamicImage::ImageLuma8(gray8))),
        ("png gray16", png(DynamicImage::ImageLuma16(gray16))),
        (
            "jpeg 4:2:0",
            jpeg(ColorType::Rgb, 3, SamplingFactor::R_4_2_0, false),
        ),
        (
            "jpeg 4:4:4",
            jpeg(ColorType::Rgb, 3, SamplingFactor::R_4_4_4, false),
        ),
        (
            "jpeg progressive 4:2:0",
            jpeg(ColorType::Rgb, 3, SamplingFactor::R_4_2_0, true),
        ),
        (
            "jpeg progressive 4:4:4",
            jpeg(ColorType::Rgb, 3, SamplingFactor::R_4_4_4, true),
        ),
        (
            "jpeg gray",
            jpeg(ColorType::Luma, 1, SamplingFactor::R_4_4_4, false),
        ),
        (
            "jpeg progressive gray",
            jpeg(ColorType::Luma, 1, SamplingFactor::R_4_4_4, true),
        ),
        (
            "jpeg cmyk",
            jpeg(ColorType::Cmyk, 4, SamplingFactor::R_4_4_4, false),
        ),
    ];
    let mut report = Vec::new();
    let mut over = Vec::new();
    for (name, bytes) in &cases {
        let probe = probe_image(bytes, Path::new(name)).expect("a header");
        assert_eq!([probe.width, probe.height], [W, H], "{name}");
        let before = PEAK.current_usage();
        PEAK.reset_peak_usage();
        let image = decode_rgb(bytes, Path::new(name), u64::MAX).expect("decodes");
        let peak = (PEAK.peak_usage() - before) as u64;
        drop(image);
        let ratio = probe.decode_bytes as f64 / peak as f64;
        report.push(format!(
            "{name}: peak {:.1} MB, bound {:.1} MB ({ratio:.2}x)",
            peak as f64 / 1e6,
            probe.decode_bytes as f64 / 1e6
        ));
        // Within the bound, and not so far above it that the server refuses what it could take.
        if peak > probe.decode_bytes || ratio > 3.0 {
            over.push(name);
        }
    }
    println!("{}", report.join("\n"));
    assert!(over.is_empty(), "{over:?}:\n{}", report.join("\n"));
}
