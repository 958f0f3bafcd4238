#!/usr/bin/env python3
"""Parity fixtures for crates/losses and crates/metrics (perceptual distances). The MoCo loss
fixture is made by HyperStyle's own `MocoLoss`: tools/moco_fixture.py.

Writes, under --out (default crates/losses/tests/fixtures):

  pairs/ref/pNN.png, pairs/dist/pNN.png   6 real image pairs: phantom images (64x64) and a
                                          distorted copy (blur, noise, shift, JPEG, contrast,
                                          down-up resampling), saved losslessly as PNG
  perceptual_pairs.safetensors            reference values on those pairs:
    stlpips_alex [N]        ST-LPIPS alex, REAL shipped weights (stlpips-pytorch 0.0.2)
    stlpips_alex_layers [N,5]  its per-layer terms (layer 0 recovered, see below)
    stlpips_vgg [N]         ST-LPIPS vgg, REAL shipped weights (Rust test needs the 59 MB file)
    lpips_alex_synth [N]    LPIPS v0.1 alex: real lin weights (lpips 0.1.4), trunk from the formula
    lpips_vgg_synth [N]     LPIPS v0.1 vgg: same
    dists_synth [N]         DISTS: real alpha/beta (dists-pytorch 0.1), VGG16 trunk from the formula
    (moco_synth_* entries in the committed file are from an earlier re-written MoCo path and
    are no longer read)

"From the formula" = `backbones::synthetic` (crates/backbones/src/synthetic.rs), applied by
torchvision parameter name (`features.{i}.weight`, `layer1.0.conv1.weight`, ...), exactly as
tools/backbones_fixtures.py does, so the Rust tests rebuild identical trunks without weight files.

Images enter LPIPS/ST-LPIPS as u8 / 127.5 - 1 (float32, the s2m_core::imageio mapping) and
DISTS as (that + 1) / 2, the same arithmetic as the Rust metrics.

Usage (CPU torch + torchvision, and the three packages from PyPI):
    .venv/bin/pip install lpips dists-pytorch stlpips-pytorch ipython torchsummary pillow
    cargo run --release -- phantom build --out /tmp/ph --scale 0.0025 --size 64
    .venv/bin/python tools/losses_fixtures.py --phantom /tmp/ph
"""
import argparse
import importlib.metadata as md
import io
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image, ImageFilter
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backbones_fixtures import synthetic_values  # noqa: E402  (the shared weight formula)

N_PAIRS = 6


def distort(img: Image.Image, k: int, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(img).astype(np.float64)
    if k == 0:
        return img.filter(ImageFilter.GaussianBlur(radius=1.0))
    if k == 1:
        return Image.fromarray(np.clip(a + rng.normal(0, 12, a.shape), 0, 255).round().astype(np.uint8))
    if k == 2:  # 2 px right, 1 px down, edges replicated
        b = np.pad(a, ((1, 0), (2, 0), (0, 0)), mode="edge")[: a.shape[0], : a.shape[1]]
        return Image.fromarray(b.astype(np.uint8))
    if k == 3:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=15)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if k == 4:
        return Image.fromarray(np.clip((a - 128) * 1.3 + 140, 0, 255).round().astype(np.uint8))
    w, h = img.size
    return img.resize((w // 2, h // 2), Image.BICUBIC).resize((w, h), Image.BICUBIC)


def to_model(img: Image.Image) -> torch.Tensor:
    a = np.asarray(img.convert("RGB")).astype(np.float32)
    x = a / np.float32(127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def fill_by_torchvision_name(module: nn.Module, rename):
    sd = module.state_dict()
    new = {}
    for k, t in sd.items():
        name = rename(k)
        if name is None or k.endswith("num_batches_tracked"):
            new[k] = t
        else:
            new[k] = torch.from_numpy(synthetic_values(name, tuple(t.shape))).to(torch.float32)
    module.load_state_dict(new)


def features_name(k):
    # lpips `slice3.6.weight` / DISTS `stage2.5.bias` -> torchvision `features.6.weight`
    parts = k.split(".")
    if len(parts) == 3 and parts[-1] in ("weight", "bias"):
        return f"features.{parts[1]}.{parts[2]}"
    return None  # L2pooling filters keep their constructor values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom", default="/tmp/ph", help="phantom dataset folder (images/)")
    ap.add_argument("--out", default="crates/losses/tests/fixtures")
    a = ap.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(4)

    names = sorted(os.listdir(os.path.join(a.phantom, "images")))[:N_PAIRS]
    assert len(names) == N_PAIRS, names
    os.makedirs(os.path.join(a.out, "pairs", "ref"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "pairs", "dist"), exist_ok=True)
    refs, dists = [], []
    for k, n in enumerate(names):
        img = Image.open(os.path.join(a.phantom, "images", n)).convert("RGB")
        d = distort(img, k, rng)
        img.save(os.path.join(a.out, "pairs", "ref", f"p{k:02d}.png"))
        d.save(os.path.join(a.out, "pairs", "dist", f"p{k:02d}.png"))
        # Re-read what was written, so both languages see the same bytes.
        refs.append(to_model(Image.open(os.path.join(a.out, "pairs", "ref", f"p{k:02d}.png"))))
        dists.append(to_model(Image.open(os.path.join(a.out, "pairs", "dist", f"p{k:02d}.png"))))
    x0 = torch.cat(refs)
    x1 = torch.cat(dists)
    out = {}

    # ST-LPIPS with the complete shipped networks.
    from stlpips_pytorch import stlpips

    for net in ("alex", "vgg"):
        m = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
        # The package loads with strict=False: prove every weight in the file was used.
        path = os.path.join(os.path.dirname(stlpips.__file__), "weights", "vST0.0", f"{net}_shift_tolerant.pth")
        file_sd = torch.load(path, map_location="cpu")
        model_sd = m.state_dict()
        # (`lins.K.*` are aliases of `linK.*` registered twice by the ModuleList.)
        extra = {k for k in model_sd if not k.startswith("lins.")} ^ set(file_sd)
        assert not extra, extra
        for k in file_sd:
            assert torch.equal(file_sd[k], model_sd[k]), k
        with torch.no_grad():
            v, layers = m(x0, x1, retPerLayer=True)
        out[f"stlpips_{net}"] = v.flatten().clone()
        if net == "alex":
            # The package sums the layers in place into res[0] (`val = res[0]; val += ...`), so
            # layer 0 comes back as the total: recover it.
            rest = sum(l.flatten(1) for l in layers[1:])
            cols = [v.flatten(1) - rest] + [l.flatten(1) for l in layers[1:]]
            out["stlpips_alex_layers"] = torch.cat(cols, 1).clone()

    # LPIPS v0.1 with real lin weights and a formula-filled torchvision trunk.
    import lpips

    for net in ("alex", "vgg"):
        m = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        fill_by_torchvision_name(m.net, features_name)
        m.eval()
        with torch.no_grad():
            out[f"lpips_{net}_synth"] = m(x0, x1).flatten().clone()

    # DISTS with the shipped alpha/beta and a formula-filled VGG16 trunk.
    import DISTS_pytorch.DISTS_pt as dpt

    vgg16 = torchvision.models.vgg16
    dpt.models.vgg16 = lambda pretrained=False, **kw: vgg16(weights=None)  # no download
    assert os.path.exists(os.path.join(sys.prefix, "weights.pt")), "dists-pytorch data file missing"
    m = dpt.DISTS()
    for s in range(1, 6):
        fill_by_torchvision_name(getattr(m, f"stage{s}"), lambda k: features_name("stage." + k))
    m.eval()
    with torch.no_grad():
        out["dists_synth"] = m((x0 + 1) / 2, (x1 + 1) / 2).flatten().clone()

    for k, v in out.items():
        print(f"{k:22s} {v.flatten()[:12].tolist()}")
    meta = {
        "generator": "tools/losses_fixtures.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lpips": md.version("lpips"),
        "dists-pytorch": md.version("dists-pytorch"),
        "stlpips-pytorch": md.version("stlpips-pytorch"),
        "images": ",".join(names),
    }
    save_file({k: v.contiguous().to(torch.float32) for k, v in out.items()},
              os.path.join(a.out, "perceptual_pairs.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
