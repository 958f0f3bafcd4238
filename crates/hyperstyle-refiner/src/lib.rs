//! The HyperStyle refiner H: a hypernetwork on [sketch, image] predicting per-sample weight
//! offsets for the generator, applied iteratively (theta_t = theta * (1 + sum Delta_i)).
//!
//! Status: empty. Filled by the "Sketch2MedI itself" issue; no API yet.
