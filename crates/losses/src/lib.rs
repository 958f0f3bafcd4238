//! Training losses of Sketch2MedI: L2, LPIPS, ST-LPIPS, the MoCo-v2 cosine loss, GAN losses, R1,
//! and the weighted similarity loss L_sim.
//!
//! Status: empty. Filled by the "backbones, training losses and perceptual metrics" issue; no API yet.
