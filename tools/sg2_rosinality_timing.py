#!/usr/bin/env python3
"""Side-by-side CPU timing of rosinality's StyleGAN2 generator itself.

Imports `model.py` of rosinality/stylegan2-pytorch from a checkout given on the command line
(`--rosinality PATH`; nothing of it is copied into this repository) and times
`Generator(size, 512, 8, channel_multiplier=2)` (the `paper_256` config of the `stylegan2`
crate) on the CPU, f32, under `torch.no_grad()`, with seeded random weights, the way
`sketch2medi bench stylegan2 --model paper_256` times this crate's generator.

The one stub: `op/fused_act.py` and `op/upfirdn2d.py` compile CUDA extensions with
`torch.utils.cpp_extension.load(...)` at import time. While `model` is imported, `load` is
replaced by a placeholder whose every attribute raises. On a CPU tensor rosinality's
`fused_leaky_relu` and `upfirdn2d` take their own native paths (`F.leaky_relu(x + b) * sqrt 2`
and `upfirdn2d_native`), so the compiled ops are never reached; a run that completes proves it.
The modulated convolutions are rosinality's default (`fused=True`: batch folded into groups).

    /work/venv-ref/bin/python tools/sg2_rosinality_timing.py --rosinality /work/ref/stylegan2-pytorch \
        [--size 256] [--batch 1] [--iters 5] [--warmup 1] [--threads 2]

Get the reference: rosinality/stylegan2-pytorch at commit bef283a1c24087da704d16c30abc8e36e63efa0e
(`model.py` and `op/`). Not needed by CI or users. Prints one line per batch size with the mean
and min seconds per forward and the reference's commit.
"""
import argparse
import os
import sys
import time

import torch
import torch.utils.cpp_extension as cpp_extension


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The same import-time stub and commit lookup as the e4e and HyperStyle fixture scripts.
from e4e_reference import _MissingExtension, commit_of as _commit_of  # noqa: E402


def import_rosinality(path):
    real_load = cpp_extension.load
    cpp_extension.load = lambda name, *a, **k: _MissingExtension(name)
    sys.path.insert(0, os.path.abspath(path))
    try:
        import model  # noqa: E402  (rosinality's model.py)
    finally:
        cpp_extension.load = real_load
    return model


def commit_of(path):
    try:
        return _commit_of(path)
    except SystemExit:
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rosinality", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = import_rosinality(args.rosinality)
    g = model.Generator(args.size, 512, 8, channel_multiplier=2).eval()
    for b in args.batch:
        z = torch.randn(b, 512)
        times = []
        with torch.no_grad():
            for i in range(args.warmup + args.iters):
                t = time.perf_counter()
                img, _ = g([z], randomize_noise=False)
                dt = time.perf_counter() - t
                if i >= args.warmup:
                    times.append(dt)
        assert img.shape == (b, 3, args.size, args.size)
        print(f"rosinality Generator {args.size} px (commit {commit_of(args.rosinality)[:12]}, "
              f"torch {torch.__version__}, {args.threads} threads) batch {b}: "
              f"mean {sum(times) / len(times):.3f} s, min {min(times):.3f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
