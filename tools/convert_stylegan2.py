#!/usr/bin/env python3
"""Convert StyleGAN2 checkpoints to safetensors + JSON config for the `stylegan2` crate.

Inputs
  * rosinality/stylegan2-pytorch `.pt` (what `train.py` and `convert_weight.py` save): a dict
    with `g_ema` (and optionally `g`, `d`, `latent_avg`, `args`). Keys are copied unchanged,
    under the prefixes `g_ema.`, `g.`, `d.`; `latent_avg` stays `latent_avg`.
  * NVlabs stylegan2-ada-pytorch `.pkl` (`--nvlabs`): `G_ema` is mapped to rosinality names
    (reference section 1.10, table below) and written as `g_ema.*`; `mapping.w_avg` becomes
    `latent_avg`. The discriminator is NOT converted (its name map is unverified).
    Unpickling needs the NVlabs repository on the path: `--nvlabs-repo /path/to/stylegan2-ada-pytorch`.
    Mind the semantic differences: NVlabs ADA configs clamp activations (conv_clamp=256) and
    `cfg=auto` uses 2 mapping layers; rosinality has no clamp.

NVlabs -> rosinality key map (R = 2^r):
  mapping.fc{i}.{weight,bias}            -> style.{i+1}.{weight,bias}
  mapping.w_avg [S]                      -> latent_avg
  synthesis.b4.const [C,4,4]             -> input.input (unsqueeze 0)
  synthesis.b4.conv1.weight [O,I,3,3]    -> conv1.conv.weight (unsqueeze 0)
  *.affine.{weight,bias}                 -> *.conv.modulation.{weight,bias}
  *.noise_strength []                    -> *.noise.weight [1]
  *.bias [O] (conv layers)               -> *.activate.bias
  *.noise_const [R,R]                    -> noises.noise_k [1,1,R,R]; b4.conv1 k=0,
                                            b{R}.conv0 k=2r-5, b{R}.conv1 k=2r-4
  synthesis.b{R}.conv0.* / conv1.*       -> convs.{2(r-3)}.* / convs.{2(r-3)+1}.*  (no flip)
  synthesis.b4.torgb.* / b{R}.torgb.*    -> to_rgb1.* / to_rgbs.{r-3}.*
      torgb.weight [3,C,1,1] unsqueeze 0; torgb.bias [3] -> [1,3,1,1]
  *.resample_filter [4,4] (sum 1)        -> *.conv.blur.kernel, *.upsample.kernel (x4; recomputed)

Output: OUT.safetensors (all tensors f32) and OUT.json (the crate's StyleGan2Config). The
config is also stored in the safetensors header metadata.

Usage
  python3 tools/convert_stylegan2.py model.pt out/ffhq256            # rosinality
  python3 tools/convert_stylegan2.py --nvlabs --nvlabs-repo ~/stylegan2-ada-pytorch \\
          network-snapshot.pkl out/snapshot                            # NVlabs
  python3 tools/convert_stylegan2.py --self-test                       # no torch needed
"""

import argparse
import json
import math
import os
import random
import re
import struct
import sys
import tempfile
from array import array

# ---------------------------------------------------------------------------------------------
# A tensor here is (shape: list[int], data: array('f')) so that the mapping and the writer run
# without torch (the self-test). Torch tensors are converted at the boundary.
# ---------------------------------------------------------------------------------------------


def from_torch(t):
    t = t.detach().cpu().float().contiguous()
    data = array("f")
    data.frombytes(t.numpy().tobytes())
    return (list(t.shape), data)


def reshaped(t, shape):
    n = 1
    for s in shape:
        n *= s
    assert n == len(t[1]), f"cannot reshape {t[0]} to {shape}"
    return (list(shape), t[1])


def scaled(t, f):
    return (t[0], array("f", (v * f for v in t[1])))


def make_kernel(taps, factor):
    k = [a * b for a in taps for b in taps]
    s = sum(k)
    return ([len(taps), len(taps)], array("f", (v / s * factor * factor for v in k)))


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    offset = 0
    names = sorted(tensors)
    for name in names:
        shape, data = tensors[name]
        nbytes = len(data) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)  # align the data section
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name in names:
            data = tensors[name][1]
            if sys.byteorder != "little":
                data = array("f", data)
                data.byteswap()
            f.write(data.tobytes())


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            data = array("f")
            data.frombytes(f.read(b - a))
            out[name] = (info["shape"], data)
        return header.get("__metadata__", {}), out


# ---------------------------------------------------------------------------------------------
# Config inference from a rosinality generator state dict
# ---------------------------------------------------------------------------------------------


def infer_config(g, lr_mlp=0.01, blur_kernel=(1.0, 3.0, 3.0, 1.0)):
    n_mlp = len([k for k in g if re.fullmatch(r"style\.\d+\.weight", k)])
    style_dim = g["style.1.weight"][0][0]
    n_rgb = len([k for k in g if re.fullmatch(r"to_rgbs\.\d+\.bias", k)])
    log_size = n_rgb + 2
    channels = {4: g["conv1.conv.weight"][0][1]}
    for j in range(n_rgb):
        channels[2 ** (j + 3)] = g[f"convs.{2 * j}.conv.weight"][0][1]
    return {
        "size": 2**log_size,
        "style_dim": style_dim,
        "n_mlp": n_mlp,
        "lr_mlp": lr_mlp,
        "channels": {"explicit": {str(k): v for k, v in sorted(channels.items())}},
        "blur_kernel": list(blur_kernel),
    }


def metadata_for(cfg):
    return {
        "size": cfg["size"],
        "style_dim": cfg["style_dim"],
        "n_mlp": cfg["n_mlp"],
        "lr_mlp": cfg["lr_mlp"],
        "channels": json.dumps(cfg["channels"]["explicit"]),
        "blur_kernel": json.dumps(cfg["blur_kernel"]),
        "converted_by": "tools/convert_stylegan2.py",
    }


# ---------------------------------------------------------------------------------------------
# NVlabs -> rosinality
# ---------------------------------------------------------------------------------------------


def nvlabs_to_rosinality(sd, blur_kernel=(1.0, 3.0, 3.0, 1.0)):
    """`sd`: NVlabs G state dict (name -> tensor). Returns (rosinality dict, latent_avg)."""
    out = {}
    latent_avg = sd.get("mapping.w_avg")
    res_blocks = sorted(
        {int(m.group(1)) for k in sd for m in [re.match(r"synthesis\.b(\d+)\.", k)] if m}
    )
    for k, t in sd.items():
        m = re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", k)
        if m:
            out[f"style.{int(m.group(1)) + 1}.{m.group(2)}"] = t
    out["input.input"] = reshaped(sd["synthesis.b4.const"], [1] + sd["synthesis.b4.const"][0])

    def layer(src, dst, noise_idx):
        w = sd[f"{src}.weight"]
        out[f"{dst}.conv.weight"] = reshaped(w, [1] + w[0])
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = reshaped(sd[f"{src}.noise_strength"], [1])
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        nc = sd[f"{src}.noise_const"]
        out[f"noises.noise_{noise_idx}"] = reshaped(nc, [1, 1] + nc[0])

    def torgb(src, dst):
        w = sd[f"{src}.weight"]
        out[f"{dst}.conv.weight"] = reshaped(w, [1] + w[0])
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = reshaped(sd[f"{src}.bias"], [1, 3, 1, 1])

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    kup = make_kernel(blur_kernel, 2)
    for res in res_blocks:
        if res == 4:
            continue
        r = int(math.log2(res))
        j = r - 3
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * j}", 2 * r - 5)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * j + 1}", 2 * r - 4)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{j}")
        out[f"convs.{2 * j}.conv.blur.kernel"] = kup
        out[f"to_rgbs.{j}.upsample.kernel"] = kup
        for f_name in (f"synthesis.b{res}.conv0.resample_filter", f"synthesis.b{res}.resample_filter"):
            if f_name in sd:
                got = scaled(sd[f_name], 4.0)[1]
                if max(abs(a - b) for a, b in zip(got, kup[1])) > 1e-6:
                    raise SystemExit(f"{f_name} x4 differs from make_kernel({list(blur_kernel)}) x4")
    return out, latent_avg


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def convert_rosinality(ckpt, out_stem):
    tensors = {}
    parts = [p for p in ("g_ema", "g", "d") if p in ckpt]
    if "g_ema" not in ckpt and "g" not in ckpt:
        raise SystemExit(f"no g_ema/g in checkpoint (keys: {sorted(ckpt)})")
    for p in parts:
        for k, t in ckpt[p].items():
            tensors[f"{p}.{k}"] = t if isinstance(t, tuple) else from_torch(t)
    if ckpt.get("latent_avg") is not None:
        la = ckpt["latent_avg"]
        tensors["latent_avg"] = la if isinstance(la, tuple) else from_torch(la)
    args = ckpt.get("args")
    lr_mlp = getattr(args, "lr_mlp", 0.01) if args is not None else 0.01
    g = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(parts[0] + ".")}
    cfg = infer_config(g, lr_mlp)
    return finish(tensors, cfg, out_stem)


def finish(tensors, cfg, out_stem):
    os.makedirs(os.path.dirname(os.path.abspath(out_stem)), exist_ok=True)
    write_safetensors(out_stem + ".safetensors", tensors, metadata_for(cfg))
    with open(out_stem + ".json", "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"wrote {out_stem}.safetensors ({len(tensors)} tensors) and {out_stem}.json: {cfg}")
    return cfg


def convert_nvlabs(pkl_path, out_stem, repo):
    import pickle

    if repo:
        sys.path.insert(0, repo)
    import torch  # noqa: F401  (the pickle references torch classes)

    with open(pkl_path, "rb") as f:
        data = pickle.load(f)
    G = data["G_ema"]
    sd = {k: from_torch(v) for k, v in G.state_dict().items()}
    g, latent_avg = nvlabs_to_rosinality(sd)
    tensors = {f"g_ema.{k}": v for k, v in g.items()}
    if latent_avg is not None:
        tensors["latent_avg"] = latent_avg
    lr_mlp = getattr(getattr(G, "mapping", None), "fc0", None)
    lr_mlp = getattr(lr_mlp, "lr_multiplier", 0.01) if lr_mlp is not None else 0.01
    cfg = infer_config(g, lr_mlp)
    return finish(tensors, cfg, out_stem)


# ---------------------------------------------------------------------------------------------
# Self-test (pure Python): fake rosinality and NVlabs state dicts for a 16 px model
# ---------------------------------------------------------------------------------------------


def _rand(shape, rng):
    n = 1
    for s in shape:
        n *= s
    return (list(shape), array("f", (rng.gauss(0, 1) for _ in range(n))))


def _fake_rosinality_g(size, s, ch, rng, n_mlp=2):
    g = {}
    for i in range(1, n_mlp + 1):
        g[f"style.{i}.weight"] = _rand([s, s], rng)
        g[f"style.{i}.bias"] = _rand([s], rng)
    g["input.input"] = _rand([1, ch[4], 4, 4], rng)

    def mc(p, o, i, k):
        g[f"{p}.weight"] = _rand([1, o, i, k, k], rng)
        g[f"{p}.modulation.weight"] = _rand([i, s], rng)
        g[f"{p}.modulation.bias"] = _rand([i], rng)

    mc("conv1.conv", ch[4], ch[4], 3)
    g["conv1.noise.weight"] = _rand([1], rng)
    g["conv1.activate.bias"] = _rand([ch[4]], rng)
    g["to_rgb1.bias"] = _rand([1, 3, 1, 1], rng)
    mc("to_rgb1.conv", 3, ch[4], 1)
    cin = ch[4]
    log = int(math.log2(size))
    for j, r in enumerate(range(3, log + 1)):
        o = ch[2**r]
        for idx, i in ((2 * j, cin), (2 * j + 1, o)):
            mc(f"convs.{idx}.conv", o, i, 3)
            g[f"convs.{idx}.noise.weight"] = _rand([1], rng)
            g[f"convs.{idx}.activate.bias"] = _rand([o], rng)
        g[f"convs.{2 * j}.conv.blur.kernel"] = make_kernel([1, 3, 3, 1], 2)
        g[f"to_rgbs.{j}.bias"] = _rand([1, 3, 1, 1], rng)
        g[f"to_rgbs.{j}.upsample.kernel"] = make_kernel([1, 3, 3, 1], 2)
        mc(f"to_rgbs.{j}.conv", 3, o, 1)
        cin = o
    for i in range(2 * (log - 2) + 1):
        r = 2 ** ((i + 5) // 2)
        g[f"noises.noise_{i}"] = _rand([1, 1, r, r], rng)
    return g


def _rosinality_g_to_fake_nvlabs(g, size):
    """Inverse of the key map, to check nvlabs_to_rosinality round-trips."""
    sd = {}
    for k, t in g.items():
        m = re.fullmatch(r"style\.(\d+)\.(weight|bias)", k)
        if m:
            sd[f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"] = t
    sd["mapping.w_avg"] = ([g["style.1.bias"][0][0]], array("f", [0.5] * g["style.1.bias"][0][0]))
    sd["synthesis.b4.const"] = reshaped(g["input.input"], g["input.input"][0][1:])

    def layer(dst, src, noise_idx):
        w = g[f"{src}.conv.weight"]
        sd[f"{dst}.weight"] = reshaped(w, w[0][1:])
        sd[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        sd[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        sd[f"{dst}.noise_strength"] = reshaped(g[f"{src}.noise.weight"], [])
        sd[f"{dst}.bias"] = g[f"{src}.activate.bias"]
        n = g[f"noises.noise_{noise_idx}"]
        sd[f"{dst}.noise_const"] = reshaped(n, n[0][2:])

    def torgb(dst, src):
        w = g[f"{src}.conv.weight"]
        sd[f"{dst}.weight"] = reshaped(w, w[0][1:])
        sd[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        sd[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        sd[f"{dst}.bias"] = reshaped(g[f"{src}.bias"], [3])

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for r in range(3, int(math.log2(size)) + 1):
        j = r - 3
        R = 2**r
        layer(f"synthesis.b{R}.conv0", f"convs.{2 * j}", 2 * r - 5)
        layer(f"synthesis.b{R}.conv1", f"convs.{2 * j + 1}", 2 * r - 4)
        torgb(f"synthesis.b{R}.torgb", f"to_rgbs.{j}")
        sd[f"synthesis.b{R}.conv0.resample_filter"] = make_kernel([1, 3, 3, 1], 1)
    return sd


def self_test():
    rng = random.Random(0)
    size, s, ch = 16, 8, {4: 6, 8: 5, 16: 4}
    g = _fake_rosinality_g(size, s, ch, rng)
    with tempfile.TemporaryDirectory() as d:
        stem = os.path.join(d, "ros")
        cfg = convert_rosinality({"g_ema": g, "latent_avg": _rand([s], rng)}, stem)
        assert cfg["size"] == size and cfg["style_dim"] == s and cfg["n_mlp"] == 2, cfg
        assert cfg["channels"]["explicit"] == {str(k): v for k, v in ch.items()}, cfg
        meta, back = read_safetensors(stem + ".safetensors")
        assert json.load(open(stem + ".json")) == cfg
        assert set(back) == {f"g_ema.{k}" for k in g} | {"latent_avg"}
        for k, t in g.items():
            assert back[f"g_ema.{k}"][0] == t[0] and back[f"g_ema.{k}"][1] == t[1], k

        nv = _rosinality_g_to_fake_nvlabs(g, size)
        mapped, la = nvlabs_to_rosinality(nv)
        assert la is not None and la[0] == [s]
        assert set(mapped) == set(g), (set(mapped) ^ set(g))
        for k, t in g.items():
            assert mapped[k][0] == t[0], (k, mapped[k][0], t[0])
            assert all(abs(a - b) < 1e-6 for a, b in zip(mapped[k][1], t[1])), k
    print("self-test passed: rosinality copy and NVlabs key map round-trip on a 16 px model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="?")
    ap.add_argument("output_stem", nargs="?", help="writes OUTPUT_STEM.safetensors and .json")
    ap.add_argument("--nvlabs", action="store_true", help="input is an NVlabs stylegan2-ada-pytorch pickle")
    ap.add_argument("--nvlabs-repo", help="path to a stylegan2-ada-pytorch checkout (for unpickling)")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.input or not a.output_stem:
        ap.error("input and output_stem are required")
    if a.nvlabs:
        convert_nvlabs(a.input, a.output_stem, a.nvlabs_repo)
    else:
        import torch

        ckpt = torch.load(a.input, map_location="cpu", weights_only=False)
        convert_rosinality(ckpt, a.output_stem)


if __name__ == "__main__":
    main()
