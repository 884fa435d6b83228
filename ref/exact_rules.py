"""The exact rules M1's coding rows may follow, by version (docs/design.md "Determinism of M1's probabilities").

A rule fixes every rounding of M1's coding pass, so that a row depends on its prefix and M1's arrays alone. Its
version is stored in M1's arrays, hence in the fingerprint of every file and dataset coded with it, and a decoder
computes rows by the version the arrays name. Each rule's module exposes EXACT_M1_VERSION, `check_params(params,
cfg)` (the parameters that rule reads), `logits(params, cfg, inputs)` and `next_probs(params, cfg, inputs)`.
- 1: exact_m1.py, fixed-order float reductions (the float parameters; no BLAS).
- 2: integer_m1.py, integer matrix products (int16 weights with per-channel scales; BLAS and cuBLAS exact).
- 3: int8_m1.py, int8-valued products (int8 weights, 14-bit rows split in two int8 halves; any float32 GEMM
  exact, tensor cores included).
- 4: int8_rows_m1.py, int8 weights and int8 (7-bit) rows: one GEMM per product; keys and values rounded to
  bfloat16, so a cache may hold them in 2 bytes.
LATEST_RULE is the pipeline's default; a rule above it is registered (its files decode) before it becomes the default.
The fast backends mirror ref/ file for file, so the same module names name their twins of each rule:
train.backends.exact_rule(version, backend) resolves them; ref itself needs only its own.
"""
import importlib

RULE_MODULES = {1: "exact_m1", 2: "integer_m1", 3: "int8_m1", 4: "int8_rows_m1"}  # version -> the module computing it, in ref/ and in each fast/
LATEST_RULE = 2


def rule_module(version):
    """ref's module computing rule `version`, or None if this build does not know that version."""
    name = RULE_MODULES.get(version)
    return None if name is None else importlib.import_module(f"equalinfo.ref.{name}")


def known_versions():
    return ", ".join(str(v) for v in sorted(RULE_MODULES))
