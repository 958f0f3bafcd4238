#!/usr/bin/env python3
"""Convert an official baseline checkpoint to the safetensors that crates/baselines loads.

pix2pix / CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix): each network is saved as a plain
`state_dict()` (`latest_net_G.pth`, `latest_net_D.pth`; CycleGAN `latest_net_G_A.pth` ...).
The keys are kept as they are (crates/baselines uses the official names), except:
  - a DataParallel `module.` prefix (checkpoints saved by old multi-GPU runs) is stripped;
  - with `--norm instance`, the legacy InstanceNorm `running_mean` / `running_var` /
    `num_batches_tracked` keys are dropped, as the official loader does
    (`BaseModel.__patch_instance_norm_state_dict`); with `--norm batch` (pix2pix) every
    BatchNorm buffer is kept, `num_batches_tracked` as int64.
Floating tensors are written as contiguous float32. The header's `__metadata__` records the
source file and its sha256, the format, the dropped keys and the torch version.

A whole junyanz checkpoint folder converts in one call when `input` is a folder: every
`<epoch>_net_<NAME>.pth` there (NAME in G, D, G_A, G_B, D_A, D_B; `--epoch`, default `latest`)
becomes `<output>/net_<NAME>.safetensors` (output is then a folder, created if needed).

Examples:
    python3 tools/baselines_convert.py --format junyanz --norm batch \\
        checkpoints/sketch2phantom/latest_net_G.pth weights/baselines/pix2pix/net_G.safetensors
    python3 tools/baselines_convert.py --format junyanz --norm instance latest_net_G_A.pth g_a.safetensors
    python3 tools/baselines_convert.py --norm instance checkpoints/horse2zebra weights/baselines/cyclegan
        (CycleGAN: net_G_A, net_G_B, net_D_A, net_D_B .safetensors)

Then in Rust: `baselines::pix2pix::load_generator(&cfg.generator, path, &dev)`, or for CycleGAN
`baselines::cyclegan::load_generator(&cfg.generator, path, &dev)` (G_A; G_B with
`cfg.generator_b()`) and `load_discriminator(&cfg.discriminator_a(), ...)` (every key must be
present with the config's shape; missing or unexpected keys are named in the error).
Needs torch and safetensors. UNIT and U-GAT-IT checkpoint formats are not handled yet.
"""
import argparse
import hashlib
import json
import os
import sys

import torch
from safetensors.torch import save_file

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# The network names BaseModel.save_networks uses: pix2pix G, D; CycleGAN G_A, G_B, D_A, D_B.
JUNYANZ_NETS = ("G", "D", "G_A", "G_B", "D_A", "D_B")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_junyanz(sd, norm):
    """(tensors, dropped keys) of a junyanz network state_dict."""
    if not isinstance(sd, dict) or not all(isinstance(k, str) for k in sd):
        raise SystemExit("not a state_dict (a dict of name -> tensor): "
                         "junyanz checkpoints are plain net.state_dict() files")
    out, dropped = {}, []
    for k, v in sd.items():
        if not torch.is_tensor(v):
            dropped.append(k)
            continue
        name = k[len("module."):] if k.startswith("module.") else k
        if norm == "instance" and name.rsplit(".", 1)[-1] in BUFFERS:
            dropped.append(k)
            continue
        if name.endswith("num_batches_tracked"):
            out[name] = v.detach().to(torch.int64).reshape(()).contiguous()
        elif v.is_floating_point():
            out[name] = v.detach().to(torch.float32).contiguous()
        else:
            raise SystemExit(f"unexpected non-float tensor {k} ({v.dtype})")
    if not out:
        raise SystemExit("no tensors left after conversion")
    return out, dropped


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="official checkpoint (.pth), or a folder of them")
    ap.add_argument("output", help="safetensors to write (a folder when input is one)")
    ap.add_argument("--format", choices=["junyanz"], default="junyanz",
                    help="checkpoint format (junyanz: pix2pix / CycleGAN plain state_dict)")
    ap.add_argument("--norm", choices=["batch", "instance"], required=True,
                    help="the network's --norm (pix2pix: batch; CycleGAN: instance)")
    ap.add_argument("--epoch", default="latest",
                    help="with a checkpoint folder as input: the <epoch> prefix of the files (latest)")
    args = ap.parse_args()
    if os.path.isdir(args.input):
        pairs = []
        for net in JUNYANZ_NETS:
            src = os.path.join(args.input, f"{args.epoch}_net_{net}.pth")
            if os.path.isfile(src):
                pairs.append((src, os.path.join(args.output, f"net_{net}.safetensors")))
        if not pairs:
            raise SystemExit(f"{args.input}: no {args.epoch}_net_<{'|'.join(JUNYANZ_NETS)}>.pth files")
        os.makedirs(args.output, exist_ok=True)
    else:
        pairs = [(args.input, args.output)]
    for src, dst in pairs:
        convert_file(src, dst, args)


def convert_file(src, dst, args):
    sd = torch.load(src, map_location="cpu", weights_only=True)
    tensors, dropped = convert_junyanz(sd, args.norm)
    meta = {
        "converter": "tools/baselines_convert.py",
        "format": args.format,
        "norm": args.norm,
        "source": os.path.basename(src),
        "source_sha256": sha256(src),
        "dropped_keys": json.dumps(dropped),
        "torch_version": torch.__version__,
    }
    save_file(tensors, dst, metadata=meta)
    print(f"{src}: {len(tensors)} tensors -> {dst}; dropped {len(dropped)}: {dropped}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
