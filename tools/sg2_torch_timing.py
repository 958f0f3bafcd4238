#!/usr/bin/env python3
"""Side-by-side CPU timing of the StyleGAN2 generator in PyTorch (rosinality structure).

A timing model only (random weights, no checkpoint): the ops of rosinality's `Generator` on the
CPU path, written from rosinality/stylegan2-pytorch `model.py` (a re-write, not the reference
itself): PixelNorm + n_mlp equalised-lr linears with fused leaky ReLU, constant input,
modulated convs with demodulation computed as rosinality does (batch folded into conv groups),
up-sampling by `conv_transpose2d` (stride 2) + the [1,3,3,1] blur (`upfirdn2d_native`: pad +
depthwise conv2d), noise injection, fused leaky ReLU (x + bias -> leaky_relu * sqrt(2)), ToRGB
with the up-sampled skip. Run under `torch.no_grad()` (inference), like
`sketch2medi bench stylegan2` (plain tensors).

    .venv/bin/python tools/sg2_torch_timing.py [--size 256] [--batch 1] [--iters 5]

Not needed by CI or users. Prints mean and min seconds per forward.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def channels(size, multiplier=2):
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier, 128: 128 * multiplier,
             256: 64 * multiplier, 512: 32 * multiplier, 1024: 16 * multiplier}
    return {r: table[r] for r in table if r <= size}


def blur_kernel(factor=1):
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[:, None] * k[None, :]
    return k / k.sum() * factor ** 2


def upfirdn2d_native(x, kernel, up, pad0, pad1):
    """Zero insertion by `up`, pad, depthwise FIR (rosinality's CPU path)."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n * c, 1, h * up, w * up)
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    k = torch.flip(kernel, [0, 1]).view(1, 1, *kernel.shape)
    x = F.conv2d(x, k)
    return x.reshape(n, c, x.shape[-2], x.shape[-1])


def fused_lrelu(x, bias):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * math.sqrt(2)


class Gen:
    def __init__(self, size, style_dim=512, n_mlp=8):
        g = torch.Generator().manual_seed(0)
        r = lambda *s: torch.randn(*s, generator=g)
        self.style_dim = style_dim
        self.mapping = [(r(style_dim, style_dim), torch.zeros(style_dim)) for _ in range(n_mlp)]
        ch = channels(size)
        self.const = r(1, ch[4], 4, 4)
        self.layers = []  # (kind, weight, mod_w, mod_b, bias, noise, noise_w)
        log = int(math.log2(size))

        def conv(cin, cout, k, up):
            return dict(w=r(1, cout, cin, k, k), mw=r(cin, style_dim), mb=torch.ones(cin),
                        up=up, k=k, cin=cin, cout=cout)
        self.conv1 = conv(ch[4], ch[4], 3, False)
        self.torgb1 = conv(ch[4], 3, 1, False)
        self.blocks = []
        cin = ch[4]
        for i in range(3, log + 1):
            res = 2 ** i
            cout = ch[res]
            self.blocks.append((conv(cin, cout, 3, True), conv(cout, cout, 3, False),
                                conv(cout, 3, 1, False), res))
            cin = cout
        self.kernel = blur_kernel()
        self.up_kernel = blur_kernel(2)

    def modconv(self, x, s, c, demod=True):
        b, cin, h, w = x.shape
        style = F.linear(s, c["mw"] / math.sqrt(c["mw"].shape[1])) + c["mb"]
        scale = 1 / math.sqrt(cin * c["k"] ** 2)
        weight = scale * c["w"] * style.view(b, 1, cin, 1, 1)
        if demod:
            d = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * d.view(b, c["cout"], 1, 1, 1)
        weight = weight.view(b * c["cout"], cin, c["k"], c["k"])
        if c["up"]:
            x = x.view(1, b * cin, h, w)
            weight = weight.view(b, c["cout"], cin, c["k"], c["k"]).transpose(1, 2)
            weight = weight.reshape(b * cin, c["cout"], c["k"], c["k"])
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=b)
            out = out.view(b, c["cout"], out.shape[-2], out.shape[-1])
            return upfirdn2d_native(out, self.kernel, 1, 1, 1)
        x = x.view(1, b * cin, h, w)
        out = F.conv2d(x, weight, padding=c["k"] // 2, groups=b)
        return out.view(b, c["cout"], h, w)

    def styled(self, x, s, c):
        out = self.modconv(x, s, c)
        noise = torch.randn(out.shape[0], 1, out.shape[2], out.shape[3])
        out = out + 0.1 * noise
        return fused_lrelu(out, torch.zeros(out.shape[1]))

    def torgb(self, x, s, c, skip):
        out = self.modconv(x, s, c, demod=False) + torch.zeros(1, 3, 1, 1)
        if skip is not None:
            out = out + upfirdn2d_native(skip, self.up_kernel, 2, 2, 1)
        return out

    def forward(self, z):
        w = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
        for wt, b in self.mapping:
            w = fused_lrelu(F.linear(w, wt * (0.01 / math.sqrt(self.style_dim))), b * 0.01)
        x = self.const.repeat(z.shape[0], 1, 1, 1)
        x = self.styled(x, w, self.conv1)
        skip = self.torgb(x, w, self.torgb1, None)
        for up, conv2, rgb, _ in self.blocks:
            x = self.styled(x, w, up)
            x = self.styled(x, w, conv2)
            skip = self.torgb(x, w, rgb, skip)
        return skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    g = Gen(a.size)
    z = torch.randn(a.batch, 512)
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.iters):
            t = time.perf_counter()
            img = g.forward(z)
            dt = time.perf_counter() - t
            if i >= a.warmup:
                times.append(dt)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, size {a.size}, "
          f"batch {a.batch}, output {tuple(img.shape)}: mean {sum(times) / len(times):.3f} s, "
          f"min {min(times):.3f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
