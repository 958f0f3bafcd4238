"""The ReStyle/HyperStyle ResNet-body encoders (the project's E, `EncoderConfig::narrow_cpu`),
re-implemented in this project after ReStyle `models/encoders/restyle_e4e_encoders.py`
(`ResNetProgressiveBackboneEncoder`) and `BackboneEncoderUsingLastLayerIntoW` on a ResNet body.

NOTE: this is NOT reference code (ReStyle is not imported by the fixture scripts); the fixture
metadata (`restyle_entries`) says so. Used by tools/e4e_fixtures.py; weights are the
`backbones::synthetic` formula.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck

from backbones_fixtures import fill, image


class EqualLinear(nn.Module):
    def __init__(self, in_dim, out_dim, lr_mul=1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
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
        self.linear = EqualLinear(out_c, out_c)

    def forward(self, x):
        return self.linear(self.convs(x).view(-1, self.out_c))


class ResNetBody(nn.Module):
    """Stem (conv1 7x7 s2, bn1, PReLU `relu`, no max pool) + flattened torchvision blocks as
    `body`; `widths` generalises 64/128/256/512."""

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


class SingleW(nn.Module):
    def __init__(self, body, style_dim):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.body = body.conv1, body.bn1, body.relu, body.body
        self.output_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = EqualLinear(body.out_c, style_dim)

    def forward(self, x):
        x = self.body(self.relu(self.bn1(self.conv1(x))))
        return self.linear(self.output_pool(x).flatten(1))


class Progressive(nn.Module):
    """ResNetProgressiveBackboneEncoder: every style from the last map, progressive deltas."""

    def __init__(self, body, style_dim, n_styles, size):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.body = body.conv1, body.bn1, body.relu, body.body
        self.style_count = n_styles
        self.styles = nn.ModuleList([GradualStyleBlock(body.out_c, style_dim, size // 16) for _ in range(n_styles)])

    def forward(self, x, stage=10**9):
        c3 = self.body(self.relu(self.bn1(self.conv1(x))))
        w = self.styles[0](c3).repeat(self.style_count, 1, 1).permute(1, 0, 2).clone()
        for i in range(1, min(stage + 1, self.style_count)):
            w[:, i] += self.styles[i](c3)
        return w


NARROW = dict(in_nc=1, depth_blocks=[2, 2, 2, 2], widths=[16, 32, 64, 128])
R34 = [3, 4, 6, 3]
TV = [64, 128, 256, 512]


def keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def preset_keys():
    out = {}
    with torch.device("meta"):
        out["resnet34"] = keys(SingleW(ResNetBody(1, R34, TV), 512))
        out["resnet34_wplus14"] = keys(Progressive(ResNetBody(1, R34, TV), 512, 14, 256))
        out["resnet50"] = keys(SingleW(ResNetBody(1, R34, TV, bottleneck=True), 512))
        out["narrow_cpu"] = keys(SingleW(ResNetBody(**NARROW), 128))
        out["narrow_cpu_wplus10"] = keys(Progressive(ResNetBody(**NARROW), 128, 10, 64))
    return out


def narrow_outputs():
    t = {}
    x64 = image((2, 1, 64, 64), 0.0, 1.0)
    t["narrow.input"] = x64
    t["narrow_single.out"] = fill(SingleW(ResNetBody(**NARROW), 128))(x64)
    m = fill(Progressive(ResNetBody(**NARROW), 128, 10, 64))
    t["narrow_wplus.out"] = m(x64)
    t["narrow_wplus.stage2"] = m(x64, stage=2)
    return t
