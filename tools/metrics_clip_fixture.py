#!/usr/bin/env python3
"""Parity fixture for CLIP-IQA (crates/metrics/tests/fixtures/clip_iqa.safetensors).

Builds pyiqa's OpenAI-CLIP RN50 (`pyiqa.archs.clip_model.CLIP`, the network `clip.load("RN50")`
returns), fills every parameter with the synthetic formula of `backbones::synthetic`
(tools/backbones_fixtures.py) except `logit_scale` = ln(100), and runs **pyiqa's `CLIPIQA`**
(`model_type="clipiqa"`, pos_embedding=False) on two small images in [0, 1], with the original
prompt pair and with pyiqa's 5 pairs. Stores the images, the text features of both prompt sets
(through `tools/metrics_convert_clip.py`'s code path), the image embeddings and the scores.

Usage: .venv/bin/python tools/metrics_clip_fixture.py [--dump-model /tmp/fake_rn50.pt]
(--dump-model also writes the synthetic state dict, to exercise the converter end to end.)
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backbones_fixtures as bf  # noqa: E402
import metrics_convert_clip as conv  # noqa: E402


def synthetic_clip():
    from pyiqa.archs.clip_model import CLIP

    m = CLIP(1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12)
    sd = m.state_dict()
    new = {}
    for k, t in sd.items():
        if k.endswith("num_batches_tracked"):
            new[k] = t
        elif k == "logit_scale":
            new[k] = torch.tensor(math.log(100.0))
        else:
            new[k] = torch.from_numpy(bf.synthetic_values(k, tuple(t.shape))).to(torch.float32)
    m.load_state_dict(new)
    return m.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/metrics/tests/fixtures/clip_iqa.safetensors")
    ap.add_argument("--dump-model", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    import clip
    import pyiqa.archs.clipiqa_arch as ca

    model = synthetic_clip()
    if args.dump_model:
        torch.save(model.state_dict(), args.dump_model)
    ca.load = lambda *a, **k: model  # pyiqa downloads RN50.pt here
    iqa = ca.CLIPIQA(model_type="clipiqa", backbone="RN50", pretrained=False).eval()
    x = bf.image((2, 3, 64, 80), 0.0, 1.0)
    t = {"images": x}
    with torch.no_grad():
        mean = torch.tensor(ca.OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(ca.OPENAI_CLIP_STD).view(1, 3, 1, 1)
        t["image_features"] = model.encode_image((x - mean) / std, False)
        for name, prompts in conv.PROMPTS.items():
            iqa.prompt_pairs = clip.tokenize([p for pair in prompts for p in pair])
            t[f"score_{name}"] = iqa(x).reshape(-1)
            out, _ = conv.convert_model(model, prompts)
            t[f"text_features_{name}"] = out["text_features"]
            print(name, t[f"score_{name}"])
    t = {k: v.detach().float().contiguous() for k, v in t.items()}
    save_file(t, args.out, metadata={"torch": torch.__version__, "generator": "tools/metrics_clip_fixture.py"})
    print(args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
