//! The timing models of `bench pipeline` and the criterion bench: seeded random weights (not
//! zeros), held as plain tensors, finite outputs of the right shapes at 64 px.

use candle_core::Device;
use sketch2medi::timing::{TimingModels, TimingPreset};

#[test]
fn phantom64_timing_models_have_random_plain_weights_and_finite_outputs() {
    let dev = Device::Cpu;
    let m = TimingModels::new(TimingPreset::Phantom64, &dev).unwrap();
    let sketch = m.sketches(2).unwrap();
    let w = m.encode(&sketch).unwrap();
    assert_eq!(w.dims(), &[2, 128]);
    let image = m.synthesize(&w).unwrap();
    assert_eq!(image.dims(), &[2, 3, 64, 64]);
    let refined = m.refinement_step(&sketch, &w, &image).unwrap();
    let out = m.generate(&sketch, 3).unwrap();
    for (name, t) in [("w", &w), ("ŷ_0", &image), ("ŷ_1", &refined), ("ŷ_3", &out)] {
        assert!(!t.track_op(), "{name} carries a graph");
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name} has non-finite values"
        );
        let spread =
            v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 0.0, "{name} is constant: zero weights?");
    }
    // H's offsets move the image (its weights are not zero).
    let d = (&refined - &image)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(d.to_scalar::<f32>().unwrap() > 0.0);
    // The same seed, the same models.
    let again = TimingModels::new(TimingPreset::Phantom64, &dev).unwrap();
    let w2 = again.encode(&sketch).unwrap();
    let diff = (&w - &w2).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}
