#!/usr/bin/env python3
"""Parity fixture for crates/e4e-encoder: a small PyTorch re-implementation of the e4e / ReStyle
encoders and e4e's latent discriminator, following the reference code structure
(e4e `models/encoders/psp_encoders.py` `Encoder4Editing`, `BackboneEncoderUsingLastLayerIntoW`;
ReStyle `ResNetProgressiveBackboneEncoder`; pSp `GradualStyleBlock`, `EqualLinear`; e4e
`models/discriminator.py` `LatentCodesDiscriminator`).

Weights are the deterministic formula of `backbones::synthetic` (no weight is committed), so
the values also prove that the Rust parameter names equal these state-dict keys. The file also
stores, in its metadata, the state-dict keys and shapes of every preset (`keys.<name>`, JSON,
`num_batches_tracked` dropped), built on the meta device (no memory).

    .venv/bin/python tools/e4e_fixtures.py [--out crates/e4e-encoder/tests/fixtures]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backbones_fixtures import IRSE50, fill, image  # noqa: E402


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    def __init__(self, in_c, out_c, spatial):
        super().__init__()
        self.out_c = out_c
        num_pools = int(np.log2(spatial))
        modules = [nn.Conv2d(in_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(out_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x):
        x = self.convs(x)
        x = x.view(-1, self.out_c)
        return self.linear(x)


def _upsample_add(x, y):
    _, _, H, W = y.size()
    return F.interpolate(x, size=(H, W), mode="bilinear", align_corners=True) + y


class ResNetBody(nn.Module):
    """ReStyle/HyperStyle stem (conv1 7x7 s2, bn1, PReLU `relu`, no max pool) + flattened
    torchvision blocks as `body`; `widths` generalises 64/128/256/512."""

    def __init__(self, in_nc, depth_blocks, widths, bottleneck=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_nc, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.PReLU(widths[0])
        block = Bottleneck if bottleneck else BasicBlock
        exp = 4 if bottleneck else 1
        mods = []
        c = widths[0]
        for s, (n, w) in enumerate(zip(depth_blocks, widths)):
            for i in range(n):
                stride = 2 if (i == 0 and s > 0) else 1
                ds = None
                if stride != 1 or c != w * exp:
                    ds = nn.Sequential(nn.Conv2d(c, w * exp, 1, stride, bias=False), nn.BatchNorm2d(w * exp))
                mods.append(block(c, w, stride, ds))
                c = w * exp
        self.body = nn.Sequential(*mods)
        self.out_c = c

    def forward(self, x):
        return self.body(self.relu(self.bn1(self.conv1(x))))


class SingleW(nn.Module):
    """BackboneEncoderUsingLastLayerIntoW on an IR-SE-50 or ResNet body (returns [B, S])."""

    def __init__(self, body, style_dim, irse):
        super().__init__()
        if irse:
            self.input_layer = body.input_layer
            self.body = body.body
            feat = 512
        else:
            self.conv1, self.bn1, self.relu, self.body = body.conv1, body.bn1, body.relu, body.body
            feat = body.out_c
        self.irse = irse
        self.output_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = EqualLinear(feat, style_dim, lr_mul=1)

    def forward(self, x):
        x = self.input_layer(x) if self.irse else self.relu(self.bn1(self.conv1(x)))
        x = self.body(x)
        x = self.output_pool(x).flatten(1)
        return self.linear(x)


class Encoder4Editing(nn.Module):
    """e4e Encoder4Editing (IR-SE) / ReStyle ResNetProgressiveBackboneEncoder (ResNet)."""

    def __init__(self, body, style_dim, n_styles, size, irse, coarse_ind=3, middle_ind=7):
        super().__init__()
        self.irse = irse
        if irse:
            self.input_layer = body.input_layer
            self.body = body.body
            feat = 512
            sizes = [size // 16, size // 8, size // 4]
        else:
            self.conv1, self.bn1, self.relu, self.body = body.conv1, body.bn1, body.relu, body.body
            feat = body.out_c
            sizes = [size // 16] * 3
        self.styles = nn.ModuleList()
        self.style_count = n_styles
        self.coarse_ind, self.middle_ind = coarse_ind, middle_ind
        for i in range(n_styles):
            s = sizes[0] if i < coarse_ind else sizes[1] if i < middle_ind else sizes[2]
            self.styles.append(GradualStyleBlock(feat, style_dim, s))
        if irse:
            self.latlayer1 = nn.Conv2d(256, 512, kernel_size=1, stride=1, padding=0)
            self.latlayer2 = nn.Conv2d(128, 512, kernel_size=1, stride=1, padding=0)

    def forward(self, x, stage=10**9):
        if self.irse:
            x = self.input_layer(x)
            for i, l in enumerate(self.body):
                x = l(x)
                if i == 6:
                    c1 = x
                elif i == 20:
                    c2 = x
                elif i == 23:
                    c3 = x
        else:
            c3 = self.body(self.relu(self.bn1(self.conv1(x))))
        w0 = self.styles[0](c3)
        w = w0.repeat(self.style_count, 1, 1).permute(1, 0, 2).clone()
        features = c3
        for i in range(1, min(stage + 1, self.style_count)):
            if self.irse and i == self.coarse_ind:
                p2 = _upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif self.irse and i == self.middle_ind:
                p1 = _upsample_add(p2, self.latlayer2(c1))
                features = p1
            w[:, i] += self.styles[i](features)
        return w


class LatentCodesDiscriminator(nn.Module):
    def __init__(self, style_dim, n_mlp):
        super().__init__()
        layers = []
        for _ in range(n_mlp - 1):
            layers.append(nn.Linear(style_dim, style_dim))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w):
        return self.mlp(w)


NARROW = dict(in_nc=1, depth_blocks=[2, 2, 2, 2], widths=[16, 32, 64, 128])
R34 = [3, 4, 6, 3]
TV = [64, 128, 256, 512]


def narrow_body():
    return ResNetBody(**NARROW)


def keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def preset_keys():
    out = {}
    with torch.device("meta"):
        out["ir_se50"] = keys(SingleW(IRSE50(1), 512, True))
        out["ir_se50_wplus14"] = keys(Encoder4Editing(IRSE50(1), 512, 14, 256, True))
        out["resnet34"] = keys(SingleW(ResNetBody(1, R34, TV), 512, False))
        out["resnet34_wplus14"] = keys(Encoder4Editing(ResNetBody(1, R34, TV), 512, 14, 256, False))
        out["resnet50"] = keys(SingleW(ResNetBody(1, R34, TV, bottleneck=True), 512, False))
        out["narrow_cpu"] = keys(SingleW(narrow_body(), 128, False))
        out["narrow_cpu_wplus10"] = keys(Encoder4Editing(narrow_body(), 128, 10, 64, False))
        out["d_w_e4e"] = keys(LatentCodesDiscriminator(512, 4))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/e4e-encoder/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    t = {}
    x64 = image((2, 1, 64, 64), 0.0, 1.0)
    t["narrow.input"] = x64
    m = fill(SingleW(narrow_body(), 128, False))
    t["narrow_single.out"] = m(x64)
    m = fill(Encoder4Editing(narrow_body(), 128, 10, 64, False))
    t["narrow_wplus.out"] = m(x64)
    t["narrow_wplus.stage2"] = m(x64, stage=2)
    x32 = image((1, 1, 32, 32), 0.0, 1.0)
    t["irse.input"] = x32
    m = fill(Encoder4Editing(IRSE50(1), 64, 9, 32, True))
    t["irse_wplus.out"] = m(x32)
    m = fill(SingleW(IRSE50(1), 64, True))
    t["irse_single.out"] = m(x32)
    d = fill(LatentCodesDiscriminator(512, 4))
    w = image((1, 1, 3, 512), -2.0, 2.0).reshape(3, 512)
    t["d_w.input"] = w
    t["d_w.out"] = d(w)
    meta = {"torch": torch.__version__}
    for k, v in preset_keys().items():
        meta[f"keys.{k}"] = json.dumps(v)
    path = os.path.join(args.out, "e4e_tiny.safetensors")
    save_file({k: v.contiguous().float() for k, v in t.items()}, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes")
    for k, v in t.items():
        print(k, tuple(v.shape), float(v.abs().max()))


if __name__ == "__main__":
    main()
