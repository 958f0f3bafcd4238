//! StyleGAN2 generator G and discriminator D (rosinality parameter names), the per-sample
//! weight-offset path used by the HyperStyle refiner, and GAN training.
//!
//! Status: empty. This crate is filled by the "stylegan2 crate" issue; it deliberately exposes no
//! API yet, so that nothing can depend on a placeholder.
