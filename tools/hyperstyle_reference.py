"""Imports the HyperStyle reference code (yuval-alaluf/hyperstyle) from a local checkout, for
`hyperstyle_fixtures.py` (H parity, the `.pt` converter round trip) and `losses_moco_fixture.py`
(HyperStyle's `criteria/moco_loss.py`).

Nothing of HyperStyle is copied into this repository: the checkout is given on the command line
(`--hyperstyle PATH`) and put on `sys.path`; its modules are imported and run as they are. Get
it with `git clone https://github.com/yuval-alaluf/hyperstyle PATH && git -C PATH checkout
a723c7310312ca5b7f859340027f78e18965acbc` (a plain file copy works too: `--hyperstyle-commit
HASH`, or a `COMMIT` file in the checkout, or `PATH.COMMIT` beside it).

What is stubbed, and nothing else (each fixture's `stubbed` metadata repeats it):

1. Import: HyperStyle's `models/stylegan2/op/{fused_act,upfirdn2d}.py` compile CUDA extensions
   with `torch.utils.cpp_extension.load(...)` at import time. While HyperStyle's modules are
   imported, `load` returns a placeholder whose every attribute raises (the same stub as
   `e4e_reference.py`). The hypernetwork never calls the compiled ops; the generator's forward
   would, and is never run here.
2. Construction ([`cpu_construction`]): `SharedWeightsHypernet.__init__` creates its
   parameters with `.cuda()`, `MocoLoss` moves its model with `.cuda()`: inside the context,
   `torch.Tensor.cuda` and `torch.nn.Module.cuda` return their argument unchanged (the
   machine has no GPU). The values are those of the CPU random draw.
3. Pretrained weights: `SharedWeightsHyperNetResNet` calls torchvision's
   `resnet34(pretrained=True)` (a download): inside the context, the name `resnet34` in
   HyperStyle's `models/hypernetworks/hypernetwork.py` builds torchvision's ResNet-34 without
   weights. Every parameter is then overwritten with seeded random values by the caller.
   `HyperStyle.load_weights` (which reads pretrained files from `configs/paths_config.py`) is
   replaced by the caller where a `HyperStyle` object is built (see `hyperstyle_fixtures.py`).
"""

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e4e_reference import _MissingExtension, commit_of as _commit_of  # noqa: E402

REPOSITORY = "yuval-alaluf/hyperstyle"
# The commit the fixtures were generated from (reference notes, section 0, read the same).
KNOWN_COMMIT = "a723c7310312ca5b7f859340027f78e18965acbc"

IMPORT_STUB = (
    "torch.utils.cpp_extension.load (called at import by HyperStyle models/stylegan2/op/fused_act.py "
    "and upfirdn2d.py to compile CUDA ops) replaced during import by a placeholder that raises "
    "if used; nothing run here calls these ops"
)
CUDA_STUB = (
    "torch.Tensor.cuda and torch.nn.Module.cuda return their argument unchanged while HyperStyle "
    "objects are constructed (SharedWeightsHypernet creates its parameters with .cuda(); "
    "MocoLoss moves its model with .cuda())"
)
RESNET_STUB = (
    "resnet34(pretrained=True) in models/hypernetworks/hypernetwork.py builds torchvision's "
    "resnet34 without the ImageNet download; all weights are then seeded random values"
)


def commit_of(path, given=None):
    try:
        return _commit_of(path, given)
    except SystemExit:
        raise SystemExit(
            f"cannot tell the commit of the HyperStyle checkout {path}: not a git work tree; "
            "pass --hyperstyle-commit"
        )


def import_hyperstyle(path, coach=False):
    """Returns a namespace of HyperStyle's modules: `hypernetwork`, `refinement_blocks`,
    `shared_weights_hypernet`, `stylegan2_model`, `hyperstyle` (`models/hyperstyle.py`),
    `moco_loss` (`criteria/moco_loss.py`), `paths_config`, and with `coach=True`
    `coach_hyperstyle` (`training/coach_hyperstyle.py`; needs tensorboard)."""
    import types

    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, "models", "hypernetworks", "hypernetwork.py")):
        raise SystemExit(f"{path} is not a HyperStyle checkout (models/hypernetworks/hypernetwork.py missing)")
    if path not in sys.path:
        sys.path.insert(0, path)
    import torch.utils.cpp_extension as cpp

    real_load = cpp.load
    cpp.load = lambda name, *a, **k: _MissingExtension(name)
    try:
        import models.hypernetworks.hypernetwork as hypernetwork
        import models.hypernetworks.refinement_blocks as refinement_blocks
        import models.hypernetworks.shared_weights_hypernet as shared_weights_hypernet
        import models.stylegan2.model as stylegan2_model
        import models.hyperstyle as hyperstyle
        import criteria.moco_loss as moco_loss
        import configs.paths_config as paths_config

        coach_mod = None
        if coach:
            import training.coach_hyperstyle as coach_mod
    finally:
        cpp.load = real_load
    mods = dict(
        hypernetwork=hypernetwork,
        refinement_blocks=refinement_blocks,
        shared_weights_hypernet=shared_weights_hypernet,
        stylegan2_model=stylegan2_model,
        hyperstyle=hyperstyle,
        moco_loss=moco_loss,
        paths_config=paths_config,
        coach_hyperstyle=coach_mod,
    )
    for name, m in mods.items():
        if m is not None and not os.path.abspath(m.__file__).startswith(path):
            raise SystemExit(f"imported {name} from {m.__file__}, not from {path}")
    return types.SimpleNamespace(**mods)


@contextlib.contextmanager
def cpu_construction(hs):
    """Stubs 2 and 3 of the module docs, undone on exit."""
    import torch
    import torchvision

    real_tensor_cuda, real_module_cuda = torch.Tensor.cuda, torch.nn.Module.cuda
    real_resnet34 = hs.hypernetwork.resnet34
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    hs.hypernetwork.resnet34 = lambda pretrained=False, **k: torchvision.models.resnet34(weights=None)
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = real_tensor_cuda, real_module_cuda
        hs.hypernetwork.resnet34 = real_resnet34


def provenance(script, commit, config, stubbed, **extra):
    """The `__metadata__` entries every fixture carries."""
    import torch

    meta = {
        "script": script,
        "reference_repository": f"https://github.com/{REPOSITORY}",
        "reference_commit": commit,
        "config": config,
        "stubbed": stubbed,
        "torch": torch.__version__,
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta
