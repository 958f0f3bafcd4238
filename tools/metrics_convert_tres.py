#!/usr/bin/env python3
"""Converts pyiqa's TReS checkpoint (`tres_koniq-f0502926.pth`, or `tres_flive-*.pth`) into the
safetensors file read by `metrics::tres::Tres::load` (same parameter names as pyiqa's `TReS`:
`model.*` torchvision ResNet-50, `transformer.encoder.*`, `fc2.*`, `fc.*`; fp32;
`num_batches_tracked` dropped; a `params` / `state_dict` wrapper and a `module.` prefix are
removed).

Usage: python3 tools/metrics_convert_tres.py tres_koniq-f0502926.pth weights/tres_koniq.safetensors
"""
import sys

import torch
from safetensors.torch import save_file


def convert(sd):
    for key in ("params", "state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v) or k.endswith("num_batches_tracked"):
            continue
        k = k[len("module."):] if k.startswith("module.") else k
        out[k] = v.float().contiguous()
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sd = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
    out = convert(sd)
    save_file(out, sys.argv[2], metadata={"generator": "tools/metrics_convert_tres.py"})
    print(f"{sys.argv[2]}: {len(out)} tensors")


if __name__ == "__main__":
    main()
