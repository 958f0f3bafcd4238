#!/usr/bin/env python3
"""Parity fixtures for the CycleGAN port (crates/baselines/src/cyclegan) from the official code.

Runs the official `models/networks.py` of junyanz/pytorch-CycleGAN-and-pix2pix (imported from
the folder given on the command line; nothing is copied into this repository and nothing is
downloaded) on the CPU with seeded random weights (`init_weights(net, 'normal', 0.02)`), and
writes one safetensors file per config:

  g_a.<key>, g_b.<key>, d_a.<key>, d_b.<key>   the official state_dicts (G_A: A -> B, G_B:
                          B -> A, both `ResnetGenerator`; D_A judges B, D_B judges A, both
                          `NLayerDiscriminator`), InstanceNorm (affine=False, no running stats)
  input.a, input.b        one unpaired batch of each domain
  fwd.fake_b, fwd.rec_a, fwd.fake_a, fwd.rec_b, fwd.idt_a, fwd.idt_b
                          the translations of `CycleGANModel.forward` and the identity images
                          (the tiny fixture keeps fake_b, rec_a and fake_a only, to stay small)
  fwd.d_a_fake, fwd.d_b_fake, fwd.d_a_real, fwd.d_b_real   the D patch maps
  loss.g, loss.g_a, loss.g_b, loss.cycle_a, loss.cycle_b, loss.idt_a, loss.idt_b
                          `backward_G`'s terms (LSGAN; lambda_A = lambda_B = 10, identity 0.5)
  loss.d_a, loss.d_b      `backward_D_basic` for D_A (real B, fake B) and D_B (real A, fake A);
                          the pool is in its filling phase (it returns the new fakes), as in the
                          official first step
  grad_g.<net>.<key>, grad_g.input.a, grad_g.input.b
                          d loss_G / d (named G_A and G_B parameters, both inputs)
  grad_d.<net>.<key>, grad_d.input.a, grad_d.input.b
                          d (loss_D_A + loss_D_B) / d (D parameters, both inputs); the tiny
                          fixture keeps every D parameter
  grad64_g.*, grad64_d.*  (big fixtures only) the same gradients in float64 from the same weights
                          and inputs, for judging f32 rounding at 256 px

The G step and the D step use the same (initial) weights, as in the official first iteration
(`optimize_parameters` steps G, then computes the D losses on the fakes of the same forward with
D's weights unchanged). Usage (the committed fixture):
  /work/venv-ref/bin/python tools/baselines_cyclegan_fixtures.py --reference /work/ref/pcg \\
      --reference-commit 78913853ab4a4f5eba717af8433809300c99f0bb \\
      --out crates/baselines/tests/fixtures/cyclegan_tiny.safetensors \\
      --checkpoint-dir /tmp/cg-ckpt --big-dir /tmp/cg-big
`--checkpoint-dir` also saves the tiny networks as official checkpoints
(`latest_net_{G_A,G_B,D_A,D_B}.pth`, `torch.save(net.state_dict(), ...)` as
`BaseModel.save_networks` does) and, under `legacy/`, the same weights saved by networks built
with this commit's `get_norm_layer('instance')` (InstanceNorm with `track_running_stats=True`,
so the files carry the legacy `running_mean` / `running_var` / `num_batches_tracked` keys the
converter must drop). `--big-dir` writes cyclegan_narrow_64.safetensors and
cyclegan_official_256.safetensors for the ignored Rust test
(`S2M_CYCLEGAN_BIG_FIXTURES=/tmp/cg-big cargo test -p baselines --test cyclegan -- --ignored`).
"""

import argparse
import functools
import inspect
import json
import os
import subprocess
import sys

CONFIGS = {
    # name: (image_size, ngf, ndf, n_blocks, batch, compact)
    "tiny_64": (64, 4, 4, 6, 1, True),
    "narrow_64": (64, 16, 16, 6, 2, False),
    "official_256": (256, 64, 64, 9, 1, False),
}
INPUT_NC, OUTPUT_NC, N_LAYERS = 3, 3, 3
LAMBDA_A, LAMBDA_B, LAMBDA_IDT = 10.0, 10.0, 0.5


def g_named(n):
    return ["model.1.weight", "model.1.bias", "model.4.weight", "model.7.weight", "model.7.bias",
            "model.10.conv_block.1.weight", "model.10.conv_block.5.weight", "model.10.conv_block.5.bias",
            f"model.{9 + n}.conv_block.5.weight", f"model.{10 + n}.weight", f"model.{10 + n}.bias",
            f"model.{13 + n}.weight", f"model.{17 + n}.weight", f"model.{17 + n}.bias"]


D_NAMED = ["model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias", "model.8.weight",
           "model.11.weight", "model.11.bias"]


def reference_commit(ref, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", ref, "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def instance_norm(networks, torch):
    """HEAD's `get_norm_layer('instance')` (no running stats); this commit's has
    track_running_stats=True, which changes eval mode and adds buffers."""
    nl = networks.get_norm_layer("instance")
    if nl.keywords.get("track_running_stats", False):
        return (functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False),
                "get_norm_layer('instance') replaced by HEAD's definition "
                "(InstanceNorm2d(affine=False, track_running_stats=False)); this commit's sets "
                "track_running_stats=True")
    return nl, "networks.get_norm_layer('instance')"


def lsgan_loss(networks, torch):
    params = inspect.signature(networks.GANLoss.__init__).parameters
    if "gan_mode" in params:
        return networks.GANLoss("lsgan"), "networks.GANLoss('lsgan')"
    return networks.GANLoss(use_lsgan=True), "networks.GANLoss(use_lsgan=True) (MSELoss to 1/0)"


def build(networks, torch, name, seed, norm):
    size, ngf, ndf, n_blocks, _, _ = CONFIGS[name]
    torch.manual_seed(seed)
    nets = {
        "g_a": networks.ResnetGenerator(INPUT_NC, OUTPUT_NC, ngf, norm_layer=norm, use_dropout=False, n_blocks=n_blocks),
        "g_b": networks.ResnetGenerator(OUTPUT_NC, INPUT_NC, ngf, norm_layer=norm, use_dropout=False, n_blocks=n_blocks),
        "d_a": networks.NLayerDiscriminator(OUTPUT_NC, ndf, N_LAYERS, norm_layer=norm),
        "d_b": networks.NLayerDiscriminator(INPUT_NC, ndf, N_LAYERS, norm_layer=norm),
    }
    for net in nets.values():
        networks.init_weights(net, "normal", 0.02)
        net.train()
    return nets, size


def cycle_step(torch, nets, a, b, gan):
    """`forward` + `backward_G` + `backward_D_A/B` (pool filling: fakes returned as they are)."""
    l1 = torch.nn.L1Loss()
    a = a.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    g_a, g_b, d_a, d_b = nets["g_a"], nets["g_b"], nets["d_a"], nets["d_b"]
    fake_b = g_a(a); rec_a = g_b(fake_b)
    fake_a = g_b(b); rec_b = g_a(fake_a)
    idt_a = g_a(b); idt_b = g_b(a)
    loss_idt_a = l1(idt_a, b) * LAMBDA_B * LAMBDA_IDT
    loss_idt_b = l1(idt_b, a) * LAMBDA_A * LAMBDA_IDT
    d_a_fake = d_a(fake_b); d_b_fake = d_b(fake_a)
    loss_g_a = gan(d_a_fake, True)
    loss_g_b = gan(d_b_fake, True)
    loss_cycle_a = l1(rec_a, a) * LAMBDA_A
    loss_cycle_b = l1(rec_b, b) * LAMBDA_B
    loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
    g_params = [("g_a." + k, p) for k, p in g_a.named_parameters()] + \
               [("g_b." + k, p) for k, p in g_b.named_parameters()]
    gg = torch.autograd.grad(loss_g, [p for _, p in g_params] + [a, b])
    grads_g = dict(zip([k for k, _ in g_params] + ["input.a", "input.b"], gg))
    d_a_real = d_a(b); d_b_real = d_b(a)
    loss_d_a = (gan(d_a_real, True) + gan(d_a(fake_b.detach()), False)) * 0.5
    loss_d_b = (gan(d_b_real, True) + gan(d_b(fake_a.detach()), False)) * 0.5
    d_params = [("d_a." + k, p) for k, p in d_a.named_parameters()] + \
               [("d_b." + k, p) for k, p in d_b.named_parameters()]
    gd = torch.autograd.grad(loss_d_a + loss_d_b, [p for _, p in d_params] + [a, b])
    grads_d = dict(zip([k for k, _ in d_params] + ["input.a", "input.b"], gd))
    fwd = dict(fake_b=fake_b, rec_a=rec_a, fake_a=fake_a, rec_b=rec_b, idt_a=idt_a, idt_b=idt_b,
               d_a_fake=d_a_fake, d_b_fake=d_b_fake, d_a_real=d_a_real, d_b_real=d_b_real)
    losses = dict(g=loss_g, g_a=loss_g_a, g_b=loss_g_b, cycle_a=loss_cycle_a,
                  cycle_b=loss_cycle_b, idt_a=loss_idt_a, idt_b=loss_idt_b, d_a=loss_d_a, d_b=loss_d_b)
    return fwd, losses, grads_g, grads_d


def make_fixture(networks, torch, name, seed, path, provenance, norm, gan, checkpoint_dir=None):
    nets, size = build(networks, torch, name, seed, norm)
    _, ngf, ndf, n_blocks, batch, compact = CONFIGS[name]
    gen = torch.Generator().manual_seed(seed + 1)
    a = torch.rand(batch, INPUT_NC, size, size, generator=gen) * 2 - 1
    b = torch.rand(batch, OUTPUT_NC, size, size, generator=gen) * 2 - 1
    out = {}
    for net_name, net in nets.items():
        for k, v in net.state_dict().items():
            out[f"{net_name}.{k}"] = v.clone()
    out["input.a"], out["input.b"] = a.clone(), b.clone()
    if checkpoint_dir:
        os.makedirs(os.path.join(checkpoint_dir, "legacy"), exist_ok=True)
        legacy_norm = networks.get_norm_layer("instance")
        legacy, _ = build(networks, torch, name, seed, legacy_norm)
        for net_name, net in nets.items():
            official = "latest_net_" + net_name.upper()
            torch.save(net.state_dict(), os.path.join(checkpoint_dir, official + ".pth"))
            missing, unexpected = legacy[net_name].load_state_dict(net.state_dict(), strict=False)
            assert not unexpected
            torch.save(legacy[net_name].state_dict(), os.path.join(checkpoint_dir, "legacy", official + ".pth"))
    fwd, losses, grads_g, grads_d = cycle_step(torch, nets, a, b, gan)
    keep_fwd = ("fake_b", "rec_a", "fake_a") if compact else tuple(k for k in fwd if not k.startswith("d_"))
    for k, v in fwd.items():
        if k in keep_fwd or k.startswith("d_"):
            out["fwd." + k] = v.detach()
    for k, v in losses.items():
        out["loss." + k] = v.detach().reshape(1)
    named_g = g_named(n_blocks)
    keep_g = lambda k: k.startswith("input.") or k.split(".", 1)[1] in named_g
    keep_d = lambda k: compact or k.startswith("input.") or k.split(".", 1)[1] in D_NAMED
    for k, gr in grads_g.items():
        if keep_g(k):
            out["grad_g." + k] = gr
    for k, gr in grads_d.items():
        if keep_d(k):
            out["grad_d." + k] = gr
    if not compact:
        nets64 = {}
        for net_name, net in nets.items():
            nets64[net_name] = net  # same modules, converted to float64 after the f32 step
            net.double()
        _, _, gg64, gd64 = cycle_step(torch, nets64, a.double(), b.double(), gan)
        for k, gr in gg64.items():
            if keep_g(k):
                out["grad64_g." + k] = gr
        for k, gr in gd64.items():
            if keep_d(k):
                out["grad64_d." + k] = gr
        for net in nets.values():
            net.float()
    meta = dict(provenance)
    meta["config"] = json.dumps({
        "name": name, "image_size": size, "ngf": ngf, "ndf": ndf, "n_blocks": n_blocks,
        "input_nc": INPUT_NC, "output_nc": OUTPUT_NC, "n_layers_D": N_LAYERS, "norm": "instance",
        "use_dropout": False, "padding_type": "reflect", "gan_mode": "lsgan",
        "lambda_A": LAMBDA_A, "lambda_B": LAMBDA_B, "lambda_identity": LAMBDA_IDT,
        "batch": batch, "seed": seed, "init": "init_weights(net, 'normal', 0.02)"})
    for net_name, net in nets.items():
        meta["keys." + net_name] = json.dumps(sorted([k, list(v.shape)] for k, v in net.state_dict().items()))
    from safetensors.torch import save_file
    # Everything f32, except the float64 gradients (kept in float64).
    out = {k: v.detach().contiguous() if k.startswith("grad64_") else v.detach().float().contiguous()
           for k, v in out.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(out, path, metadata=meta)
    print(f"{name}: {len(out)} tensors -> {path} ({os.path.getsize(path)} bytes); "
          f"loss_G {losses['g'].item():.6f} loss_D_A {losses['d_a'].item():.6f} "
          f"loss_D_B {losses['d_b'].item():.6f}")
    return grads_g, grads_d


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
                    help="also save the tiny networks as official checkpoints there")
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.path.insert(0, os.path.abspath(args.reference))
    import torch
    from models import networks
    torch.set_num_threads(1)
    norm, norm_desc = instance_norm(networks, torch)
    gan, gan_desc = lsgan_loss(networks, torch)
    provenance = {
        "script": "tools/baselines_cyclegan_fixtures.py",
        "reference_repository": "junyanz/pytorch-CycleGAN-and-pix2pix",
        "reference_commit": reference_commit(args.reference, args.reference_commit),
        "reference_files": "models/networks.py (ResnetGenerator, ResnetBlock, NLayerDiscriminator, get_norm_layer, init_weights, GANLoss)",
        "torch_version": torch.__version__,
        "norm_layer": norm_desc,
        "gan_loss": gan_desc,
        "stubbed": ("models/__init__.py may be an empty stub (only networks.py is imported); "
                    + norm_desc + "; the CycleGANModel loop (cycle_gan_model.py) is written out in "
                    "this script from the official backward_G / backward_D_basic (same terms and "
                    "weights); the image pool is in its filling phase (returns the new fakes); "
                    "no optimiser step between the G and D losses (the official first iteration "
                    "computes D's losses with D's initial weights too)"),
        "command": " ".join(sys.argv),
    }
    make_fixture(networks, torch, "tiny_64", args.seed, args.out, provenance, norm, gan, args.checkpoint_dir)
    if args.big_dir:
        for name in ("narrow_64", "official_256"):
            make_fixture(networks, torch, name, args.seed,
                         os.path.join(args.big_dir, f"cyclegan_{name}.safetensors"), provenance, norm, gan)


if __name__ == "__main__":
    main()
