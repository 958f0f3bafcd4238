#!/usr/bin/env python3
"""Convert the perceptual-metric weights that PyPI packages ship into safetensors for
crates/losses and crates/metrics (weights/README.md lists the results and their licences).

Sources (all legacy, non-zip torch pickles that candle cannot read; found inside the installed
packages, never downloaded from anywhere else):

  lpips 0.1.4           lpips/weights/v0.1/{alex,vgg}.pth
                        -> weights/lpips_v0.1_{alex,vgg}_lin.safetensors (lin0..lin4.model.1.weight)
  stlpips-pytorch 0.0.2 stlpips_pytorch/weights/vST0.0/{alex,vgg}_shift_tolerant.pth
                        -> weights/stlpips_{alex,vgg}.safetensors (complete network: scaling_layer,
                           net.slice*, lin*). The VGG file is 59 MB: not committed, convert it
                           yourself with --stlpips-vgg.
  dists-pytorch 0.1     DISTS_pytorch/weights.pt -> weights/dists_alpha_beta.safetensors (alpha, beta)

Keys are kept exactly as in the Python state dicts. Every output records in its safetensors
metadata the source package, its version, the path inside the package, the SHA-256 of the source
file and the converter, and the SHA-256 of every output is printed (copy it to weights/README.md).

Usage:
    python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy \
        lpips dists-pytorch stlpips-pytorch
    .venv/bin/python tools/convert_perceptual_weights.py [--out weights] [--stlpips-vgg]
"""
import argparse
import hashlib
import importlib.metadata as md
import importlib.util
import os

import json
import struct

import numpy as np
import torch


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_deterministic(tensors, path, metadata):
    """Writes a safetensors file with sorted keys and a sorted header (safetensors' own writer
    orders the metadata map arbitrarily, so its checksums are not reproducible)."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for k in sorted(tensors):
        a = tensors[k].numpy().astype("<f4", copy=False)
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def package_dir(module):
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"python package {module!r} is not installed (pip install it first)")
    return os.path.dirname(spec.origin)


def convert(dist, module, rel, out_path, keep=None):
    src = os.path.join(package_dir(module), rel)
    if not os.path.exists(src):
        raise SystemExit(f"{src} not found inside the installed {dist} package")
    sd = torch.load(src, map_location="cpu", weights_only=True)
    tensors = {}
    for k, v in sd.items():
        if keep is not None and k not in keep:
            continue
        if not torch.is_tensor(v):
            raise SystemExit(f"{src}: entry {k} is not a tensor")
        tensors[k] = v.detach().to(torch.float32).contiguous()
    meta = {
        "source_package": dist,
        "source_version": md.version(dist),
        "source_file": f"{module}/{rel}",
        "source_sha256": sha256(src),
        "converter": "tools/convert_perceptual_weights.py",
        "license": md.metadata(dist).get("License", "see weights/licenses") or "",
    }
    # Licence strings can be whole texts; keep the first line in the metadata.
    meta["license"] = meta["license"].strip().splitlines()[0] if meta["license"].strip() else ""
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    save_deterministic(tensors, out_path, meta)
    n = sum(t.numel() for t in tensors.values())
    print(f"{out_path}: {len(tensors)} tensors, {n} values, {os.path.getsize(out_path)} B, "
          f"sha256 {sha256(out_path)}")
    print(f"    from {dist} {meta['source_version']} {meta['source_file']} sha256 {meta['source_sha256']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="weights")
    ap.add_argument("--stlpips-vgg", action="store_true",
                    help="also write stlpips_vgg.safetensors (59 MB; not committed)")
    a = ap.parse_args()
    for net in ("alex", "vgg"):
        convert("lpips", "lpips", f"weights/v0.1/{net}.pth",
                os.path.join(a.out, f"lpips_v0.1_{net}_lin.safetensors"))
    convert("stlpips-pytorch", "stlpips_pytorch", "weights/vST0.0/alex_shift_tolerant.pth",
            os.path.join(a.out, "stlpips_alex.safetensors"))
    if a.stlpips_vgg:
        convert("stlpips-pytorch", "stlpips_pytorch", "weights/vST0.0/vgg_shift_tolerant.pth",
                os.path.join(a.out, "stlpips_vgg.safetensors"))
    convert("dists-pytorch", "DISTS_pytorch", "weights.pt",
            os.path.join(a.out, "dists_alpha_beta.safetensors"), keep={"alpha", "beta"})


if __name__ == "__main__":
    main()
