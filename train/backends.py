"""Backends by name: `ref` (NumPy), `cpu` (Numba), `gpu` (CuPy), all with ref's interfaces.

A backend bundles four modules with the same public functions: `transformer` (forward, loss_and_grads, ...),
`optim` (Adafactor, AdamW, from_config, ...), `ac` and `equalinfo` (compress, decompress). The pipeline asks for a
backend by name and never imports fast/ directly, so a missing backend is one clear error, not an ImportError deep
inside a run.

The gpu backend's transformer module also has `to_device`/`to_host` (dicts of arrays to CuPy and back): the
training loop (train/trainer.py) uses them, when present, to keep parameters and optimizer state on the GPU between
steps while checkpoints stay NumPy. Its coder (`ac`, `equalinfo`) is fast.cpu's: coding runs on the CPU.

`exact_rule(version, name)` is the one place that says which module computes M1's exact rule `version` on a
backend (ref/exact_rules.py lists the rules): every backend has the same module names, each with
`next_probs(params, cfg, inputs)` and `logits(params, cfg, inputs)` giving ref's bits.
"""
import importlib
from types import SimpleNamespace

from equalinfo.ref.exact_rules import RULE_MODULES, known_versions

NAMES = ("ref", "cpu", "gpu")
_MODULES = ("transformer", "optim", "ac", "equalinfo")
_PACKAGES = {"ref": "equalinfo.ref", "cpu": "equalinfo.fast.cpu", "gpu": "equalinfo.fast.gpu"}


class BackendUnavailable(RuntimeError):
    """The named backend cannot run here (an unknown name, Numba or CuPy missing, no GPU)."""


def load(name):
    """The backend `name` as a namespace with .name and the four modules."""
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    if name == "gpu":
        _check_gpu()
    modules = {}
    for module in _MODULES:
        try:
            modules[module] = importlib.import_module(f"{_PACKAGES[name]}.{module}")
        except ModuleNotFoundError as error:
            raise BackendUnavailable(f"backend {name!r} is not available: {_PACKAGES[name]}.{module} cannot be "
                                     f"imported ({error})") from None
    return SimpleNamespace(name=name, **modules)


def exact_rule(version, name):
    """Backend `name`'s module computing M1's exact rule `version` (ref/exact_rules.py), the same bits as ref's.

    Imports the module only (it does not check for a GPU: load(name) does, and numba's CUDA simulator runs the gpu
    one without); BackendUnavailable if the name, the version or the module is not there."""
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    if version not in RULE_MODULES:
        raise BackendUnavailable(f"no backend computes version {version!r} of M1's exact arithmetic (this build "
                                 f"knows versions {known_versions()})")
    module = f"{_PACKAGES[name]}.{RULE_MODULES[version]}"
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise BackendUnavailable(f"backend {name!r} cannot compute exact rule {version}: {module} cannot be "
                                 f"imported ({error})") from None


def _check_gpu():
    from equalinfo.fast.gpu.probe import NoGPU, cupy_with_a_gpu

    try:
        cupy_with_a_gpu()
    except NoGPU as reason:
        raise BackendUnavailable(f"backend 'gpu' {reason}") from None


def available():
    """Names of the backends that load here, fastest last."""
    names = []
    for name in NAMES:
        try:
            load(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def fastest_available():
    return available()[-1]


def load_or_fastest(name=None):
    """The backend `name`, or the fastest available when name is None (what every --backend option defaults to)."""
    return load(name or fastest_available())
