//! Helpers for parity tests against committed PyTorch fixtures (safetensors files written by
//! the scripts in `tools/`), and crafted image files whose header lies about their size (for
//! the decode limits of [`crate::imageio`]). Test support, not model code: they panic with a
//! message on a broken fixture instead of returning errors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use image::ImageEncoder;

/// All tensors of a fixture file.
pub fn load_fixture(path: impl AsRef<Path>) -> HashMap<String, Tensor> {
    let path = path.as_ref();
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The `__metadata__` map of a safetensors header.
pub fn fixture_metadata(path: impl AsRef<Path>) -> HashMap<String, String> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    meta.metadata().clone().unwrap_or_default()
}

/// The sorted `(key, shape)` list a fixture generator stored under `keys.<name>` (the state
/// dict of the PyTorch model), to compare parameter names and shapes.
pub fn torch_keys(meta: &HashMap<String, String>, name: &str) -> Vec<(String, Vec<usize>)> {
    let s = meta
        .get(&format!("keys.{name}"))
        .unwrap_or_else(|| panic!("fixture has no keys.{name}"));
    let mut v: Vec<(String, Vec<usize>)> =
        serde_json::from_str(s).unwrap_or_else(|e| panic!("keys.{name}: {e}"));
    v.sort();
    v
}

/// A CPU f32 tensor of `shape` with N(0, 1) values from the seeded stream `seed`.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        crate::rng::randn_vec(&mut crate::rng::rng_from_seed(seed), n),
        shape,
        &Device::Cpu,
    )
    .expect("shape matches the data")
}

/// `max |a - b|` (f32 tensors of equal shape).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("f32 tensors of equal shape")
}

/// `max |a - b| / max |b|` (f32 tensors of equal shape).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    let max_abs = |t: &Tensor| -> f32 {
        t.abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("f32 tensor")
    };
    let d = max_abs(&(a - b).expect("same shape"));
    d / max_abs(b).max(1e-12)
}

/// A PNG file whose header claims `width` x `height` grey pixels but which holds the pixel
/// data of a 1x1 image: a few dozen bytes that any decoder without a size check would try to
/// allocate `width * height` bytes for (decode-limit tests).
pub fn png_claiming_size(width: u32, height: u32) -> Vec<u8> {
    png_claiming(width, height, 0)
}

/// [`png_claiming_size`] with an RGBA header (4 bytes a pixel).
pub fn png_claiming_rgba_size(width: u32, height: u32) -> Vec<u8> {
    png_claiming(width, height, 6)
}

/// A 1x1 grey PNG whose IHDR is patched to `width` x `height` and PNG colour type `colour`.
fn png_claiming(width: u32, height: u32, colour: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&[255u8], 1, 1, image::ExtendedColorType::L8)
        .expect("a 1x1 PNG encodes");
    // IHDR: 8-byte signature, length (4), "IHDR" (4), width (4), height (4), 5 more bytes, CRC.
    assert_eq!(&bytes[12..16], b"IHDR", "the encoder writes IHDR first");
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    bytes[25] = colour;
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// A JPEG file whose frame header (SOF0) claims `width` x `height` (at most 65535 each) but
/// which holds the data of an 8x8 image.
pub fn jpeg_claiming_size(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut bytes)
        .write_image(&[128u8; 64], 8, 8, image::ExtendedColorType::L8)
        .expect("an 8x8 JPEG encodes");
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline JPEG has a SOF0 marker");
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// CRC-32 (IEEE, as PNG chunks use it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
