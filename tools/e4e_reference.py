"""Imports the e4e reference code (omertov/encoder4editing) from a local checkout, for the
fixture scripts (`backbones_fixtures.py`, `e4e_fixtures.py`) and the converter test.

Nothing of e4e is copied into this repository: the checkout is given on the command line
(`--e4e PATH`) and put on `sys.path`; its modules are imported as they are.

The one stub: e4e's `models/stylegan2/op/{fused_act,upfirdn2d}.py` compile CUDA extensions with
`torch.utils.cpp_extension.load(...)` at import time, and `psp_encoders.py` imports
`models.stylegan2.model` (for `EqualLinear`), which imports those ops. While e4e's modules are
imported, `load` is replaced by a function returning a placeholder whose every attribute raises.
The encoders never call the compiled ops (`EqualLinear` without activation is `F.linear`), so a
fixture run that completes proves they were not reached. Nothing else of e4e is changed.
"""

import os
import subprocess
import sys

REPOSITORY = "omertov/encoder4editing"
# The commit the fixtures were generated from (ARCHITECTURE notes, section 0, read the same).
KNOWN_COMMIT = "99ea50578695d2e8a1cf7259d8ee89b23eea942b"

STUB_NOTE = (
    "torch.utils.cpp_extension.load (called at import by e4e models/stylegan2/op/fused_act.py "
    "and upfirdn2d.py to compile CUDA ops) replaced during import by a placeholder that raises "
    "if used; the encoders never call these ops"
)


class _MissingExtension:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise RuntimeError(
            f"e4e CUDA extension `{self._name}` was stubbed for import (tools/e4e_reference.py); "
            f"`{attr}` was called"
        )


def commit_of(path, given=None):
    """The reference commit: `given`, else `git rev-parse HEAD` in `path`, else a `COMMIT`
    file beside or inside the checkout."""
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        pass
    for f in (os.path.join(path, "COMMIT"), os.path.abspath(path.rstrip("/")) + ".COMMIT"):
        if os.path.exists(f):
            return open(f).read().strip()
    raise SystemExit(
        f"cannot tell the commit of the e4e checkout {path}: not a git work tree; pass --e4e-commit"
    )


def import_e4e(path):
    """Returns e4e's modules: helpers, model_irse, psp_encoders, discriminator, psp (the last
    only when matplotlib is installed, else None)."""
    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, "models", "encoders", "psp_encoders.py")):
        raise SystemExit(f"{path} is not an encoder4editing checkout (models/encoders/psp_encoders.py missing)")
    if path not in sys.path:
        sys.path.insert(0, path)
    import torch.utils.cpp_extension as cpp

    real_load = cpp.load
    cpp.load = lambda name, *a, **k: _MissingExtension(name)
    try:
        import models.encoders.helpers as helpers
        import models.encoders.model_irse as model_irse
        import models.encoders.psp_encoders as psp_encoders
        import models.discriminator as discriminator

        try:
            import models.psp as psp
        except ImportError:  # psp.py imports matplotlib (for nothing the model needs)
            psp = None
    finally:
        cpp.load = real_load
    for m in (helpers, model_irse, psp_encoders, discriminator):
        if not os.path.abspath(m.__file__).startswith(path):
            raise SystemExit(f"imported {m.__name__} from {m.__file__}, not from {path}")
    return helpers, model_irse, psp_encoders, discriminator, psp


def provenance(script, e4e_path, commit, config, stubbed, **extra):
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
