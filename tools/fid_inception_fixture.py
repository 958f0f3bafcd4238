#!/usr/bin/env python3
"""Parity fixture for `backbones::FidInceptionV3`, produced by the pytorch-fid package itself.

Writes `crates/backbones/tests/fixtures/fid_inception.safetensors`, checked by
`cargo test -p backbones --test parity fid_inception`.

Reference: pytorch-fid 0.3.0 (pip), imported, not copied: `pytorch_fid.inception.InceptionV3(
output_blocks=[0, 1, 2, 3], resize_input=True, normalize_input=True)`, which builds
`fid_inception_v3()` (torchvision `Inception3` patched with pytorch-fid's FIDInceptionA,
FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2) and runs its own resize to 299 (bilinear,
`align_corners=False`) and `2x - 1`. CPU, f32, `torch.set_num_threads(1)`.

What is stubbed, and nothing else: the weights download. `fid_inception_v3()` calls
`load_state_dict_from_url(FID_WEIGHTS_URL)` (torch.hub), which would fetch
`pt_inception-2015-12-05-6726825d.pth` from GitHub. No pytorch-fid code is patched: instead a
file of that name is written into a temporary torch.hub cache (`torch.hub.set_dir`), so
torch.hub finds it "already downloaded" and pytorch-fid loads it with `load_state_dict(strict=
True)` (which checks every key and shape). The file holds seeded synthetic weights: keys and
shapes are the state dict of pytorch-fid's own `_inception_v3(num_classes=1008,
aux_logits=False, weights=None)` (the torchvision model that `fid_inception_v3` patches; the
FID blocks keep its parameters), values from the name-seeded formula of `backbones::synthetic`
(`backbones_fixtures.synthetic_values`: SplitMix64 keyed by the parameter name), so the Rust
test rebuilds the same weights without a 95 MB file in the repository.
`num_batches_tracked` buffers are 0.

Fixture: `input` [1, 3, 37, 45] in [0, 1] and, per output block, the summary used by
`crates/backbones/tests/parity.rs` (`block0`, `block1`, `block2`: `.mean` spatial mean [B, C]
and `.head` first 4 channels; `pool3` = block 3 squeezed to [B, 2048]). The safetensors
metadata records the script, the reference packages and versions, the config and the stub.

Usage (no network needed):
    python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install torch torchvision \
        numpy safetensors pytorch-fid==0.3.0
    /work/venv-ref/bin/python tools/fid_inception_fixture.py [--out crates/backbones/tests/fixtures]
"""
import argparse
import contextlib
import importlib.metadata as md
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbones_fixtures as bf  # noqa: E402  (synthetic weight formula, test image, summaries)

SCRIPT = "tools/fid_inception_fixture.py"
STUB = (
    "pytorch-fid's weights download only: a file named after FID_WEIGHTS_URL "
    "(pt_inception-2015-12-05-6726825d.pth) is pre-placed in a temporary torch.hub cache; it "
    "holds the keys/shapes of pytorch_fid.inception._inception_v3(num_classes=1008, "
    "aux_logits=False, weights=None) filled with the backbones::synthetic name-seeded formula "
    "(num_batches_tracked = 0). No pytorch-fid code is patched."
)


def versions(*packages):
    return "; ".join(f"{p}=={md.version(p)}" for p in packages)


def synthetic_fid_state_dict():
    """Keys/shapes of the model pytorch-fid patches, values from `backbones::synthetic`."""
    import pytorch_fid.inception as pfi

    shapes = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None).state_dict()
    out = {}
    for k, t in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros_like(t)
        else:
            out[k] = torch.from_numpy(bf.synthetic_values(k, tuple(t.shape))).to(torch.float32)
    return out


@contextlib.contextmanager
def synthetic_fid_weights_in_hub_cache():
    """Pre-places the synthetic 'download' of FID_WEIGHTS_URL in a temporary torch.hub cache."""
    import pytorch_fid.inception as pfi

    old = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as hub:
        ckpt = os.path.join(hub, "checkpoints")
        os.makedirs(ckpt)
        name = os.path.basename(pfi.FID_WEIGHTS_URL)
        torch.save(synthetic_fid_state_dict(), os.path.join(ckpt, name))
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub.set_dir(old)


def pytorch_fid_inception(output_blocks):
    """pytorch-fid's `InceptionV3` (FID Inception, its resize and normalisation), synthetic weights."""
    import pytorch_fid.inception as pfi

    with synthetic_fid_weights_in_hub_cache():
        return pfi.InceptionV3(output_blocks, resize_input=True, normalize_input=True).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/backbones/tests/fixtures")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    model = pytorch_fid_inception([0, 1, 2, 3])
    x = bf.image((1, 3, 37, 45), 0.0, 1.0)
    blocks = model(x)
    taps = {
        "block0": blocks[0],
        "block1": blocks[1],
        "block2": blocks[2],
        "pool3": blocks[3].squeeze(-1).squeeze(-1),
    }
    t = bf.summarise(taps)
    t["input"] = x
    meta = {
        "generator": SCRIPT,
        "reference": versions("pytorch-fid"),
        "reference_call": "pytorch_fid.inception.InceptionV3(output_blocks=[0, 1, 2, 3], "
        "resize_input=True, normalize_input=True).eval()(input)",
        "packages": versions("torch", "torchvision", "numpy"),
        "config": "CPU, f32, 1 thread; input 1x3x37x45 in [0, 1] (backbones_fixtures.image); "
        "summaries: block0..2 .mean/.head (first 4 channels), pool3 = block 3 [B, 2048]",
        "stubbed": STUB,
    }
    os.makedirs(args.out, exist_ok=True)
    bf.save(args.out, "fid_inception", t, meta)


if __name__ == "__main__":
    main()
