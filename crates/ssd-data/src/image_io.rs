//! Reading images as 8-bit RGB, with a size limit against decompression bombs.

use std::io::Cursor;
use std::path::Path;

use image::{ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

use crate::DataError;

/// Largest accepted image side, in pixels. VOC images are at most 500 pixels; this leaves room for
/// any photograph while refusing files that claim absurd sizes.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Most bytes a decoder may allocate for one image: 256 MiB, an 8-bit RGB image of about
/// 9,400 x 9,400 pixels.
pub const MAX_IMAGE_BYTES: u64 = 256 * 1024 * 1024;

/// Decodes `path` (JPEG or PNG, format from the content) into 8-bit RGB. Grayscale, alpha and
/// 16-bit images are converted (alpha dropped, 16-bit scaled to 8-bit).
///
/// Errors: [`DataError::MissingImage`] when the file does not exist, [`DataError::ImageTooLarge`]
/// past [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_BYTES`], [`DataError::UnreadableImage`] for anything the
/// decoder refuses (unknown format, corrupt or truncated data).
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let image = reader(path)?.decode().map_err(|e| decode_error(path, e))?;
    Ok(image.into_rgb8())
}

/// What an image in memory is, read from its header without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageProbe {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// An upper bound of the memory [`decode_rgb`] allocates for it at once, in bytes: the
    /// decoder's own buffer in the file's colour type (16-bit RGBA is 8 bytes a pixel), its
    /// working memory, and the 8-bit RGB copy unless the image is 8-bit RGB already.
    pub decode_bytes: u64,
}

impl ImageProbe {
    /// Width times height.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Reads the header of image bytes in memory (`name` stands for the file in errors): size and
/// what decoding will cost, allocating nothing of the image's size. A format the decoders do not
/// know, or a header they refuse, is [`DataError::UnreadableImage`]; the size limits of
/// [`decode_rgb`] are not applied here, so a caller can say by how much an image is over them.
pub fn probe_image(bytes: &[u8], name: &Path) -> Result<ImageProbe, DataError> {
    let mut reader = bytes_reader(bytes, name)?;
    reader.no_limits();
    let format = reader.format();
    let decoder = reader.into_decoder().map_err(|e| decode_error(name, e))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let native = decoder.total_bytes();
    let rgb8 = if decoder.color_type() == image::ColorType::Rgb8 {
        0
    } else {
        pixels * 3
    };
    let working = match format {
        // PNG decodes row by row into its output.
        Some(image::ImageFormat::Png) => native / 8,
        // The JPEG decoder keeps every component's 16-bit coefficients of a progressive image
        // until its last scan, and a few rows of planes otherwise (measured, with the factors
        // below as bounds, in crates/ssd-data/tests/decode_memory.rs).
        Some(image::ImageFormat::Jpeg) => {
            let coefficients = jpeg_frame(bytes)
                .filter(|f| f.progressive)
                .map_or(0, |f| 2 * f.samples(pixels));
            coefficients + pixels * 3 / 2 + (1 << 20)
        }
        _ => native * 2 + (1 << 20),
    };
    Ok(ImageProbe {
        width,
        height,
        decode_bytes: native + working + rgb8,
    })
}

/// [`load_rgb`] for image bytes in memory (an upload), `name` standing for the file in errors,
/// with a limit of its own on the pixel count: an image whose header claims more than
/// `max_pixels` pixels is [`DataError::ImageTooLarge`] before anything is decoded or allocated.
/// The limits of [`load_rgb`] apply too.
pub fn decode_rgb(bytes: &[u8], name: &Path, max_pixels: u64) -> Result<RgbImage, DataError> {
    // The header alone, read without the side limits so that the refusal can say the size;
    // reading a header allocates nothing of the image's size.
    let mut header = bytes_reader(bytes, name)?;
    header.no_limits();
    let (w, h) = header
        .into_dimensions()
        .map_err(|e| decode_error(name, e))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(DataError::ImageTooLarge {
            path: name.to_owned(),
            message: format!("{w} x {h} = {pixels} pixels, over the limit of {max_pixels}"),
        });
    }
    let image = bytes_reader(bytes, name)?
        .decode()
        .map_err(|e| decode_error(name, e))?;
    Ok(image.into_rgb8())
}

/// Width and height of the image at `path` from its header, after checking that a JPEG is
/// complete and that decoding it would stay within [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_BYTES`]
/// (a few-KB file that claims 100,000 x 100,000 pixels is [`DataError::ImageTooLarge`] here, as
/// in [`load_rgb`]): what can be known of an image without decoding it, about a hundred times
/// faster.
pub fn image_header(path: &Path) -> Result<[u32; 2], DataError> {
    let reader = reader(path)?;
    // The decoder checks the sides against the limits; the buffer it would need is checked as
    // `decode` does.
    let decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    let (w, h) = decoder.dimensions();
    limits()
        .reserve(decoder.total_bytes())
        .map_err(|e| decode_error(path, e))?;
    Ok([w, h])
}

/// A reader of the file at `path` with the format guessed from its content and the decoder's
/// [`limits`], once a JPEG is known to be complete.
fn reader(path: &Path) -> Result<ImageReader<Cursor<Vec<u8>>>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| {
        DataError::from_io(path, source, |path| DataError::MissingImage { path })
    })?;
    checked_reader(Cursor::new(bytes), path)
}

/// [`reader`] over bytes in memory named `name`.
fn bytes_reader<'a>(
    bytes: &'a [u8],
    name: &Path,
) -> Result<ImageReader<Cursor<&'a [u8]>>, DataError> {
    checked_reader(Cursor::new(bytes), name)
}

fn checked_reader<B: AsRef<[u8]>>(
    bytes: Cursor<B>,
    path: &Path,
) -> Result<ImageReader<Cursor<B>>, DataError> {
    check_jpeg_complete(bytes.get_ref().as_ref()).map_err(|reason| DataError::UnreadableImage {
        path: path.to_owned(),
        message: reason.to_owned(),
    })?;
    let mut reader = ImageReader::new(bytes)
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
    reader.limits(limits());
    Ok(reader)
}

/// The decoder's limits: [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_BYTES`].
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    limits
}

/// A decoder's error on `path` as the [`DataError`] it means.
fn decode_error(path: &Path, e: ImageError) -> DataError {
    match e {
        ImageError::Limits(_) => DataError::ImageTooLarge {
            path: path.to_owned(),
            message: e.to_string(),
        },
        // The file was opened; a read error while decoding is a truncated or damaged file.
        ImageError::IoError(source) => DataError::UnreadableImage {
            path: path.to_owned(),
            message: format!("truncated or damaged ({source})"),
        },
        other => DataError::UnreadableImage {
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

/// What a JPEG's start-of-frame header says about its memory: whether it is progressive and the
/// sampling factors `(h, v)` of its components.
struct JpegFrame {
    progressive: bool,
    sampling: Vec<(u64, u64)>,
}

impl JpegFrame {
    /// Samples of all components for an image of `pixels` (subsampled components have fewer).
    fn samples(&self, pixels: u64) -> u64 {
        let h_max = self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1);
        let v_max = self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1);
        self.sampling
            .iter()
            .map(|(h, v)| (pixels * h * v).div_ceil(h_max * v_max))
            .sum()
    }
}

/// The start-of-frame header of JPEG data, `None` for other data or a header cut short.
fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    loop {
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (0xFF, marker) = (*bytes.get(at)?, *bytes.get(at + 1)?) else {
            return None;
        };
        let len = usize::from(*bytes.get(at + 2)?) << 8 | usize::from(*bytes.get(at + 3)?);
        // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let segment = bytes.get(at + 4..at + 2 + len)?;
            let count = usize::from(*segment.get(5)?);
            let sampling = (0..count)
                .map(|i| {
                    let s = *segment.get(6 + 3 * i + 1)?;
                    Some((u64::from(s >> 4), u64::from(s & 0x0F)))
                })
                .collect::<Option<Vec<_>>>()?;
            return Some(JpegFrame {
                progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                sampling,
            });
        }
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        at += 2 + len;
    }
}

/// For JPEG data (starting with the SOI marker): an error unless an end-of-image marker follows
/// the first scan. The decoder fills a truncated scan with grey and reports success; a file cut
/// short has no EOI after its scan data (inside scan data a 0xFF byte is always followed by 0x00
/// or a restart marker, so `FF D9` there is the real end). Other formats pass.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), &'static str> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    // Walk the marker segments up to the first start-of-scan.
    let mut at = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return Err("corrupt JPEG: no start of scan");
        };
        let Some(len) = bytes
            .get(at + 2..at + 4)
            .map(|l| usize::from(l[0]) << 8 | usize::from(l[1]))
        else {
            return Err("truncated JPEG: cut inside its header");
        };
        at += 2 + len;
        if marker == 0xDA {
            break;
        }
        if marker == 0xD9 {
            return Err("corrupt JPEG: ends before any scan");
        }
    }
    let Some(scan) = bytes.get(at..) else {
        return Err("truncated JPEG: cut inside its header");
    };
    // Usually the file ends with the marker (zero padding allowed); else search for it.
    let end = scan.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if scan[..end].ends_with(&[0xFF, 0xD9]) || scan.windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err("truncated JPEG: no end-of-image marker after the scan data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, Rgba};
    use std::path::PathBuf;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssd-image-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn truncated_jpegs_are_errors_naming_the_file() {
        let dir = temp_dir("truncated");
        let path = dir.join("whole.jpg");
        let image = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        image.save(&path).expect("save");
        assert!(load_rgb(&path).is_ok());
        let bytes = std::fs::read(&path).expect("read");
        let cut = dir.join("cut.jpg");
        for keep in [bytes.len() - 2, bytes.len() * 2 / 3, 200, 30, 3] {
            std::fs::write(&cut, &bytes[..keep]).expect("write");
            let err = load_rgb(&cut).expect_err("a truncated JPEG");
            assert!(
                matches!(&err, DataError::UnreadableImage { path, .. } if *path == cut),
                "{keep} bytes: {err}"
            );
        }
        // Bytes after the end-of-image marker (some cameras write them) are not an error.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0, 0, 0, 1]);
        std::fs::write(&cut, padded).expect("write");
        assert!(load_rgb(&cut).is_ok());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn non_rgb_images_become_rgb() {
        let dir = temp_dir("colour");
        let gray = GrayImage::from_pixel(5, 3, Luma([200]));
        let rgba = ImageBuffer::from_pixel(4, 2, Rgba([10u8, 20, 30, 0]));
        let gray16: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_pixel(3, 3, Luma([65535]));
        let cases: [(&str, DynamicImage, [u8; 3]); 4] = [
            (
                "gray.png",
                DynamicImage::ImageLuma8(gray.clone()),
                [200, 200, 200],
            ),
            ("gray.jpg", DynamicImage::ImageLuma8(gray), [200, 200, 200]),
            ("rgba.png", DynamicImage::ImageRgba8(rgba), [10, 20, 30]),
            (
                "gray16.png",
                DynamicImage::ImageLuma16(gray16),
                [255, 255, 255],
            ),
        ];
        for (name, img, want) in cases {
            let path = dir.join(name);
            img.save(&path).expect("test image saves");
            let rgb = load_rgb(&path).expect("loads");
            assert_eq!(rgb.dimensions(), (img.width(), img.height()), "{name}");
            let px = rgb.get_pixel(0, 0).0;
            let close = px.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 2);
            assert!(close, "{name}: {px:?} vs {want:?}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_files_have_their_own_errors() {
        let dir = temp_dir("bad");
        assert!(matches!(
            load_rgb(&dir.join("none.jpg")),
            Err(DataError::MissingImage { .. })
        ));

        let text = dir.join("text.jpg");
        std::fs::write(&text, "not an image").ok();
        assert!(matches!(
            load_rgb(&text),
            Err(DataError::UnreadableImage { .. })
        ));

        let full = dir.join("full.png");
        let img =
            DynamicImage::ImageLuma8(GrayImage::from_fn(64, 64, |x, y| Luma([(x * y) as u8])));
        img.save_with_format(&full, ImageFormat::Png)
            .expect("saves");
        let bytes = std::fs::read(&full).unwrap_or_default();
        let truncated = dir.join("truncated.png");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).ok();
        assert!(matches!(
            load_rgb(&truncated),
            Err(DataError::UnreadableImage { .. })
        ));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn absurd_sizes_are_refused_before_decoding() {
        let dir = temp_dir("bomb");
        // A valid PNG header claiming 100,000 x 100,000 pixels.
        let path = dir.join("bomb.png");
        std::fs::write(&path, crate::png_claiming(100_000, 100_000)).ok();
        let r = load_rgb(&path);
        assert!(matches!(r, Err(DataError::ImageTooLarge { .. })), "{r:?}");
        // From memory, with a pixel limit of its own: refused from the header, saying the size.
        let bytes = std::fs::read(&path).unwrap_or_default();
        let r = decode_rgb(&bytes, Path::new("upload.png"), 50_000_000);
        assert!(
            matches!(&r, Err(DataError::ImageTooLarge { message, .. })
                if message.contains("100000 x 100000")),
            "{r:?}"
        );
        let small = crate::png_claiming(300, 200);
        let r = decode_rgb(&small, Path::new("upload.png"), 50_000);
        assert!(
            matches!(&r, Err(DataError::ImageTooLarge { message, .. })
                if message.contains("over the limit of 50000")),
            "{r:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
