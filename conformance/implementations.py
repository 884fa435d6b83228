"""Which of our code a `conformance check --backend NAME` runs against the vectors.

A backend here is everything the families call, by role:
- arithmetic: quantize, Encoder, Decoder (ref.arithmetic or fast.cpu.arithmetic; the gpu backend codes on the CPU
  with fast.cpu's coder, so it is checked with fast.cpu's);
- ac, equalinfo: plain AC and Equal-Info windows;
- transformer, optim: forward/loss_and_grads and the optimizers (the gpu backend's run on CuPy, or under numba's
  CUDA simulator when NUMBA_ENABLE_CUDASIM=1 is set and there is no GPU);
- the exact M1 rules (families m1_*): not here, train.backends.exact_rule(version, backend) resolves them;
- tokens and packing have a single implementation (ref.tokens, data.packing + train.build.fit_row), shared by every
  backend; their families still run, so a change in them fails every backend alike.
"""
import importlib
from types import SimpleNamespace

from equalinfo.train import backends
from equalinfo.train.backends import BackendUnavailable

NAMES = ("ref", "cpu", "gpu")
_ARITHMETIC = {"ref": "equalinfo.ref.arithmetic", "cpu": "equalinfo.fast.cpu.arithmetic",
               "gpu": "equalinfo.fast.cpu.arithmetic"}


def load(name):
    """A namespace with .name (as printed), .backend (ref/cpu/gpu) and the roles of the module docstring."""
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    label = name
    try:
        modules = backends.load(name)
    except BackendUnavailable as missing:
        if name != "gpu" or not _simulated():
            raise BackendUnavailable(f"{missing}; or set NUMBA_ENABLE_CUDASIM=1 to run its kernels under numba's "
                                     "CUDA simulator") from None
        modules = SimpleNamespace(**{role: importlib.import_module(f"equalinfo.fast.gpu.{role}")
                                     for role in ("transformer", "optim", "ac", "equalinfo")})
        label = "gpu (CUDA simulator)"
    return SimpleNamespace(name=label, backend=name, arithmetic=importlib.import_module(_ARITHMETIC[name]),
                           ac=modules.ac, equalinfo=modules.equalinfo, transformer=modules.transformer,
                           optim=modules.optim)


def _simulated():
    """True when numba.cuda runs its simulator (fast.gpu then computes with NumPy on the CPU)."""
    from equalinfo.fast.gpu import device

    return device.SIMULATED
