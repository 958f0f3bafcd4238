#!/usr/bin/env python3
"""Parity fixtures for the Frechet distance, KID and the FID feature pipeline (crates/metrics).

Writes `crates/metrics/tests/fixtures/{frechet,fid_pipeline}.safetensors`:

* `frechet`: two correlated 64-d feature sets (200 and 150 rows, f32), numpy's statistics
  (`mu`, `np.cov(rowvar=False)`, f64), the FID from **pytorch-fid's
  `calculate_frechet_distance`** (scipy `sqrtm`), 5 KID subsets of size 50 (row indices drawn
  by numpy) and the KID per subset from **clean-fid's `kernel_distance`** estimator
  (polynomial kernel d=3, gamma=1/dim, coef 1; unbiased).
* `fid_pipeline`: two sets of 5 small images in [0, 1] (40x40), their pool3 features from
  **pytorch-fid's `InceptionV3([3])`** (resize to 299 bilinear, 2x-1) with every parameter filled
  by the synthetic formula of `backbones::synthetic` (`tools/backbones_fixtures.py`), the
  Frechet distance of those features (torch-fidelity's eigenvalue formula in f64: the 2048-d
  covariances of 5 images are singular, where scipy's sqrtm is not accurate) and the
  full-set KID.

Usage: .venv/bin/pip install scipy pytorch-fid
       .venv/bin/python tools/metrics_fid_fixture.py
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbones_fixtures as bf  # noqa: E402

OUT = "crates/metrics/tests/fixtures"


def kid_subset(x, y):
    """clean-fid `kernel_distance` body for one subset (x, y: m x d float64)."""
    d = x.shape[1]
    m = x.shape[0]
    a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
    b = (x @ y.T / d + 1) ** 3
    t = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return t / m


def fd_eig(mu1, s1, mu2, s2):
    """torch-fidelity's Frechet distance: tr sqrt via the eigenvalues of S1 S2 (complex sqrt)."""
    ev = np.linalg.eigvals(s1 @ s2).astype(np.complex128)
    tr = np.sqrt(ev).real.sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def frechet_fixture():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(7)
    d = 64
    l1 = rng.normal(size=(d, d)) / np.sqrt(d)
    l2 = l1 + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)
    f1 = (rng.normal(size=(200, d)) @ l1 + 0.5).astype(np.float32)
    f2 = (rng.normal(size=(150, d)) @ l2 + 0.4 + 0.1 * rng.normal(size=d)).astype(np.float32)
    x1, x2 = f1.astype(np.float64), f2.astype(np.float64)
    mu1, mu2 = x1.mean(0), x2.mean(0)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    fid = calculate_frechet_distance(mu1, s1, mu2, s2)
    m, k = 50, 5
    ix = np.stack([rng.choice(200, m, replace=False) for _ in range(k)]).astype(np.int64)
    iy = np.stack([rng.choice(150, m, replace=False) for _ in range(k)]).astype(np.int64)
    kids = np.array([kid_subset(x1[ix[i]], x2[iy[i]]) for i in range(k)])
    print(f"frechet: fid {fid!r} (eig formula {fd_eig(mu1, s1, mu2, s2)!r}), kid {kids}")
    return {
        "f1": f1,
        "f2": f2,
        "mu1": mu1,
        "mu2": mu2,
        "sigma1": s1,
        "sigma2": s2,
        "fid": np.array([fid], dtype=np.float64),
        "kid_rows1": ix,
        "kid_rows2": iy,
        "kid": kids,
    }


def pipeline_fixture():
    import pytorch_fid.inception as pfi

    synthetic = bf.fill(bf.fid_inception_v3()).state_dict()
    # pytorch-fid downloads its weights inside fid_inception_v3(); hand it the synthetic ones.
    pfi.load_state_dict_from_url = lambda *a, **k: synthetic
    model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    a = bf.image((5, 3, 40, 40), 0.0, 1.0)
    # A different distribution: seeded uniform noise blended with the flipped images.
    noise = torch.from_numpy(np.random.default_rng(3).random((5, 3, 40, 40))).to(torch.float32)
    b = 0.5 * torch.flip(a, dims=[3]) + 0.5 * noise
    with torch.no_grad():
        fa = model(a)[0].squeeze(-1).squeeze(-1).numpy()
        fb = model(b)[0].squeeze(-1).squeeze(-1).numpy()
    xa, xb = fa.astype(np.float64), fb.astype(np.float64)
    fd = fd_eig(xa.mean(0), np.cov(xa, rowvar=False), xb.mean(0), np.cov(xb, rowvar=False))
    kid = kid_subset(xa, xb)
    print(f"fid_pipeline: fd {fd!r} kid {kid!r}; tr S1 {np.trace(np.cov(xa, rowvar=False))}")
    return {
        "images1": a.numpy(),
        "images2": b.numpy(),
        "pool3_1": fa,
        "pool3_2": fb,
        "fd": np.array([fd]),
        "kid": np.array([kid]),
    }


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    meta = {"torch": torch.__version__, "generator": "tools/metrics_fid_fixture.py"}
    for name, make in [("frechet", frechet_fixture), ("fid_pipeline", pipeline_fixture)]:
        t = {k: np.ascontiguousarray(v) for k, v in make().items()}
        p = os.path.join(OUT, f"{name}.safetensors")
        save_file(t, p, metadata=meta)
        print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
