#!/usr/bin/env python3
"""Parity fixtures for crates/e4e-encoder from e4e's own code (omertov/encoder4editing, imported
from a checkout given with `--e4e`; see tools/e4e_reference.py for the one import stub).

Writes into `--out` (default crates/e4e-encoder/tests/fixtures):

1. `e4e_tiny.safetensors`, weights from the deterministic formula of `backbones::synthetic`
   (no weight committed; the Rust test rebuilds them by name, which also proves the names):
   - `irse_single.out`: e4e `BackboneEncoderUsingLastLayerIntoW(50, 'ir_se')` (e4e's
     hard-coded 3-channel IR-SE-50, 512-d w) on a 1x3x32x32 image; row 0 of its repeated output.
   - `d_w.*`: e4e `models/discriminator.py` `LatentCodesDiscriminator(512, 4)`.
   - `keys.ir_se50`, `keys.ir_se50_wplus14`, `keys.d_w_e4e`: state-dict keys/shapes of those e4e
     classes at e4e's configuration (stylegan_size 256 -> 14 styles), built on the meta device.
   - `narrow*`, `keys.resnet*`, `keys.narrow_cpu*`: the ReStyle ResNet-body encoders (the
     project's E). NOTE: these stay a re-implementation written in this project
     (`restyle_reimpl.py`), as ReStyle is not imported here; the metadata says so.
2. `e4e_narrow_export/` + `e4e_narrow_reference.safetensors`: the converter round trip on a
   checkpoint saved by e4e's own objects. A narrow e4e `Encoder4Editing` (IR-SE-50 unit counts at
   widths 16/16/16/32, 10 styles of 16-d, 64 px input) is assembled from e4e's classes
   (`bottleneck_IR_SE` via `get_block`, `GradualStyleBlock`, `EqualLinear`) with seeded random
   weights, put into e4e's `pSp` net (stylegan_size 64), saved with `torch.save` in the dict of
   e4e `training/coach.py` `__get_save_dict`, converted by `tools/convert_e4e.py`, and run with
   e4e's unmodified `Encoder4Editing.forward` (eval) to give codes + latent_avg, two progressive
   stages, and gradients of a fixed projection of the codes w.r.t. the input and parameters.
   NOTE: e4e's constructor hard-codes widths 64..512 and style blocks for 256 px; the narrow model
   keeps every class and the forward, only the constructor's numbers are smaller (style-block
   spatial sizes follow the same rule: input/16, /8, /4).
3. With `--official-out DIR` (not committed; about 1.1 GB): the same round trip at e4e's own
   configuration, `Encoder4Editing(50, 'ir_se', opts)` from e4e's constructor with
   `stylegan_size` = `--official-size` (default 1024, e4e's default: 18 styles; 256 -> 14) on a
   1x3x256x256 image, into DIR/export + DIR/reference.safetensors, and for e4e's
   `SingleStyleCodeEncoder` (`BackboneEncoderUsingLastLayerIntoW`, whose forward hard-codes 512
   channels, so it has no narrow variant) into DIR/single_export + DIR/single_reference.safetensors;
   checked by
   `E4E_OFFICIAL_DIR=DIR cargo test -p e4e-encoder --test convert_e4e -- --ignored`.

In every case the pretrained loads of e4e's `pSp.load_weights` (ir_se50 face weights, the
StyleGAN checkpoint) are skipped (no weights downloaded); `latent_avg` is set the way
`__load_latent_avg` sets it from a generator checkpoint that has one (a `[512]` w repeated to
`[n_styles, 512]`), with a seeded random w.

    /work/venv-ref/bin/python tools/e4e_fixtures.py --e4e /work/ref/encoder4editing \\
        [--e4e-commit HASH] [--out crates/e4e-encoder/tests/fixtures] [--official-out /tmp/e4e_official]
"""
import argparse
import copy
import json
import os
import sys
import tempfile
from argparse import Namespace

import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e4e_reference as ref  # noqa: E402
import restyle_reimpl as restyle  # noqa: E402
from backbones_fixtures import fill, image  # noqa: E402
from convert_e4e import convert  # noqa: E402

SCRIPT = "tools/e4e_fixtures.py"
NARROW = dict(widths=[16, 16, 16, 32], style_dim=16, stylegan_size=64, input_size=64, seed=17)
# parameters whose gradients are stored (every kind of layer, all three FPN levels)
GRAD_PARAMS = [
    "input_layer.0.weight",
    "input_layer.2.weight",
    "body.0.res_layer.1.weight",
    "body.21.shortcut_layer.0.weight",
    "body.23.res_layer.5.fc2.weight",
    "styles.0.convs.0.weight",
    "styles.0.linear.weight",
    "styles.4.convs.2.bias",
    "styles.9.linear.bias",
    "latlayer1.weight",
    "latlayer2.bias",
]
GRAD_PARAMS_SINGLE = GRAD_PARAMS[:5] + ["linear.weight", "linear.bias"]


def keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def e4e_opts(stylegan_size, encoder_type="Encoder4Editing"):
    """e4e's training options (options/train_options.py defaults) as the coach saves them."""
    return Namespace(
        exp_dir="fixture",
        dataset_type="ffhq_encode",
        encoder_type=encoder_type,
        batch_size=4,
        test_batch_size=4,
        workers=4,
        test_workers=4,
        learning_rate=1e-4,
        optim_name="ranger",
        train_decoder=False,
        start_from_latent_avg=True,
        lpips_type="alex",
        lpips_lambda=0.8,
        id_lambda=0.1,
        l2_lambda=1.0,
        stylegan_weights=None,
        stylegan_size=stylegan_size,
        checkpoint_path=None,
        max_steps=500000,
        image_interval=100,
        board_interval=50,
        val_interval=1000,
        save_interval=None,
        w_discriminator_lambda=0.0,
        w_discriminator_lr=2e-5,
        r1=10,
        d_reg_every=16,
        use_w_pool=False,
        w_pool_size=50,
        delta_norm=2,
        delta_norm_lambda=2e-4,
        progressive_steps=None,
        progressive_start=None,
        progressive_step_every=2000,
        save_training_data=False,
        sub_exp_dir=None,
        keep_optimizer=False,
        resume_training_from_ckpt=None,
        update_param_list=None,
        device="cpu",
    )


def build_psp(psp_mod, opts):
    """e4e's pSp net without its pretrained loads (skipped: no weights are downloaded)."""
    cls = psp_mod.pSp
    real = cls.load_weights
    cls.load_weights = lambda self: None
    try:
        return cls(opts)
    finally:
        cls.load_weights = real


def narrow_encoder(helpers, enc_mod, widths, style_dim, stylegan_size, input_size):
    """e4e `Encoder4Editing` with its own classes at narrow widths (see the module docs)."""
    enc = enc_mod.Encoder4Editing.__new__(enc_mod.Encoder4Editing)
    nn.Module.__init__(enc)
    enc.input_layer = nn.Sequential(
        nn.Conv2d(3, widths[0], (3, 3), 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0])
    )
    blocks = []
    cin = widths[0]
    for depth, n in zip(widths, [3, 4, 14, 3]):  # get_blocks(50)
        blocks += helpers.get_block(in_channel=cin, depth=depth, num_units=n)
        cin = depth
    enc.body = nn.Sequential(*[helpers.bottleneck_IR_SE(b.in_channel, b.depth, b.stride) for b in blocks])
    enc.styles = nn.ModuleList()
    log_size = int(torch.log2(torch.tensor(float(stylegan_size))).item())
    enc.style_count = 2 * log_size - 2
    enc.coarse_ind, enc.middle_ind = 3, 7
    sizes = [input_size // 16, input_size // 8, input_size // 4]  # e4e: 16, 32, 64 at 256 px
    for i in range(enc.style_count):
        s = sizes[0] if i < enc.coarse_ind else sizes[1] if i < enc.middle_ind else sizes[2]
        enc.styles.append(enc_mod.GradualStyleBlock(widths[3], style_dim, s))
    enc.latlayer1 = nn.Conv2d(widths[2], widths[3], kernel_size=1, stride=1, padding=0)
    enc.latlayer2 = nn.Conv2d(widths[1], widths[3], kernel_size=1, stride=1, padding=0)
    enc.progressive_stage = enc_mod.ProgressiveStage.Inference
    return enc


@torch.no_grad()
def randomise(model, seed):
    """Seeded random values for what PyTorch initialises to constants (BN affine and running
    statistics, PReLU slopes, biases), so that eval-mode BN and every bias are exercised; conv and
    EqualLinear weights keep the reference's own (seeded) init."""
    g = torch.Generator().manual_seed(seed + 1)
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        last = name.rsplit(".", 1)[-1]
        u = torch.rand(t.shape, generator=g)
        if last == "running_mean":
            t.copy_(0.2 * (u - 0.5))
        elif last == "running_var":
            t.copy_(0.75 + 0.5 * u)
        elif last == "bias":
            t.copy_(0.1 * (u - 0.5))
        elif t.dim() == 1:  # BN weight, PReLU slope
            t.copy_(0.75 + 0.5 * u)


def rel_err(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def outputs(enc_mod, enc, latent_avg, x, seed, proj=None):
    """e4e's eval forward (codes + latent_avg, as pSp.forward with start_from_latent_avg) and
    the gradients of sum(codes * proj); for Encoder4Editing also three progressive stages. The
    single-w encoder's codes are e4e's repeated `[B, n, S]`; row 0 is stored (the crate returns
    `[B, S]`)."""
    out = {}
    wplus = isinstance(enc, enc_mod.Encoder4Editing)
    if wplus:
        with torch.no_grad():
            for stage in (0, 2, 5):  # W only; coarse deltas; into the middle FPN level
                enc.progressive_stage = enc_mod.ProgressiveStage(stage)
                out[f"stage{stage}"] = enc(x) + latent_avg.repeat(x.shape[0], 1, 1)
        enc.progressive_stage = enc_mod.ProgressiveStage.Inference
    xg = x.clone().requires_grad_(True)
    w = enc(xg) + latent_avg.repeat(x.shape[0], 1, 1)
    if not wplus:
        assert torch.equal(w, w[:, :1].expand_as(w))
        w = w[:, 0]
    if proj is None:
        proj = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed + 3))
    params = dict(enc.named_parameters())
    names = GRAD_PARAMS if wplus else GRAD_PARAMS_SINGLE
    grads = torch.autograd.grad((w * proj.to(w.dtype)).sum(), [xg] + [params[k] for k in names])
    out["codes"] = w.detach()
    out["grad.input"] = grads[0]
    for k, g in zip(names, grads[1:]):
        out[f"grad.{k}"] = g
    return out, proj


def round_trip(psp_mod, enc_mod, net, opts, out_dir, ref_path, x, meta, seed):
    """Saves `net` as e4e's coach does, converts it, and writes the reference outputs."""
    torch.manual_seed(seed + 2)
    head = "styles.0.linear.weight" if hasattr(net.encoder, "styles") else "linear.weight"
    style_dim = net.encoder.state_dict()[head].shape[0]
    latent_avg = torch.randn(style_dim)  # a generator's w_avg [S]
    net.latent_avg = latent_avg.repeat(net.encoder.style_count, 1)  # __load_latent_avg(ckpt, repeat)
    save_dict = {"state_dict": net.state_dict(), "opts": vars(opts)}  # coach __get_save_dict
    if opts.start_from_latent_avg:
        save_dict["latent_avg"] = net.latent_avg
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "e4e_checkpoint.pt")
        torch.save(save_dict, ckpt)
        convert(ckpt, out_dir, input_size=x.shape[-1])
    net.eval()
    proj = None
    runs = {}
    for dtype in (torch.float64, torch.float32):
        enc = copy.deepcopy(net.encoder).to(dtype)
        la = net.latent_avg.to(dtype)
        runs[dtype], proj = outputs(enc_mod, enc, la, x.to(dtype), seed, proj)
    # The stored values are the exact (f64) answer for the f32 weights of the export; the
    # metadata records how far PyTorch's own f32 result is from it (`torch_f32_err.<key>`,
    # max |torch_f32 - f64| / max |f64|), which the Rust test prints beside its own error.
    t = {"input": x.clone(), "proj": proj.float()}
    for k, v in runs[torch.float64].items():
        t[k] = v
        meta[f"torch_f32_err.{k}"] = f"{rel_err(runs[torch.float32][k], v):.3e}"
    w = t["codes"]
    save_file({k: v.contiguous().float() for k, v in t.items()}, ref_path, metadata=meta)
    print(f"{ref_path}: {os.path.getsize(ref_path)} bytes; export {out_dir}: "
          f"{sorted(os.listdir(out_dir))}; max|codes| {float(w.detach().abs().max()):.3g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--e4e", required=True, help="checkout of omertov/encoder4editing")
    ap.add_argument("--e4e-commit", default=None, help="its commit, when the checkout is not a git work tree")
    ap.add_argument("--out", default="crates/e4e-encoder/tests/fixtures")
    ap.add_argument("--official-out", default=None, help="also write the official-config round trip here (~1 GB)")
    ap.add_argument("--official-size", type=int, default=1024, help="stylegan_size of the official config")
    args = ap.parse_args()
    helpers, _, enc_mod, disc_mod, psp_mod = ref.import_e4e(args.e4e)
    if psp_mod is None:
        raise SystemExit("e4e models/psp.py needs matplotlib: pip install matplotlib")
    commit = ref.commit_of(args.e4e, args.e4e_commit)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    # 1. e4e_tiny.safetensors
    t = {}
    opts256 = e4e_opts(256)
    with torch.no_grad():
        x32 = image((1, 3, 32, 32), 0.0, 1.0)
        t["irse.input"] = x32
        m = fill(enc_mod.BackboneEncoderUsingLastLayerIntoW(50, "ir_se", opts256))
        out32 = m(x32)
        assert torch.equal(out32, out32[:, :1].expand_as(out32))
        out = m.double()(x32.double())  # the exact answer for these weights (see round_trip)
        t["irse_single.out"] = out[:, 0]
        irse_f32_err = rel_err(out32[:, 0], out[:, 0])
        d = fill(disc_mod.LatentCodesDiscriminator(512, 4))
        w = image((1, 1, 3, 512), -2.0, 2.0).reshape(3, 512)
        t["d_w.input"] = w
        t["d_w.out"] = d(w)
        t.update(restyle.narrow_outputs())
    meta = ref.provenance(
        SCRIPT,
        args.e4e,
        commit,
        "e4e BackboneEncoderUsingLastLayerIntoW(50, 'ir_se', stylegan_size=256) on 1x3x32x32 "
        "(irse_single.out = row 0, computed in f64: torch_f32_err.irse_single.out is torch's f32 "
        "error against it); e4e LatentCodesDiscriminator(512, 4) (d_w.*); weights: "
        "backbones::synthetic formula; keys.ir_se50* / keys.d_w_e4e from e4e's classes",
        ref.STUB_NOTE + "; pSp pretrained loads not used",
        restyle_entries="narrow*, keys.resnet*, keys.narrow_cpu*: the project's re-implementation "
        "of ReStyle's ResNet encoders (tools/restyle_reimpl.py), NOT reference code",
    )
    meta["torch_f32_err.irse_single.out"] = f"{irse_f32_err:.3e}"
    with torch.device("meta"):
        meta["keys.ir_se50"] = json.dumps(keys(enc_mod.BackboneEncoderUsingLastLayerIntoW(50, "ir_se", opts256)))
        meta["keys.ir_se50_wplus14"] = json.dumps(keys(enc_mod.Encoder4Editing(50, "ir_se", opts256)))
        meta["keys.d_w_e4e"] = json.dumps(keys(disc_mod.LatentCodesDiscriminator(512, 4)))
    for k, v in restyle.preset_keys().items():
        meta[f"keys.{k}"] = json.dumps(v)
    path = os.path.join(args.out, "e4e_tiny.safetensors")
    save_file({k: v.contiguous().float() for k, v in t.items()}, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes")

    # 2. narrow round trip (committed)
    n = NARROW
    torch.manual_seed(n["seed"])
    opts = e4e_opts(n["stylegan_size"])
    net = build_psp(psp_mod, opts)
    net.encoder = narrow_encoder(helpers, enc_mod, n["widths"], n["style_dim"], n["stylegan_size"], n["input_size"])
    randomise(net.encoder, n["seed"])
    x = image((2, 3, n["input_size"], n["input_size"]), -1.0, 1.0)
    meta = ref.provenance(
        SCRIPT,
        args.e4e,
        commit,
        f"narrow e4e Encoder4Editing assembled from e4e's classes: IR-SE-50 units 3/4/14/3 at widths "
        f"{n['widths']}, GradualStyleBlock({n['widths'][3]}, {n['style_dim']}, input/16|/8|/4), "
        f"stylegan_size {n['stylegan_size']} (10 styles), 2x3x{n['input_size']}x{n['input_size']} input, "
        f"torch.manual_seed({n['seed']}) init + randomise(); inside e4e pSp (decoder Generator("
        f"{n['stylegan_size']}, 512, 8, cm=2)); saved as coach __get_save_dict; eval forward = e4e's "
        "Encoder4Editing.forward; codes include latent_avg; grads of sum(codes * proj); stored outputs computed in f64 (torch_f32_err.* = torch f32 error)",
        ref.STUB_NOTE + "; pSp.load_weights skipped (no pretrained ir_se50 / StyleGAN weights); "
        "Encoder4Editing.__init__ replaced by the narrow assembly (its hard-coded 64..512 widths)",
        export="e4e_narrow_export/ written by tools/convert_e4e.py",
    )
    round_trip(psp_mod, enc_mod, net, opts, os.path.join(args.out, "e4e_narrow_export"),
               os.path.join(args.out, "e4e_narrow_reference.safetensors"), x, meta, n["seed"])

    # 3. official config (not committed)
    if args.official_out:
        torch.manual_seed(n["seed"])
        opts = e4e_opts(args.official_size)
        net = build_psp(psp_mod, opts)  # Encoder4Editing(50, 'ir_se', opts) from e4e's constructor
        randomise(net.encoder, n["seed"])
        x = image((1, 3, 256, 256), -1.0, 1.0)
        meta = ref.provenance(
            SCRIPT,
            args.e4e,
            commit,
            f"e4e pSp(encoder_type=Encoder4Editing, stylegan_size={args.official_size}): e4e's own "
            f"constructor, IR-SE-50, {net.encoder.style_count} styles, 1x3x256x256 input, "
            f"torch.manual_seed({n['seed']}) init + randomise(); coach __get_save_dict; eval; stored outputs computed in f64 (torch_f32_err.* = torch f32 error)",
            ref.STUB_NOTE + "; pSp.load_weights skipped (no pretrained ir_se50 / StyleGAN weights)",
        )
        os.makedirs(args.official_out, exist_ok=True)
        round_trip(psp_mod, enc_mod, net, opts, os.path.join(args.official_out, "export"),
                   os.path.join(args.official_out, "reference.safetensors"), x, meta, n["seed"])
        # e4e's SingleStyleCodeEncoder (BackboneEncoderUsingLastLayerIntoW): its forward views the
        # pooled map as [-1, 512], so it has no narrow variant; only this official one.
        del net
        torch.manual_seed(n["seed"])
        opts = e4e_opts(args.official_size, "SingleStyleCodeEncoder")
        net = build_psp(psp_mod, opts)
        randomise(net.encoder, n["seed"])
        meta = dict(meta, config=meta["config"].replace("Encoder4Editing", "SingleStyleCodeEncoder"))
        round_trip(psp_mod, enc_mod, net, opts, os.path.join(args.official_out, "single_export"),
                   os.path.join(args.official_out, "single_reference.safetensors"), x, meta, n["seed"])


if __name__ == "__main__":
    main()
