#!/usr/bin/env python3
"""MoCo loss parity fixture for crates/losses, made by HyperStyle's own `criteria/moco_loss.py`
`MocoLoss` (yuval-alaluf/hyperstyle, imported from a checkout by `hyperstyle_reference.py`;
pSp, e4e and ReStyle carry the same class). Nothing of HyperStyle is copied here.

`MocoLoss()` is constructed by its own `__init__`: torchvision `resnet50()`, the checkpoint read
from `configs/paths_config.py` `model_paths['moco']`, its key renaming (`module.encoder_q.*`
minus the MLP head `fc.*`), `load_state_dict(strict=False)` with its assertion that only
`fc.weight`/`fc.bias` are missing, and the `Sequential` up to the average pool. Then
`MocoLoss.forward(y_hat, y, x)` gives the loss (x = y: HyperStyle passes its input image there,
which only enters the logged `sim_improvement`), and autograd the gradient w.r.t. y_hat. Run in
f64 (the model converted with `.double()` after construction) on the f32 weights.

Stubbed (and nothing else; the fixture's `stubbed` metadata says the same):
- `torch.load` of `model_paths['moco']` (the MoCo-v2 800-epoch checkpoint, not downloaded):
  while `MocoLoss()` is constructed, `torch.load` of that path returns `{"state_dict": ...}`
  with a MoCo checkpoint's keys (`module.encoder_q.*` with the 2-layer MLP head `fc.0`/`fc.2`,
  `module.encoder_k.*`, `module.queue`, `module.queue_ptr`); the `encoder_q` backbone values
  follow the `backbones::synthetic` formula by torchvision name (so the Rust test rebuilds the
  network without a weight file), the rest are seeded random values (dropped by MocoLoss).
  Any other `torch.load` raises.
- `.cuda()` (`MocoLoss.__init__` moves the model to the GPU): identity while constructing.
- the CUDA-op compile at import (hyperstyle_reference.py), which this class never reaches.

Writes crates/losses/tests/fixtures/moco_hyperstyle.safetensors: `y_hat`, `y` [2, 3, 56, 56]
in [-1, 1], `loss` [] (mean_b 1 - <f(y_hat), f(y)>), `cos` [2], `feat_y_hat`, `feat_y`
[2, 2048] (`extract_feats`), `grad_y_hat`; metadata `torch_f32_err.{loss,grad_y_hat}`: PyTorch's own f32 run against the
f64 answer (the input gradient is ill-conditioned in f32: 1 - cos is ~1e-2, so it is the small
difference of nearly parallel unit vectors). Checked by
`cargo test -p losses --test parity moco` (f32 and f64).

    /work/venv-ref/bin/python tools/moco_fixture.py --hyperstyle /work/ref/hyperstyle
"""
import argparse
import contextlib
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hyperstyle_reference as ref  # noqa: E402
from backbones_fixtures import synthetic_values  # noqa: E402

LOAD_STUB = (
    "torch.load of configs/paths_config.py model_paths['moco'] (moco_v2_800ep_pretrain.pt) returns, while "
    "MocoLoss() is constructed, {'state_dict': ...} with a MoCo-v2 checkpoint's keys: module.encoder_q.* "
    "(torchvision resnet50 names + MLP head fc.0/fc.2), module.encoder_k.*, module.queue, module.queue_ptr; "
    "encoder_q backbone values from the backbones::synthetic formula by torchvision name, the rest seeded "
    "random (MocoLoss drops them)"
)


def fake_moco_checkpoint(seed):
    import torchvision

    g = torch.Generator().manual_seed(seed)
    r = torchvision.models.resnet50(weights=None)
    sd = {}
    for k, t in r.state_dict().items():
        if k.startswith("fc."):
            continue
        if k.endswith("num_batches_tracked"):
            v = torch.zeros((), dtype=torch.long)
        else:
            v = torch.from_numpy(synthetic_values(k, tuple(t.shape))).float()
        sd[f"module.encoder_q.{k}"] = v
        sd[f"module.encoder_k.{k}"] = torch.randn(t.shape, generator=g) if t.is_floating_point() else t.clone()
    for enc in ("encoder_q", "encoder_k"):  # MoCo v2's MLP projection head
        sd[f"module.{enc}.fc.0.weight"] = torch.randn(2048, 2048, generator=g) * 0.02
        sd[f"module.{enc}.fc.0.bias"] = torch.zeros(2048)
        sd[f"module.{enc}.fc.2.weight"] = torch.randn(128, 2048, generator=g) * 0.02
        sd[f"module.{enc}.fc.2.bias"] = torch.zeros(128)
    sd["module.queue"] = torch.nn.functional.normalize(torch.randn(128, 65536, generator=g), dim=0)
    sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return {"epoch": 800, "arch": "resnet50", "state_dict": sd}


@contextlib.contextmanager
def stub_moco_load(path, ckpt):
    real = torch.load

    def load(f, *a, **k):
        if f != path:
            raise RuntimeError(f"unexpected torch.load({f!r}) while constructing MocoLoss")
        return ckpt

    torch.load = load
    try:
        yield
    finally:
        torch.load = real


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hyperstyle", required=True, help="HyperStyle checkout (yuval-alaluf/hyperstyle)")
    ap.add_argument("--hyperstyle-commit")
    ap.add_argument("--out", default="crates/losses/tests/fixtures")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    commit = ref.commit_of(args.hyperstyle, args.hyperstyle_commit)
    hs = ref.import_hyperstyle(args.hyperstyle)
    path = hs.paths_config.model_paths["moco"]
    with stub_moco_load(path, fake_moco_checkpoint(args.seed)), ref.cpu_construction(hs):
        loss_fn = hs.moco_loss.MocoLoss()

    g = torch.Generator().manual_seed(args.seed + 1)
    # 56 px: MocoLoss resizes to 224 with F.interpolate (nearest), whose source index
    # floor(dst * in / out) PyTorch computes in the tensor's precision; for 64 -> 224 the f64
    # and f32 runs pick different pixels (e.g. dst = 7: 2.0000001 vs 1.9999999), for 56 -> 224
    # (scale 1/4, exact) they agree, so the f64 run is the exact answer to the f32 pipeline.
    y = torch.rand((2, 3, 56, 56), generator=g) * 2 - 1
    # A low-contrast, blurred, noisy copy: with the formula-filled ResNet-50 (whose pooled
    # features share a large positive mean) this keeps 1 - cos near 1e-2, well above f32 noise.
    blur = torch.nn.functional.avg_pool2d(y, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    y_hat = (0.25 * blur + 0.05 * torch.randn(y.shape, generator=g)).clamp(-1, 1)
    # PyTorch's own f32 run, for its error against the f64 answer (metadata torch_f32_err.*)
    yh32 = y_hat.clone().requires_grad_(True)
    loss32, _, _ = loss_fn(yh32, y, y)
    (grad32,) = torch.autograd.grad(loss32, [yh32])
    loss_fn = loss_fn.double()
    yh = y_hat.double().requires_grad_(True)
    loss, sim_improvement, logs = loss_fn(yh, y.double(), y.double())
    (grad,) = torch.autograd.grad(loss, [yh])
    with torch.no_grad():
        f_hat = loss_fn.extract_feats(y_hat.double())
        f_y = loss_fn.extract_feats(y.double())
    out = {
        "y_hat": y_hat,
        "y": y,
        "loss": loss.detach().float(),
        "cos": torch.tensor([lg["diff_target"] for lg in logs]).float(),
        "feat_y_hat": f_hat.float(),
        "feat_y": f_y.float(),
        "grad_y_hat": grad.float(),
    }
    meta = ref.provenance(
        "tools/moco_fixture.py", commit,
        json.dumps({"batch": 2, "size": 56, "dtype": "float64 forward on float32 weights", "x": "= y"}),
        "; ".join([LOAD_STUB, ref.CUDA_STUB, ref.IMPORT_STUB]),
        reference_call="criteria/moco_loss.py MocoLoss() then MocoLoss.forward(y_hat, y, x=y); "
                       "extract_feats for feat_*; torch.autograd.grad(loss, y_hat)",
        torchvision=__import__("torchvision").__version__,
        **{"torch_f32_err.loss": f"{float((loss32.double() - loss).abs() / loss.abs()):.2e}",
           "torch_f32_err.grad_y_hat": f"{float((grad32.double() - grad).abs().max() / grad.abs().max()):.2e}"},
        seed=args.seed,
    )
    os.makedirs(args.out, exist_ok=True)
    p = os.path.join(args.out, "moco_hyperstyle.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, p, metadata=meta)
    print(f"{p}: {os.path.getsize(p)} bytes; loss {float(loss):.6f}, cos {out['cos'].tolist()}, "
          f"max|grad| {float(grad.abs().max()):.3e}")


if __name__ == "__main__":
    main()
