//! The image buffer of Shrivastava et al. (junyanz `util/image_pool.py`, `--pool_size 50`):
//! the discriminators see a mix of the newest fakes and up to 50 older ones.
//!
//! Per image of the batch (detached): while the pool holds fewer than `size` images, the image is
//! stored and returned; once full, with probability 1/2 a uniformly chosen stored image is
//! returned and the new one takes its place, else the new image is returned. `size` 0 returns
//! the batch unchanged. NOTE: the official code draws from Python's `random`; here the draws
//! come from the workspace's seeded [`Rng`] (`p = u > 0.5` with `u` uniform in [0, 1), then an
//! index uniform in `0..size`), so runs are reproducible and resumable, not torch-identical.

use candle_core::Tensor;
use rand::Rng as _;
use s2m_core::rng::Rng;

use crate::error::{BaselinesError, Result};

/// A pool of up to `size` past images `[1, C, H, W]`.
#[derive(Debug, Clone)]
pub struct ImagePool {
    size: usize,
    images: Vec<Tensor>,
}

impl ImagePool {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            images: Vec::with_capacity(size),
        }
    }

    /// The capacity (`--pool_size`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The stored images, oldest slot first (each `[1, C, H, W]`).
    pub fn images(&self) -> &[Tensor] {
        &self.images
    }

    /// A pool holding `images` (a checkpoint's content); at most `size` images, all of one
    /// shape `[1, C, H, W]`.
    pub fn from_images(size: usize, images: Vec<Tensor>) -> Result<Self> {
        if images.len() > size {
            return Err(BaselinesError::Config(format!(
                "image pool of size {size} cannot hold {} images",
                images.len()
            )));
        }
        if let Some(first) = images.first() {
            for (i, im) in images.iter().enumerate() {
                if im.dims().len() != 4 || im.dim(0)? != 1 || im.dims() != first.dims() {
                    return Err(BaselinesError::Shape {
                        what: format!("image pool entry {i}"),
                        expected: format!("[1, C, H, W] like entry 0 {:?}", first.dims()),
                        got: im.dims().to_vec(),
                    });
                }
            }
        }
        Ok(Self { size, images })
    }

    /// The official `ImagePool.query`: `[B, C, H, W]` in, `[B, C, H, W]` out (detached).
    pub fn query(&mut self, batch: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let d = batch.dims();
        if d.len() != 4 || d[0] == 0 {
            return Err(BaselinesError::Shape {
                what: "image pool query".into(),
                expected: "[B, C, H, W] with B >= 1".into(),
                got: d.to_vec(),
            });
        }
        if let Some(first) = self.images.first()
            && first.dims()[1..] != d[1..]
        {
            return Err(BaselinesError::Shape {
                what: "image pool query".into(),
                expected: format!(
                    "[B, {}, {}, {}] (the stored images)",
                    first.dims()[1],
                    first.dims()[2],
                    first.dims()[3]
                ),
                got: d.to_vec(),
            });
        }
        let batch = batch.detach();
        if self.size == 0 {
            return Ok(batch);
        }
        let mut out = Vec::with_capacity(d[0]);
        for i in 0..d[0] {
            let image = batch.narrow(0, i, 1)?; // [1, C, H, W]
            if self.images.len() < self.size {
                self.images.push(image.clone());
                out.push(image);
            } else if rng.random::<f64>() > 0.5 {
                let id = rng.random_range(0..self.size);
                let old = std::mem::replace(&mut self.images[id], image);
                out.push(old);
            } else {
                out.push(image);
            }
        }
        Ok(Tensor::cat(&out, 0)?)
    }
}
