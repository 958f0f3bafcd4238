#!/usr/bin/env python3
"""Parity fixtures for crates/hyperstyle-refiner, made by HyperStyle's own code
(yuval-alaluf/hyperstyle, imported from a checkout by `hyperstyle_reference.py`; nothing of it is
copied here), on the CPU, with seeded random weights.

Into `--out` (default crates/hyperstyle-refiner/tests/fixtures):

- `hyperstyle_tiny.safetensors`: HyperStyle's outputs for a narrow H, and in `__metadata__`
  the state-dict keys of HyperStyle's own `SharedWeightsHyperNetResNet(opts)` at its
  hard-coded configuration (`keys.hyperstyle_paper256`: output_size 256, input_nc 4;
  `keys.hyperstyle_ffhq1024`: output_size 1024, input_nc 6 = its defaults; the default
  `--layers_to_tune`; `keys.hyperstyle_ffhq1024_separable`: the same for
  `SharedWeightsHyperNetResNetSeparable`), its `PARAMETERS` table (`hyperstyle_parameters`), its `TO_RGB_LAYERS`
  and shared slots, and `keys.narrow`. Tensors: `input` [2, 4, 64, 64]; per tuned slot
  `delta.<slot>` (eval-mode BatchNorm) and `train.delta.<slot>` (batch statistics), both
  HyperStyle's `SharedWeightsHyperNetResNet.forward` run in f64 on the f32 weights;
  `grad.input` and `grad.<param>` of L = sum_slots sum(delta * P_slot) with
  P_slot = 0.5 + sin(0.1 * arange(numel) + slot) (f32; the Rust test rebuilds it).
- `hyperstyle_narrow_export/`: the converter round trip. The narrow H sits in a `HyperStyle`
  object; the dict HyperStyle's `training/coach_hyperstyle.py` `Coach.__get_save_dict` builds
  from it (called on a stand-in `self` holding `net`, `opts`, `global_step`, `best_val_loss`)
  is `torch.save`d, then `tools/convert_hyperstyle.py` converts it. The narrow net has no
  `decoder.*` (no rosinality Generator is narrow enough: its channel table is hard-coded),
  so the converter is given `--generator-config`.

The narrow H: HyperStyle's `SharedWeightsHyperNetResNet.forward` on an instance whose members
are built from HyperStyle's classes with narrow arguments: `HyperRefinementBlock(hypernet,
n_channels=16, inner_c=8, spatial=4)`, `RefinementBlock(layer_idx, opts, n_channels=16,
inner_c=8, spatial=4)`, `SharedWeightsHypernet(in_size=1, out_size=1)` (f_size 3, z_dim 512);
the body is torchvision `BasicBlock`s at widths 4/8/8/16 (ResNet-34 depth) behind the stem
HyperStyle's class builds (conv 7x7 s2, BN, PReLU). `PARAMETERS` (a module global read by
`RefinementBlock.__init__`) holds the narrow generator's table while those blocks are built
(size 16, channels 4:1, 8:1, 16:2; tuned slots 0, 3, 5, 6; shared 0, 3), and is restored
after. HyperStyle hard-codes `out_c = 512` in both block kinds and `z_dim = 512` codes, so
the narrow net keeps those (`refine_out = hyper_code = 512`).

`--official-out DIR` does the same at HyperStyle's own configuration: `HyperStyle(opts)` built
by its constructor (`--encoder_type SharedWeightsHyperNetResNet`, `--output_size 1024`,
`--input_nc 6`, default `--layers_to_tune`; about 333M parameters in H, plus the 1024 px
generator), saved by `__get_save_dict`, converted with `--generator-out`; files
DIR/checkpoint.pt (deleted unless `--keep-checkpoint`), DIR/export/, DIR/generator.*,
DIR/reference.safetensors. Checked by
`HYPERSTYLE_OFFICIAL_DIR=DIR cargo test -p hyperstyle-refiner --test convert_hyperstyle -- --ignored`.

Stubs (see hyperstyle_reference.py; also in every fixture's `stubbed`): the CUDA-op compile at
import; `.cuda()` while constructing; `resnet34(pretrained=True)`'s download;
`HyperStyle.load_weights` (reads pretrained files) replaced by HyperStyle's own
`__load_latent_avg` on a seeded random w_avg, repeated to n_styles as its no-checkpoint branch
does.

    /work/venv-ref/bin/pip install tensorboard   # coach_hyperstyle.py imports it
    /work/venv-ref/bin/python tools/hyperstyle_fixtures.py --hyperstyle /work/ref/hyperstyle \
        [--official-out /tmp/hyperstyle_official]
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types

import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hyperstyle_reference as ref  # noqa: E402

SCRIPT = "tools/hyperstyle_fixtures.py"
DEFAULT_LAYERS = "0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24"  # options/train_options.py

NARROW = dict(
    in_nc=4,
    depth_blocks=[3, 4, 6, 3],
    widths=[4, 8, 8, 16],
    input_size=64,
    refine_inner=8,
    hyper_inner=8,
    generator={"size": 16, "style_dim": 8, "n_mlp": 2, "channels": {4: 1, 8: 1, 16: 2}},
    layers_to_tune=[0, 3, 5, 6],
    shared_layers=[0, 3],
)
# HyperStyle's separable variant (`SharedWeightsHyperNetResNetSeparable`), own slots only: its
# class builds the shared hypernet anyway; the converter drops it when no slot uses it.
NARROW_SEPARABLE = dict(NARROW, layers_to_tune=[5, 6], shared_layers=[])
SEPARABLE_GRADS = [
    "conv1.weight", "bn1.weight", "relu.weight", "body.0.conv1.weight", "body.15.conv2.weight",
    "refinement_blocks.5.convs.0.weight", "refinement_blocks.5.convs.2.bias",
    "refinement_blocks.5.output.0.make_kernel_in.weight", "refinement_blocks.5.output.0.make_kernel_out.bias",
    "refinement_blocks.6.output.0.kernel_linear_in.weight", "refinement_blocks.6.output.0.kernel_linear_out.weight",
    "refinement_blocks.6.output.0.kernel_linear_out.bias",
]
# Parameters whose gradients are stored (every kind of layer).
NARROW_GRADS = [
    "conv1.weight", "bn1.weight", "bn1.bias", "relu.weight", "body.0.conv1.weight",
    "body.3.downsample.0.weight", "body.15.conv2.weight", "body.15.bn2.bias",
    "shared_weight_hypernet.w1", "shared_weight_hypernet.b1", "shared_weight_hypernet.b2",
    "refinement_blocks.0.convs.0.weight", "refinement_blocks.0.convs.2.bias",
    "refinement_blocks.0.linear.bias",
    "refinement_blocks.3.linear.bias", "refinement_blocks.5.convs.0.weight",
    "refinement_blocks.5.output.1.weight", "refinement_blocks.5.output.1.bias",
    "refinement_blocks.6.convs.2.weight",
]
OFFICIAL_GRADS = [
    "conv1.weight", "bn1.weight", "relu.weight", "body.0.conv1.weight", "body.15.conv2.weight",
    "shared_weight_hypernet.w1", "shared_weight_hypernet.b1", "shared_weight_hypernet.b2",
    "refinement_blocks.0.convs.0.weight", "refinement_blocks.0.linear.weight",
    "refinement_blocks.12.linear.bias", "refinement_blocks.14.convs.0.weight",
    "refinement_blocks.14.output.1.bias", "refinement_blocks.24.convs.0.weight",
    "refinement_blocks.24.output.1.weight",
    # the separable variant's heads
    "refinement_blocks.14.output.0.make_kernel_in.weight", "refinement_blocks.24.output.0.kernel_linear_out.weight",
]


def slot_table(gen):
    """{slot: [k, in, out]} of a rosinality generator (HyperStyle's slot order, ToRGB included)."""
    ch = {int(k): v for k, v in gen["channels"].items()}
    t = {0: [3, ch[4], ch[4]], 1: [1, ch[4], 3]}
    cin, res, j = ch[4], 8, 0
    while res <= gen["size"]:
        c = ch[res]
        t[2 + 3 * j], t[3 + 3 * j], t[4 + 3 * j] = [3, cin, c], [3, c, c], [1, c, 3]
        cin, res, j = c, res * 2, j + 1
    return t


PATHS_NOTE = (
    "configs/paths_config.py model_paths has no 'e4e_w_encoder', which options/train_options.py reads "
    "(TrainOptions() raises KeyError at this commit): the key is added with an empty path before the "
    "options are parsed (paths_config is the file HyperStyle's users edit)"
)


def train_opts(hs_path, **over):
    """HyperStyle's own TrainOptions defaults (options/train_options.py), overridden."""
    from configs.paths_config import model_paths
    from options.train_options import TrainOptions

    model_paths.setdefault("e4e_w_encoder", "")

    args = ["--exp_dir", "/nonexistent"]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    opts = TrainOptions().parser.parse_args(args)
    opts.device = "cpu"  # the coach sets opts.device
    return opts


def keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


@torch.no_grad()
def randomise(model, seed):
    """Seeded values for what PyTorch's default init leaves constant (BatchNorm, PReLU)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
            m.bias.copy_(0.1 * torch.randn(n, generator=g))
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
        elif isinstance(m, nn.PReLU):
            m.weight.copy_(0.25 + 0.05 * torch.randn(m.weight.shape, generator=g))


def torchvision_body(depth_blocks, widths):
    """torchvision BasicBlocks as resnet's `_make_layer` stacks them (flattened as HyperStyle)."""
    from torchvision.models.resnet import BasicBlock

    mods, inplanes = [], widths[0]
    for s, (n, planes) in enumerate(zip(depth_blocks, widths)):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            down = None
            if b == 0 and (stride != 1 or inplanes != planes):
                down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            mods.append(BasicBlock(inplanes, planes, stride, down))
            inplanes = planes
    return nn.Sequential(*mods)


def narrow_hypernet(hs, cfg, opts, separable=False):
    cls = (hs.hypernetwork.SharedWeightsHyperNetResNetSeparable if separable
           else hs.hypernetwork.SharedWeightsHyperNetResNet)
    m = cls.__new__(cls)
    nn.Module.__init__(m)
    w0 = cfg["widths"][0]
    m.conv1 = nn.Conv2d(cfg["in_nc"], w0, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(w0)
    m.relu = nn.PReLU(w0)
    m.body = torchvision_body(cfg["depth_blocks"], cfg["widths"])
    table = slot_table(cfg["generator"])
    m.layers_to_tune = list(cfg["layers_to_tune"])
    m.shared_layers = list(cfg["shared_layers"])
    c4 = table[0][1]
    m.shared_weight_hypernet = hs.shared_weights_hypernet.SharedWeightsHypernet(in_size=c4, out_size=c4, mode=None)
    m.n_outputs = len(table)
    feat, spatial = cfg["widths"][-1], cfg["input_size"] // 16
    saved = dict(hs.refinement_blocks.PARAMETERS)
    hs.refinement_blocks.PARAMETERS.clear()
    hs.refinement_blocks.PARAMETERS.update(table)
    try:
        m.refinement_blocks = nn.ModuleList()
        for j in range(m.n_outputs):
            if j in m.layers_to_tune:
                if j in m.shared_layers:
                    b = hs.refinement_blocks.HyperRefinementBlock(
                        m.shared_weight_hypernet, n_channels=feat, inner_c=cfg["hyper_inner"], spatial=spatial)
                else:
                    own = (hs.refinement_blocks.RefinementBlockSeparable if separable
                           else hs.refinement_blocks.RefinementBlock)
                    b = own(j, opts, n_channels=feat, inner_c=cfg["refine_inner"], spatial=spatial)
            else:
                b = None
            m.refinement_blocks.append(b)
    finally:
        hs.refinement_blocks.PARAMETERS.clear()
        hs.refinement_blocks.PARAMETERS.update(saved)
    return m


def proj(slot, shape):
    n = 1
    for s in shape:
        n *= s
    # Mean 0.5: a zero-mean P makes the body's gradients sums of cancelling terms, where f32
    # (PyTorch's or candle's) is ~1e-2 off the f64 answer at HyperStyle's size.
    return (0.5 + torch.sin(torch.arange(n, dtype=torch.float64) * 0.1 + slot)).float().reshape(shape)


def run_reference(h, x, grad_names, train_too):
    """HyperStyle's forward in f64 on a copy of the f32 weights; gradients of sum(delta * P)."""
    out, errs = {}, {}
    h64 = copy.deepcopy(h).double().eval()
    with torch.no_grad():
        d32 = h.eval()(x)
    xg = x.double().clone().requires_grad_(True)
    deltas = h64(xg)
    params = dict(h64.named_parameters())
    loss = 0
    for slot, d in enumerate(deltas):
        if d is None:
            continue
        out[f"delta.{slot}"] = d.detach().float()
        errs[f"delta.{slot}"] = float((d32[slot].double() - d.detach()).abs().max() / d.detach().abs().max())
        loss = loss + (d * proj(slot, d.shape).double()).sum()
    grads = torch.autograd.grad(loss, [xg] + [params[k] for k in grad_names])
    for k, g in zip(["input"] + grad_names, grads):
        out[f"grad.{k}"] = g.float()
    # PyTorch's own f32 gradients against the f64 answer (for the log).
    x32 = x.clone().requires_grad_(True)
    p32 = dict(h.named_parameters())
    loss32 = sum((d * proj(slot, d.shape)).sum() for slot, d in enumerate(h(x32)) if d is not None)
    g32 = torch.autograd.grad(loss32, [x32] + [p32[k] for k in grad_names])
    for k, g, g64 in zip(["input"] + grad_names, g32, grads):
        errs[f"grad.{k}"] = float((g.double() - g64).abs().max() / g64.abs().max())
    del g32, loss32
    if train_too:
        t64 = copy.deepcopy(h64).train()
        with torch.no_grad():
            for slot, d in enumerate(t64(x.double())):
                if d is not None:
                    out[f"train.delta.{slot}"] = d.float()
    return out, errs


def save_checkpoint(hs, net, opts, path):
    """HyperStyle's coach save dict (`Coach.__get_save_dict`, its own code) of `net`."""
    coach_self = types.SimpleNamespace(net=net, opts=opts, global_step=7, best_val_loss=0.25)
    save_dict = hs.coach_hyperstyle.Coach._Coach__get_save_dict(coach_self)
    torch.save(save_dict, path)
    return save_dict


def hyperstyle_net(hs, opts, hypernet=None, seed=0):
    """A `HyperStyle` object: by its constructor (hypernet None) or around a given hypernet.
    `load_weights` is replaced by HyperStyle's own `__load_latent_avg` on a seeded w_avg."""
    HS = hs.hyperstyle.HyperStyle
    g = torch.Generator().manual_seed(seed + 1000)
    w_avg = torch.randn(512, generator=g)

    def load_weights(self):
        self._HyperStyle__load_latent_avg({"latent_avg": w_avg}, repeat=self.n_styles)

    real = HS.load_weights
    HS.load_weights = load_weights
    try:
        if hypernet is None:
            with ref.cpu_construction(hs):
                net = HS(opts)
        else:
            net = HS.__new__(HS)
            nn.Module.__init__(net)
            net.set_opts(opts)
            net.n_styles = 2 * (opts.output_size.bit_length() - 1) - 2
            net.hypernet = hypernet
            net.load_weights()
    finally:
        HS.load_weights = real
    return net


def convert(ckpt, out_dir, *extra):
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_hyperstyle.py"),
           ckpt, out_dir, *extra]
    subprocess.run(cmd, check=True)


def narrow(hs, args, commit, stubbed, separable=False):
    cfg = NARROW_SEPARABLE if separable else NARROW
    encoder_type = "SharedWeightsHyperNetResNetSeparable" if separable else "SharedWeightsHyperNetResNet"
    gen = cfg["generator"]
    opts = train_opts(args.hyperstyle, encoder_type=encoder_type, input_nc=cfg["in_nc"],
                      output_size=gen["size"], layers_to_tune=",".join(map(str, cfg["layers_to_tune"])))
    opts.n_hypernet_outputs = len(slot_table(gen))  # HyperStyle.set_hypernet sets it
    torch.manual_seed(args.seed)
    with ref.cpu_construction(hs):
        h = narrow_hypernet(hs, cfg, opts, separable)
    randomise(h, args.seed)
    net = hyperstyle_net(hs, opts, hypernet=h, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((2, cfg["in_nc"], cfg["input_size"], cfg["input_size"]), generator=g) * 2 - 1
    out, errs = run_reference(h, x, SEPARABLE_GRADS if separable else NARROW_GRADS, train_too=True)
    out["input"] = x
    out["latent_avg"] = net.latent_avg[:1].clone()

    extra = {}
    if not separable:
        # HyperStyle's own configuration: keys (meta device) and its tables.
        shared_layers = None
        for name, size, nc, cls in [
            ("hyperstyle_paper256", 256, 4, "SharedWeightsHyperNetResNet"),
            ("hyperstyle_ffhq1024", 1024, 6, "SharedWeightsHyperNetResNet"),
            ("hyperstyle_ffhq1024_separable", 1024, 6, "SharedWeightsHyperNetResNetSeparable"),
        ]:
            o = train_opts(args.hyperstyle, encoder_type=cls, input_nc=nc, output_size=size)
            o.n_hypernet_outputs = {256: 20, 512: 23, 1024: 26}[size]
            with torch.device("meta"), ref.cpu_construction(hs):
                inst = getattr(hs.hypernetwork, cls)(o)
            extra[f"keys.{name}"] = json.dumps(keys(inst))
            shared_layers = inst.shared_layers
        extra.update(
            hyperstyle_parameters=json.dumps(hs.refinement_blocks.PARAMETERS),
            hyperstyle_to_rgb_layers=json.dumps(hs.refinement_blocks.TO_RGB_LAYERS),
            hyperstyle_shared_layers=json.dumps(shared_layers),
            hyperstyle_default_layers_to_tune=train_opts(args.hyperstyle).layers_to_tune,
        )
    extra["keys.narrow"] = json.dumps(keys(h))
    own = "RefinementBlockSeparable" if separable else "RefinementBlock"
    meta = ref.provenance(
        SCRIPT, commit,
        json.dumps(dict(cfg, encoder_type=encoder_type)),
        stubbed,
        reference_call=(
            f"models/hypernetworks/hypernetwork.py {encoder_type}.forward on members built by "
            f"refinement_blocks.HyperRefinementBlock / {own} and shared_weights_hypernet."
            "SharedWeightsHypernet (narrow arguments; PARAMETERS set to the narrow generator's table while "
            "they are built)"
            + ("; keys.hyperstyle_*: SharedWeightsHyperNetResNet(opts) itself with "
               "options/train_options.py defaults" if not separable else "")
        ),
        outputs="delta.* / train.delta.* / grad.*: HyperStyle forward run in f64 on the f32 weights; "
                "L = sum_slots sum(delta * (0.5 + sin(0.1 * arange(numel) + slot)))",
        seed=args.seed,
        **{f"torch_f32_err.{k}": f"{v:.2e}" for k, v in errs.items()},
        **extra,
    )
    stem = "hyperstyle_separable" if separable else "hyperstyle"
    path = os.path.join(args.out, f"{stem}_tiny.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes")

    # converter round trip
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, f"{stem}_narrow.pt")
        sd = save_checkpoint(hs, net, opts, ckpt)
        dup = [k for k in sd["state_dict"] if ".hypernet." in k]
        print(f"checkpoint: {len(sd['state_dict'])} state_dict entries ({len(dup)} duplicated shared-hypernet keys)")
        gen_json = os.path.join(tmp, "generator.json")
        with open(gen_json, "w") as f:
            json.dump(gen_config_json(gen), f)
        export = os.path.join(args.out, f"{stem}_narrow_export")
        shutil.rmtree(export, ignore_errors=True)
        convert(ckpt, export, "--generator-config", gen_json, "--input-size", str(cfg["input_size"]))
    for k, v in sorted(out.items()):
        print(k, tuple(v.shape), f"{float(v.abs().max()):.3e}")
    print("torch f32 vs f64:", max(errs.values()))


def gen_config_json(gen):
    """The stylegan2 crate's StyleGan2Config JSON."""
    return {
        "size": gen["size"],
        "style_dim": gen["style_dim"],
        "n_mlp": gen["n_mlp"],
        "lr_mlp": 0.01,
        "channels": {"explicit": {str(k): v for k, v in sorted(gen["channels"].items())}},
        "blur_kernel": [1.0, 3.0, 3.0, 1.0],
    }


def official(hs, args, commit, stubbed):
    d = args.official_out
    os.makedirs(d, exist_ok=True)
    size = args.official_size
    opts = train_opts(args.hyperstyle, encoder_type=args.official_encoder, output_size=size)
    torch.manual_seed(args.seed)
    net = hyperstyle_net(hs, opts, seed=args.seed)
    h = net.hypernet
    randomise(net, args.seed)
    n_params = sum(p.numel() for p in h.parameters())
    print(f"HyperStyle({args.official_encoder}, output_size {size}, input_nc {opts.input_nc}): H has {n_params} parameters")
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((2, opts.input_nc, 256, 256), generator=g) * 2 - 1
    present = dict(h.named_parameters())
    out, errs = run_reference(h, x, [n for n in OFFICIAL_GRADS if n in present], train_too=False)
    out["input"] = x
    out["latent_avg"] = net.latent_avg[:1].clone()
    pre = "separable_" if "Separable" in args.official_encoder else ""
    ckpt = os.path.join(d, f"{pre}checkpoint.pt")
    save_checkpoint(hs, net, opts, ckpt)
    del net, h
    shutil.rmtree(os.path.join(d, f"{pre}export"), ignore_errors=True)
    convert(ckpt, os.path.join(d, f"{pre}export"), "--generator-out", os.path.join(d, f"{pre}generator"))
    if not args.keep_checkpoint:
        os.remove(ckpt)
    meta = ref.provenance(
        SCRIPT, commit,
        json.dumps({"encoder_type": args.official_encoder, "output_size": size, "input_nc": opts.input_nc,
                    "layers_to_tune": opts.layers_to_tune, "input_size": 256}),
        stubbed,
        reference_call="models/hyperstyle.py HyperStyle(opts) (its constructor builds H and the generator); "
                       "H = net.hypernet, SharedWeightsHyperNetResNet.forward",
        outputs="as hyperstyle_tiny.safetensors (f64 forward on the f32 weights)",
        n_parameters=n_params,
        seed=args.seed,
        **{f"torch_f32_err.{k}": f"{v:.2e}" for k, v in errs.items()},
    )
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(d, f"{pre}reference.safetensors"),
              metadata=meta)
    print("torch f32 vs f64:", max(errs.values()))
    print(f"wrote {d}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hyperstyle", required=True, help="HyperStyle checkout (yuval-alaluf/hyperstyle)")
    ap.add_argument("--hyperstyle-commit", help="its commit, when the checkout is not a git work tree")
    ap.add_argument("--out", default="crates/hyperstyle-refiner/tests/fixtures")
    ap.add_argument("--official-out", help="also write HyperStyle's own configuration here (~3 GB)")
    ap.add_argument("--official-size", type=int, default=1024, choices=[256, 512, 1024])
    ap.add_argument("--official-encoder", default="SharedWeightsHyperNetResNet",
                    choices=["SharedWeightsHyperNetResNet", "SharedWeightsHyperNetResNetSeparable"])
    ap.add_argument("--keep-checkpoint", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    commit = ref.commit_of(args.hyperstyle, args.hyperstyle_commit)
    if commit != ref.KNOWN_COMMIT:
        print(f"note: HyperStyle commit {commit} differs from {ref.KNOWN_COMMIT}")
    hs = ref.import_hyperstyle(args.hyperstyle, coach=True)
    stubbed = "; ".join([ref.IMPORT_STUB, ref.CUDA_STUB, ref.RESNET_STUB,
                         "HyperStyle.load_weights (reads pretrained files) replaced by HyperStyle's own "
                         "__load_latent_avg on a seeded random w_avg (repeated to n_styles)", PATHS_NOTE])
    os.makedirs(args.out, exist_ok=True)
    narrow(hs, args, commit, stubbed)
    narrow(hs, args, commit, stubbed, separable=True)
    if args.official_out:
        official(hs, args, commit, stubbed)


if __name__ == "__main__":
    main()
