#!/usr/bin/env python3
"""Convert a HyperStyle checkpoint (yuval-alaluf/hyperstyle) to a refiner export folder of the
`hyperstyle-refiner` crate (`hyperstyle_refiner::RefinerBundle::load`).

Input: the `.pt` HyperStyle's `training/coach_hyperstyle.py` `__get_save_dict` writes (and its
released models use): a dict with `state_dict` (the `HyperStyle` net without `w_encoder.*`:
`hypernet.*`, `decoder.*`), `opts` (the training options as a dict), `latent_avg`
(`[n_styles, 512]` with equal rows, or `[512]`), `global_step`, `best_val_loss`.

- `hypernet.*` -> `refiner.safetensors` with the prefix stripped (HyperStyle's names are the
  crate's). PyTorch lists the one `SharedWeightsHypernet` again under every
  `refinement_blocks.{j}.hypernet.*`; those copies are checked equal to
  `shared_weight_hypernet.*` and dropped. `num_batches_tracked` is dropped. f32.
- `refiner.json` (format `sketch2medi-refiner/1`, crates/hyperstyle-refiner/src/bundle.rs): the
  HyperConfig read from the tensor shapes (stem channels, ResNet depth and widths, block
  widths, the tuned slots and which of them use the shared hypernet; the input size from the
  `HyperRefinementBlock` conv count, 16 * 2^(convs - 1), else `--input-size`), the generator
  (from `decoder.*` shapes, or `--generator-config JSON` when the checkpoint has none), the
  loss weights, optimiser, steps and batch from `opts`, and the sha256 of the weights.
- `latent_avg.safetensors`: `latent_avg` `[1, 512]` (row 0; rows checked equal). The refiner
  does not read it: it is the w_avg HyperStyle adds to its W-encoder's codes.
- `--generator-out STEM`: `decoder.*` as a `stylegan2` crate checkpoint (`STEM.safetensors`
  + `STEM.json`, `g_ema.*` names, with `latent_avg`), by tools/convert_stylegan2.py's writer.

Supported: `SharedWeightsHyperNetResNet` (HyperStyle's model) and
`SharedWeightsHyperNetResNetSeparable` (its `RefinementBlockSeparable` heads: `own_block`
`Separable`) with conv slots tuned; without any shared slot the unused
`shared_weight_hypernet.*` (which HyperStyle builds anyway) is dropped. Not supported (the
converter says so): tuned ToRGB slots (`output.0` conv heads).

Every tuned slot's shape is checked against the generator's layer table (HyperStyle hard-codes
its config-f `PARAMETERS` table; the crate derives it from the generator).

Usage (torch + safetensors; no HyperStyle checkout needed):
  python3 tools/convert_hyperstyle.py hyperstyle_ffhq.pt out/hyperstyle_ffhq [--generator-out out/hyperstyle_ffhq/generator]
  cargo test -p hyperstyle-refiner --test convert_hyperstyle   # round trip on a checkpoint HyperStyle's code saved

Checkpoints are read with `torch.load(weights_only=True)`; `--trust-pickle` allows full
unpickling (only for files you trust).
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_e4e import ConvertError, generator_config, require, sha256_file  # noqa: E402

DEPTHS = {8: ("R18", [2, 2, 2, 2]), 16: ("R34", [3, 4, 6, 3])}  # BasicBlock bodies
SHARED_KEYS = ("w1", "b1", "w2", "b2")


def slot_table(gen):
    """{slot: (k, in, out, is_to_rgb)} of a generator config (rosinality/HyperStyle order)."""
    ch = {int(k): v for k, v in gen["channels"]["explicit"].items()}
    t = {0: (3, ch[4], ch[4], False), 1: (1, ch[4], 3, True)}
    cin, res, j = ch[4], 8, 0
    while res <= gen["size"]:
        c = ch[res]
        t[2 + 3 * j], t[3 + 3 * j], t[4 + 3 * j] = (3, cin, c, False), (3, c, c, False), (1, c, 3, True)
        cin, res, j = c, res * 2, j + 1
    return t


def multiplier_to_explicit(gen):
    ch = gen["channels"]
    if "explicit" in ch:
        return gen
    m = ch["multiplier"]
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * m, 128: 128 * m, 256: 64 * m, 512: 32 * m, 1024: 16 * m}
    return dict(gen, channels={"explicit": {str(r): c for r, c in table.items() if r <= gen["size"]}})


def split_hypernet(sd, torch):
    """`hypernet.*` without the duplicated shared-hypernet copies (checked equal)."""
    h = {k[len("hypernet."):]: v for k, v in sd.items() if k.startswith("hypernet.")}
    if not h:
        raise ConvertError("no `hypernet.*` keys in state_dict")
    out, dropped = {}, 0
    for k, v in h.items():
        if k.endswith("num_batches_tracked"):
            continue
        m = re.fullmatch(r"refinement_blocks\.\d+\.hypernet\.(\w+)", k)
        if m:
            shared = h.get(f"shared_weight_hypernet.{m.group(1)}")
            if shared is None or not torch.equal(shared, v):
                raise ConvertError(f"{k} differs from shared_weight_hypernet.{m.group(1)} (not one shared hypernet)")
            dropped += 1
            continue
        out[k] = v.detach().float().contiguous()
    return out, dropped


def hyper_config(h, input_size_flag):
    in_ch = int(require(h, "conv1.weight", "the hypernet stem").shape[1])
    n_blocks = len([k for k in h if re.fullmatch(r"body\.\d+\.conv1\.weight", k)])
    if n_blocks not in DEPTHS or any(re.fullmatch(r"body\.\d+\.conv3\.weight", k) for k in h):
        raise ConvertError(f"body with {n_blocks} blocks: expected torchvision ResNet-18/34 BasicBlocks")
    depth, per_stage = DEPTHS[n_blocks]
    widths, first = [], 0
    for n in per_stage:
        widths.append(int(h[f"body.{first}.conv1.weight"].shape[0]))
        first += n
    if int(h["conv1.weight"].shape[0]) != widths[0]:
        raise ConvertError("stem width differs from layer1's (not a HyperStyle body)")
    slots = sorted({int(m.group(1)) for k in h if (m := re.match(r"refinement_blocks\.(\d+)\.", k))})
    shared = [s for s in slots if f"refinement_blocks.{s}.linear.weight" in h]
    own = [s for s in slots if f"refinement_blocks.{s}.output.1.weight" in h]
    separable = [s for s in slots if f"refinement_blocks.{s}.output.0.make_kernel_in.weight" in h]
    if own and separable:
        raise ConvertError(f"slots {own} have RefinementBlock heads and {separable} separable ones")
    own_block = "Separable" if separable else "Pooled"
    own = own or separable
    rgb = [s for s in slots if s not in shared and s not in own]
    if rgb:
        raise ConvertError(f"tuned slots {rgb} have ToRGB heads (output.0), which the crate does not implement")

    def convs(s):
        return sorted(int(m.group(1)) for k in h if (m := re.fullmatch(rf"refinement_blocks\.{s}\.convs\.(\d+)\.weight", k)))

    def one(values, what):
        if len(set(values)) > 1:
            raise ConvertError(f"{what} differs between blocks: {values}")
        return values[0]

    cfg = {"in_channels": in_ch, "depth": depth, "widths": widths,
           "refine_inner": 256, "refine_out": 512, "hyper_inner": 128, "hyper_code": 512}
    sizes = []
    if shared:
        cfg["hyper_inner"] = one([int(h[f"refinement_blocks.{s}.convs.0.weight"].shape[0]) for s in shared], "hyper_inner")
        cfg["hyper_code"] = one([int(h[f"refinement_blocks.{s}.linear.weight"].shape[0]) for s in shared], "hyper_code")
        n = one([len(convs(s)) for s in shared], "HyperRefinementBlock depth")
        sizes.append(16 * 2 ** (n - 1))
    if own:
        cfg["refine_inner"] = one([int(h[f"refinement_blocks.{s}.convs.0.weight"].shape[0]) for s in own], "refine_inner")
        head = "output.0.make_kernel_in" if separable else "output.1"
        cfg["refine_out"] = one([int(h[f"refinement_blocks.{s}.{head}.weight"].shape[1]) for s in own], "refine_out")
    if sizes:
        input_size = sizes[0]
        if input_size_flag and input_size_flag != input_size:
            raise ConvertError(f"--input-size {input_size_flag}, but the blocks were built for {input_size}")
    else:
        input_size = input_size_flag or 256
    cfg["input_size"] = input_size
    cfg["layers_to_tune"] = {"Slots": slots}
    cfg["shared"] = {"Slots": shared}
    cfg["own_block"] = own_block
    return cfg, own, shared


def check_table(h, gen, own, shared):
    t = slot_table(multiplier_to_explicit(gen))
    for s in own + shared:
        if s not in t or t[s][3]:
            raise ConvertError(f"tuned slot {s} is not a conv of the generator ({len(t)} slots)")
    for s in own:
        k, i, o, _ = t[s]
        if f"refinement_blocks.{s}.output.1.weight" in h:
            n = int(h[f"refinement_blocks.{s}.output.1.weight"].shape[0])
            if n != i * o:
                raise ConvertError(f"slot {s}: the block predicts {n} values, the generator layer has {o}x{i}")
        else:
            got = (int(h[f"refinement_blocks.{s}.output.0.make_kernel_in.weight"].shape[0]),
                   int(h[f"refinement_blocks.{s}.output.0.make_kernel_out.weight"].shape[0]))
            if got != (k * k * i, k * k * o):
                raise ConvertError(f"slot {s}: the separable head makes {got}, the layer is {o}x{i}x{k}x{k}")
    if shared:
        shapes = {t[s][:3] for s in shared}
        if len(shapes) != 1:
            raise ConvertError(f"shared slots {shared} have different shapes {shapes}")
        k, i, o = shapes.pop()
        z = int(h["shared_weight_hypernet.w1"].shape[0])
        if tuple(h["shared_weight_hypernet.w1"].shape) != (z, o * k * k) or tuple(
                h["shared_weight_hypernet.w2"].shape) != (z, i * z):
            raise ConvertError(f"shared hypernet shapes do not fit the {o}x{i}x{k}x{k} layers")


def latent_avg_row(ckpt, torch):
    la = ckpt.get("latent_avg")
    if la is None:
        return None
    la = la.detach().float().cpu().reshape(-1, la.shape[-1])
    if not torch.equal(la, la[:1].expand_as(la)):
        raise ConvertError("latent_avg rows differ; one w_avg [1, S] is kept")
    return la[:1].clone()


def convert(ckpt_path, out_dir, generator_out=None, generator_config_path=None, input_size=None, trust_pickle=False):
    import torch
    from safetensors.torch import save_file

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=not trust_pickle)
    if not isinstance(ckpt, dict):
        raise ConvertError(f"{ckpt_path}: not a dict checkpoint")
    sd = require(ckpt, "state_dict", "HyperStyle coach save dict")
    opts = ckpt.get("opts") or {}
    if not isinstance(opts, dict):
        opts = vars(opts)
    h, dropped = split_hypernet(sd, torch)
    cfg, own, shared = hyper_config(h, input_size)
    notes = []
    if not shared:
        # HyperStyle's classes build the shared hypernet even when no tuned slot uses it.
        unused = [k for k in h if k.startswith("shared_weight_hypernet.")]
        for k in unused:
            del h[k]
        if unused:
            notes.append(f"no tuned slot uses the shared hypernet: {len(unused)} shared_weight_hypernet.* tensors dropped")
    dec = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
    src = os.path.basename(ckpt_path)
    avg = latent_avg_row(ckpt, torch)

    os.makedirs(out_dir, exist_ok=True)
    if dec:
        gen_cfg = generator_config(dec)
        if generator_out:
            import convert_stylegan2 as cs

            tensors = {f"g_ema.{k}": cs.from_torch(v) for k, v in dec.items()}
            if avg is not None and avg.numel() == gen_cfg["style_dim"]:
                tensors["latent_avg"] = cs.from_torch(avg.reshape(-1))
            cs.finish(tensors, gen_cfg, generator_out)
            gen_file = generator_out + ".safetensors"
            gen_ref = {"file": gen_file, "sha256": sha256_file(gen_file), "config": gen_cfg}
        else:
            gen_ref = {"file": f"{src} (decoder.*)", "sha256": sha256_file(ckpt_path), "config": gen_cfg}
    elif generator_config_path:
        with open(generator_config_path) as f:
            gen_cfg = json.load(f)
        gen_ref = {"file": f"none: {src} has no decoder.*; config from {os.path.basename(generator_config_path)}",
                   "sha256": "", "config": gen_cfg}
    else:
        raise ConvertError(f"{ckpt_path}: no `decoder.*` keys; pass --generator-config")
    check_table(h, gen_cfg, own, shared)

    meta = {"converted_by": "tools/convert_hyperstyle.py", "source": src}
    weights = os.path.join(out_dir, "refiner.safetensors")
    save_file(h, weights, metadata=meta)
    if avg is not None:
        save_file({"latent_avg": avg.contiguous()}, os.path.join(out_dir, "latent_avg.safetensors"), metadata=meta)

    f = lambda k, d=0.0: float(opts.get(k, d) or 0.0)  # noqa: E731
    refiner_meta = {
        "format": "sketch2medi-refiner/1",
        "hyper": cfg,
        "iterations": int(opts.get("n_iters_per_batch", 5) or 5),
        "generator": gen_ref,
        "encoder": {"dir": str(opts.get("w_encoder_checkpoint_path") or "none recorded"), "sha256": ""},
        "data": {
            "description": f"HyperStyle training data: dataset_type {opts.get('dataset_type', '?')}",
            "sketch_source": f"none: HyperStyle refines images ([x, y_hat], input_nc {cfg['in_channels']})",
        },
        "losses": {
            "l2": f("l2_lambda"),
            "perceptual": f("lpips_lambda"),
            "perceptual_net": f"LPIPS-{opts.get('lpips_type', 'alex')}",
            "moco": f("moco_lambda"),
            "moco_active": f("moco_lambda") > 0,
            "adv": 0.0,
            "notes": [
                f"converted from the HyperStyle checkpoint {src} by tools/convert_hyperstyle.py "
                f"({dropped} duplicated refinement_blocks.*.hypernet.* tensors dropped)",
                f"HyperStyle id_lambda {f('id_lambda')} (ArcFace ID loss, not a term of the crate)",
                f"encoder_type {opts.get('encoder_type')}, output_size {opts.get('output_size')}, "
                f"layers_to_tune {opts.get('layers_to_tune')}",
            ] + notes,
        },
        "optimizer": str(opts.get("optim_name", "ranger")),
        "steps": int(ckpt.get("global_step", 0) or 0),
        "batch": int(opts.get("batch_size", 0) or 0),
        "seed": 0,
        "created_unix_s": int(time.time()),
        "refiner_sha256": sha256_file(weights),
    }
    with open(os.path.join(out_dir, "refiner.json"), "w") as fh:
        json.dump(refiner_meta, fh, indent=2)
    return refiner_meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--generator-out", help="also write decoder.* as OUT.safetensors + OUT.json (stylegan2 crate)")
    ap.add_argument("--generator-config", help="stylegan2 StyleGan2Config JSON, for a checkpoint without decoder.*")
    ap.add_argument("--input-size", type=int, help="H's input size when no HyperRefinementBlock tells it (default 256)")
    ap.add_argument("--trust-pickle", action="store_true", help="torch.load with weights_only=False")
    args = ap.parse_args()
    try:
        m = convert(args.checkpoint, args.out_dir, args.generator_out, args.generator_config, args.input_size,
                    args.trust_pickle)
    except ConvertError as e:
        raise SystemExit(f"convert_hyperstyle: {e}")
    print(f"wrote {args.out_dir}: hyper {json.dumps(m['hyper'])}")


if __name__ == "__main__":
    main()
