#!/usr/bin/env python3
"""Converts OpenAI CLIP RN50 (`RN50.pt`, TorchScript fp16, or a plain state dict) into the
safetensors file read by `metrics::clip_iqa::ClipIqa::load`.

Output keys: `visual.*` (OpenAI names, fp32; the attention pool's positional embedding is kept
but unused, CLIP-IQA runs with pos_embedding=False), `text_features` [2P, 1024] = OpenAI CLIP
`encode_text` of the prompt pairs (positive first; not normalised), `logit_scale` (the stored
log value; exp = 100 for the released models). Metadata `prompts` = JSON list of pairs.

The text features are precomputed here because the prompts are fixed: the Rust metric then
needs only the image tower (docs/METRICS.md).

Usage (needs torch and the `openai-clip` package, or pyiqa which vendors the CLIP code):
    python3 tools/metrics_convert_clip.py RN50.pt weights/clip_rn50_iqa.safetensors
    python3 tools/metrics_convert_clip.py --prompts pyiqa RN50.pt weights/clip_rn50_iqa_pyiqa.safetensors
"""
import argparse
import json

import torch
from safetensors.torch import save_file

PROMPTS = {
    # The original CLIP-IQA pair (IceClear/CLIP-IQA, piq).
    "original": [("Good photo.", "Bad photo.")],
    # pyiqa's `clipiqa` ensemble.
    "pyiqa": [
        ("Good image", "bad image"),
        ("Sharp image", "blurry image"),
        ("sharp edges", "blurry edges"),
        ("High resolution image", "low resolution image"),
        ("Noise-free image", "noisy image"),
    ],
}


def convert_model(model, prompts):
    """model: an OpenAI-CLIP-style module (visual, encode_text, logit_scale)."""
    import clip

    model = model.float().eval()
    flat = [p for pair in prompts for p in pair]
    with torch.no_grad():
        text = model.encode_text(clip.tokenize(flat)).float()
    out = {k: v.float().contiguous() for k, v in model.state_dict().items() if k.startswith("visual.")}
    out = {k: v for k, v in out.items() if not k.endswith("num_batches_tracked")}
    out["text_features"] = text.contiguous()
    out["logit_scale"] = model.logit_scale.detach().float().reshape(1).contiguous()
    meta = {"prompts": json.dumps(prompts), "generator": "tools/metrics_convert_clip.py"}
    return out, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--prompts", choices=sorted(PROMPTS), default="original")
    args = ap.parse_args()
    from clip.model import build_model

    # OpenAI's RN50.pt is a TorchScript archive (fp16); a plain state dict also works.
    try:
        sd = torch.jit.load(args.src, map_location="cpu").state_dict()
    except Exception:
        sd = torch.load(args.src, map_location="cpu", weights_only=True)
    model = build_model({k: v for k, v in sd.items()}).float()
    out, meta = convert_model(model, PROMPTS[args.prompts])
    save_file(out, args.dst, metadata=meta)
    print(f"{args.dst}: {len(out)} tensors, prompts {args.prompts}")


if __name__ == "__main__":
    main()
