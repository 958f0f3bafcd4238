#!/usr/bin/env python3
"""Convert a PyTorch checkpoint to safetensors with torchvision key names for crates/backbones.

Examples:
    # torchvision ImageNet weights (resnet*, vgg16, alexnet): the state dict is saved as is
    python3 tools/backbones_convert.py resnet50-0676ba61.pth resnet50.safetensors
    # MoCo-v2 (facebookresearch/moco moco_v2_800ep_pretrain.pth.tar): keep module.encoder_q.*,
    # strip that prefix, drop the projection head fc.* -> torchvision resnet50 names without fc
    python3 tools/backbones_convert.py --moco moco_v2_800ep_pretrain.pth.tar moco_v2_r50.safetensors
    # any other wrapper prefix (e.g. DataParallel's "module.")
    python3 tools/backbones_convert.py --strip-prefix module. in.pth out.safetensors

`num_batches_tracked` buffers are dropped (the Rust BatchNorm does not use them); every tensor
is stored as contiguous float32. Needs torch and safetensors (pip install torch safetensors).
"""
import argparse
import sys

import torch
from safetensors.torch import save_file

MOCO_PREFIX = "module.encoder_q."


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def convert(sd, moco=False, strip_prefix=None):
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        if moco:
            if not k.startswith(MOCO_PREFIX) or k.startswith(MOCO_PREFIX + "fc."):
                continue
            k = k[len(MOCO_PREFIX):]
        elif strip_prefix:
            if not k.startswith(strip_prefix):
                continue
            k = k[len(strip_prefix):]
        if k.endswith("num_batches_tracked"):
            continue
        out[k] = v.detach().to(torch.float32).contiguous()
    if moco:
        # The MoCo loader in pSp/e4e asserts exactly this: only fc.* missing from resnet50.
        missing_fc = [k for k in out if k.startswith("fc.")]
        assert not missing_fc, missing_fc
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--moco", action="store_true", help="MoCo-v2 checkpoint: keep encoder_q, drop fc")
    ap.add_argument("--strip-prefix", default=None)
    args = ap.parse_args()
    sd = load_state_dict(args.input)
    out = convert(sd, moco=args.moco, strip_prefix=args.strip_prefix)
    if not out:
        sys.exit(f"no tensors left from {args.input}: wrong --moco/--strip-prefix?")
    save_file(out, args.output, metadata={"source": args.input, "converter": "tools/backbones_convert.py"})
    n = sum(v.numel() for v in out.values())
    print(f"wrote {args.output}: {len(out)} tensors, {n} values")


if __name__ == "__main__":
    main()
