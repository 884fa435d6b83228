"""Rule 3's own fields in family m1_int8_m1; m1_rows.py builds the rows, CDFs and windows that every rule has.

Rule 3 (ref/int8_m1.py) has the steps of rule 2 with other widths (int8 weights, 14-bit rows) and one more: each
row integer is split into two int8 halves, hi = sign(x_int) * floor(|x_int| / 128) and lo = x_int - 128 * hi,
whose float32 GEMMs are exact in any order. A port that gets a row wrong has to find the step that differs, so,
as conformance/m1_integer.py does for rule 2 (and with its long input, traced products and zero row), this family
holds:
- the tiny M1 quantized by ref.int8_m1.quantize_params (param.NAME.int int8 in [-127, 127], param.NAME.scale
  float64), with embed[ZERO_SYMBOL] = 0 first (a zero row: e_r = 0 by definition) and EXTRA_TEXT among the inputs;
- `long.*`: the rows of one 141-position input at m1_integer.POSITIONS (every relative-position bucket);
- `trace.NAME.*`: x, x_int, e, hi, lo, acc and y of the TRACED products in the forward pass over `inputs`;
- `edge.*`: hand-made rows through EDGE_PRODUCT, one per edge case of the rule (EDGE_ROWS), the split's included;
- `forward_pass` in the JSON: per product, the rows, zero rows, halfway ties and clipped entries met.
"""
import numpy as np

from equalinfo.conformance.m1_integer import BELOW_HALF, EDGE_PRODUCT, EXTRA_TEXT, POSITIONS, TRACED, ZERO_SYMBOL
from equalinfo.conformance import m1_integer
from equalinfo.conformance.m1_integer import add_rows_and_steps, check_rows_and_steps
from equalinfo.conformance.m1_integer import forward_pass as rule_2_forward_pass

STEPS = ("x", "x_int", "e", "hi", "lo", "acc", "y")
H = 2.0 ** -13  # rows below whose largest |x| lies in [1, 2) have e = -13: x = k * H scales to the integer k
EDGE_ROWS = [  # (what the row exercises, its 8 float32 entries)
    ("zero row: e = 0, x_int, hi, lo, acc and y all zero", [0.0] * 8),
    ("halves round to even (e = -13): 8192.5 0.5 1.5 2.5 3.5 -0.5 -1.5 -8193.5 -> 8192 0 2 2 4 -0 -2 -8194",
     [k * H for k in (8192.5, 0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -8193.5)]),
    ("the split truncates toward zero: 16383 -16383 -200 128 -128 127 -129 8191 -> hi 127 -127 -1 1 -1 0 -1 63, "
     "lo 127 -127 -72 0 0 127 -1 127", [k * H for k in (16383, -16383, -200, 128, -128, 127, -129, 8191)]),
    ("largest |x| a power of two (0.25 = 0.5 * 2^-1): scaled max 2^13, the bottom of [2^13, 2^14)",
     [0.25, -0.125, 0.1, -0.2, 0.0625, 0.01, -0.24, 0.0]),
    ("largest |x| just below a power of two (0.5 - 2^-25): scaled 16383.999 rounds to 16384, clipped to +-16383",
     [BELOW_HALF, -BELOW_HALF, 0.4999, 0.25, -0.3, 0.0, 0.125, -0.001]),
    ("wide range: entries below 2^-15 of the largest round to zero",
     [1000.0, 1e-3, -1e-4, 0.01, 1.0, -0.03, 5e-4, -999.0]),
    ("tiny values (largest 3e-30 = 0.95 * 2^-98: e = -112)",
     [3e-30, -1e-30, 2e-31, 0.0, -2.9e-30, 1e-33, 5e-30 / 3, 0.0]),
    ("an ordinary row", [0.81, -1.37, 0.05, 2.2, -0.66, 1.01, -2.49, 0.3]),
]


def model(params, cfg):
    """The family's M1: the tiny float M1 with embed[ZERO_SYMBOL] = 0 (as rule 2's family), quantized by rule 3."""
    from equalinfo.ref.int8_m1 import quantize_params

    return m1_integer.model(params, cfg, quantize_params)


def steps(x, qparams, name):
    """{x, x_int, e, hi, lo, acc, y} of one product by ref.int8_m1, the integers as exact int64."""
    from equalinfo.ref import int8_m1

    x_int, e = int8_m1.quantize_rows(x)
    hi, lo = int8_m1.split_rows(x_int)
    acc = int8_m1.split_product(x_int, qparams[name + ".int"])
    return {"x": x, "x_int": x_int.astype(np.int64), "e": e, "hi": hi.astype(np.int64), "lo": lo.astype(np.int64),
            "acc": acc.astype(np.int64), "y": int8_m1.int8_matmul(x, qparams, name)}


def forward_pass(qparams, cfg, ids):
    """({product: counts of the rule's edge cases met}, {traced product: its steps}) over ref's forward pass."""
    from equalinfo.ref import int8_m1

    return rule_2_forward_pass(qparams, cfg, ids, int8_m1, steps)


INT8_ARRAYS = {  # the arrays of rules 3 and 4 alike (rule 4 reads rule 3's parameters)
    "param.NAME.int": "|i1 [n, m] W_int of each product's matrix (the 7 of each block, unembed), in [-127, 127]",
    "param.NAME.scale": "<f8 [m] s, the per-output-channel scales",
    "param.NAME": f"<f4 embed, the norms' scales, rel_bias (embed[{ZERO_SYMBOL}] = 0)",
    "long.inputs": "<i8 [1, T] a long input", "long.positions": "<i8 [K] the rows stored",
    "long.probs": "<f8 [K, 257] rows at long.positions", "long.cdfs": "<i8 [K, 258] their CDFs",
    "trace.NAME.x": "<f4 [N, n] the product's input in the forward pass over inputs (N = B * T)",
}


def build(description, arrays, qparams, cfg, ids, module):
    """Add rule 3's fields (module docstring) to the family's description and arrays."""
    counts, traced = add_rows_and_steps(description, arrays, qparams, cfg, ids, module, forward_pass, steps, EDGE_ROWS)
    description["arrays"].update({
        **INT8_ARRAYS,
        "trace.NAME.x_int": "<i8 [N, n]", "trace.NAME.e": "<i8 [N]", "trace.NAME.hi": "<i8 [N, n]",
        "trace.NAME.lo": "<i8 [N, n]", "trace.NAME.acc": "<i8 [N, m]", "trace.NAME.y": "<f4 [N, m]",
        "edge.x, edge.x_int, edge.e, edge.hi, edge.lo, edge.acc, edge.y": "as trace, for edge_rows"})
    description.update({"zero_symbol": ZERO_SYMBOL, "long_positions": POSITIONS, "traced": traced,
                        "edge_product": EDGE_PRODUCT, "edge_rows": [what for what, _ in EDGE_ROWS],
                        "forward_pass": counts})


def check(description, arrays, qparams, cfg, module, impl, tally):
    """Compare the backend's long rows and each step of the traced and edge products with the vectors."""
    check_rows_and_steps(description, arrays, qparams, cfg, module, impl, tally, check_steps, STEPS)


def check_steps(where, name, want, qparams, module, tally):
    """The backend's quantize_rows and int8_matmul on want["x"], step by step. The split and acc are checked by
    their definitions in int64 arithmetic on the vectors' own x_int and W_int (no backend computes them apart:
    each GEMM path's only output is y)."""
    got = tally.call(where, "quantize_rows", module.quantize_rows, want["x"])
    if got is not None:
        tally.same(np.asarray(got[0]), want["x_int"], where, "x_int")
        tally.same(np.asarray(got[1]), want["e"], where, "row exponents e")
    x_int = want["x_int"]
    split = split_steps(x_int)
    tally.same(split["hi"], want["hi"], where, "hi = sign(x_int) * floor(|x_int| / 128)")
    tally.same(split["lo"], want["lo"], where, "lo = x_int - 128 * hi")
    tally.same(want["hi"] * 128 + want["lo"], x_int, where, "x_int = 128 * hi + lo")
    tally.same(want["x_int"] @ qparams[name + ".int"].astype(np.int64), want["acc"], where, "acc = x_int @ W_int")
    got = tally.call(where, "int8_matmul", module.int8_matmul, want["x"], qparams, name)
    if got is not None:
        tally.same(np.asarray(got), want["y"], where, "y")


STEP_ANSWERS = ("x_int", "e", "hi", "lo", "acc", "y")  # of each traced and edge product; x stays in the request


def split_steps(x_int):
    """{hi, lo} of rows x_int by rule 3's split (truncating toward zero), as exact int64."""
    x_int = np.asarray(x_int, np.int64)
    hi = np.sign(x_int) * (np.abs(x_int) // 128)
    return {"hi": hi, "lo": x_int - 128 * hi}


def request(asked, expected):
    """The request's arrays without rule 3's answers (rule 2's request with the split's hi and lo added)."""
    return m1_integer.request(asked, expected, STEP_ANSWERS)


def answer(description, arrays, qparams, cfg, module, impl):
    """The backend's answers to rule 3's own questions (request above)."""
    return m1_integer.answer(description, arrays, qparams, cfg, module, impl, module.int8_matmul,
                             lambda steps, product: split_steps(steps["x_int"]))
