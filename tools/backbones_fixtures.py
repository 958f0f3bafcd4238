#!/usr/bin/env python3
"""Parity fixtures for crates/backbones (torchvision / e4e reference outputs).

The FID Inception fixture comes from pytorch-fid itself: tools/fid_inception_fixture.py.

Every model is filled with the deterministic weight formula of `backbones::synthetic`
(crates/backbones/src/synthetic.rs), so no weight is committed: the Rust tests rebuild the
same weights by parameter name. Only inputs and (summarised) outputs are saved.

Usage (CPU torch + torchvision; any recent version):
    python3 -m venv .venv && .venv/bin/pip install torch torchvision safetensors numpy
    .venv/bin/python tools/backbones_fixtures.py [--out crates/backbones/tests/fixtures] \
        [--e4e /path/to/encoder4editing [--e4e-commit HASH]] [--only irse50]

`irse50` is e4e's own IR-SE-50 (`models/encoders/model_irse.py` `Backbone`, imported from the
checkout given with `--e4e`, see tools/e4e_reference.py and tools/README.md); without `--e4e`
it is skipped. Its metadata records the reference repository, commit, config and the stub.

Summaries per tap T (keeps every file small): `T.mean` = spatial mean [B, C] over all
channels, `T.head` = the first 4 channels at full resolution [B, 4, H, W]; 2-d taps (`pool`,
`logits`) are stored whole. The file metadata records the torch/torchvision versions.
"""
import argparse
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

HEAD = 4


def name_seed(name: str) -> int:
    return sum((j + 1) * b for j, b in enumerate(name.encode())) % 9973


M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def uniform_hash(name: str, n: int) -> np.ndarray:
    """u in [-1, 1): SplitMix64 finaliser of (i + 1) * golden + seed * c (wrapping u64), top 53 bits."""
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)
        z = (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(name_seed(name)) * np.uint64(
            0xD1B54A32D192ED03
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (2.0**-53)
    return 2.0 * u - 1.0


def synthetic_values(name: str, shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform_hash(name, n)
    last = name.rsplit(".", 1)[-1]
    if last == "running_mean":
        v = 0.1 * u
    elif last == "running_var":
        v = 1.0 + 0.25 * u
    elif last == "bias":
        v = 0.05 * u
    elif len(shape) <= 1:
        v = 0.8 + 0.4 * u
    else:
        fan_in = max(int(np.prod(shape[1:])), 1)
        v = math.sqrt(6.0 / fan_in) * u
    return v.reshape(shape)


def fill(model: nn.Module) -> nn.Module:
    sd = model.state_dict()
    new = {}
    for k, t in sd.items():
        if k.endswith("num_batches_tracked"):
            new[k] = t
            continue
        new[k] = torch.from_numpy(synthetic_values(k, tuple(t.shape))).to(torch.float32)
    model.load_state_dict(new)
    return model.eval()


def image(shape, lo=-1.0, hi=1.0) -> torch.Tensor:
    """A smooth, tie-free test image in [lo, hi] (stored in the fixture; Rust reads it back)."""
    b, c, h, w = shape
    n, ch, y, x = np.meshgrid(np.arange(b), np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    v = 0.6 * np.sin(0.21 * y + 0.13 * x * (ch + 1) + 0.7 * n + 0.3 * ch) + 0.35 * np.cos(
        0.57 * x - 0.33 * y + 0.5 * ch + 1.3 * n
    )
    v = (v + 0.95) / 1.9  # to [0, 1]
    return torch.from_numpy(lo + (hi - lo) * v).to(torch.float32)


def summarise(taps: dict) -> dict:
    out = {}
    for k, t in taps.items():
        t = t.detach().contiguous()
        if t.dim() == 4:
            out[f"{k}.mean"] = t.mean(dim=(2, 3)).contiguous()
            out[f"{k}.head"] = t[:, :HEAD].contiguous()
        else:
            out[k] = t
    return out


# ---------------------------------------------------------------- ResNet
def resnet_taps(m, x):
    taps = {}
    h = m.relu(m.bn1(m.conv1(x)))
    taps["stem"] = h
    h = m.maxpool(h)
    for i, name in enumerate(["c2", "c3", "c4", "c5"]):
        h = getattr(m, f"layer{i + 1}")(h)
        taps[name] = h
    pool = torch.flatten(m.avgpool(h), 1)
    taps["pool"] = pool
    if isinstance(m.fc, nn.Linear):
        taps["logits"] = m.fc(pool)
    return taps


# ---------------------------------------------------------------- VGG16 / AlexNet
VGG_TAPS = {3: "relu1_2", 8: "relu2_2", 15: "relu3_3", 22: "relu4_3", 29: "relu5_3"}
ALEX_TAPS = {1: "relu1", 4: "relu2", 7: "relu3", 9: "relu4", 11: "relu5"}


class L2pooling(nn.Module):
    """DISTS_pytorch.DISTS_pt.L2pooling (filter_size=5, stride=2, padding=1)."""

    def __init__(self, channels, filter_size=5, stride=2):
        super().__init__()
        self.padding = (filter_size - 2) // 2
        self.stride = stride
        self.channels = channels
        a = np.hanning(filter_size)[1:-1]
        g = torch.Tensor(a[:, None] * a[None, :])
        g = g / torch.sum(g)
        self.register_buffer("filter", g[None, None, :, :].repeat((self.channels, 1, 1, 1)))

    def forward(self, input):
        input = input**2
        out = F.conv2d(input, self.filter, stride=self.stride, padding=self.padding, groups=input.shape[1])
        return (out + 1e-12).sqrt()


def sequential_taps(features, x, taps_at, stop):
    taps = {}
    h = x
    for i, layer in enumerate(features):
        h = layer(h)
        if i in taps_at:
            taps[taps_at[i]] = h
        if i == stop:
            break
    return taps


def vgg_l2_taps(features, x):
    # DISTS: replace every max pool (4, 9, 16, 23) by L2pooling(channels of the previous conv).
    taps = {}
    h = x
    ch = 3
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            ch = layer.out_channels
        if isinstance(layer, nn.MaxPool2d):
            layer = L2pooling(ch)
        h = layer(h)
        if i in VGG_TAPS:
            taps[VGG_TAPS[i]] = h
        if i == 29:
            break
    return taps



# ---------------------------------------------------------------- IR-SE-50 (e4e's own code)
def irse50_taps(backbone, x):
    """Taps of e4e `models/encoders/model_irse.py` `Backbone(112, 50, 'ir_se')`: its
    `input_layer` and the 24 `body` units (the `output_layer` ArcFace head is not used by the
    encoders; it is filled but not run). Stage ends are units 2, 6, 20, 23."""
    taps = {}
    h = backbone.input_layer(x)
    taps["stem"] = h
    ends = {2: "stage1", 6: "stage2", 20: "stage3", 23: "stage4"}
    for i, u in enumerate(backbone.body):
        h = u(h)
        if i in ends:
            taps[ends[i]] = h
    taps["pool"] = h.mean(dim=(2, 3))
    return taps


def irse50_job(e4e_path, e4e_commit):
    import e4e_reference as ref

    _, model_irse, _, _, _ = ref.import_e4e(e4e_path)
    commit = ref.commit_of(e4e_path, e4e_commit)
    meta = ref.provenance(
        "tools/backbones_fixtures.py --e4e PATH",
        e4e_path,
        commit,
        "models/encoders/model_irse.py Backbone(input_size=112, num_layers=50, mode='ir_se'); "
        "input_layer + body run on a 1x3x48x40 image; weights: backbones::synthetic formula; eval",
        ref.STUB_NOTE + "; the Backbone's output_layer (ArcFace head) is not run",
    )
    return (fill(model_irse.Backbone(112, 50, "ir_se")), image((1, 3, 48, 40)), irse50_taps), meta


def EXTRA_JOBS():
    return {
    }


# ---------------------------------------------------------------- driver
def save(out_dir, name, tensors, meta):
    path = os.path.join(out_dir, f"{name}.safetensors")
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes, keys {sorted(tensors)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/backbones/tests/fixtures")
    ap.add_argument("--only", default=None, help="comma-separated fixture names")
    ap.add_argument(
        "--e4e",
        default=None,
        help="checkout of omertov/encoder4editing (for irse50; skipped without it)",
    )
    ap.add_argument("--e4e-commit", default=None, help="its commit, when PATH is not a git work tree")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "generator": "tools/backbones_fixtures.py",
    }
    tv = torchvision.models
    jobs = {
        "resnet18": lambda: (fill(tv.resnet18()), image((2, 3, 64, 48)), resnet_taps),
        "resnet34": lambda: (fill(tv.resnet34()), image((1, 3, 32, 32)), resnet_taps),
        "resnet50": lambda: (fill(tv.resnet50()), image((1, 3, 48, 40)), resnet_taps),
        "resnet101": lambda: (fill(tv.resnet101()), image((1, 3, 32, 32)), resnet_taps),
        "vgg16": lambda: (
            fill(tv.vgg16()).features,
            image((1, 3, 40, 36)),
            lambda f, x: sequential_taps(f, x, VGG_TAPS, 29),
        ),
        "vgg16_l2": lambda: (fill(tv.vgg16()).features, image((1, 3, 40, 36)), vgg_l2_taps),
        "alexnet": lambda: (
            fill(tv.alexnet()).features,
            image((2, 3, 67, 63)),
            lambda f, x: sequential_taps(f, x, ALEX_TAPS, 11),
        ),
    }
    extra = globals().get("EXTRA_JOBS")
    if extra:
        jobs.update(extra())
    only = set(args.only.split(",")) if args.only else None
    job_meta = {}
    if args.e4e:
        job, m = irse50_job(args.e4e, args.e4e_commit)
        jobs["irse50"] = lambda: job
        job_meta["irse50"] = {**meta, **m}
    elif not only or "irse50" in only:
        print("irse50: skipped (needs --e4e PATH, a checkout of omertov/encoder4editing)")
    for name, make in jobs.items():
        if only and name not in only:
            continue
        model, x, run = make()
        taps = run(model, x)
        t = summarise(taps)
        t["input"] = x
        save(args.out, name, t, job_meta.get(name, meta))


if __name__ == "__main__":
    main()
