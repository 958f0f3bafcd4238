#!/usr/bin/env python3
"""SOLOv2 parity fixtures from the real mmdetection implementation (mmdet 3.3.0).

Builds mmdetection's own `SOLOv2` detector (`ResNet` depth 18 + `FPN` + `SOLOV2Head` with its
`MaskFeatModule`) through mmdet's registry with the numbers of the Rust preset
`SoloV2Config::tiny_r18()`, fills it deterministically, runs it and mmdet's post-processing
(`SOLOV2Head.predict_by_feat`) on a fixed batch of two images, and runs mmdet's
`mask_matrix_nms` on a set of cases. Nothing of mmdet is re-implemented here.

Weights:
- `backbone.*`: the name-seeded formula of `backbones::synthetic` (tools/backbones_fixtures.py
  `synthetic_values`), because ResNet-18's 11 M parameters would make a 45 MB fixture; the Rust
  test rebuilds them from the key list stored in the fixture metadata.
- `neck.*`, `mask_head.*`: seeded torch random numbers, stored in the fixture under mmdet's
  state_dict names (the Rust test loads them with `SoloV2::load`).

mmcv: `mmcv-lite` (no compiled ops). mmdet's package `__init__` files import modules that load
`mmcv._ext` at import time (NMS, RoIAlign, DCN, ...), none of which SOLOv2 without DCN calls.
When `mmcv._ext` is missing this script registers a stand-in module whose every function raises
`RuntimeError` when called, so a compiled op reached by mistake fails loudly instead of being
faked.

Usage (see tools/README.md for the venv):
    .venv-mmdet/bin/python tools/solov2_mmdet_parity.py [--out crates/sketch-synth/tests/fixtures]
        [--pth /tmp/solov2_mmdet_tiny.pth]
    .venv-mmdet/bin/python tools/solov2_mmdet_parity.py --dry-run      # results and margins only
    .venv-mmdet/bin/python tools/solov2_mmdet_parity.py --shipped-configs /tmp/mm_shipped
(the last converts checkpoints of mmdet's shipped solov2_r50_fpn_1x_coco and
solov2-light_r18_fpn_ms-3x_coco configs, with mmdet's outputs for a 64 x 64 input beside them,
for the ignored Rust test `converted_export_from_env`).

Writes into --out:
- solov2_mmdet_tiny_weights.safetensors: the mmdet state_dict without the backbone's float
  tensors (metadata `state_dict_keys`: JSON {name: shape} of the WHOLE state_dict);
- solov2_mmdet_tiny.safetensors: input [2,3,64,64], neck outputs, per-level `cls_preds.{l}`
  [B,C,S,S] and `kernel_preds.{l}` [B,E,S,S] (mmdet layout), `mask_feats`, and per image b the
  `predict_by_feat` result `pred.{b}.scores`, `.labels`, `.masks` (u8), `.counts` ([pairs
  above score_thr, masks after the area filter, kept], recorded from mmdet's own `F.conv2d`
  and `mask_matrix_nms` calls) plus `img_meta.{b}` ([img_h, img_w, ori_h, ori_w]); the same
  under TIGHT_CFG as `tight.{b}.*` (area filter, nms_pre and max_per_img all cut); metadata:
  the decision margins of both runs;
- solov2_mmdet_matrix_nms.safetensors: `mask_matrix_nms` cases;
- solov2_mmdet_converted/solov2.json and solov2.no_backbone.safetensors: the output of
  tools/convert_solov2_mmdet.py on a checkpoint of this model (saved with torch.save to --pth,
  outside the repository), without the backbone's tensors (checked here to equal the formula
  bit for bit; metadata `omitted`: JSON {name: shape}).

Every file's metadata (`provenance()`): `script`, `reference` (mmdet==3.3.0),
`reference_packages` (mmdet, mmengine, mmcv-lite, torch, numpy, safetensors versions),
`reference_call` (which mmdet calls produced it), `config` (the mmdet model config as JSON),
`stubbed` (the mmcv._ext stand-in, see above), `seed`, `test_cfg`. The Rust test
`fixtures_name_the_reference_package` fails unless they are there.

These fixtures replace tools/solov2_fixtures.py (a torch re-write of mmdet's code, removed):
its `solov2_tiny` (tiny_r18 forward and inference, batch 1) and `solov2_matrix_nms` checks are
covered here by mmdet itself (see docs/SOLOV2.md, "Parity with the reference").
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import types

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from backbones_fixtures import image, synthetic_values  # noqa: E402


def install_ext_stub():
    """Registers a raising stand-in for mmcv's compiled `_ext` when mmcv-lite is installed."""
    try:
        import mmcv._ext  # noqa: F401
        return False
    except ImportError:
        pass
    stub = types.ModuleType("mmcv._ext")

    def missing(name):
        def f(*args, **kwargs):
            raise RuntimeError(f"compiled mmcv op `{name}` called (mmcv-lite has none)")
        return f

    def getattr_(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return missing(name)

    stub.__getattr__ = getattr_
    sys.modules["mmcv._ext"] = stub
    return True


STUBBED = install_ext_stub()

import mmcv  # noqa: E402
import mmdet  # noqa: E402
import mmengine  # noqa: E402
from mmdet.models.layers import mask_matrix_nms  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

# The Rust `SoloV2Config::tiny_r18()` preset (crates/sketch-synth/src/solov2/config.rs):
# light_r18 (R18, 2 tower convs, light scale ranges) at 32-wide FPN/towers, E = 16, mask
# feature hidden width 16, GN(8), grids [12, 10, 8, 6, 4], 64 px, scale ranges x 64/448.
S = 64.0 / 448.0
LIGHT_RANGES = [(1, 56), (28, 112), (56, 224), (112, 448), (224, 896)]
TINY_RANGES = [(a * S, b * S) for a, b in LIGHT_RANGES]
GN8 = dict(type="GN", num_groups=8, requires_grad=True)
TEST_CFG = dict(nms_pre=500, score_thr=0.1, mask_thr=0.5, filter_thr=0.05, kernel="gaussian",
                sigma=2.0, max_per_img=100)
MODEL_CFG = dict(
    type="SOLOv2",
    data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                  frozen_stages=1, init_cfg=None, style="pytorch",
                  norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True),
    neck=dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=32, start_level=0,
              num_outs=5),
    mask_head=dict(
        type="SOLOV2Head", num_classes=4, in_channels=32, feat_channels=32, stacked_convs=2,
        strides=[8, 8, 16, 32, 32], scale_ranges=TINY_RANGES, pos_scale=0.2,
        num_grids=[12, 10, 8, 6, 4], cls_down_index=0,
        mask_feature_head=dict(feat_channels=16, start_level=0, end_level=3, out_channels=16,
                               mask_stride=4, norm_cfg=GN8),
        norm_cfg=GN8,
        loss_mask=dict(type="DiceLoss", use_sigmoid=True, loss_weight=3.0),
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0)),
    test_cfg=TEST_CFG,
)
# The same forward outputs post-processed again with a test_cfg under which every filter
# removes something (the default's does not at a dozen instances per image): score_thr 0.05
# selects about 115 (cell, class) pairs per image, of which the area filter drops 4 and 6,
# nms_pre 10 cuts the rest, max_per_img 6 cuts again. Chosen among score_thr 0.01-0.05 for
# the margins (the smallest: 1.6e-6 between two scores entering Matrix NMS).
TIGHT_CFG = dict(TEST_CFG, score_thr=0.05, nms_pre=10, max_per_img=6)
CLASSES = ("uvula", "pharyngeal wall", "tonsil", "tongue")
INPUT = 64
# Per image: (img_h, img_w) inside the padded 64 x 64 input, (ori_h, ori_w).
IMG_METAS = [((64, 64), (48, 48)), ((56, 48), (70, 60))]


SCRIPT = "tools/solov2_mmdet_parity.py"
REFERENCE = "mmdet==3.3.0"
STUB_TEXT = (
    "mmcv._ext (mmcv-lite ships no compiled ops; mmdet's package imports load it): a stand-in "
    "module whose every function raises RuntimeError when called; SOLOv2 without DCN calls "
    "none. Nothing of mmdet is patched or re-implemented.")
STUB_NONE = "nothing (mmcv with compiled ops was installed)"
CALL_FORWARD = (
    "mmdet.registry.MODELS.build(config) (SOLOv2: ResNet + FPN + SOLOV2Head/MaskFeatModule), "
    "weights filled by fill(); SOLOv2.extract_feat; SOLOV2Head.forward; "
    "SOLOV2Head.predict_by_feat under test_cfg (pred.*) and test_cfg_tight (tight.*); counts "
    "recorded from its own F.conv2d (kernels above score_thr) and mask_matrix_nms (inputs "
    "after the area filter) calls")
CALL_LOSS = (
    "SOLOv2.train(); SOLOv2.extract_feat; SOLOV2Head.forward; SOLOV2Head.loss_by_feat "
    "(_get_targets_single with mmcv.imrescale, DiceLoss, FocalLoss on the CPU = mmdet's "
    "py_sigmoid_focal_loss) on gt InstanceData(labels, masks=BitmapMasks, "
    "bboxes=BitmapMasks.get_bboxes('hbox')); (loss_mask + loss_cls).backward(); targets.* from "
    "SOLOV2Head._get_targets_single")
CALL_NMS = "mmdet.models.layers.mask_matrix_nms, one call per case in `cases`"
CALL_STATE_DICT = "SOLOv2.state_dict() of the registry-built model (see solov2_mmdet_tiny)"
CALL_CONVERTER = ("tools/convert_solov2_mmdet.py on torch.save({'state_dict': SOLOv2.state_dict(), "
                  "'meta': {'cfg': mmengine.Config(model).pretty_text, ...}})")


def provenance(seed):
    """The metadata every fixture carries: script, reference package, the other packages,
    config and what was stubbed."""
    import importlib.metadata as md
    import numpy

    def version(dist):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    mmcv_dist = "mmcv-lite" if version("mmcv-lite") else "mmcv"
    packages = {"mmdet": mmdet.__version__, "mmengine": mmengine.__version__,
                mmcv_dist: version(mmcv_dist) or mmcv.__version__, "torch": torch.__version__,
                "numpy": numpy.__version__, "safetensors": version("safetensors")}
    assert f"mmdet=={mmdet.__version__}" == REFERENCE, f"made for {REFERENCE}"
    return {
        "script": SCRIPT, "generator": SCRIPT,
        "reference": REFERENCE,
        "reference_packages": json.dumps(packages, sort_keys=True),
        "mmdet": mmdet.__version__, "mmengine": mmengine.__version__,
        "mmcv": mmcv.__version__ + (" (mmcv-lite, _ext stand-in)" if STUBBED else ""),
        "torch": torch.__version__,
        "config": json.dumps(MODEL_CFG, sort_keys=True),
        "config_note": "SoloV2Config::tiny_r18(); built with mmdet.registry.MODELS on the CPU",
        "stubbed": STUB_TEXT if STUBBED else STUB_NONE,
        "seed": str(seed), "test_cfg": json.dumps(TEST_CFG),
    }


# Category bias offset and seed: chosen (by printing the margins of seeds 1-12 at offsets -3.0
# and -3.5) for a dozen instances per image and comfortable decision margins.
BIAS = -3.5


def fill(model, seed):
    """Backbone: name-seeded formula; neck and head: seeded torch random numbers."""
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    new = {}
    for k in sorted(sd):
        t = sd[k]
        if k.endswith("num_batches_tracked"):
            new[k] = t
        elif k.startswith("backbone."):
            new[k] = torch.from_numpy(synthetic_values(k, tuple(t.shape))).to(torch.float32)
        elif k.endswith(".weight") and t.dim() == 4:
            fan_in = t[0].numel()
            new[k] = torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k.endswith("gn.weight"):
            new[k] = 1.0 + 0.2 * torch.randn(t.shape, generator=g)
        elif k == "mask_head.conv_cls.bias":
            # Offset so that a dozen or so instances per image survive.
            new[k] = BIAS + 0.3 * torch.randn(t.shape, generator=g)
        elif k.endswith(".bias"):
            new[k] = 0.1 * torch.randn(t.shape, generator=g)
        else:
            raise KeyError(f"no fill rule for {k}")
    model.load_state_dict(new)
    return model.eval()


class _CaptureF(types.SimpleNamespace):
    """Stands in for `torch.nn.functional` inside mmdet's solov2_head module: every call goes
    to torch unchanged; the outputs of `interpolate` (the final soft masks before mmdet's
    binarisation) and the dynamic-kernel count of `conv2d` (the (cell, class) pairs above
    `score_thr`) are also recorded."""

    def __init__(self):
        super().__init__(calls=[], conv_out=[])

    def __getattr__(self, name):
        return getattr(F, name)

    def interpolate(self, *args, **kwargs):
        y = F.interpolate(*args, **kwargs)
        self.calls.append(y)
        return y

    def conv2d(self, x, weight, *args, **kwargs):
        self.conv_out.append(int(weight.shape[0]))
        return F.conv2d(x, weight, *args, **kwargs)


def predict(model, cls_preds, kernel_preds, mask_feats, test_cfg=None):
    """mmdet `SOLOV2Head.predict_by_feat` for the batch (under `test_cfg` when given, else the
    model's), plus what mmdet computes on the way, recorded without changing it: the soft masks
    that its final `> mask_thr` binarises (to measure the margin of that decision), the number
    of (cell, class) pairs above `score_thr` (the kernels of its dynamic `conv2d`), and the
    masks left after its area filter (the inputs of its `mask_matrix_nms` call)."""
    import mmdet.models.dense_heads.solov2_head as head_mod

    metas = [dict(img_shape=ih, ori_shape=oh) for ih, oh in IMG_METAS]
    cap = _CaptureF()
    nms_in = []

    def nms_capture(masks, labels, scores, **kw):
        # For the margins only: all decayed scores (no max_num cut), from mmdet's function.
        decayed = mask_matrix_nms(masks, labels, scores.clone(), **dict(kw, max_num=-1))[0]
        nms_in.append(dict(n=len(labels), scores=scores.clone(), decayed=decayed))
        return mask_matrix_nms(masks, labels, scores, **kw)

    saved_cfg = model.mask_head.test_cfg
    head_mod.F = cap
    head_mod.mask_matrix_nms = nms_capture
    if test_cfg is not None:
        model.mask_head.test_cfg = mmengine.ConfigDict(test_cfg)
    try:
        res = model.mask_head.predict_by_feat(list(kernel_preds), [c.clone() for c in cls_preds],
                                              mask_feats, batch_img_metas=metas)
    finally:
        head_mod.F = F
        head_mod.mask_matrix_nms = mask_matrix_nms
        model.mask_head.test_cfg = saved_cfg
    assert len(cap.calls) == 2 * len(res), "one image without detections: change the seed"
    assert len(cap.conv_out) == len(nms_in) == len(res)
    out = []
    for b, r in enumerate(res):
        soft = cap.calls[2 * b + 1].squeeze(0)
        assert torch.equal(soft > (test_cfg or TEST_CFG)["mask_thr"], r.masks)
        counts = [cap.conv_out[b], nms_in[b]["n"], len(r.scores)]
        out.append(dict(scores=r.scores, labels=r.labels, masks=r.masks, soft=soft,
                        counts=counts, nms_in_scores=nms_in[b]["scores"],
                        decayed=nms_in[b]["decayed"]))
    return out


def margins(cls_preds, kernel_preds, mask_feats, results, cfg):
    """Distances of the values behind the discrete decisions from their thresholds under
    `cfg`: category scores vs score_thr, point-NMS neighbours, soft masks of the selected cells
    vs mask_thr, final soft masks vs mask_thr, gaps between final scores and from filter_thr,
    gaps between the scores entering Matrix NMS (their order decides the `nms_pre` cut) and
    between all decayed scores (their order decides the `max_per_img` cut)."""
    thr, mthr = cfg["score_thr"], cfg["mask_thr"]
    m_score, m_tie, m_mask, m_final, m_sc, m_in, m_dec = [], [], [], [], [], [], []
    e = kernel_preds[0].shape[1]
    for b in range(mask_feats.shape[0]):
        kept_all = []
        for c in cls_preds:
            s = c[b:b + 1].sigmoid()
            hmax = F.max_pool2d(s, 2, stride=1, padding=1)[:, :, :-1, :-1]
            kept = s * (hmax == s)
            m_score.append((kept[kept > 0] - thr).abs().min().item())
            pad = F.pad(s, (1, 0, 1, 0), value=-1.0)
            a = pad[:, :, 1:, 1:]
            for dy, dx in [(0, 1), (1, 0), (1, 1)]:
                o = pad[:, :, 1 - dy:pad.shape[2] - dy, 1 - dx:pad.shape[3] - dx]
                d = (a - o).abs()
                sel = (o >= 0) & (torch.maximum(a, o) > thr)
                m_tie.append(d[sel].min().item() if sel.any() else 1.0)
            kept_all.append(kept[0].permute(1, 2, 0).reshape(-1, kept.shape[1]))
        cells = (torch.cat(kept_all) > thr).nonzero()[:, 0]
        k = torch.cat([kp[b].permute(1, 2, 0).reshape(-1, e) for kp in kernel_preds])[cells]
        soft = torch.einsum("ne,ehw->nhw", k, mask_feats[b]).sigmoid()
        m_mask.append((soft - mthr).abs().min().item())
        r = results[b]
        m_final.append((r["soft"] - mthr).abs().min().item())
        s = r["scores"]
        if len(s) > 1:
            m_sc.append((s[:-1] - s[1:]).min().item())
        m_sc.append((s - cfg["filter_thr"]).abs().min().item())
        m_in.append(sorted_gap(r["nms_in_scores"]))
        m_dec.append(sorted_gap(r["decayed"]))
    return dict(score_thr=min(m_score), point_nms_neighbours=min(m_tie), mask_thr=min(m_mask),
                final_mask_thr=min(m_final), final_scores=min(m_sc), nms_input_scores=min(m_in),
                decayed_scores=min(m_dec))


def sorted_gap(scores):
    """Smallest gap between neighbours of the sorted scores (1.0 for fewer than two)."""
    s = torch.sort(scores, descending=True).values
    return (s[:-1] - s[1:]).min().item() if len(s) > 1 else 1.0


def build_model(seed):
    register_all_modules()
    model = MODELS.build(mmengine.Config(dict(model=MODEL_CFG)).model)
    return fill(model, seed)


def run_model(model, x):
    with torch.no_grad():
        feats = model.extract_feat(x)
        kernel_preds, cls_preds, mask_feats = model.mask_head(feats)
    return feats, kernel_preds, cls_preds, mask_feats


def nms_cases():
    """Inputs and mmdet `mask_matrix_nms` outputs for several settings. Set `rand`: 16 random
    rectangles over 3 labels (an identical pair, unsorted tie-free scores); set `degen`: two
    empty masks of different labels among others (0/0 IoU: mmdet's NaN reaches every score)."""
    g = torch.Generator().manual_seed(3)
    n, h, w = 16, 12, 12
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        cy, cx = torch.randint(2, 10, (2,), generator=g).tolist()
        r = int(torch.randint(2, 5, (1,), generator=g))
        masks[i, max(cy - r, 0):cy + r, max(cx - r, 0):cx + r] = True
    masks[5] = masks[2]  # an identical pair (IoU 1)
    labels = torch.randint(0, 3, (n,), generator=g)
    labels[5] = labels[2]
    scores = torch.rand(n, generator=g) * 0.9 + 0.05
    areas = masks.sum((1, 2)).float() + torch.arange(n).float() * 0.5
    degen = masks[:6].clone()
    degen[1] = False
    degen[4] = False
    sets = {
        "rand": (masks, labels, scores, areas),
        "degen": (degen, torch.tensor([0, 1, 0, 0, 2, 1]), scores[:6].clone(), None),
    }
    cases = {
        "rand.gaussian": dict(kernel="gaussian", sigma=2.0),
        "rand.gaussian_s05": dict(kernel="gaussian", sigma=0.5),
        "rand.linear": dict(kernel="linear"),
        "rand.gaussian_filtered": dict(kernel="gaussian", sigma=2.0, filter_thr=0.3, max_num=6),
        "rand.linear_filtered": dict(kernel="linear", filter_thr=0.3, max_num=6),
        "rand.gaussian_pre": dict(kernel="gaussian", sigma=2.0, nms_pre=9, filter_thr=0.05,
                                  max_num=5),
        "rand.gaussian_areas": dict(kernel="gaussian", sigma=2.0, mask_area=True),
        "rand.linear_areas": dict(kernel="linear", mask_area=True),
        "degen.gaussian": dict(kernel="gaussian", sigma=2.0),
        "degen.gaussian_filtered": dict(kernel="gaussian", sigma=2.0, filter_thr=0.05),
        "degen.linear_filtered": dict(kernel="linear", filter_thr=0.05),
    }
    out = {}
    for name, (m, lab, sc, ar) in sets.items():
        out[f"{name}.masks"] = m.to(torch.uint8)
        out[f"{name}.labels"] = lab
        out[f"{name}.scores"] = sc.contiguous()
        if ar is not None:
            out[f"{name}.areas"] = ar
    spec = {}
    for name, kw in cases.items():
        m, lab, sc, ar = sets[name.split(".")[0]]
        kw = dict(kw)
        if kw.pop("mask_area", False):
            kw["mask_area"] = ar
        s, l_out, m_out, k = mask_matrix_nms(m, lab, sc, **kw)
        out[f"{name}.out_scores"] = s.contiguous()
        out[f"{name}.out_labels"] = l_out.contiguous()
        out[f"{name}.keep_inds"] = k.contiguous()
        assert torch.equal(m_out, m[k]) and torch.equal(l_out, lab[k]), name
        spec[name] = {a: (v if not torch.is_tensor(v) else "areas") for a, v in kw.items()}
        print(f"nms {name}: keep {k.tolist()}")
    return out, spec


def gt_masks():
    """Ground truth for the loss case, per image a list of (label, [64, 64] bool mask): sizes
    that reach every level (sqrt(box area) from 3 to 44 px against the ranges x 64/448),
    instances on two levels, an empty mask (skipped by mmdet), two overlapping instances whose
    centre regions share cells (the later label wins) and a non-convex shape."""
    def rect(y0, y1, x0, x1):
        m = torch.zeros(INPUT, INPUT, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        return m

    yy, xx = torch.meshgrid(torch.arange(INPUT).float(), torch.arange(INPUT).float(),
                            indexing="ij")
    ellipse = ((yy - 38.3) / 9.2) ** 2 + ((xx - 20.6) / 14.1) ** 2 <= 1.0
    ell = rect(6, 50, 9, 47) & ~rect(20, 50, 25, 47)  # an L, 44 x 38
    return [
        [(0, rect(5, 15, 40, 52)), (3, ellipse), (1, rect(50, 55, 8, 14)),
         (2, rect(17, 61, 13, 53)), (1, torch.zeros(INPUT, INPUT, dtype=torch.bool))],
        [(1, rect(21, 41, 19, 39)), (2, rect(23, 39, 21, 40)), (0, rect(3, 6, 57, 60)),
         (3, ell), (2, rect(44, 58, 3, 31))],
    ]


def grid_margin(gts, head):
    """Smallest distance from an integer of the grid coordinates behind mmdet's target
    assignment ((c / U) / (1 / S) for the centre and the centre-region edges, every instance
    and level it is assigned to), and of sqrt(box area) from the scale-range bounds."""
    from mmdet.models.utils import center_of_mass
    from mmdet.structures.mask import BitmapMasks
    worst_grid, worst_scale = 1.0, 1e9
    for items in gts:
        masks = torch.stack([m for _, m in items])
        boxes = BitmapMasks(masks.numpy().astype("uint8"), INPUT, INPUT).get_bboxes(
            "hbox").tensor
        for (_, m), b in zip(items, boxes):
            if not m.any():
                continue
            area = float(((b[2] - b[0]) * (b[3] - b[1])) ** 0.5)
            for (lo, hi), n in zip(head.scale_ranges, head.num_grids):
                worst_scale = min(worst_scale, abs(area - lo), abs(area - hi))
                if not lo <= area <= hi:
                    continue
                ch, cw = (float(v) for v in center_of_mass(m))
                rh = 0.5 * float(b[3] - b[1]) * head.pos_scale
                rw = 0.5 * float(b[2] - b[0]) * head.pos_scale
                for c in [ch, cw, ch - rh, ch + rh, cw - rw, cw + rw]:
                    v = (c / INPUT) * n
                    if 0.0 <= v < n:
                        worst_grid = min(worst_grid, abs(v - round(v)))
    return dict(grid=worst_grid, scale_range=worst_scale)


def loss_case(model, x):
    """mmdet `SOLOV2Head.loss_by_feat` (targets by its `_get_targets_single`, `mmcv.imrescale`,
    `DiceLoss`, `FocalLoss`'s CPU path `py_sigmoid_focal_loss`) on the batch, and the gradients
    of loss_mask + loss_cls by torch autograd, in mmdet's train mode (ResNet `norm_eval`: BN
    frozen; `frozen_stages=1`: stem and layer1 without gradients)."""
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    gts = gt_masks()
    batch_gt, out = [], {}
    for b, items in enumerate(gts):
        masks = torch.stack([m for _, m in items]).numpy().astype("uint8")
        bm = BitmapMasks(masks, INPUT, INPUT)
        inst = InstanceData()
        inst.labels = torch.tensor([lab for lab, _ in items], dtype=torch.int64)
        inst.masks = bm
        inst.bboxes = bm.get_bboxes("hbox").tensor.float()
        batch_gt.append(inst)
        out[f"gt.{b}.masks"] = torch.from_numpy(masks).contiguous()
        out[f"gt.{b}.labels"] = inst.labels
        out[f"gt.{b}.bboxes"] = inst.bboxes
    head = model.mask_head
    margin = grid_margin(gts, head)
    model.train()
    assert not model.backbone.bn1.training, "norm_eval should keep BN in eval mode"
    model.zero_grad(set_to_none=True)
    feats = model.extract_feat(x)
    kernel_preds, cls_preds, mask_feats = head(feats)
    metas = [dict(img_shape=(INPUT, INPUT), ori_shape=(INPUT, INPUT), pad_shape=(INPUT, INPUT))
             for _ in gts]
    losses = head.loss_by_feat(kernel_preds, cls_preds, mask_feats, batch_gt, metas)
    total = losses["loss_mask"] + losses["loss_cls"]
    total.backward()
    model.eval()
    # mmdet's own targets (for diagnosis in the Rust test): per image and level the cell
    # labels (num_classes = background) and the positive cell of every mask target.
    num_pos = 0
    for b, inst in enumerate(batch_gt):
        _, labels, pos_masks, pos_indexes = head._get_targets_single(
            inst, featmap_sizes=mask_feats.shape[-2:])
        for lvl, (lab, idx) in enumerate(zip(labels, pos_indexes)):
            out[f"targets.{b}.labels.{lvl}"] = lab.contiguous()
            out[f"targets.{b}.pos_index.{lvl}"] = torch.tensor(idx, dtype=torch.int64)
        num_pos += int(sum(int(m.sum()) for m in pos_masks))
    out["loss_mask"] = losses["loss_mask"].detach().reshape(1)
    out["loss_cls"] = losses["loss_cls"].detach().reshape(1)
    out["num_pos"] = torch.tensor([num_pos], dtype=torch.int64)
    requires_grad, stored = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, name
            continue
        requires_grad.append(name)
        assert p.grad is not None, f"{name}: no gradient"
        # All of the neck and head; of the backbone the tensors up to 10k values (BN affine,
        # the 1x1 downsample convs), to keep the fixture small.
        if not name.startswith("backbone.") or p.numel() <= 10_000:
            out[f"grad.{name}"] = p.grad.detach().contiguous()
            stored.append(name)
    print(f"loss: mask {losses['loss_mask'].item():.6f} cls {losses['loss_cls'].item():.6f}, "
          f"num_pos {num_pos}, {len(stored)} of {len(requires_grad)} gradients stored, "
          f"margins {margin}")
    spec = dict(requires_grad=requires_grad, margins=margin)
    return out, spec


def check_converter(sd, pth, export_dir, meta):
    """Runs tools/convert_solov2_mmdet.py on a torch.save'd checkpoint of the model."""
    cfg_text = mmengine.Config(dict(model=MODEL_CFG)).pretty_text
    ckpt = {"state_dict": sd,
            "meta": {"cfg": cfg_text, "dataset_meta": {"classes": CLASSES},
                     "mmdet_version": mmdet.__version__, "iter": 0, "epoch": 0}}
    torch.save(ckpt, pth)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, os.path.join(HERE, "convert_solov2_mmdet.py"), pth, tmp,
               "--input-size", str(INPUT)]
        subprocess.run(cmd, check=True)
        conv = load_file(os.path.join(tmp, "solov2.safetensors"))
        with open(os.path.join(tmp, "solov2.json")) as f:
            info = json.load(f)
    want = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert sorted(conv) == sorted(want), set(conv) ^ set(want)
    for k, v in want.items():
        assert conv[k].dtype == torch.float32 and torch.equal(conv[k], v.float()), k
    omitted = {}
    kept = {}
    for k, v in conv.items():
        if k.startswith("backbone."):
            formula = torch.from_numpy(synthetic_values(k, tuple(v.shape))).to(torch.float32)
            assert torch.equal(v, formula), k
            omitted[k] = list(v.shape)
        else:
            kept[k] = v.contiguous()
    os.makedirs(export_dir, exist_ok=True)
    with open(os.path.join(export_dir, "solov2.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    save_file(kept, os.path.join(export_dir, "solov2.no_backbone.safetensors"),
              metadata={**meta, "reference_call": CALL_CONVERTER,
                        "converter": "tools/convert_solov2_mmdet.py",
                        "omitted": json.dumps(omitted, sort_keys=True),
                        "omitted_rule": "backbones::synthetic formula (checked bit for bit)"})
    print(f"converter: {len(conv)} tensors, config {json.dumps(info['config'])[:120]}...")


def convert_shipped_configs(out_dir):
    """Checkpoints of mmdet's own SOLOv2 configs (mmdet's random init, no pretrained backbone)
    through the converter; the inferred / parsed config must equal the Rust presets
    `default_r50` and `light_r18` (input sizes given by flag). Writes OUT_DIR/{r50,light_r18}."""
    cfg_dir = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", "solov2")
    presets = {
        "r50": ("solov2_r50_fpn_1x_coco.py", 800, dict(
            backbone="R50", fpn_channels=256, stacked_convs=4, feat_channels=512,
            mask_channels=256, mask_feat_channels=128, gn_groups=32,
            num_grids=[40, 36, 24, 16, 12],
            scale_ranges=[[1, 96], [48, 192], [96, 384], [192, 768], [384, 2048]])),
        "light_r18": ("solov2-light_r18_fpn_ms-3x_coco.py", 448, dict(
            backbone="R18", fpn_channels=256, stacked_convs=2, feat_channels=256,
            mask_channels=128, mask_feat_channels=128, gn_groups=32,
            num_grids=[40, 36, 24, 16, 12], scale_ranges=[list(r) for r in LIGHT_RANGES])),
    }
    register_all_modules()
    for name, (fname, size, want) in presets.items():
        cfg = mmengine.Config.fromfile(os.path.join(cfg_dir, fname))
        cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model)
        model.init_weights()
        pth = os.path.join(out_dir, f"{name}.pth")
        os.makedirs(out_dir, exist_ok=True)
        torch.save({"state_dict": model.state_dict(),
                    "meta": {"cfg": cfg.pretty_text, "mmdet_version": mmdet.__version__}}, pth)
        dst = os.path.join(out_dir, name)
        subprocess.run([sys.executable, os.path.join(HERE, "convert_solov2_mmdet.py"), pth, dst,
                        "--input-size", str(size)], check=True)
        with open(os.path.join(dst, "solov2.json")) as f:
            got = json.load(f)["config"]
        for k, v in want.items():
            assert got[k] == v, (name, k, got[k], v)
        assert got["num_classes"] == 80 and got["strides"] == [8, 8, 16, 32, 32], name
        assert got["test"] == TEST_CFG and got["input_size"] == size, name
        # mmdet's outputs for a 64 x 64 input next to the export, for the ignored Rust test
        # `converted_export_from_env` (SOLOV2_MMDET_EXPORT=DIR/NAME).
        x = image((1, 3, 64, 64), -2.0, 2.0)
        _, kernel_preds, cls_preds, mask_feats = run_model(model.eval(), x)
        out = {"input": x, "mask_feats": mask_feats.contiguous()}
        for lvl, (k, c) in enumerate(zip(kernel_preds, cls_preds)):
            out[f"kernel_preds.{lvl}"] = k.contiguous()
            out[f"cls_preds.{lvl}"] = c.contiguous()
        save_file(out, os.path.join(dst, "mmdet_outputs.safetensors"))
        print(f"{fname}: converter config equals the preset ({dst})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sketch-synth/tests/fixtures")
    ap.add_argument("--pth", default="/tmp/solov2_mmdet_tiny.pth",
                    help="where the test checkpoint for the converter goes (not the repo)")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--dry-run", action="store_true", help="print results and margins only")
    ap.add_argument("--shipped-configs", metavar="DIR",
                    help="only convert checkpoints of mmdet's solov2_r50_fpn_1x_coco and "
                         "solov2-light_r18_fpn_ms-3x_coco configs into DIR (outside the repo)")
    a = ap.parse_args()
    if a.shipped_configs:
        convert_shipped_configs(a.shipped_configs)
        return
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)

    model = build_model(a.seed)
    sd = model.state_dict()
    x = image((2, 3, INPUT, INPUT), -2.0, 2.0)
    feats, kernel_preds, cls_preds, mask_feats = run_model(model, x)
    res = predict(model, cls_preds, kernel_preds, mask_feats)
    mg = margins(cls_preds, kernel_preds, mask_feats, res, TEST_CFG)
    for b, r in enumerate(res):
        print(f"image {b}: {len(r['scores'])} instances, labels {r['labels'].tolist()[:12]}, "
              f"scores {[round(v, 4) for v in r['scores'].tolist()[:6]]}, "
              f"counts (above score_thr, after area filter, kept) {r['counts']}")
    print("margins:", {k: f"{v:.2e}" for k, v in mg.items()})
    # The same outputs under TIGHT_CFG, where the area filter, nms_pre and max_per_img cut.
    res_tight = predict(model, cls_preds, kernel_preds, mask_feats, TIGHT_CFG)
    mg_tight = margins(cls_preds, kernel_preds, mask_feats, res_tight, TIGHT_CFG)
    for b, r in enumerate(res_tight):
        print(f"tight image {b}: labels {r['labels'].tolist()}, counts {r['counts']}")
        n_sel, n_area, n_kept = r["counts"]
        assert n_sel > n_area > TIGHT_CFG["nms_pre"] and n_kept == TIGHT_CFG["max_per_img"]
    print("tight margins:", {k: f"{v:.2e}" for k, v in mg_tight.items()})
    if a.dry_run:
        return

    os.makedirs(a.out, exist_ok=True)
    meta = provenance(a.seed)

    # 1. The state_dict under mmdet's names, without the backbone's float tensors.
    keys = {k: list(v.shape) for k, v in sd.items()}
    weights = {k: v.contiguous() for k, v in sd.items()
               if not (k.startswith("backbone.") and v.is_floating_point())}
    path = os.path.join(a.out, "solov2_mmdet_tiny_weights.safetensors")
    save_file(weights, path, metadata={**meta, "reference_call": CALL_STATE_DICT,
                                       "state_dict_keys": json.dumps(keys, sort_keys=True),
                                       "omitted_rule": "backbone.* float tensors: backbones::synthetic formula"})
    print(path, os.path.getsize(path), "bytes")

    # 2. Forward outputs and predict_by_feat results.
    out = {"input": x}
    for i, p in enumerate(feats):
        out[f"neck.{i}"] = p.contiguous()
    for lvl, (k, c) in enumerate(zip(kernel_preds, cls_preds)):
        out[f"kernel_preds.{lvl}"] = k.contiguous()
        out[f"cls_preds.{lvl}"] = c.contiguous()
    out["mask_feats"] = mask_feats.contiguous()
    for b, (r, (ih, oh)) in enumerate(zip(res, IMG_METAS)):
        out[f"pred.{b}.scores"] = r["scores"].contiguous()
        out[f"pred.{b}.labels"] = r["labels"].contiguous()
        out[f"pred.{b}.masks"] = r["masks"].to(torch.uint8).contiguous()
        out[f"pred.{b}.counts"] = torch.tensor(r["counts"], dtype=torch.int64)
        out[f"img_meta.{b}"] = torch.tensor([*ih, *oh], dtype=torch.int64)
    for b, r in enumerate(res_tight):
        out[f"tight.{b}.scores"] = r["scores"].contiguous()
        out[f"tight.{b}.labels"] = r["labels"].contiguous()
        out[f"tight.{b}.masks"] = r["masks"].to(torch.uint8).contiguous()
        out[f"tight.{b}.counts"] = torch.tensor(r["counts"], dtype=torch.int64)
    path = os.path.join(a.out, "solov2_mmdet_tiny.safetensors")
    save_file(out, path, metadata={**meta, "reference_call": CALL_FORWARD,
                                   "margins": json.dumps(mg),
                                   "test_cfg_tight": json.dumps(TIGHT_CFG),
                                   "margins_tight": json.dumps(mg_tight)})
    print(path, os.path.getsize(path), "bytes")

    # 3. Matrix NMS cases.
    nms, spec = nms_cases()
    path = os.path.join(a.out, "solov2_mmdet_matrix_nms.safetensors")
    save_file(nms, path, metadata={**meta, "reference_call": CALL_NMS,
                                   "cases": json.dumps(spec)})
    print(path, os.path.getsize(path), "bytes")

    # 4. Training losses and gradients.
    loss, spec = loss_case(model, x)
    path = os.path.join(a.out, "solov2_mmdet_loss.safetensors")
    save_file(loss, path, metadata={**meta, "reference_call": CALL_LOSS,
                                    "requires_grad": json.dumps(spec["requires_grad"]),
                                    "margins": json.dumps(spec["margins"])})
    print(path, os.path.getsize(path), "bytes")

    # 5. The converter on a torch.save'd checkpoint of this model.
    check_converter(sd, a.pth, os.path.join(a.out, "solov2_mmdet_converted"), meta)


if __name__ == "__main__":
    main()
