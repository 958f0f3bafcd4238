#!/usr/bin/env python3
"""Parity fixture for TReS (crates/metrics/tests/fixtures/tres.safetensors).

Runs **pyiqa's `TReS`** (`pyiqa/archs/tres_arch.py`, eval mode) with every parameter filled by
the synthetic formula of `backbones::synthetic` (tools/backbones_fixtures.py). To keep the
fixture and the test small it uses pyiqa's `network="resnet18"` variant (d_model 960, same code
path as ResNet-50's 3840) and `test_sample=4` uniform crops, on two images: 230x240 (no
resize) and 100x120 (upscaled by 225/100 first). Stores the images (u8) and the scores.

Usage: .venv/bin/python tools/metrics_tres_fixture.py
"""
import os
import sys
import types

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbones_fixtures as bf  # noqa: E402


def main():
    torch.set_num_threads(2)
    import pyiqa.archs.tres_arch as ta

    tv = torchvision.models
    # pyiqa asks torchvision for ImageNet weights; the synthetic fill replaces them anyway.
    ta.models = types.SimpleNamespace(
        resnet18=lambda **k: tv.resnet18(), resnet50=lambda **k: tv.resnet50()
    )
    m = ta.TReS(network="resnet18", test_sample=4, pretrained=False)
    sd = m.state_dict()
    new = {}
    for k, t in sd.items():
        if k.endswith("num_batches_tracked") or ".filter" in k:
            new[k] = t  # L2pooling Hann filters are constants
        else:
            new[k] = torch.from_numpy(bf.synthetic_values(k, tuple(t.shape))).to(torch.float32)
    m.load_state_dict(new)
    m.eval()
    out = {}
    with torch.no_grad():
        for name, shape in [("large", (1, 3, 230, 240)), ("small", (1, 3, 100, 120))]:
            # Stored as u8 (the test divides by 255) to keep the fixture small.
            u8 = (bf.image(shape, 0.0, 1.0) * 255).round().to(torch.uint8)
            x = u8.float() / 255
            out[f"image_{name}"] = u8
            out[f"score_{name}"] = m(x).reshape(-1).float()
            print(name, out[f"score_{name}"])
    p = "crates/metrics/tests/fixtures/tres.safetensors"
    save_file({k: v.contiguous() for k, v in out.items()}, p, metadata={"torch": torch.__version__, "generator": "tools/metrics_tres_fixture.py"})
    print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
