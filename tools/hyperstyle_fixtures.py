#!/usr/bin/env python3
"""Parity fixture for crates/hyperstyle-refiner: a PyTorch re-implementation of HyperStyle's
`SharedWeightsHyperNetResNet` (`models/hypernetworks/hypernetwork.py`,
`models/hypernetworks/refinement_blocks.py`) with the per-slot table derived from a generator
config (rosinality slot order) instead of the hard-coded config-f `PARAMETERS`.

Weights: the formula of `backbones::synthetic` (by state-dict key). Saved: the 4-channel input,
per tuned slot the offset summaries `delta.<slot>.sum` (sum over in, k, k: [B, out]) and
`delta.<slot>.head` (first 2 output channels: [B, 2, in, k, k]), and in the metadata the
state-dict keys of three configurations (`keys.<name>`; `refinement_blocks.<j>.hypernet.*`
duplicates of the shared tensors included, as PyTorch lists them).

    .venv/bin/python tools/hyperstyle_fixtures.py [--out crates/hyperstyle-refiner/tests/fixtures]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backbones_fixtures import fill, image  # noqa: E402
from e4e_fixtures import EqualLinear, ResNetBody  # noqa: E402


def slot_table(size, channels):
    """[(slot, k, in, out, is_to_rgb)] in rosinality/HyperStyle order."""
    c4 = channels[4]
    t = [(0, 3, c4, c4, False), (1, 1, c4, 3, True)]
    cin = c4
    res = 8
    j = 0
    while res <= size:
        c = channels[res]
        t += [(2 + 3 * j, 3, cin, c, False), (3 + 3 * j, 3, c, c, False), (4 + 3 * j, 1, c, 3, True)]
        cin = c
        res *= 2
        j += 1
    return t


def cm(m):
    return {r: min(512, int(2 ** 14 * m / r)) for r in [4, 8, 16, 32, 64, 128, 256, 512, 1024]}


TINY = {4: 32, 8: 32, 16: 32, 32: 32, 64: 16}
PHANTOM = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32}


class RefinementBlock(nn.Module):
    def __init__(self, params, n_channels, inner_c, out_c, spatial):
        super().__init__()
        self.kernel_size, self.in_channels, self.out_channels = params
        num_pools = int(np.log2(spatial)) - 1
        if self.kernel_size == 3:
            num_pools = num_pools - 1
        mods = [nn.Conv2d(n_channels, inner_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            mods += [nn.Conv2d(inner_c, inner_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        mods += [nn.Conv2d(inner_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*mods)
        self.output = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(out_c, self.in_channels * self.out_channels, kernel_size=1, stride=1, padding=0),
        )

    def forward(self, x):
        x = self.output(self.convs(x))
        x = x.view(-1, self.out_channels, self.in_channels)
        return x.unsqueeze(3).repeat(1, 1, 1, self.kernel_size).unsqueeze(4).repeat(1, 1, 1, 1, self.kernel_size)


class SharedWeightsHypernet(nn.Module):
    def __init__(self, f_size=3, z_dim=512, out_size=512, in_size=512):
        super().__init__()
        self.z_dim, self.f_size, self.out_size, self.in_size = z_dim, f_size, out_size, in_size
        self.w1 = nn.Parameter(torch.fmod(torch.randn((z_dim, out_size * f_size * f_size)) / 40, 2))
        self.b1 = nn.Parameter(torch.fmod(torch.randn((out_size * f_size * f_size)) / 40, 2))
        self.w2 = nn.Parameter(torch.fmod(torch.randn((z_dim, in_size * z_dim)) / 40, 2))
        self.b2 = nn.Parameter(torch.fmod(torch.randn((in_size * z_dim)) / 40, 2))

    def forward(self, z):
        b = z.shape[0]
        h_in = torch.matmul(z, self.w2) + self.b2
        h_in = h_in.view(b, self.in_size, self.z_dim)
        h_final = torch.matmul(h_in, self.w1) + self.b1
        return h_final.view(b, self.out_size, self.in_size, self.f_size, self.f_size)


class HyperRefinementBlock(nn.Module):
    def __init__(self, hypernet, n_channels, inner_c, out_c, spatial):
        super().__init__()
        self.out_c = out_c
        num_pools = int(np.log2(spatial))
        mods = [nn.Conv2d(n_channels, inner_c, kernel_size=3, stride=1, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            mods += [nn.Conv2d(inner_c, inner_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        mods += [nn.Conv2d(inner_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*mods)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)
        self.hypernet = hypernet

    def forward(self, features):
        code = self.convs(features).view(-1, self.out_c)
        return self.hypernet(self.linear(code))


class SharedWeightsHyperNetResNet(nn.Module):
    def __init__(self, size, channels, in_nc, depth_blocks, widths, input_size,
                 refine_inner, refine_out, hyper_inner, hyper_code):
        super().__init__()
        body = ResNetBody(in_nc, depth_blocks, widths)
        self.conv1, self.bn1, self.relu, self.body = body.conv1, body.bn1, body.relu, body.body
        feat = body.out_c
        spatial = input_size // 16
        table = slot_table(size, channels)
        self.layers_to_tune = [s for (s, _, _, _, rgb) in table if not rgb]
        c4 = channels[4]
        self.shared_layers = [s for (s, k, i, o, rgb) in table if not rgb and (k, i, o) == (3, c4, c4)]
        self.n_outputs = len(table)
        self.shared_weight_hypernet = SharedWeightsHypernet(3, hyper_code, c4, c4)
        self.refinement_blocks = nn.ModuleList()
        for (s, k, i, o, rgb) in table:
            if s in self.layers_to_tune:
                if s in self.shared_layers:
                    b = HyperRefinementBlock(self.shared_weight_hypernet, feat, hyper_inner, hyper_code, spatial)
                else:
                    b = RefinementBlock((k, i, o), feat, refine_inner, refine_out, spatial)
            else:
                b = None
            self.refinement_blocks.append(b)

    def forward(self, x):
        x = self.body(self.relu(self.bn1(self.conv1(x))))
        return [b(x) if b is not None else None for b in self.refinement_blocks]


HYPERSTYLE = dict(in_nc=4, depth_blocks=[3, 4, 6, 3], widths=[64, 128, 256, 512], input_size=256,
                  refine_inner=256, refine_out=512, hyper_inner=128, hyper_code=512)
NARROW = dict(in_nc=4, depth_blocks=[2, 2, 2, 2], widths=[16, 32, 64, 128], input_size=64,
              refine_inner=32, refine_out=64, hyper_inner=32, hyper_code=64)


def keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/hyperstyle-refiner/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    meta = {"torch": torch.__version__}
    with torch.device("meta"):
        meta["keys.hyperstyle_paper256"] = json.dumps(keys(SharedWeightsHyperNetResNet(256, cm(2), **HYPERSTYLE)))
        meta["keys.narrow_phantom64"] = json.dumps(keys(SharedWeightsHyperNetResNet(64, PHANTOM, **NARROW)))
    m = SharedWeightsHyperNetResNet(64, TINY, **NARROW)
    meta["keys.narrow_tiny"] = json.dumps(keys(m))
    # fill: the shared tensors are filled under `shared_weight_hypernet.*` (the same Parameter
    # objects are reachable from every HyperRefinementBlock; named_parameters de-duplicates).
    sd = m.state_dict()
    filled = fill_shared(m)
    x = image((1, 4, 64, 64), -1.0, 1.0)
    t = {"input": x}
    for slot, d in enumerate(filled(x)):
        if d is None:
            continue
        t[f"delta.{slot}.sum"] = d.sum(dim=(2, 3, 4))
        t[f"delta.{slot}.head"] = d[:, :2]
    path = os.path.join(args.out, "hyperstyle_tiny.safetensors")
    save_file({k: v.contiguous().float() for k, v in t.items()}, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes ({len(sd)} state-dict entries)")
    for k, v in t.items():
        print(k, tuple(v.shape), float(v.abs().max()))


def fill_shared(m):
    from backbones_fixtures import synthetic_values
    for name, p in m.named_parameters():  # de-duplicated: shared tensors appear once
        p.data.copy_(torch.from_numpy(synthetic_values(name, tuple(p.shape))).float())
    for name, b in m.named_buffers():
        if name.endswith("num_batches_tracked"):
            continue
        b.copy_(torch.from_numpy(synthetic_values(name, tuple(b.shape))).float())
    return m.eval()


if __name__ == "__main__":
    main()
