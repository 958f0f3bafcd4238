#!/usr/bin/env python3
"""Parity fixtures for the pix2pix port (crates/baselines) from the official junyanz code.

Runs the official `models/networks.py` of junyanz/pytorch-CycleGAN-and-pix2pix (imported from
the folder given on the command line; nothing is copied into this repository and nothing is
downloaded) on the CPU with seeded random weights, and writes one safetensors file per config:

  g.<key>, d.<key>        the official state_dicts (weights and BatchNorm buffers) *before*
                          the training step; BN running stats are first filled by a few
                          train-mode forwards on random data so that eval mode is not trivial
  input.a, input.b        the (sketch, image) pair (batch 1 in the tiny fixture, else 2)
  eval.fake, eval.d_fake, eval.d_real
                          G and D in eval mode (running stats, no dropout)
  mask.<module path>      the dropout keep-masks (0/1) PyTorch drew in the train-mode forward
                          (recorded with forward hooks on the unmodified nn.Dropout modules)
  train.fake, train.d_fake_detached, train.d_real, train.d_fake
                          one pix2pix training step in train mode (batch stats, dropout)
  train.loss_d, train.loss_g, train.loss_g_gan, train.loss_g_l1
  grad_d.<key>, grad_d.input   d loss_D / d (D params, sketch)
  grad_g.<key>, grad_g.input   d loss_G / d (G params, sketch)  (no optimiser step between
                               the two, so both use the same D weights)
  grad64_d.<key>, grad64_g.<key>, grad64_d.input, grad64_g.input
                          (big fixtures only) the same gradients computed in float64 from the
                          same weights, inputs and masks: the f32 gradients of the official
                          config differ from these by up to a few 1e-3 (reductions over
                          256x256 maps and train-mode BatchNorm), so the Rust test measures
                          its error against them as well
  after.g.<buffer>, after.d.<buffer>
                          the BN buffers after that step's forwards (G once, D three times)

The losses are those of `Pix2PixModel.backward_D/backward_G` with `--gan_mode vanilla`:
loss_D = 0.5 * (BCEWithLogits(D(a, fake.detach()), 0) + BCEWithLogits(D(a, b), 1)),
loss_G = BCEWithLogits(D(a, fake), 1) + 100 * L1(fake, b).

Usage (the command the committed fixture was made with):
  /work/venv-ref/bin/python tools/baselines_pix2pix_fixtures.py --reference /work/ref/pcg \
      --reference-commit 78913853ab4a4f5eba717af8433809300c99f0bb \
      --out crates/baselines/tests/fixtures/pix2pix_tiny.safetensors --big-dir /tmp/p2p-big
The converter test's checkpoints (then converted, see tools/baselines_convert.py):
  ... --checkpoint-dir /tmp/p2p-ckpt
  python3 tools/baselines_convert.py --norm batch /tmp/p2p-ckpt/latest_net_G.pth \
      crates/baselines/tests/fixtures/pix2pix_tiny_net_G.safetensors   (and _D likewise)
`--big-dir` (optional) also writes pix2pix_narrow_64.safetensors and
pix2pix_official_256.safetensors there, for the ignored Rust test
(`S2M_PIX2PIX_BIG_FIXTURES=/tmp/p2p-big cargo test -p baselines -- --ignored`).
"""

import argparse
import inspect
import json
import os
import subprocess
import sys

CONFIGS = {
    # name: (image_size, num_downs, ngf, ndf, all D grads, batch); the committed tiny fixture has
    # batch 1 to stay small (BN statistics over the batch are covered by the big ones).
    "tiny_64": (64, 6, 2, 2, True, 1),
    "narrow_64": (64, 6, 32, 32, False, 2),
    "official_256": (256, 8, 64, 64, False, 2),
}
INPUT_NC, OUTPUT_NC, N_LAYERS, LAMBDA_L1 = 1, 3, 3, 100.0

# The parameters whose gradients the fixtures keep (the tiny one keeps all of D's).
G_NAMED = ["model.model.0.weight", "model.model.3.weight", "model.model.3.bias",
           "model.model.1.model.1.weight", "model.model.1.model.2.weight",
           "model.model.1.model.2.bias", "model.model.1.model.6.weight",
           "model.model.1.model.3.model.3.model.3.model.5.weight",
           "model.model.1.model.3.model.3.model.3.model.6.weight",
           "model.model.1.model.3.model.3.model.3.model.3.model.1.weight"]
D_NAMED = ["model.0.weight", "model.0.bias", "model.2.weight", "model.3.weight",
           "model.3.bias", "model.11.weight", "model.11.bias"]


def reference_commit(ref, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", ref, "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def build(networks, torch, name, seed):
    size, num_downs, ngf, ndf, _, _ = CONFIGS[name]
    torch.manual_seed(seed)
    norm = networks.get_norm_layer("batch")
    g = networks.UnetGenerator(INPUT_NC, OUTPUT_NC, num_downs, ngf, norm_layer=norm, use_dropout=True)
    d = networks.NLayerDiscriminator(INPUT_NC + OUTPUT_NC, ndf, N_LAYERS, norm_layer=norm)
    # init_net(..., 'normal', 0.02) of the official code, without the device move.
    networks.init_weights(g, "normal", 0.02)
    networks.init_weights(d, "normal", 0.02)
    return g, d, size


def vanilla_loss(networks, torch):
    """GANLoss('vanilla') where this commit has it; else the same loss from torch."""
    params = inspect.signature(networks.GANLoss.__init__).parameters
    if "gan_mode" in params:
        return networks.GANLoss("vanilla"), "networks.GANLoss('vanilla')"
    bce = torch.nn.BCEWithLogitsLoss()

    def loss(pred, real):
        return bce(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    return loss, ("torch.nn.BCEWithLogitsLoss with constant targets 1/0 (this commit's GANLoss "
                  "predates gan_mode; HEAD's GANLoss('vanilla') is this loss)")


def pix2pix_step(torch, g, d, a, b, gan_loss):
    """One pix2pix step's losses (no optimiser step between backward_D and backward_G)."""
    l1 = torch.nn.L1Loss()
    a = a.clone().requires_grad_(True)
    fake = g(a)
    pred_fake_det = d(torch.cat([a, fake.detach()], 1))
    pred_real = d(torch.cat([a, b], 1))
    loss_d = (gan_loss(pred_fake_det, False) + gan_loss(pred_real, True)) * 0.5
    d_params = dict(d.named_parameters())
    gd = torch.autograd.grad(loss_d, list(d_params.values()) + [a])
    pred_fake = d(torch.cat([a, fake], 1))
    loss_g_gan = gan_loss(pred_fake, True)
    loss_g_l1 = l1(fake, b)
    loss_g = loss_g_gan + LAMBDA_L1 * loss_g_l1
    g_params = dict(g.named_parameters())
    gg = torch.autograd.grad(loss_g, list(g_params.values()) + [a])
    grads_d = dict(zip(list(d_params.keys()) + ["input"], gd))
    grads_g = dict(zip(list(g_params.keys()) + ["input"], gg))
    return dict(fake=fake, pred_fake_det=pred_fake_det, pred_real=pred_real, pred_fake=pred_fake,
                loss_d=loss_d, loss_g=loss_g, loss_g_gan=loss_g_gan, loss_g_l1=loss_g_l1,
                grads_d=grads_d, grads_g=grads_g)


def float64_grads(networks, torch, name, g_state, d_state, masks, a, b, gan_loss):
    """The step's gradients in float64 (same weights, inputs, dropout masks)."""
    size, num_downs, ngf, ndf, _, _ = CONFIGS[name]
    norm = networks.get_norm_layer("batch")
    g = networks.UnetGenerator(INPUT_NC, OUTPUT_NC, num_downs, ngf, norm_layer=norm, use_dropout=True)
    d = networks.NLayerDiscriminator(INPUT_NC + OUTPUT_NC, ndf, N_LAYERS, norm_layer=norm)
    g.load_state_dict(g_state); d.load_state_dict(d_state)
    g.double().train(); d.double().train()
    for mname, m in g.named_modules():
        if isinstance(m, torch.nn.Dropout):
            # Replace the module's output by the recorded mask (keep / (1 - p)).
            m.register_forward_hook(
                lambda mod, inp, outp, mname=mname: inp[0] * masks[mname].double() / (1 - mod.p))
    r = pix2pix_step(torch, g, d, a.double(), b.double(), gan_loss)
    return r["grads_d"], r["grads_g"]


def make_fixture(networks, torch, name, seed, path, provenance, checkpoint_dir=None):
    g, d, size = build(networks, torch, name, seed)
    all_grads, BATCH = CONFIGS[name][4], CONFIGS[name][5]
    gen = torch.Generator().manual_seed(seed + 1)
    # Fill the BN running stats: a few train-mode forwards on random pairs.
    g.train(); d.train()
    with torch.no_grad():
        for _ in range(3):
            a = torch.rand(BATCH, INPUT_NC, size, size, generator=gen) * 2 - 1
            b = torch.rand(BATCH, OUTPUT_NC, size, size, generator=gen) * 2 - 1
            f = g(a)
            d(torch.cat([a, f], 1)); d(torch.cat([a, b], 1))
    out = {}
    for k, v in g.state_dict().items():
        out["g." + k] = v.clone()
    for k, v in d.state_dict().items():
        out["d." + k] = v.clone()
    a = torch.rand(BATCH, INPUT_NC, size, size, generator=gen) * 2 - 1
    b = torch.rand(BATCH, OUTPUT_NC, size, size, generator=gen) * 2 - 1
    out["input.a"], out["input.b"] = a.clone(), b.clone()

    g.eval(); d.eval()
    with torch.no_grad():
        fe = g(a)
        out["eval.fake"] = fe
        out["eval.d_fake"] = d(torch.cat([a, fe], 1))
        out["eval.d_real"] = d(torch.cat([a, b], 1))

    g.train(); d.train()
    masks = {}
    hooks = []
    for mname, m in g.named_modules():
        if isinstance(m, torch.nn.Dropout):
            def hook(mod, inp, outp, mname=mname):
                masks[mname] = (outp != 0).to(torch.float32)
            hooks.append(m.register_forward_hook(hook))
    gan_loss, gan_desc = vanilla_loss(networks, torch)
    if checkpoint_dir:
        # Official-format checkpoints of these weights (BaseModel.save_networks does exactly
        # torch.save(net.state_dict(), '<epoch>_net_<name>.pth')), for the converter test.
        os.makedirs(checkpoint_dir, exist_ok=True)
        torch.save(g.state_dict(), os.path.join(checkpoint_dir, "latest_net_G.pth"))
        torch.save(d.state_dict(), os.path.join(checkpoint_dir, "latest_net_D.pth"))
    g_state = {k: v.clone() for k, v in g.state_dict().items()}
    d_state = {k: v.clone() for k, v in d.state_dict().items()}
    r = pix2pix_step(torch, g, d, a, b, gan_loss)
    for h in hooks:
        h.remove()
    for k, v in masks.items():
        out["mask." + k] = v
    out["train.fake"] = r["fake"].detach()
    out["train.d_fake_detached"] = r["pred_fake_det"].detach()
    out["train.d_real"] = r["pred_real"].detach()
    out["train.d_fake"] = r["pred_fake"].detach()
    for k in ("loss_d", "loss_g", "loss_g_gan", "loss_g_l1"):
        out["train." + k] = r[k].detach().reshape(1)
    keep_d = lambda k: all_grads or k in D_NAMED or k == "input"
    keep_g = lambda k: k in G_NAMED or k == "input"
    for k, gr in r["grads_d"].items():
        if keep_d(k):
            out["grad_d." + k] = gr
    for k, gr in r["grads_g"].items():
        if keep_g(k):
            out["grad_g." + k] = gr
    if name != "tiny_64":
        gd64, gg64 = float64_grads(networks, torch, name, g_state, d_state, masks, a, b, gan_loss)
        for k, gr in gd64.items():
            if keep_d(k):
                out["grad64_d." + k] = gr
        for k, gr in gg64.items():
            if keep_g(k):
                out["grad64_g." + k] = gr
    for prefix, net in (("g.", g), ("d.", d)):
        for k, v in net.state_dict().items():
            if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
                out["after." + prefix + k] = v.clone()

    size_, num_downs, ngf, ndf, _, _ = CONFIGS[name]
    meta = dict(provenance)
    meta["config"] = json.dumps({
        "name": name, "image_size": size_, "num_downs": num_downs, "ngf": ngf, "ndf": ndf,
        "input_nc": INPUT_NC, "output_nc": OUTPUT_NC, "n_layers_D": N_LAYERS, "norm": "batch",
        "use_dropout": True, "lambda_L1": LAMBDA_L1, "batch": BATCH, "seed": seed,
        "init": "init_weights(net, 'normal', 0.02)"})
    meta["gan_loss"] = gan_desc
    meta["keys.g"] = json.dumps(sorted([k, list(v.shape)] for k, v in g.state_dict().items()))
    meta["keys.d"] = json.dumps(sorted([k, list(v.shape)] for k, v in d.state_dict().items()))
    meta["dropout_modules"] = json.dumps(sorted(masks.keys()))
    from safetensors.torch import save_file
    out = {k: v.detach().contiguous() for k, v in out.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(out, path, metadata=meta)
    print(f"{name}: {len(out)} tensors -> {path} ({os.path.getsize(path)} bytes); "
          f"loss_D {r['loss_d'].item():.6f} loss_G {r['loss_g'].item():.6f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True,
                    help="folder of junyanz/pytorch-CycleGAN-and-pix2pix (holds models/networks.py)")
    ap.add_argument("--reference-commit", default=None,
                    help="commit of that folder, for the provenance (default: git rev-parse HEAD)")
    ap.add_argument("--out", required=True, help="the tiny fixture (committed)")
    ap.add_argument("--big-dir", default=None,
                    help="also write the narrow_64 and official_256 fixtures to this folder")
    ap.add_argument("--checkpoint-dir", default=None,
                    help="also save the tiny G and D as official checkpoints (latest_net_G.pth, "
                         "latest_net_D.pth) there, for tools/baselines_convert.py")
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.path.insert(0, os.path.abspath(args.reference))
    import torch
    from models import networks
    torch.set_num_threads(1)
    provenance = {
        "script": "tools/baselines_pix2pix_fixtures.py",
        "reference_repository": "junyanz/pytorch-CycleGAN-and-pix2pix",
        "reference_commit": reference_commit(args.reference, args.reference_commit),
        "reference_files": "models/networks.py (UnetGenerator, NLayerDiscriminator, get_norm_layer, init_weights, GANLoss)",
        "torch_version": torch.__version__,
        "stubbed": ("nothing in networks.py; the reference folder's models/__init__.py may be an "
                    "empty stub (only networks.py is imported); the optimiser step between "
                    "backward_D and backward_G is left out (both losses use the same D weights)"),
        "command": " ".join(sys.argv),
    }
    make_fixture(networks, torch, "tiny_64", args.seed, args.out, provenance, args.checkpoint_dir)
    if args.big_dir:
        for name in ("narrow_64", "official_256"):
            make_fixture(networks, torch, name, args.seed,
                         os.path.join(args.big_dir, f"pix2pix_{name}.safetensors"), provenance)


if __name__ == "__main__":
    main()
