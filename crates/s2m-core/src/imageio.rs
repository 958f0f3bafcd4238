//! Image files and image <-> candle tensor conversion.
//!
//! Models see images in the range `[-1, 1]`: a `u8` value `x` maps to `x / 127.5 - 1`, and back
//! with `round((y + 1) * 127.5)` after clamping, so `u8 -> tensor -> u8` is exact. Colour images
//! are channel-first (`[3, H, W]`), grayscale images (sketches) `[1, H, W]`, label maps `[H, W]`
//! of `u8` label values (see [`crate::anatomy`]).
//!
//! Conversions build one `Vec` and one tensor (no per-pixel tensor ops): they run in the data
//! loader's hot path. Reading decodes any colour mode and converts it; writing is atomic
//! (see [`crate::fsio`]) so an interrupted export never leaves a truncated PNG.

use crate::anatomy::LabelMap;
use crate::error::{CoreError, Result};
use crate::fsio::atomic_write_with;
use candle_core::{DType, Device, Tensor};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, GrayImage, ImageBuffer, ImageResult, PixelWithColorType, RgbImage};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File extensions (compared in lower case) of the image files [`list_images`] lists: the
/// formats the `image` crate is built with (PNG, JPEG).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The image files of a folder (not recursive): regular files whose extension is one of
/// [`IMAGE_EXTENSIONS`] in any case, sorted by path. Hidden files are listed too (callers that
/// treat them as litter filter them out); an empty list is not an error.
pub fn list_images(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| CoreError::io(dir, e))?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Largest width or height, in pixels, of an image file the loaders decode.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most bytes a decoder may allocate for one image file (the decoded pixels included).
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// The decode limits of every loader here: [`MAX_IMAGE_SIDE`] a side, [`MAX_DECODE_BYTES`]
/// of allocations.
pub fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// Decodes an image file of any supported format and colour mode.
///
/// The format is sniffed from the content first (a JPEG saved as `.png` still loads) and falls
/// back to the extension. The size in the file's header is checked before any pixel is
/// decoded: a side above [`MAX_IMAGE_SIDE`] or pixels above [`MAX_DECODE_BYTES`] give
/// [`CoreError::TooLarge`] naming the file, its size and the limit (the decoder also runs
/// under [`decode_limits`]).
pub fn load_dynamic(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    let reader = image::ImageReader::open(path).map_err(|e| CoreError::io(path, e))?;
    decode_reader(reader, path)
}

/// [`load_dynamic`] of an image held in memory (an upload, a fuzzer's input); `what` names it
/// in errors. The format is sniffed from the content only.
pub fn decode_dynamic(bytes: &[u8], what: &Path) -> Result<DynamicImage> {
    decode_reader(image::ImageReader::new(std::io::Cursor::new(bytes)), what)
}

fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
    path: &Path,
) -> Result<DynamicImage> {
    use image::ImageDecoder;
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| CoreError::io(path, e))?;
    let decode_err = |e: image::ImageError| CoreError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let too_large = |message: String| CoreError::TooLarge {
        path: path.to_path_buf(),
        message,
    };
    // The header alone first (only the allocation cap applies), so that a huge image is
    // refused, with its size in the message, before any pixel buffer exists.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (w, h) = decoder.dimensions();
    let bytes = decoder.total_bytes();
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(too_large(format!(
            "{w}x{h} px; the limit is {MAX_IMAGE_SIDE} px a side"
        )));
    }
    if bytes > MAX_DECODE_BYTES {
        return Err(too_large(format!(
            "{w}x{h} px decode to {} MiB; the limit is {} MiB",
            bytes.div_ceil(1 << 20),
            MAX_DECODE_BYTES >> 20
        )));
    }
    // As `ImageReader::decode` does: the output buffer counts against the allocation cap.
    let over_limits = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => too_large(format!(
            "{w}x{h} px: {l} (limits: {MAX_IMAGE_SIDE} px a side, {} MiB)",
            MAX_DECODE_BYTES >> 20
        )),
        other => decode_err(other),
    };
    let mut limits = decode_limits();
    limits.reserve(bytes).map_err(over_limits)?;
    decoder.set_limits(limits).map_err(over_limits)?;
    DynamicImage::from_decoder(decoder).map_err(over_limits)
}

/// Loads an image as 8-bit RGB (any colour mode is converted; alpha is dropped).
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    Ok(match load_dynamic(path)? {
        DynamicImage::ImageRgb8(img) => img,
        other => other.to_rgb8(),
    })
}

/// Loads an image as 8-bit grayscale (any colour mode is converted with luma weights).
pub fn load_gray(path: impl AsRef<Path>) -> Result<GrayImage> {
    Ok(match load_dynamic(path)? {
        DynamicImage::ImageLuma8(img) => img,
        other => other.to_luma8(),
    })
}

/// Images that [`save_png`] can write: [`DynamicImage`] and 8-bit [`ImageBuffer`]s
/// ([`RgbImage`], [`GrayImage`], `RgbaImage`, ...).
pub trait PngSource {
    /// Encodes `self` with the given PNG encoder.
    fn write_png<W: Write>(&self, encoder: PngEncoder<W>) -> ImageResult<()>;
}

impl PngSource for DynamicImage {
    fn write_png<W: Write>(&self, encoder: PngEncoder<W>) -> ImageResult<()> {
        self.write_with_encoder(encoder)
    }
}

impl<P> PngSource for ImageBuffer<P, Vec<u8>>
where
    P: PixelWithColorType<Subpixel = u8>,
{
    fn write_png<W: Write>(&self, encoder: PngEncoder<W>) -> ImageResult<()> {
        self.write_with_encoder(encoder)
    }
}

/// Encodes an image as PNG in memory (fast compression), for writers that place many files
/// inside a folder that is itself made visible atomically (see the dataset export).
pub fn encode_png<I: PngSource + ?Sized>(image: &I, what: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive);
    image.write_png(encoder).map_err(|e| CoreError::Encode {
        path: what.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(bytes)
}

/// Writes an image as PNG, atomically (temp file + rename).
///
/// Uses fast compression: dataset export writes tens of thousands of files and the size gain
/// of the best compression is small for photo-like content.
pub fn save_png<I: PngSource + ?Sized>(path: impl AsRef<Path>, image: &I) -> Result<()> {
    let path = path.as_ref();
    // The closure may only return io errors; keep the encoder's message to report it as Encode.
    let mut encode_error: Option<String> = None;
    let result = atomic_write_with(path, |w| {
        let encoder = PngEncoder::new_with_quality(w, CompressionType::Fast, FilterType::Adaptive);
        image.write_png(encoder).map_err(|e| {
            let message = e.to_string();
            encode_error = Some(message.clone());
            std::io::Error::other(message)
        })
    });
    match (result, encode_error) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(message)) => Err(CoreError::Encode {
            path: path.to_path_buf(),
            message,
        }),
        (Err(e), None) => Err(e),
    }
}

/// Maps a `u8` value to the model range `[-1, 1]`.
#[inline]
pub fn u8_to_unit(x: u8) -> f32 {
    x as f32 / 127.5 - 1.0
}

/// Maps a model-range value back to `u8` (clamped, rounded). NaN maps to 0; callers that must
/// reject NaN check first (see [`tensor_to_rgb`]).
#[inline]
pub fn unit_to_u8(y: f32) -> u8 {
    ((y + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// The pixels of an RGB image as channel-first `f32` values in `[-1, 1]` (length `3 * H * W`,
/// layout `[3, H, W]`). Exposed so batch loaders can fill one buffer for a whole batch.
pub fn rgb_to_chw(img: &RgbImage) -> Vec<f32> {
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = u8_to_unit(px[0]);
        g[i] = u8_to_unit(px[1]);
        b[i] = u8_to_unit(px[2]);
    }
    out
}

/// The pixels of a grayscale image as `f32` values in `[-1, 1]` (length `H * W`).
pub fn gray_to_vec(img: &GrayImage) -> Vec<f32> {
    img.as_raw().iter().map(|&x| u8_to_unit(x)).collect()
}

/// An RGB image as a `[3, H, W]` `f32` tensor in `[-1, 1]`.
pub fn rgb_to_tensor(img: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // [3, H, W]
    Ok(Tensor::from_vec(rgb_to_chw(img), (3, h, w), device)?)
}

/// A grayscale image as a `[1, H, W]` `f32` tensor in `[-1, 1]`.
pub fn gray_to_tensor(img: &GrayImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // [1, H, W]
    Ok(Tensor::from_vec(gray_to_vec(img), (1, h, w), device)?)
}

/// A label map as a `[H, W]` `u8` tensor of raw label values (`class_id * 16 + instance`).
pub fn labels_to_tensor(labels: &LabelMap, device: &Device) -> Result<Tensor> {
    let (w, h) = (labels.width() as usize, labels.height() as usize);
    // [H, W]
    Ok(Tensor::from_vec(labels.as_raw().to_vec(), (h, w), device)?)
}

/// Copies a tensor's values to the host as `f32`, rejecting NaN and infinities.
fn host_values(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    let values = t
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::NonFinite {
            what: what.to_string(),
        });
    }
    Ok(values)
}

fn shape_error(what: &str, expected: &str, t: &Tensor) -> CoreError {
    CoreError::Shape {
        what: what.to_string(),
        expected: expected.to_string(),
        got: format!("{:?}", t.dims()),
    }
}

/// Converts a `[3, H, W]` or `[1, 3, H, W]` tensor with values in `[-1, 1]` (any float dtype,
/// any device) to an RGB image. Values are clamped and rounded; NaN or infinities are an error
/// (they mean the model diverged, and silently writing black pixels would hide it).
pub fn tensor_to_rgb(t: &Tensor) -> Result<RgbImage> {
    const WHAT: &str = "tensor_to_rgb";
    const EXPECTED: &str = "[3, H, W] or [1, 3, H, W]";
    let (h, w) = match *t.dims() {
        [3, h, w] | [1, 3, h, w] => (h, w),
        _ => return Err(shape_error(WHAT, EXPECTED, t)),
    };
    let values = host_values(t, WHAT)?;
    let plane = h * w;
    let mut raw = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        for c in 0..3 {
            raw.push(unit_to_u8(values[c * plane + i]));
        }
    }
    RgbImage::from_raw(w as u32, h as u32, raw).ok_or_else(|| shape_error(WHAT, EXPECTED, t))
}

/// Converts a `[B, 3, H, W]` tensor to `B` RGB images (see [`tensor_to_rgb`]).
pub fn tensor_to_rgb_batch(t: &Tensor) -> Result<Vec<RgbImage>> {
    if t.rank() != 4 {
        return Err(shape_error("tensor_to_rgb_batch", "[B, 3, H, W]", t));
    }
    (0..t.dim(0)?).map(|i| tensor_to_rgb(&t.get(i)?)).collect()
}

/// Converts a `[H, W]`, `[1, H, W]` or `[1, 1, H, W]` tensor with values in `[-1, 1]` to a
/// grayscale image (clamped, rounded; NaN or infinities are an error).
pub fn tensor_to_gray(t: &Tensor) -> Result<GrayImage> {
    const WHAT: &str = "tensor_to_gray";
    const EXPECTED: &str = "[H, W], [1, H, W] or [1, 1, H, W]";
    let (h, w) = match *t.dims() {
        [h, w] | [1, h, w] | [1, 1, h, w] => (h, w),
        _ => return Err(shape_error(WHAT, EXPECTED, t)),
    };
    let raw = host_values(t, WHAT)?
        .into_iter()
        .map(unit_to_u8)
        .collect::<Vec<_>>();
    GrayImage::from_raw(w as u32, h as u32, raw).ok_or_else(|| shape_error(WHAT, EXPECTED, t))
}

/// Tiles equally sized images row by row into one image with `cols` columns (fewer if there
/// are fewer images) and `pad` black pixels between and around the tiles (for sample sheets).
pub fn image_grid(images: &[RgbImage], cols: usize, pad: u32) -> Result<RgbImage> {
    let first = images.first().ok_or_else(|| CoreError::Shape {
        what: "image_grid".to_string(),
        expected: "at least one image".to_string(),
        got: "none".to_string(),
    })?;
    if cols == 0 {
        return Err(CoreError::Shape {
            what: "image_grid columns".to_string(),
            expected: "at least 1".to_string(),
            got: "0".to_string(),
        });
    }
    let (w, h) = first.dimensions();
    if let Some((i, img)) = images
        .iter()
        .enumerate()
        .find(|(_, img)| img.dimensions() != (w, h))
    {
        return Err(CoreError::Shape {
            what: format!("image_grid image {i}"),
            expected: format!("{w}x{h} (the size of image 0)"),
            got: format!("{}x{}", img.width(), img.height()),
        });
    }
    let cols = cols.min(images.len());
    let rows = images.len().div_ceil(cols);
    let grid_w = cols as u32 * (w + pad) + pad;
    let grid_h = rows as u32 * (h + pad) + pad;
    let mut grid = RgbImage::new(grid_w, grid_h);
    for (i, img) in images.iter().enumerate() {
        let x0 = pad + (i % cols) as u32 * (w + pad);
        let y0 = pad + (i / cols) as u32 * (h + pad);
        // Copy whole rows: the grid is written once per sample sheet but may be large.
        let row_bytes = w as usize * 3;
        for y in 0..h {
            let src = &img.as_raw()[y as usize * row_bytes..(y as usize + 1) * row_bytes];
            let start = ((y0 + y) as usize * grid_w as usize + x0 as usize) * 3;
            let dst: &mut [u8] = &mut grid;
            dst[start..start + row_bytes].copy_from_slice(src);
        }
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    #[test]
    fn list_images_lists_png_and_jpeg_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "c.jpeg", ".hidden.png", "notes.txt", "d"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("folder.png")).unwrap();
        let names: Vec<String> = list_images(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [".hidden.png", "a.jpg", "b.PNG", "c.jpeg"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(list_images(empty.path()).unwrap().is_empty());
        let err = list_images(dir.path().join("absent")).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    fn ramp_rgb(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = ((y * w + x) % 256) as u8;
            Rgb([v, 255 - v, v.wrapping_mul(7)])
        })
    }

    #[test]
    fn rgb_round_trip_is_exact_for_all_u8_values() {
        // 16 x 16 = 256 pixels: every value appears in every channel.
        let img = ramp_rgb(16, 16);
        let t = rgb_to_tensor(&img, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 16, 16]);
        assert_eq!(t.dtype(), DType::F32);
        assert_eq!(tensor_to_rgb(&t).unwrap(), img);
        // The batched form with a leading 1 converts too.
        assert_eq!(tensor_to_rgb(&t.unsqueeze(0).unwrap()).unwrap(), img);
        let batch = Tensor::stack(&[&t, &t], 0).unwrap();
        assert_eq!(tensor_to_rgb_batch(&batch).unwrap(), vec![img.clone(), img]);
    }

    #[test]
    fn values_map_exactly_and_stay_in_range() {
        let img = RgbImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                Rgb([0, 255, 51])
            } else {
                Rgb([128, 1, 2])
            }
        });
        let t = rgb_to_tensor(&img, &Device::Cpu).unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Channel-first: [R0, R1, G0, G1, B0, B1].
        let expected = [0u8, 128, 255, 1, 51, 2].map(|x| x as f32 / 127.5 - 1.0);
        assert_eq!(v, expected);
        assert_eq!(v[0], -1.0);
        assert_eq!(v[2], 1.0);
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
    }

    #[test]
    fn gray_round_trip_and_clamping() {
        let img = GrayImage::from_fn(16, 16, |x, y| Luma([(y * 16 + x) as u8]));
        let t = gray_to_tensor(&img, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 16, 16]);
        assert_eq!(tensor_to_gray(&t).unwrap(), img);
        // Out-of-range values clamp instead of wrapping.
        let t = Tensor::new(&[[-3.0f32, 5.0]], &Device::Cpu).unwrap();
        assert_eq!(tensor_to_gray(&t).unwrap().as_raw(), &vec![0u8, 255]);
    }

    #[test]
    fn labels_become_u8_tensor() {
        let mut m = LabelMap::new(3, 2);
        m.as_raw_mut()[4] = 49;
        let t = labels_to_tensor(&m, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(t.dtype(), DType::U8);
        assert_eq!(
            t.to_vec2::<u8>().unwrap(),
            vec![vec![0, 0, 0], vec![0, 49, 0]]
        );
    }

    #[test]
    fn nan_is_an_error() {
        let t = Tensor::new(&[[[0.0f32, f32::NAN]]; 3], &Device::Cpu).unwrap();
        let err = tensor_to_rgb(&t).unwrap_err();
        assert!(matches!(err, CoreError::NonFinite { .. }), "{err}");
        let t = Tensor::new(&[[f32::INFINITY]], &Device::Cpu).unwrap();
        assert!(matches!(
            tensor_to_gray(&t).unwrap_err(),
            CoreError::NonFinite { .. }
        ));
    }

    #[test]
    fn wrong_shape_names_both_shapes() {
        let t = Tensor::zeros((2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let err = tensor_to_rgb(&t).unwrap_err().to_string();
        assert!(
            err.contains("[3, H, W]") && err.contains("[2, 4, 4]"),
            "{err}"
        );
        let t = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let err = tensor_to_rgb(&t).unwrap_err().to_string();
        assert!(err.contains("[2, 3, 4, 4]"), "{err}");
        let t = Tensor::zeros((3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let err = tensor_to_gray(&t).unwrap_err().to_string();
        assert!(
            err.contains("[1, H, W]") && err.contains("[3, 4, 4]"),
            "{err}"
        );
    }

    #[test]
    fn png_files_round_trip_and_convert_modes() {
        let dir = tempfile::tempdir().unwrap();
        let img = ramp_rgb(8, 5);
        let p = dir.path().join("a.png");
        save_png(&p, &img).unwrap();
        assert_eq!(load_rgb(&p).unwrap(), img);
        // An RGB file loads as gray and a gray file as RGB.
        assert_eq!(load_gray(&p).unwrap().dimensions(), (8, 5));
        let g = GrayImage::from_fn(4, 4, |x, _| Luma([x as u8 * 60]));
        let q = dir.path().join("g.png");
        save_png(&q, &DynamicImage::ImageLuma8(g.clone())).unwrap();
        assert_eq!(load_gray(&q).unwrap(), g);
        assert_eq!(load_rgb(&q).unwrap().get_pixel(2, 0), &Rgb([120, 120, 120]));
        // Only the final file remains (the write is atomic).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn corrupt_or_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.png");
        std::fs::write(&p, b"this is not a png at all").unwrap();
        let err = load_rgb(&p).unwrap_err();
        assert!(matches!(err, CoreError::Decode { .. }), "{err}");
        assert!(err.to_string().contains("broken.png"), "{err}");
        let err = load_gray(dir.path().join("absent.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.png"), "{err}");
        let err = save_png(dir.path().join("no/such/dir.png"), &ramp_rgb(2, 2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dir.png"), "{err}");
        // PNG cannot hold f32 pixels: an Encode error naming the file, and no file left.
        let f = DynamicImage::ImageRgb32F(image::Rgb32FImage::new(2, 2));
        let err = save_png(dir.path().join("float.png"), &f).unwrap_err();
        assert!(matches!(err, CoreError::Encode { .. }), "{err}");
        assert!(err.to_string().contains("float.png"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn files_over_the_decode_limits_are_refused_from_their_header() {
        use crate::testing::{jpeg_claiming_size, png_claiming_rgba_size, png_claiming_size};
        let dir = tempfile::tempdir().unwrap();
        // A 20000x20000 PNG (a few dozen bytes on disk, 400 MB of pixels) and a JPEG whose
        // header says 64x65535: refused naming the file, the size and the limit.
        let png = dir.path().join("huge.png");
        std::fs::write(&png, png_claiming_size(20_000, 20_000)).unwrap();
        let jpg = dir.path().join("tall.jpg");
        std::fs::write(&jpg, jpeg_claiming_size(64, 65_535)).unwrap();
        for (p, size) in [(&png, "20000x20000"), (&jpg, "64x65535")] {
            let err = load_dynamic(p).unwrap_err();
            assert!(matches!(err, CoreError::TooLarge { .. }), "{err}");
            let msg = err.to_string();
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(size), "{msg}");
            assert!(msg.contains(&MAX_IMAGE_SIDE.to_string()), "{msg}");
        }
        // Within the side limit but over the allocation cap: 16000x16000 RGBA is 977 MiB.
        let rgba = dir.path().join("wide_rgba.png");
        std::fs::write(&rgba, png_claiming_rgba_size(16_000, 16_000)).unwrap();
        let msg = load_dynamic(&rgba).unwrap_err().to_string();
        assert!(
            msg.contains("wide_rgba.png") && msg.contains("977 MiB"),
            "{msg}"
        );
        assert!(msg.contains(&(MAX_DECODE_BYTES >> 20).to_string()), "{msg}");
        // The same size in grey is 245 MiB and passes the header check (its data is then
        // missing: a decode error, not an allocation failure).
        let ok_size = dir.path().join("big_but_allowed.png");
        std::fs::write(&ok_size, png_claiming_size(16_000, 16_000)).unwrap();
        let err = load_dynamic(&ok_size).unwrap_err();
        assert!(matches!(err, CoreError::Decode { .. }), "{err}");
        // The crafted files are valid at their real size: the limits, not the crafting, refuse
        // them.
        let small = dir.path().join("small.png");
        std::fs::write(&small, png_claiming_size(1, 1)).unwrap();
        assert_eq!(load_gray(&small).unwrap().dimensions(), (1, 1));
        let small = dir.path().join("small.jpg");
        std::fs::write(&small, jpeg_claiming_size(8, 8)).unwrap();
        assert_eq!(load_gray(&small).unwrap().dimensions(), (8, 8));
    }

    #[test]
    fn grid_layout_and_errors() {
        let a = RgbImage::from_pixel(2, 3, Rgb([10, 20, 30]));
        let b = RgbImage::from_pixel(2, 3, Rgb([40, 50, 60]));
        let grid = image_grid(&[a.clone(), b.clone(), a.clone()], 2, 1).unwrap();
        // 2 columns, 2 rows: width 2*(2+1)+1, height 2*(3+1)+1.
        assert_eq!(grid.dimensions(), (7, 9));
        assert_eq!(grid.get_pixel(0, 0), &Rgb([0, 0, 0]));
        assert_eq!(grid.get_pixel(1, 1), &Rgb([10, 20, 30]));
        assert_eq!(grid.get_pixel(4, 3), &Rgb([40, 50, 60]));
        assert_eq!(grid.get_pixel(2, 7), &Rgb([10, 20, 30]));
        assert_eq!(grid.get_pixel(4, 7), &Rgb([0, 0, 0]));
        // More columns than images shrinks the grid.
        assert_eq!(image_grid(std::slice::from_ref(&a), 8, 0).unwrap(), a);
        let c = RgbImage::new(3, 3);
        let err = image_grid(&[a, c], 2, 0).unwrap_err().to_string();
        assert!(err.contains("2x3") && err.contains("3x3"), "{err}");
        assert!(image_grid(&[], 2, 0).is_err());
    }
}
