#!/usr/bin/env python3
"""Parity fixtures for the Frechet distance, KID and the FID feature pipeline (crates/metrics).

Every number comes from the reference packages, imported (nothing re-written here):
pytorch-fid 0.3.0 and torch-fidelity 0.4.0 (pip). Writes
`crates/metrics/tests/fixtures/{frechet,fid_pipeline}.safetensors`, checked by
`cargo test -p metrics --test fid`:

* `frechet`: two correlated 64-d feature sets (200 and 150 rows, f32, numpy seed 7). Their
  statistics from **torch-fidelity's `fid_features_to_statistics`** (np.mean, np.cov rowvar=False;
  fed the features as f64), the FID from **pytorch-fid's `calculate_frechet_distance`** (scipy
  `sqrtm`) and from **torch-fidelity's `fid_statistics_to_metric`** (eigenvalues). KID from
  **torch-fidelity's `kid_features_to_metric`** (poly kernel degree 3, gamma 1/d, coef0 1,
  unbiased MMD^2, subsets drawn by `np.random.RandomState(rng_seed).choice(replace=False)`):
  `kid` / `kid_rows1` / `kid_rows2` = the 5 subsets of 50 it draws with rng_seed 2020 (the rows
  are read off the package's own RandomState calls by wrapping `choice`; each per-subset value
  from torch-fidelity's `kernel_mmd`); `kid_mean`/`kid_std` its result for those settings,
  `kid100_*` for its default 100 subsets (size 100, rng_seed 2020), `kid_f32_*` with the f32
  features as torch-fidelity gets them from an extractor (kernels in f32).
* `fid_pipeline`: two sets of 5 small images in [0, 1] (40x40), their pool3 features from
  **pytorch-fid's `InceptionV3([3])`** (resize to 299 bilinear, 2x-1), the FD of those features
  from torch-fidelity's `fid_features_to_statistics` + `fid_statistics_to_metric` (eigenvalues of
  S1 S2: the 2048-d covariances of 5 images are singular, where scipy's sqrtm is not accurate)
  and torch-fidelity's `kid_features_to_metric` (1 subset of 5, rng_seed 2020).

What is stubbed, and nothing else: pytorch-fid's weights download (see
tools/fid_inception_fixture.py: a synthetic `pt_inception-2015-12-05-6726825d.pth` pre-placed
in a temporary torch.hub cache; values from the `backbones::synthetic` name-seeded formula,
which `metrics::features::InceptionFeatures::synthetic` rebuilds). torch-fidelity downloads
nothing here (only its feature-level functions are called).

Features are handed to torch-fidelity as f64 tensors (the Rust side computes in f64), except
for the `kid_f32_*` values. Each file's safetensors metadata records the script, the reference
packages and versions, the config and the stub.

Usage (no network needed):
    python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install torch torchvision numpy \
        scipy safetensors pytorch-fid==0.3.0 torch-fidelity==0.4.0
    /work/venv-ref/bin/python tools/metrics_fid_fixture.py
"""
import contextlib
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbones_fixtures as bf  # noqa: E402  (test image)
import fid_inception_fixture as fif  # noqa: E402  (pytorch-fid InceptionV3 with the stubbed download)

OUT = "crates/metrics/tests/fixtures"
SCRIPT = "tools/metrics_fid_fixture.py"
KID_SEED = 2020  # torch-fidelity's default rng_seed


def tf_stats(x):
    """torch-fidelity's statistics (mu, np.cov rowvar=False) of f64 features."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(torch.from_numpy(np.asarray(x, dtype=np.float64)))


def tf_fid(s1, s2):
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID]


def tf_kid(x, y, subsets, subset_size, dtype=np.float64):
    """torch-fidelity's `kid_features_to_metric` -> (mean, std)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    out = kid_features_to_metric(
        torch.from_numpy(np.asarray(x, dtype=dtype)),
        torch.from_numpy(np.asarray(y, dtype=dtype)),
        kid_subsets=subsets,
        kid_subset_size=subset_size,
        rng_seed=KID_SEED,
        verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


@contextlib.contextmanager
def recorded_choices():
    """Records the row indices torch-fidelity's own `RandomState.choice` calls return.

    Observation only: the wrapped method calls numpy's and returns its result unchanged.
    """
    drawn = []
    orig = np.random.RandomState.choice

    class Recording(np.random.RandomState):
        def choice(self, *a, **k):
            r = orig(self, *a, **k)
            drawn.append(np.array(r, dtype=np.int64))
            return r

    saved = np.random.RandomState
    np.random.RandomState = Recording
    try:
        yield drawn
    finally:
        np.random.RandomState = saved


def frechet_fixture():
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_kid import kernel_mmd

    rng = np.random.default_rng(7)
    d = 64
    l1 = rng.normal(size=(d, d)) / np.sqrt(d)
    l2 = l1 + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)
    f1 = (rng.normal(size=(200, d)) @ l1 + 0.5).astype(np.float32)
    f2 = (rng.normal(size=(150, d)) @ l2 + 0.4 + 0.1 * rng.normal(size=d)).astype(np.float32)
    x1, x2 = f1.astype(np.float64), f2.astype(np.float64)
    s1, s2 = tf_stats(x1), tf_stats(x2)
    fid = calculate_frechet_distance(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"])
    fid_tf = tf_fid(s1, s2)

    m, k = 50, 5
    with recorded_choices() as drawn:
        kid_mean, kid_std = tf_kid(x1, x2, k, m)
    assert len(drawn) == 2 * k, len(drawn)
    ix, iy = np.stack(drawn[0::2]), np.stack(drawn[1::2])
    kids = np.array([kernel_mmd(x1[ix[i]], x2[iy[i]]) for i in range(k)])
    # The recorded rows are the package's subsets: its mean over them is kid_mean.
    assert abs(kids.mean() - kid_mean) <= 1e-12 * abs(kid_mean), (kids.mean(), kid_mean)
    kid100 = tf_kid(x1, x2, 100, 100)
    kid_f32 = tf_kid(f1, f2, k, m, dtype=np.float32)
    print(f"frechet: fid {fid!r} (torch-fidelity {fid_tf!r}); kid {kid_mean!r} +- {kid_std!r}")
    print(f"  kid 100x100 {kid100}; kid from f32 features {kid_f32}")
    return {
        "f1": f1,
        "f2": f2,
        "mu1": s1["mu"],
        "mu2": s2["mu"],
        "sigma1": s1["sigma"],
        "sigma2": s2["sigma"],
        "fid": np.array([fid], dtype=np.float64),
        "fid_torch_fidelity": np.array([fid_tf], dtype=np.float64),
        "kid_rows1": ix,
        "kid_rows2": iy,
        "kid": kids,
        "kid_mean_std": np.array([kid_mean, kid_std]),
        "kid100_mean_std": np.array(kid100),
        "kid_f32_mean_std": np.array(kid_f32),
    }, (
        "features: numpy default_rng(7), 200 and 150 rows x 64, f32; statistics and FID from "
        "f64 features; KID: kid_subsets=5, kid_subset_size=50, rng_seed=2020 (kid, kid_rows*, "
        "kid_mean_std), kid_subsets=100, kid_subset_size=100, rng_seed=2020 (kid100_mean_std), "
        "f32 features, 5 x 50 (kid_f32_mean_std); kernel poly degree 3, gamma 1/d, coef0 1"
    )


def pipeline_fixture():
    model = fif.pytorch_fid_inception([3])
    a = bf.image((5, 3, 40, 40), 0.0, 1.0)
    # A different distribution: seeded uniform noise blended with the flipped images.
    noise = torch.from_numpy(np.random.default_rng(3).random((5, 3, 40, 40))).to(torch.float32)
    b = 0.5 * torch.flip(a, dims=[3]) + 0.5 * noise
    with torch.no_grad():
        fa = model(a)[0].squeeze(-1).squeeze(-1).numpy()
        fb = model(b)[0].squeeze(-1).squeeze(-1).numpy()
    fd = tf_fid(tf_stats(fa), tf_stats(fb))
    kid_mean, _ = tf_kid(fa, fb, 1, 5)
    print(f"fid_pipeline: fd {fd!r} kid {kid_mean!r}")
    return {
        "images1": a.numpy(),
        "images2": b.numpy(),
        "pool3_1": fa,
        "pool3_2": fb,
        "fd": np.array([fd]),
        "kid": np.array([kid_mean]),
    }, (
        "pytorch_fid.inception.InceptionV3([3], resize_input=True, normalize_input=True), CPU f32 "
        "1 thread; images 2 x 5 x 3 x 40 x 40 in [0, 1]; FD: torch-fidelity "
        "fid_features_to_statistics + fid_statistics_to_metric on f64 features; KID: "
        "kid_features_to_metric, kid_subsets=1, kid_subset_size=5, rng_seed=2020, f64 features"
    )


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    calls = {
        "frechet": "pytorch_fid.fid_score.calculate_frechet_distance; torch_fidelity.metric_fid."
        "fid_features_to_statistics, fid_statistics_to_metric; torch_fidelity.metric_kid."
        "kid_features_to_metric, kernel_mmd",
        "fid_pipeline": "pytorch_fid.inception.InceptionV3; torch_fidelity.metric_fid."
        "fid_features_to_statistics, fid_statistics_to_metric; torch_fidelity.metric_kid."
        "kid_features_to_metric",
    }
    for name, make in [("frechet", frechet_fixture), ("fid_pipeline", pipeline_fixture)]:
        tensors, config = make()
        meta = {
            "generator": SCRIPT,
            "reference": fif.versions("pytorch-fid", "torch-fidelity"),
            "reference_call": calls[name],
            "packages": fif.versions("torch", "torchvision", "numpy", "scipy"),
            "config": config,
            "stubbed": fif.STUB if name == "fid_pipeline" else "nothing (no weights involved)",
        }
        t = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        p = os.path.join(OUT, f"{name}.safetensors")
        save_file(t, p, metadata=meta)
        print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
