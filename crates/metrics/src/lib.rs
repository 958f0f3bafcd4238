//! Evaluation metrics of the paper's Table I: FID/KID, DICE, LPIPS, DISTS, ST-LPIPS, TReS, CLIP-IQA.
//!
//! Status: empty. Filled by the "Table I metrics" and "backbones/losses" issues; no API yet.
