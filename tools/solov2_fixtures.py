#!/usr/bin/env python3
"""Parity fixtures for the SOLOv2 synthesizer (crates/sketch-synth/src/solov2).

A self-contained PyTorch re-implementation that follows the structure and parameter names of
mmdetection 3.x (`mmdet/models/necks/fpn.py` FPN, `mmdet/models/dense_heads/solov2_head.py`
SOLOV2Head + MaskFeatModule + `_predict_by_feat_single`, `solo_head.py` resize_feats /
points_nms, `mmdet/models/layers/matrix_nms.py` mask_matrix_nms), read at commit 0bd9f8e /
7fb530c. mmdet/mmcv are NOT imported (not installed offline); torchvision supplies the ResNet.

Weights: the deterministic name-seeded formula of `backbones::synthetic` (imported from
tools/backbones_fixtures.py), so the Rust test rebuilds identical weights by name; the file
holds only the input and the outputs.

Usage:
    .venv/bin/python tools/solov2_fixtures.py [--out crates/sketch-synth/tests/fixtures]
Writes solov2_tiny.safetensors (tiny_r18 preset forward + inference) and
solov2_matrix_nms.safetensors (Matrix NMS, both kernels).
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backbones_fixtures import fill  # noqa: E402

# The Rust `SoloV2Config::tiny_r18()` preset.
TINY = dict(
    fpn=32, feat=32, stacked=2, e=16, mask_hid=16, groups=8, classes=4,
    grids=[12, 10, 8, 6, 4], strides=[8, 8, 16, 32, 32], size=64,
)
TEST_CFG = dict(nms_pre=500, score_thr=0.1, mask_thr=0.5, filter_thr=0.05, kernel="gaussian",
                sigma=2.0, max_per_img=100)


class ConvModule(nn.Module):
    """mmcv ConvModule: conv (bias only without norm) -> optional GN -> optional ReLU."""

    def __init__(self, cin, cout, k, groups=None, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=groups is None)
        self.with_norm = groups is not None
        if self.with_norm:
            self.gn = nn.GroupNorm(groups, cout)
        self.act = act

    def forward(self, x):
        x = self.conv(x)
        if self.with_norm:
            x = self.gn(x)
        return F.relu(x) if self.act else x


def generate_coordinate(size, device="cpu"):
    x_range = torch.linspace(-1, 1, size[-1], device=device)
    y_range = torch.linspace(-1, 1, size[-2], device=device)
    y, x = torch.meshgrid(y_range, x_range, indexing="ij")
    y = y.expand([size[0], 1, -1, -1])
    x = x.expand([size[0], 1, -1, -1])
    return torch.cat([x, y], 1)


class FPN(nn.Module):
    def __init__(self, in_channels, out):
        super().__init__()
        self.lateral_convs = nn.ModuleList([ConvModule(c, out, 1, act=False) for c in in_channels])
        self.fpn_convs = nn.ModuleList([ConvModule(out, out, 3, act=False) for _ in in_channels])

    def forward(self, inputs):
        laterals = [l(inputs[i]) for i, l in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            prev_shape = laterals[i - 1].shape[2:]
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=prev_shape, mode="nearest")
        outs = [self.fpn_convs[i](laterals[i]) for i in range(len(laterals))]
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class MaskFeatModule(nn.Module):
    def __init__(self, cin, hid, out, groups, start_level=0, end_level=3):
        super().__init__()
        self.start_level, self.end_level = start_level, end_level
        self.convs_all_levels = nn.ModuleList()
        for i in range(start_level, end_level + 1):
            seq = nn.Sequential()
            if i == 0:
                seq.add_module(f"conv{i}", ConvModule(cin, hid, 3, groups))
                self.convs_all_levels.append(seq)
                continue
            for j in range(i):
                if j == 0:
                    chn = cin + 2 if i == end_level else cin
                else:
                    chn = hid
                seq.add_module(f"conv{j}", ConvModule(chn, hid, 3, groups))
                seq.add_module(f"upsample{j}", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.convs_all_levels.append(seq)
        self.conv_pred = ConvModule(hid, out, 1, groups)

    def forward(self, x):
        inputs = x[self.start_level:self.end_level + 1]
        acc = self.convs_all_levels[0](inputs[0])
        for i in range(1, len(inputs)):
            p = inputs[i]
            if i == len(inputs) - 1:
                p = torch.cat([p, generate_coordinate(p.size())], 1)
            acc = acc + self.convs_all_levels[i](p)
        return self.conv_pred(acc)


class SOLOV2Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_grids = c["grids"]
        self.kernel_convs = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        for i in range(c["stacked"]):
            chn = c["fpn"] + 2 if i == 0 else c["feat"]
            self.kernel_convs.append(ConvModule(chn, c["feat"], 3, c["groups"]))
            chn = c["fpn"] if i == 0 else c["feat"]
            self.cls_convs.append(ConvModule(chn, c["feat"], 3, c["groups"]))
        self.conv_cls = nn.Conv2d(c["feat"], c["classes"], 3, padding=1)
        self.conv_kernel = nn.Conv2d(c["feat"], c["e"], 3, padding=1)
        self.mask_feature_head = MaskFeatModule(c["fpn"], c["mask_hid"], c["e"], c["groups"])

    @staticmethod
    def resize_feats(x):
        out = []
        for i in range(len(x)):
            if i == 0:
                out.append(F.interpolate(x[0], size=x[i + 1].shape[-2:], mode="bilinear", align_corners=False))
            elif i == len(x) - 1:
                out.append(F.interpolate(x[i], size=x[i - 1].shape[-2:], mode="bilinear", align_corners=False))
            else:
                out.append(x[i])
        return out

    def forward(self, x):
        mask_feats = self.mask_feature_head(x)
        feats = self.resize_feats(x)
        kernels, clss = [], []
        for i in range(len(x)):
            f = feats[i]
            f = torch.cat([f, generate_coordinate(f.size())], 1)
            kf = F.interpolate(f, size=self.num_grids[i], mode="bilinear", align_corners=False)
            cf = kf[:, :-2, :, :].contiguous()
            for m in self.kernel_convs:
                kf = m(kf)
            kernels.append(self.conv_kernel(kf))
            for m in self.cls_convs:
                cf = m(cf)
            clss.append(self.conv_cls(cf))
        return kernels, clss, mask_feats


class SOLOv2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.backbone = torchvision.models.resnet18()
        self.neck = FPN([64, 128, 256, 512], c["fpn"])
        self.mask_head = SOLOV2Head(c)

    def forward(self, x):
        b = self.backbone
        h = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        cs = []
        for layer in [b.layer1, b.layer2, b.layer3, b.layer4]:
            h = layer(h)
            cs.append(h)
        return self.mask_head(self.neck(cs))


def points_nms(heat, kernel=2):
    hmax = F.max_pool2d(heat, (kernel, kernel), stride=1, padding=1)
    keep = (hmax[:, :, :-1, :-1] == heat).float()
    return heat * keep


def mask_matrix_nms(masks, labels, scores, filter_thr=-1, nms_pre=-1, max_num=-1,
                    kernel="gaussian", sigma=2.0, mask_area=None):
    """mmdet/models/layers/matrix_nms.py (7fb530c)."""
    assert len(labels) == len(masks) == len(scores)
    if len(labels) == 0:
        return scores.new_zeros(0), labels.new_zeros(0), masks.new_zeros(0, *masks.shape[-2:]), labels.new_zeros(0)
    if mask_area is None:
        mask_area = masks.sum((1, 2)).float()
    scores, sort_inds = torch.sort(scores, descending=True)
    keep_inds = sort_inds
    if nms_pre > 0 and len(sort_inds) > nms_pre:
        sort_inds = sort_inds[:nms_pre]
        keep_inds = keep_inds[:nms_pre]
        scores = scores[:nms_pre]
    masks = masks[sort_inds]
    mask_area = mask_area[sort_inds]
    labels = labels[sort_inds]
    num_masks = len(labels)
    flatten_masks = masks.reshape(num_masks, -1).float()
    inter_matrix = torch.mm(flatten_masks, flatten_masks.transpose(1, 0))
    expanded_mask_area = mask_area.expand(num_masks, num_masks)
    iou_matrix = (inter_matrix / (expanded_mask_area + expanded_mask_area.transpose(1, 0) - inter_matrix)).triu(diagonal=1)
    expanded_labels = labels.expand(num_masks, num_masks)
    label_matrix = (expanded_labels == expanded_labels.transpose(1, 0)).triu(diagonal=1)
    compensate_iou, _ = (iou_matrix * label_matrix).max(0)
    compensate_iou = compensate_iou.expand(num_masks, num_masks).transpose(1, 0)
    decay_iou = iou_matrix * label_matrix
    if kernel == "gaussian":
        decay_matrix = torch.exp(-1 * sigma * (decay_iou ** 2))
        compensate_matrix = torch.exp(-1 * sigma * (compensate_iou ** 2))
        decay_coefficient, _ = (decay_matrix / compensate_matrix).min(0)
    else:
        decay_matrix = (1 - decay_iou) / (1 - compensate_iou)
        decay_coefficient, _ = decay_matrix.min(0)
    scores = scores * decay_coefficient
    if filter_thr > 0:
        keep = scores >= filter_thr
        keep_inds = keep_inds[keep]
        if not keep.any():
            return scores.new_zeros(0), labels.new_zeros(0), masks.new_zeros(0, *masks.shape[-2:]), labels.new_zeros(0)
        masks, scores, labels = masks[keep], scores[keep], labels[keep]
    scores, sort_inds = torch.sort(scores, descending=True)
    keep_inds = keep_inds[sort_inds]
    if max_num > 0 and len(sort_inds) > max_num:
        sort_inds = sort_inds[:max_num]
        keep_inds = keep_inds[:max_num]
        scores = scores[:max_num]
    masks, labels = masks[sort_inds], labels[sort_inds]
    return scores, labels, masks, keep_inds


def predict_single(kernel_preds, cls_scores, mask_feats, img_shape, ori_shape, c, cfg):
    """mmdet SOLOV2Head.predict_by_feat + _predict_by_feat_single for one image (batch 1)."""
    num_levels = len(kernel_preds)
    mlvl_cls = [points_nms(cls_scores[i].sigmoid()).permute(0, 2, 3, 1) for i in range(num_levels)]
    e = kernel_preds[0].shape[1]
    cls_scores = torch.cat([m[0].reshape(-1, c["classes"]) for m in mlvl_cls], 0)
    kernel_preds = torch.cat([k[0].permute(1, 2, 0).reshape(-1, e) for k in kernel_preds], 0)
    mask_feats = mask_feats[0:1]
    featmap_size = mask_feats.size()[-2:]
    h, w = img_shape
    upsampled_size = (featmap_size[0] * 4, featmap_size[1] * 4)
    score_mask = cls_scores > cfg["score_thr"]
    cls_scores = cls_scores[score_mask]
    inds = score_mask.nonzero()
    cls_labels = inds[:, 1]
    kernel_preds = kernel_preds[inds[:, 0]]
    lvl_interval = cls_labels.new_tensor(c["grids"]).pow(2).cumsum(0)
    strides = kernel_preds.new_ones(lvl_interval[-1])
    strides[:lvl_interval[0]] *= c["strides"][0]
    for lvl in range(1, num_levels):
        strides[lvl_interval[lvl - 1]:lvl_interval[lvl]] *= c["strides"][lvl]
    strides = strides[inds[:, 0]]
    kernel_preds = kernel_preds.view(kernel_preds.size(0), -1, 1, 1)
    mask_preds = F.conv2d(mask_feats, kernel_preds, stride=1).squeeze(0).sigmoid()
    masks = mask_preds > cfg["mask_thr"]
    sum_masks = masks.sum((1, 2)).float()
    keep = sum_masks > strides
    masks, mask_preds, sum_masks = masks[keep], mask_preds[keep], sum_masks[keep]
    cls_scores, cls_labels = cls_scores[keep], cls_labels[keep]
    mask_scores = (mask_preds * masks).sum((1, 2)) / sum_masks
    cls_scores = cls_scores * mask_scores
    scores, labels, _, keep_inds = mask_matrix_nms(
        masks, cls_labels, cls_scores, mask_area=sum_masks, nms_pre=cfg["nms_pre"],
        max_num=cfg["max_per_img"], kernel=cfg["kernel"], sigma=cfg["sigma"], filter_thr=cfg["filter_thr"])
    mask_preds = mask_preds[keep_inds]
    mask_preds = F.interpolate(mask_preds.unsqueeze(0), size=upsampled_size, mode="bilinear", align_corners=False)[:, :, :h, :w]
    mask_preds = F.interpolate(mask_preds, size=ori_shape, mode="bilinear", align_corners=False).squeeze(0)
    masks = mask_preds > cfg["mask_thr"]
    return scores, labels, masks, int(score_mask.sum()), int(keep.sum())


def tiny_fixture():
    c = TINY
    torch.manual_seed(0)
    model = fill(SOLOv2(c))
    s = c["size"]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
    x = torch.stack([torch.sin(6 * xx + 1.3 * yy), torch.cos(5 * yy - 2 * xx), torch.sin(3 * xx * yy + 0.5)]) * 1.5
    x = x.unsqueeze(0).float()
    with torch.no_grad():
        kernels, clss, mf = model(x)
        ori = (48, 48)
        scores, labels, masks, n_thr, n_area = predict_single(kernels, clss, mf, (s, s), ori, c, TEST_CFG)
    out = {"input": x, "mask_feats": mf}
    for i, (k, cl) in enumerate(zip(kernels, clss)):
        out[f"kernels.{i}"] = k.contiguous()
        out[f"cls_logits.{i}"] = cl.permute(0, 2, 3, 1).contiguous()
    out["pred.scores"] = scores.float().contiguous()
    out["pred.labels"] = labels.to(torch.int64).contiguous()
    out["pred.masks"] = masks.to(torch.uint8).contiguous()
    out["pred.counts"] = torch.tensor([n_thr, n_area], dtype=torch.int64)
    print(f"tiny: {n_thr} above score_thr, {n_area} after area filter, {len(scores)} kept; "
          f"top scores {scores[:5].tolist()}")
    return out


def nms_fixture():
    g = torch.Generator().manual_seed(3)
    n, h, w = 14, 12, 12
    masks = torch.zeros(n, h, w)
    for i in range(n):
        cy, cx = torch.randint(2, 10, (2,), generator=g).tolist()
        r = int(torch.randint(2, 5, (1,), generator=g))
        masks[i, max(cy - r, 0):cy + r, max(cx - r, 0):cx + r] = 1
    masks[5] = masks[2]  # an identical pair (IoU 1)
    labels = torch.randint(0, 2, (n,), generator=g)
    labels[5] = labels[2]
    scores = torch.rand(n, generator=g) * 0.9 + 0.05
    out = {"masks": masks, "labels": labels.to(torch.int64), "scores": scores}
    for kern in ["gaussian", "linear"]:
        s, l, _, k = mask_matrix_nms(masks.bool(), labels, scores, kernel=kern, sigma=2.0)
        out[f"{kern}.scores"] = s.contiguous()
        out[f"{kern}.keep_inds"] = k.to(torch.int64).contiguous()
        s2, _, _, k2 = mask_matrix_nms(masks.bool(), labels, scores, kernel=kern, sigma=2.0,
                                       filter_thr=0.3, max_num=6)
        out[f"{kern}.filtered.scores"] = s2.contiguous()
        out[f"{kern}.filtered.keep_inds"] = k2.to(torch.int64).contiguous()
        print(kern, s.tolist())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sketch-synth/tests/fixtures")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    meta = {"generator": "tools/solov2_fixtures.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__}
    for name, t in [("solov2_tiny", tiny_fixture()), ("solov2_matrix_nms", nms_fixture())]:
        p = os.path.join(a.out, name + ".safetensors")
        save_file(t, p, metadata=meta)
        print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
