"""ref, fast.cpu and fast.gpu have one interface: the coders' and the exact rules' public functions take the same
parameters, so callers (filetool/codec.py, train/, analysis/) call them without asking what a backend has."""
import importlib
import inspect

import pytest

from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.train import backends

CODER_FUNCTIONS = {
    "ac": ["compress", "decompress"],
    "equalinfo": ["encode_windows", "encode_windows_batch", "compress", "compress_batch", "decode_window",
                  "decode_windows", "decompress", "decompress_batch"],
}
RULE_FUNCTIONS = ["next_probs", "logits"]


def shared_parameters(function):
    """(name, default) of the parameters every twin must take: the keyword-only ones are a fast backend's own
    settings (they change no bit) and may be missing elsewhere."""
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()
            if p.kind is not p.KEYWORD_ONLY and p.name != "product"]


@pytest.mark.parametrize("package", ["equalinfo.fast.cpu", "equalinfo.fast.gpu"])
@pytest.mark.parametrize("module", sorted(CODER_FUNCTIONS))
def test_coders_take_refs_parameters(package, module):
    ref = importlib.import_module(f"equalinfo.ref.{module}")
    fast = importlib.import_module(f"{package}.{module}")
    for name in CODER_FUNCTIONS[module]:
        assert shared_parameters(getattr(fast, name)) == shared_parameters(getattr(ref, name)), f"{module}.{name}"
    assert "progress" in inspect.signature(ref.compress).parameters
    assert set(fast.__all__) >= set(CODER_FUNCTIONS[module])


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
@pytest.mark.parametrize("version", sorted(RULE_MODULES))
def test_exact_rules_take_refs_parameters(backend, version):
    ref, fast = backends.exact_rule(version, "ref"), backends.exact_rule(version, backend)
    assert ref.__name__ == f"equalinfo.ref.{RULE_MODULES[version]}"
    assert fast.__name__ == f"equalinfo.fast.{backend}.{RULE_MODULES[version]}"
    for name in RULE_FUNCTIONS:
        assert shared_parameters(getattr(fast, name)) == shared_parameters(getattr(ref, name)), f"{fast}.{name}"


def test_unknown_rules_and_backends_are_refused_by_name():
    with pytest.raises(backends.BackendUnavailable, match="version 99"):
        backends.exact_rule(99, "cpu")
    with pytest.raises(backends.BackendUnavailable, match="unknown backend 'tpu'"):
        backends.exact_rule(1, "tpu")
