#!/usr/bin/env python3
"""Convert an e4e checkpoint (omertov/encoder4editing) to an encoder export folder of the
`e4e-encoder` crate (`e4e_encoder::EncoderBundle::load`).

Input: the `.pt` e4e's `training/coach.py` `__get_save_dict` writes (and its released models
use): a dict with `state_dict` (the pSp net: `encoder.*`, `decoder.*`), `opts` (the training
options as a dict) and, when trained with `--start_from_latent_avg`, `latent_avg`
(`[n_styles, 512]`, rows equal). `global_step`, `optimizer`, ... are ignored.

Output folder (the crate's format `sketch2medi-encoder/1`, see crates/e4e-encoder/src/bundle.rs):
  encoder.safetensors     `encoder.*` with the prefix stripped (e4e's names are the crate's;
                          `num_batches_tracked` dropped), f32
  latent_avg.safetensors  `latent_avg` [1, S] (row 0 of e4e's repeated `[n, S]`; the rows are
                          checked equal); zeros when the checkpoint has none (e4e then adds
                          nothing to the codes)
  encoder.json            EncoderMeta: the EncoderConfig read from the tensor shapes and `opts`,
                          the generator (`decoder.*`: its config from the shapes, the checkpoint
                          file and its sha256, or with `--generator-out STEM` the rosinality
                          `g_ema.*` safetensors written by tools/convert_stylegan2.py's writer),
                          the loss weights from `opts`, the sha256 of both safetensors files.

Supported `opts.encoder_type`: `Encoder4Editing` (W+ with progressive deltas, the e4e default)
and `SingleStyleCodeEncoder` (one w). pSp's `GradualStyleEncoder` is not a model of the crate.
The input size is 256 for e4e (its transforms resize to 256); for W+ it is read from the
style blocks (16 * 2^convs of `styles.0`), for a single w from `--input-size` (default 256).

Usage (torch + safetensors; no e4e checkout needed):
  python3 tools/convert_e4e.py e4e_ffhq_encode.pt out/e4e_ffhq [--generator-out out/e4e_ffhq/generator]
  cargo test -p e4e-encoder --test convert_e4e     # the round trip on a checkpoint e4e's code saved

Checkpoints are read with `torch.load(weights_only=True)`; `--trust-pickle` allows full
unpickling for checkpoints whose `opts` hold other objects (only for files you trust).
"""

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time

IR_SE_WIDTHS = [64, 128, 256, 512]
IR_SE_UNITS = 24  # get_blocks(50): 3 + 4 + 14 + 3
COARSE_IND, MIDDLE_IND = 3, 7  # hard-coded in e4e's Encoder4Editing


class ConvertError(Exception):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def require(sd, key, what):
    if key not in sd:
        raise ConvertError(f"checkpoint has no `{key}` ({what})")
    return sd[key]


def encoder_config(enc, opts, input_size_flag):
    """The crate's EncoderConfig (serde JSON) from the encoder tensors and the options."""
    encoder_type = opts.get("encoder_type", "Encoder4Editing")
    if encoder_type not in ("Encoder4Editing", "SingleStyleCodeEncoder"):
        raise ConvertError(f"encoder_type {encoder_type!r} is not supported (Encoder4Editing, SingleStyleCodeEncoder)")
    stem = require(enc, "input_layer.0.weight", "the IR-SE input layer")
    in_channels = int(stem.shape[1])
    units = sorted({int(m.group(1)) for k in enc if (m := re.match(r"body\.(\d+)\.", k))})
    if units != list(range(IR_SE_UNITS)):
        raise ConvertError(f"expected IR-SE-50 units body.0..{IR_SE_UNITS - 1}, found {len(units)} units")
    first = [0, 3, 7, 21]  # first unit of each stage
    widths = [int(require(enc, f"body.{u}.res_layer.1.weight", "a unit conv").shape[0]) for u in first]
    backbone = "IrSe50" if widths == IR_SE_WIDTHS else {"IrSe50Widths": {"widths": widths}}
    if encoder_type == "Encoder4Editing":
        n_styles = len({int(m.group(1)) for k in enc if (m := re.match(r"styles\.(\d+)\.linear\.weight$", k))})
        if n_styles == 0:
            raise ConvertError("Encoder4Editing checkpoint without `styles.N.linear.weight`")
        style_dim = int(enc["styles.0.linear.weight"].shape[0])
        n_convs = len([k for k in enc if re.fullmatch(r"styles\.0\.convs\.\d+\.weight", k)])
        input_size = 16 * 2**n_convs
        head = {"WPlus": {"n_styles": n_styles, "coarse_ind": COARSE_IND, "middle_ind": MIDDLE_IND}}
        size = opts.get("stylegan_size")
        expected = 2 * int(math.log2(size)) - 2 if size else n_styles  # e4e: 2 log2(size) - 2
        if n_styles != expected:
            raise ConvertError(f"{n_styles} style blocks, but opts.stylegan_size gives {expected}")
    else:  # SingleStyleCodeEncoder
        style_dim = int(require(enc, "linear.weight", "the single-w head").shape[0])
        input_size = input_size_flag
        head = "SingleW"
    return {
        "backbone": backbone,
        "in_channels": in_channels,
        "input_size": input_size,
        "style_dim": style_dim,
        "head": head,
    }


def generator_config(dec):
    """rosinality Generator config (the stylegan2 crate's StyleGan2Config JSON) from shapes."""
    n_mlp = len([k for k in dec if re.fullmatch(r"style\.\d+\.weight", k)])
    n_rgb = len([k for k in dec if re.fullmatch(r"to_rgbs\.\d+\.bias", k)])
    channels = {4: int(require(dec, "conv1.conv.weight", "the generator").shape[1])}
    for j in range(n_rgb):
        channels[2 ** (j + 3)] = int(dec[f"convs.{2 * j}.conv.weight"].shape[1])
    return {
        "size": 2 ** (n_rgb + 2),
        "style_dim": int(dec["style.1.weight"].shape[0]),
        "n_mlp": n_mlp,
        "lr_mlp": 0.01,
        "channels": {"explicit": {str(k): v for k, v in sorted(channels.items())}},
        "blur_kernel": [1.0, 3.0, 3.0, 1.0],
    }


def latent_avg_row(ckpt, style_dim, torch):
    la = ckpt.get("latent_avg")
    if la is None:
        return torch.zeros(1, style_dim), "none in the checkpoint (start_from_latent_avg off): zeros"
    la = la.detach().float().cpu().reshape(-1, la.shape[-1])
    if la.shape[1] != style_dim:
        raise ConvertError(f"latent_avg has shape {list(la.shape)}, style_dim is {style_dim}")
    if not torch.equal(la, la[:1].expand_as(la)):
        raise ConvertError("latent_avg rows differ; the crate keeps one w_avg [1, S]")
    return la[:1].clone(), f"e4e checkpoint latent_avg (row 0 of {la.shape[0]} equal rows)"


def convert(ckpt_path, out_dir, generator_out=None, input_size=256, trust_pickle=False):
    import torch
    from safetensors.torch import save_file

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=not trust_pickle)
    if not isinstance(ckpt, dict):
        raise ConvertError(f"{ckpt_path}: not a dict checkpoint")
    sd = require(ckpt, "state_dict", "e4e coach save dict")
    opts = ckpt.get("opts") or {}
    if not isinstance(opts, dict):
        opts = vars(opts)
    enc = {
        k[len("encoder."):]: v.detach().float().contiguous()
        for k, v in sd.items()
        if k.startswith("encoder.") and not k.endswith("num_batches_tracked")
    }
    if not enc:
        raise ConvertError(f"{ckpt_path}: no `encoder.*` keys in state_dict")
    dec = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
    cfg = encoder_config(enc, opts, input_size)
    avg, avg_how = latent_avg_row(ckpt, cfg["style_dim"], torch)

    os.makedirs(out_dir, exist_ok=True)
    src = os.path.basename(ckpt_path)
    meta = {"converted_by": "tools/convert_e4e.py", "source": src}
    weights = os.path.join(out_dir, "encoder.safetensors")
    save_file(enc, weights, metadata=meta)
    avg_path = os.path.join(out_dir, "latent_avg.safetensors")
    save_file({"latent_avg": avg.contiguous()}, avg_path, metadata=meta)

    if dec:
        gen_cfg = generator_config(dec)
        if generator_out:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import convert_stylegan2 as cs

            tensors = {f"g_ema.{k}": cs.from_torch(v) for k, v in dec.items()}
            if ckpt.get("latent_avg") is not None and avg.numel() == gen_cfg["style_dim"]:
                tensors["latent_avg"] = cs.from_torch(avg.reshape(-1))
            cs.finish(tensors, gen_cfg, generator_out)
            gen_file = generator_out + ".safetensors"
            gen_ref = {"file": gen_file, "sha256": sha256_file(gen_file), "config": gen_cfg}
        else:
            gen_ref = {"file": f"{src} (decoder.*)", "sha256": sha256_file(ckpt_path), "config": gen_cfg}
    else:
        raise ConvertError(f"{ckpt_path}: no `decoder.*` keys in state_dict (the generator E was trained with)")

    notes = []
    if gen_ref["config"]["style_dim"] != cfg["style_dim"]:
        notes.append(
            f"encoder style_dim {cfg['style_dim']} differs from the generator's "
            f"{gen_ref['config']['style_dim']} (not an e4e-trained pair: a test checkpoint)"
        )
    f = lambda k, d=0.0: float(opts.get(k, d) or 0.0)  # noqa: E731
    face = str(opts.get("dataset_type", "")).startswith("ffhq")
    encoder_meta = {
        "format": "sketch2medi-encoder/1",
        "encoder": cfg,
        "generator": gen_ref,
        "latent_avg": {"file": src, "samples": 0, "seed": 0, "how": avg_how},
        "data": {
            "description": f"e4e training data: dataset_type {opts.get('dataset_type', '?')}",
            "sketch_source": "none: e4e encodes images (3-channel RGB in [-1, 1], 256 px)",
        },
        "losses": {
            "l2": f("l2_lambda"),
            "perceptual": f("lpips_lambda"),
            "perceptual_net": f"LPIPS-{opts.get('lpips_type', 'alex')}",
            "moco": 0.0 if face else f("id_lambda"),
            "moco_active": (not face) and f("id_lambda") > 0,
            "adv": f("w_discriminator_lambda"),
            "notes": [
                f"converted from the e4e checkpoint {src} by tools/convert_e4e.py",
                f"e4e id_lambda {f('id_lambda')} ({'ArcFace ID loss' if face else 'MoCo loss'})",
                f"delta_norm_lambda {f('delta_norm_lambda')}, progressive_start {opts.get('progressive_start')}",
            ]
            + notes,
        },
        "optimizer": str(opts.get("optim_name", "ranger")),
        "steps": int(ckpt.get("global_step", 0) or 0),
        "batch": int(opts.get("batch_size", 0) or 0),
        "seed": 0,
        "created_unix_s": int(time.time()),
        "encoder_sha256": sha256_file(weights),
        "latent_avg_sha256": sha256_file(avg_path),
    }
    with open(os.path.join(out_dir, "encoder.json"), "w") as fh:
        json.dump(encoder_meta, fh, indent=2)
    return encoder_meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--generator-out", help="also write decoder.* as OUT.safetensors + OUT.json (stylegan2 crate)")
    ap.add_argument("--input-size", type=int, default=256, help="input size of a single-w encoder (default 256)")
    ap.add_argument("--trust-pickle", action="store_true", help="torch.load with weights_only=False")
    args = ap.parse_args()
    try:
        m = convert(args.checkpoint, args.out_dir, args.generator_out, args.input_size, args.trust_pickle)
    except ConvertError as e:
        raise SystemExit(f"convert_e4e: {e}")
    print(f"wrote {args.out_dir}: encoder {json.dumps(m['encoder'])}")


if __name__ == "__main__":
    main()
