#!/usr/bin/env python3
"""mmdetection SOLOv2 checkpoint (.pth) -> export folder for `sketch_synth::solov2::load_exported`.

Reads an mmdet 3.x (or 2.x, same names) SOLOv2 checkpoint without DCN (a dict with
`state_dict` and optionally `meta`, or a bare state_dict), and writes DIR/solov2.safetensors
(every parameter and BatchNorm buffer, f32, under mmdet's names) and DIR/solov2.json
(format `sketch2medi-solov2/1`: config, input_size, classes, data, steps, train_seconds,
training, weights_dtype).

Taken from the tensor shapes: backbone depth (18/34/50/101 from the blocks per stage and
bottlenecks), input channels, FPN width, tower count and width, E (kernel length), the
mask-feature hidden width, the number of classes. Not in the weights, so taken from the
checkpoint's `meta.cfg` (the config text mmengine stores) when it is there and can be parsed,
else from the flags, else mmdet's SOLOv2 R50 defaults: GN groups (32), num_grids
([40, 36, 24, 16, 12]), strides ([8, 8, 16, 32, 32]), scale_ranges (standard), pos_scale (0.2),
pixel mean/std (ImageNet RGB), test_cfg, loss settings. Flags always win over meta.cfg.
`--input-size` (square, multiple of 32) has no mmdet counterpart: default 800.

Dropped: `num_batches_tracked`. Any other key the Rust model does not have (DCN offsets, extra
FPN convs, a deep stem, ...) is reported by name and stops the conversion (`--drop-unexpected`
drops them instead); so are missing keys and shapes that disagree with the inferred config.

Usage:
    python tools/convert_solov2_mmdet.py CHECKPOINT.pth OUT_DIR [--input-size 800]
        [--num-grids 40,36,24,16,12] [--gn-groups 32] [--classes a,b,c] [--unsafe-load]
Needs torch and safetensors; mmengine only to read `meta.cfg` (skipped with a note without it).
"""
import argparse
import json
import os
import re
import sys

import torch
from safetensors.torch import save_file

FORMAT = "sketch2medi-solov2/1"
DEPTHS = {((2, 2, 2, 2), False): "R18", ((3, 4, 6, 3), False): "R34",
          ((3, 4, 6, 3), True): "R50", ((3, 4, 23, 3), True): "R101"}
DEFAULTS = dict(
    gn_groups=32, num_grids=[40, 36, 24, 16, 12], strides=[8, 8, 16, 32, 32],
    scale_ranges=[[1.0, 96.0], [48.0, 192.0], [96.0, 384.0], [192.0, 768.0], [384.0, 2048.0]],
    pos_scale=0.2, pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    test=dict(nms_pre=500, score_thr=0.1, mask_thr=0.5, filter_thr=0.05, kernel="gaussian",
              sigma=2.0, max_per_img=100),
    loss=dict(focal_alpha=0.25, focal_gamma=2.0, cls_weight=1.0, dice_weight=3.0),
)


class ConvertError(Exception):
    pass


def load_checkpoint(path, unsafe):
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the message says what to do
        if not unsafe:
            raise ConvertError(
                f"{path}: cannot be read with weights_only=True ({type(e).__name__}: {e}). "
                "If you trust the file, pass --unsafe-load (full pickle).") from e
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        sd, meta = ckpt["state_dict"], ckpt.get("meta") or {}
    elif isinstance(ckpt, dict) and all(torch.is_tensor(v) for v in ckpt.values()):
        sd, meta = ckpt, {}
    else:
        raise ConvertError(f"{path}: neither a checkpoint with `state_dict` nor a state_dict")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, meta


def model_cfg_from_meta(meta):
    """`model` of the config text mmengine stores in `meta.cfg` (None when absent/unreadable)."""
    text = meta.get("cfg") if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None, "no meta.cfg"
    try:
        from mmengine import Config
    except ImportError:
        return None, "meta.cfg present but mmengine is not installed"
    try:
        return Config.fromstring(text, ".py").get("model"), "meta.cfg"
    except Exception as e:  # noqa: BLE001
        return None, f"meta.cfg could not be parsed ({type(e).__name__}: {e})"


def count_indices(sd, prefix):
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    idx = {int(m.group(1)) for k in sd for m in [pat.match(k)] if m}
    if idx and idx != set(range(len(idx))):
        raise ConvertError(f"{prefix}N: indices {sorted(idx)} are not 0..n-1")
    return len(idx)


def shape(sd, key):
    if key not in sd:
        raise ConvertError(f"missing key `{key}`")
    return list(sd[key].shape)


def infer(sd):
    """The config values the tensor shapes determine."""
    blocks = tuple(count_indices(sd, f"backbone.layer{i}.") for i in range(1, 5))
    bottleneck = any(k.startswith("backbone.layer1.0.conv3.") for k in sd)
    depth = DEPTHS.get((blocks, bottleneck))
    if depth is None:
        raise ConvertError(f"backbone with blocks {blocks} (bottleneck {bottleneck}) is not "
                           "ResNet-18/34/50/101")
    c = {"backbone": depth, "in_channels": shape(sd, "backbone.conv1.weight")[1]}
    n_lat = count_indices(sd, "neck.lateral_convs.")
    n_fpn = count_indices(sd, "neck.fpn_convs.")
    if (n_lat, n_fpn) != (4, 4):
        raise ConvertError(f"FPN with {n_lat} lateral / {n_fpn} output convs; the model needs "
                           "4 / 4 (num_outs=5 without extra convs, start_level 0)")
    c["fpn_channels"] = shape(sd, "neck.lateral_convs.0.conv.weight")[0]
    h = "mask_head."
    c["stacked_convs"] = count_indices(sd, h + "kernel_convs.")
    if c["stacked_convs"] != count_indices(sd, h + "cls_convs."):
        raise ConvertError("kernel_convs and cls_convs have different lengths")
    c["feat_channels"] = shape(sd, h + "kernel_convs.0.conv.weight")[0]
    c["num_classes"] = shape(sd, h + "conv_cls.weight")[0]
    kshape = shape(sd, h + "conv_kernel.weight")
    pred = shape(sd, h + "mask_feature_head.conv_pred.conv.weight")
    if kshape[0] != pred[0]:
        raise ConvertError(f"conv_kernel gives {kshape[0]} kernel values but the mask features "
                           f"have {pred[0]} channels (dynamic_conv_size > 1 is not supported)")
    c["mask_channels"] = pred[0]
    c["mask_feat_channels"] = pred[1]
    n_lv = count_indices(sd, h + "mask_feature_head.convs_all_levels.")
    if n_lv != 4:
        raise ConvertError(f"mask feature branch over {n_lv} levels; the model needs 4 "
                           "(start_level 0, end_level 3)")
    return c


def expected_keys(c):
    """Every key (and shape) of the Rust model, as `SoloV2::new` requests them."""
    e = {}
    depth = c["backbone"]
    blocks = [b for (b, _), d in DEPTHS.items() if d == depth][0]
    bott = depth in ("R50", "R101")
    exp = 4 if bott else 1

    def bn(p, ch):
        for n in ("weight", "bias", "running_mean", "running_var"):
            e[f"{p}.{n}"] = [ch]

    e["backbone.conv1.weight"] = [64, c["in_channels"], 7, 7]
    bn("backbone.bn1", 64)
    cin = 64
    for s, (nb, w) in enumerate(zip(blocks, [64, 128, 256, 512])):
        for i in range(nb):
            p = f"backbone.layer{s + 1}.{i}"
            if bott:
                convs = [(w, cin, 1), (w, w, 3), (w * exp, w, 1)]
            else:
                convs = [(w, cin, 3), (w, w, 3)]
            for j, (o, ii, k) in enumerate(convs):
                e[f"{p}.conv{j + 1}.weight"] = [o, ii, k, k]
                bn(f"{p}.bn{j + 1}", o)
            if i == 0 and (cin != w * exp or s > 0):
                e[f"{p}.downsample.0.weight"] = [w * exp, cin, 1, 1]
                bn(f"{p}.downsample.1", w * exp)
            cin = w * exp
    f = c["fpn_channels"]
    for i, ch in enumerate([64 * exp, 128 * exp, 256 * exp, 512 * exp]):
        e[f"neck.lateral_convs.{i}.conv.weight"] = [f, ch, 1, 1]
        e[f"neck.lateral_convs.{i}.conv.bias"] = [f]
        e[f"neck.fpn_convs.{i}.conv.weight"] = [f, f, 3, 3]
        e[f"neck.fpn_convs.{i}.conv.bias"] = [f]

    def conv_gn(p, o, i, k):
        e[f"{p}.conv.weight"] = [o, i, k, k]
        e[f"{p}.gn.weight"] = [o]
        e[f"{p}.gn.bias"] = [o]

    h, fc = "mask_head.", c["feat_channels"]
    for i in range(c["stacked_convs"]):
        conv_gn(f"{h}kernel_convs.{i}", fc, f + 2 if i == 0 else fc, 3)
        conv_gn(f"{h}cls_convs.{i}", fc, f if i == 0 else fc, 3)
    e[h + "conv_kernel.weight"] = [c["mask_channels"], fc, 3, 3]
    e[h + "conv_kernel.bias"] = [c["mask_channels"]]
    e[h + "conv_cls.weight"] = [c["num_classes"], fc, 3, 3]
    e[h + "conv_cls.bias"] = [c["num_classes"]]
    m, hid = h + "mask_feature_head.", c["mask_feat_channels"]
    conv_gn(f"{m}convs_all_levels.0.conv0", hid, f, 3)
    for lv in range(1, 4):
        for j in range(lv):
            cin_ = (f + 2 if lv == 3 else f) if j == 0 else hid
            conv_gn(f"{m}convs_all_levels.{lv}.conv{j}", hid, cin_, 3)
    conv_gn(m + "conv_pred", c["mask_channels"], hid, 1)
    return e


def from_model_cfg(model):
    """Values that only the config holds, from an mmdet `model` config dict."""
    out = {}
    if not model:
        return out
    head = model.get("mask_head") or {}
    norm = head.get("norm_cfg") or {}
    if norm.get("type") == "GN":
        out["gn_groups"] = int(norm["num_groups"])
    for k in ("num_grids", "strides"):
        if head.get(k) is not None:
            out[k] = [int(v) for v in head[k]]
    if head.get("scale_ranges") is not None:
        out["scale_ranges"] = [[float(a), float(b)] for a, b in head["scale_ranges"]]
    if head.get("pos_scale") is not None:
        out["pos_scale"] = float(head["pos_scale"])
    if head.get("dcn_cfg"):
        raise ConvertError("the config uses DCN (dcn_cfg); the Rust head has none")
    mfh = head.get("mask_feature_head") or {}
    if mfh.get("mask_stride", 4) != 4:
        raise ConvertError(f"mask_stride {mfh['mask_stride']}; the model needs 4")
    pre = model.get("data_preprocessor") or {}
    if pre.get("mean") is not None:
        out["pixel_mean"] = [float(v) for v in pre["mean"]]
    if pre.get("std") is not None:
        out["pixel_std"] = [float(v) for v in pre["std"]]
    if pre and not pre.get("bgr_to_rgb", False):
        print("note: data_preprocessor.bgr_to_rgb is false: the network expects BGR; "
              "sketch_synth feeds RGB", file=sys.stderr)
    tc = model.get("test_cfg") or {}
    test = {}
    for k in ("nms_pre", "max_per_img"):
        if tc.get(k) is not None:
            test[k] = int(tc[k])
    for k in ("score_thr", "mask_thr", "filter_thr", "sigma"):
        if tc.get(k) is not None:
            test[k] = float(tc[k])
    if tc.get("kernel") is not None:
        test["kernel"] = str(tc["kernel"])
    if test:
        out["test"] = test
    loss = {}
    lc, lm = head.get("loss_cls") or {}, head.get("loss_mask") or {}
    if lc.get("alpha") is not None:
        loss["focal_alpha"] = float(lc["alpha"])
    if lc.get("gamma") is not None:
        loss["focal_gamma"] = float(lc["gamma"])
    if lc.get("loss_weight") is not None:
        loss["cls_weight"] = float(lc["loss_weight"])
    if lm.get("loss_weight") is not None:
        loss["dice_weight"] = float(lm["loss_weight"])
    if loss:
        out["loss"] = loss
    return out


def int_list(s):
    return [int(v) for v in s.split(",")]


def float_list(s):
    return [float(v) for v in s.split(",")]


def convert(a):
    sd, meta = load_checkpoint(a.checkpoint, a.unsafe_load)
    inferred = infer(sd)
    model_cfg, cfg_source = model_cfg_from_meta(meta)
    values = json.loads(json.dumps(DEFAULTS))
    from_cfg = from_model_cfg(model_cfg)
    for k, v in from_cfg.items():
        if isinstance(v, dict):
            values[k].update(v)
        else:
            values[k] = v
    flags = {"gn_groups": a.gn_groups, "num_grids": a.num_grids, "strides": a.strides,
             "pos_scale": a.pos_scale, "pixel_mean": a.pixel_mean, "pixel_std": a.pixel_std}
    if a.scale_ranges is not None:
        r = a.scale_ranges
        if len(r) != 10:
            raise ConvertError("--scale-ranges needs 10 numbers (lo,hi per level)")
        flags["scale_ranges"] = [[r[2 * i], r[2 * i + 1]] for i in range(5)]
    for k, v in flags.items():
        if v is not None:
            values[k] = v
    for k in ("score_thr", "mask_thr", "filter_thr", "sigma", "nms_pre", "max_per_img",
              "kernel"):
        v = getattr(a, k)
        if v is not None:
            values["test"][k] = v
    if values["test"]["kernel"] not in ("gaussian", "linear"):
        raise ConvertError(f"Matrix NMS kernel `{values['test']['kernel']}`")
    for k in ("num_grids", "strides", "scale_ranges"):
        if len(values[k]) != 5:
            raise ConvertError(f"{k} has {len(values[k])} levels; the model needs 5")
    if a.input_size <= 0 or a.input_size % 32:
        raise ConvertError(f"--input-size {a.input_size} must be a positive multiple of 32")
    for k in ("feat_channels", "mask_channels", "mask_feat_channels"):
        if inferred[k] % values["gn_groups"]:
            raise ConvertError(f"{k} = {inferred[k]} is not divisible by gn_groups = "
                               f"{values['gn_groups']}")

    expected = expected_keys(inferred)
    tensors, unexpected, mismatched, dropped = {}, [], [], 0
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            dropped += 1
        elif k not in expected:
            unexpected.append(k)
        elif list(v.shape) != expected[k]:
            mismatched.append(f"{k}: {list(v.shape)} (expected {expected[k]})")
        else:
            tensors[k] = v.detach().to(torch.float32).contiguous()
    missing = sorted(set(expected) - set(tensors) - {m.split(':')[0] for m in mismatched})
    if mismatched or missing or (unexpected and not a.drop_unexpected):
        msg = []
        if unexpected:
            msg.append("unexpected keys (the Rust model has none of these; --drop-unexpected "
                       "drops them):\n  " + "\n  ".join(sorted(unexpected)))
        if missing:
            msg.append("missing keys:\n  " + "\n  ".join(missing))
        if mismatched:
            msg.append("shape mismatches:\n  " + "\n  ".join(sorted(mismatched)))
        raise ConvertError("\n".join(msg))
    for k in sorted(unexpected):
        print(f"dropped unexpected key: {k}", file=sys.stderr)

    n = inferred["num_classes"]
    classes = a.classes
    if classes is None and isinstance(meta, dict):
        dm = meta.get("dataset_meta") or {}
        classes = dm.get("classes") or meta.get("CLASSES")
    classes = list(classes) if classes is not None else [f"class{i}" for i in range(n)]
    if len(classes) != n:
        raise ConvertError(f"{len(classes)} class names for {n} output channels")

    config = {
        "backbone": inferred["backbone"], "in_channels": inferred["in_channels"],
        "num_classes": n, "fpn_channels": inferred["fpn_channels"],
        "stacked_convs": inferred["stacked_convs"], "feat_channels": inferred["feat_channels"],
        "mask_channels": inferred["mask_channels"],
        "mask_feat_channels": inferred["mask_feat_channels"], "gn_groups": values["gn_groups"],
        "num_grids": values["num_grids"], "strides": values["strides"],
        "scale_ranges": values["scale_ranges"], "pos_scale": values["pos_scale"],
        "input_size": a.input_size, "pixel_mean": values["pixel_mean"],
        "pixel_std": values["pixel_std"], "test": values["test"], "loss": values["loss"],
    }
    steps = meta.get("iter", 0) if isinstance(meta, dict) else 0
    info = {
        "format": FORMAT, "config": config, "input_size": a.input_size,
        "classes": [str(c) for c in classes],
        "data": f"converted from mmdetection checkpoint {os.path.basename(a.checkpoint)}",
        "steps": int(steps) if isinstance(steps, int) else 0, "train_seconds": 0.0,
        "training": {
            "converter": "tools/convert_solov2_mmdet.py",
            "source": os.path.basename(a.checkpoint),
            "config_source": cfg_source,
            "mmdet_version": str(meta.get("mmdet_version", "")) if isinstance(meta, dict) else "",
            "epoch": meta.get("epoch") if isinstance(meta, dict) and isinstance(meta.get("epoch"), int) else None,
            "dropped_num_batches_tracked": dropped,
            "dropped_unexpected": sorted(unexpected),
        },
        "weights_dtype": "f32",
    }
    os.makedirs(a.out_dir, exist_ok=True)
    tmp = os.path.join(a.out_dir, "solov2.safetensors.partial")
    save_file(tensors, tmp, metadata={"converter": "tools/convert_solov2_mmdet.py",
                                      "source": os.path.basename(a.checkpoint)})
    os.replace(tmp, os.path.join(a.out_dir, "solov2.safetensors"))
    with open(os.path.join(a.out_dir, "solov2.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"{a.out_dir}: {len(tensors)} tensors ({inferred['backbone']}, FPN {config['fpn_channels']}, "
          f"{config['stacked_convs']} x {config['feat_channels']} towers, E = "
          f"{config['mask_channels']}, {n} classes; grids {config['num_grids']}, GN "
          f"{config['gn_groups']}: {cfg_source}); dropped {dropped} num_batches_tracked")
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--input-size", type=int, default=800,
                    help="square network input in pixels, multiple of 32 (default 800)")
    ap.add_argument("--gn-groups", type=int)
    ap.add_argument("--num-grids", type=int_list, help="e.g. 40,36,24,16,12")
    ap.add_argument("--strides", type=int_list, help="e.g. 8,8,16,32,32")
    ap.add_argument("--scale-ranges", type=float_list, help="10 numbers: lo,hi per level")
    ap.add_argument("--pos-scale", type=float)
    ap.add_argument("--pixel-mean", type=float_list)
    ap.add_argument("--pixel-std", type=float_list)
    ap.add_argument("--score-thr", type=float)
    ap.add_argument("--mask-thr", type=float)
    ap.add_argument("--filter-thr", type=float)
    ap.add_argument("--sigma", type=float)
    ap.add_argument("--nms-pre", type=int)
    ap.add_argument("--max-per-img", type=int)
    ap.add_argument("--kernel", choices=["gaussian", "linear"])
    ap.add_argument("--classes", type=lambda s: s.split(","), help="comma-separated names")
    ap.add_argument("--drop-unexpected", action="store_true",
                    help="drop keys the Rust model lacks instead of stopping")
    ap.add_argument("--unsafe-load", action="store_true",
                    help="allow a full pickle load when weights_only loading fails")
    a = ap.parse_args(argv)
    try:
        convert(a)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
