//! The sketch encoder E (e4e-style, single latent w) and the latent discriminator D_w.
//!
//! Status: empty. Filled by the "Sketch2MedI itself" issue; no API yet.
