"""Rule 4's own fields in family m1_int8_rows_m1; m1_rows.py builds the rows, CDFs and windows that every rule has.

Rule 4 (ref/int8_rows_m1.py) is rule 3 with 7-bit rows: each row integer is itself an int8 value, so a product is
one float32 GEMM per K-chunk (no split), and it has one step more: the outputs of the key and value products (`wk`,
`wv`) are rounded to bfloat16. A port that gets a row wrong has to find the step that differs, so, as
conformance/m1_integer.py does for rule 2 and m1_int8.py for rule 3 (with their long input, traced products and
zero row), this family holds:
- the tiny M1 quantized by ref.int8_rows_m1.quantize_params (rule 3's arrays: param.NAME.int int8 in [-127, 127],
  param.NAME.scale float64), with embed[ZERO_SYMBOL] = 0 first and EXTRA_TEXT among the inputs;
- `long.*`: the rows of one 141-position input at m1_integer.POSITIONS (every relative-position bucket);
- `trace.NAME.*`: x, x_int, e, acc, y_rescaled (the rescaled product, before any bfloat16 rounding) and y (the
  product's output) of the TRACED products in the forward pass over `inputs`: wk and wv among them;
- `edge.*`: hand-made rows through EDGE_PRODUCT (w_gate), one per edge case of the row quantization (EDGE_ROWS);
- `bf16_edge.*`: hand-made rows through BFLOAT16_PRODUCT (wk) whose outputs meet the bfloat16 rounding's edge
  cases (BFLOAT16_ROWS): ties to even both ways, just below and above a tie, a carry into the next power of two;
- `bfloat16.y` -> `bfloat16.rounded`: the rounding alone on hand-picked float32 bit patterns (BFLOAT16_CASES);
- `forward_pass` in the JSON: per product, the rows, zero rows, halfway ties and clipped entries met, and for wk
  and wv the outputs that were bfloat16 ties and those the rounding changed.
"""
import numpy as np

from equalinfo.conformance import m1_integer
from equalinfo.conformance.m1_int8 import INT8_ARRAYS
from equalinfo.conformance.m1_integer import BELOW_HALF, EDGE_PRODUCT, EXTRA_TEXT, POSITIONS, ZERO_SYMBOL  # noqa: F401
from equalinfo.conformance.m1_integer import add_rows_and_steps, check_rows_and_steps, stepped

BFLOAT16_PRODUCTS = ("wk", "wv")  # the products whose outputs rule 4 rounds to bfloat16 (docs/conformance.md)
TRACED = ["blocks.0.wq", "blocks.0.wk", "blocks.0.wv", "blocks.0.w_down"]  # rule 2's two, and the rounded two
STEPS = ("x", "x_int", "e", "acc", "y_rescaled", "y")
STEP_ANSWERS = STEPS[1:]  # of each traced and edge product; x stays in the request
H = 2.0 ** -6  # rows below whose largest |x| lies in [1, 2) have e = -6: x = k * H scales to the integer k
EDGE_ROWS = [  # (what the row exercises, its 8 float32 entries), through EDGE_PRODUCT
    ("zero row: e = 0, x_int, acc and y all zero", [0.0] * 8),
    ("halves round to even (e = -6): 64.5 0.5 1.5 2.5 3.5 -0.5 -1.5 -65.5 -> 64 0 2 2 4 -0 -2 -66",
     [k * H for k in (64.5, 0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -65.5)]),
    ("a tie rounding up to 128, clipped (e = -6): 127.5 -127.5 126.5 -126.5 125.5 0.5 -64.5 100 -> "
     "127 -127 126 -126 126 0 -64 100", [k * H for k in (127.5, -127.5, 126.5, -126.5, 125.5, 0.5, -64.5, 100)]),
    ("largest |x| a power of two (0.25 = 0.5 * 2^-1): e = -8, scaled max 2^6, the bottom of [2^6, 2^7)",
     [0.25, -0.125, 0.1, -0.2, 0.0625, 0.01, -0.24, 0.0]),
    ("largest |x| just below a power of two (0.5 - 2^-25): scaled 127.99999 rounds to 128, clipped to +-127",
     [BELOW_HALF, -BELOW_HALF, 0.4999, 0.25, -0.3, 0.0, 0.125, -0.001]),
    ("one nonzero entry (-3 = -0.75 * 2^2: e = -5, x_int -96)", [0.0, 0.0, 0.0, -3.0, 0.0, 0.0, 0.0, 0.0]),
    ("wide range (e = 3): entries below 2^-8 of the largest round to zero",
     [1000.0, 1e-3, -1e-4, 0.01, 1.0, -0.03, 5e-4, -999.0]),
    ("tiny values (largest 3e-30 = 0.95 * 2^-98: e = -105)",
     [3e-30, -1e-30, 2e-31, 0.0, -2.9e-30, 1e-33, 5e-30 / 3, 0.0]),
    ("float32 subnormals (largest 1e-40 = 0.54 * 2^-132: e = -139; 2^-149 rounds to zero)",
     [1e-40, -5e-41, 2.0 ** -149, 0.0, 3e-41, -1e-40, 7e-42, 2.0 ** -140]),
    ("huge values (largest 1e36 = 0.75 * 2^120: e = 113)",
     [1e36, -3e35, 1e30, 0.0, 5e35, -9.9e35, 2e34, 1.0]),
    ("an ordinary row", [0.81, -1.37, 0.05, 2.2, -0.66, 1.01, -2.49, 0.3]),
]
BFLOAT16_PRODUCT = "blocks.0.wk"
BFLOAT16_ROWS = [  # (what the row's outputs exercise, its integers k: x = k * H, e = -6), through BFLOAT16_PRODUCT
    ("output 2 is a tie, 0x40548000, rounded down to the even 0x40540000",
     [-115, -126, -76, 97, -89, -100, 96, -28]),
    ("output 7 is a negative tie, 0xC0438000, rounded away from zero to the even 0xC0440000",
     [-119, -49, -71, 121, 110, 126, -104, -32]),
    ("output 0 is just below a tie, 0x40327FFF, rounded down to 0x40320000",
     [-100, -76, -14, -125, -80, 105, 80, 33]),
    ("output 3 is just above a tie, 0x40588001, rounded up to 0x40590000",
     [102, -14, 72, 16, -79, -107, 126, -103]),
    ("output 3, 0xBFFF869A, rounds up into the next power of two: 0xC0000000 = -2",
     [107, -86, 16, -45, 87, -15, -122, -40]),
    ("zero row: every output 0, rounded to 0", [0] * 8),
]
BFLOAT16_CASES = [  # (what the case exercises, float32 bits y) for the rounding alone
    ("exact: a bfloat16 value stays", 0x3F800000),
    ("tie, bit 16 even: rounds down", 0x3F808000),
    ("tie, bit 16 odd: rounds up", 0x3F818000),
    ("negative tie, bit 16 odd: rounds away from zero", 0xBF818000),
    ("negative tie, bit 16 even: rounds toward zero", 0xBF808000),
    ("just below a tie: down", 0x3F807FFF),
    ("just above a tie: up", 0x3F808001),
    ("carry into the exponent: 0x3FFFFFFF (2 - 2^-23) -> 2", 0x3FFFFFFF),
    ("an ordinary value: 1/3", 0x3EAAAAAB),
    ("zero", 0x00000000),
    ("negative zero stays negative", 0x80000000),
    ("subnormal tie, bit 16 even: down to zero", 0x00008000),
    ("subnormal tie, bit 16 odd: up", 0x00018000),
    ("the largest subnormal rounds up to the smallest normal 2^-126", 0x007FFFFF),
    ("the largest finite bfloat16 stays", 0x7F7F0000),
    ("the largest float32 is above the last tie: rounds to infinity, as IEEE rounding to nearest does", 0x7F7FFFFF),
]


# ----------------------------------------------------------------------- the rule's steps, as the spec defines them

def rescale(acc, scale, e, dtype=np.float32):
    """y_rescaled[r, j] = dtype((float64(acc[r, j]) * scale[j]) * 2^e[r]): the rescale in this order."""
    return ((np.asarray(acc, np.float64) * scale) * np.ldexp(1.0, np.asarray(e))[:, None]).astype(dtype)


def bfloat16(y):
    """y rounded to the nearest bfloat16, ties to even, as float32, by integer arithmetic on its float32 bits b:
    (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000."""
    b = np.asarray(y, np.float32).view(np.uint32).astype(np.int64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)


def rounds(product):
    """Whether the product (e.g. 'blocks.0.wk') is one whose outputs rule 4 rounds to bfloat16."""
    return product.rsplit(".", 1)[-1] in BFLOAT16_PRODUCTS


def rounded(y_rescaled, product):
    """The product's output: y_rescaled, rounded to bfloat16 where the product is wk or wv."""
    return bfloat16(y_rescaled) if rounds(product) else y_rescaled


# ------------------------------------------------------------------------------------------------- build

def model(params, cfg):
    """The family's M1: the tiny float M1 with embed[ZERO_SYMBOL] = 0 (as rule 2's family), quantized by rule 4
    (rule 3's arrays)."""
    from equalinfo.ref.int8_rows_m1 import quantize_params

    return m1_integer.model(params, cfg, quantize_params)


def steps(x, qparams, name):
    """{x, x_int, e, acc, y_rescaled, y} of one product by ref.int8_rows_m1, the integers as exact int64."""
    from equalinfo.ref import int8_rows_m1

    x_int, e = int8_rows_m1.quantize_rows(x)
    acc = int8_rows_m1.chunked_product(x_int, qparams[name + ".int"])
    y = int8_rows_m1.int8_rows_matmul(x, qparams, name)
    y_rescaled = rescale(acc, qparams[name + ".scale"], e, x.dtype)
    assert np.array_equal(rounded(y_rescaled, name).view(np.uint32), y.view(np.uint32)), name  # ref = the spec
    return {"x": x, "x_int": x_int.astype(np.int64), "e": e, "acc": acc.astype(np.int64), "y_rescaled": y_rescaled,
            "y": y}


def count_bfloat16(x, qparams, name, seen):
    """Add, for wk and wv, how many outputs were exactly halfway between two bfloat16 values and how many the
    rounding changed, to the product's counts `seen`."""
    if rounds(name):
        y = steps(x, qparams, name)["y_rescaled"]
        seen["bfloat16_ties"] = seen.get("bfloat16_ties", 0) + int(np.sum(y.view(np.uint32) & 0xFFFF == 0x8000))
        seen["bfloat16_changed"] = seen.get("bfloat16_changed", 0) + int(np.sum(bfloat16(y) != y))


def forward_pass(qparams, cfg, ids):
    """({product: counts of the rule's edge cases met}, {traced product: its steps}) over ref's forward pass."""
    from equalinfo.ref import int8_rows_m1

    return m1_integer.forward_pass(qparams, cfg, ids, int8_rows_m1, steps, int8_rows_m1.int8_rows_matmul, TRACED,
                                   count_bfloat16)


def build(description, arrays, qparams, cfg, ids, module):
    """Add rule 4's fields (module docstring) to the family's description and arrays."""
    counts, traced = add_rows_and_steps(description, arrays, qparams, cfg, ids, module, forward_pass, steps, EDGE_ROWS)
    rows = np.array([row for _, row in BFLOAT16_ROWS], dtype=np.float32) * np.float32(H)  # exact: k * 2^-6
    arrays.update({f"bf16_edge.{key}": value for key, value in steps(rows, qparams, BFLOAT16_PRODUCT).items()})
    y = np.array([bits for _, bits in BFLOAT16_CASES], dtype=np.uint32).view(np.float32)
    arrays.update({"bfloat16.y": y, "bfloat16.rounded": bfloat16(y)})
    description["arrays"].update({
        **INT8_ARRAYS,
        "trace.NAME.x_int": "<i8 [N, n]", "trace.NAME.e": "<i8 [N]", "trace.NAME.acc": "<i8 [N, m]",
        "trace.NAME.y_rescaled": "<f4 [N, m] the rescaled product, before any bfloat16 rounding",
        "trace.NAME.y": "<f4 [N, m] the product's output (y_rescaled rounded to bfloat16 for wk and wv)",
        "edge.x, edge.x_int, edge.e, edge.acc, edge.y_rescaled, edge.y": "as trace, for edge_rows",
        "bf16_edge.x, ..., bf16_edge.y": "as trace, for bfloat16_rows",
        "bfloat16.y": "<f4 [C] float32 values", "bfloat16.rounded": "<f4 [C] each rounded to bfloat16"})
    description.update({"zero_symbol": ZERO_SYMBOL, "long_positions": POSITIONS, "traced": traced,
                        "edge_product": EDGE_PRODUCT, "edge_rows": [what for what, _ in EDGE_ROWS],
                        "bfloat16_products": list(BFLOAT16_PRODUCTS), "bfloat16_product": BFLOAT16_PRODUCT,
                        "bfloat16_rows": [what for what, _ in BFLOAT16_ROWS],
                        "bfloat16_cases": [what for what, _ in BFLOAT16_CASES], "forward_pass": counts})


# ------------------------------------------------------------------------------------------------- check

def step_sets(description):
    """[(array prefix, product)]: the traced products, the edge rows, then the bfloat16 rows."""
    return stepped(description, [("bf16_edge", description["bfloat16_product"])])


def check(description, arrays, qparams, cfg, module, impl, tally):
    """Compare the backend's long rows and each step of the traced and edge products with the vectors, then the
    bfloat16 rounding's cases."""
    check_rows_and_steps(description, arrays, qparams, cfg, module, impl, tally, check_steps, STEPS,
                         step_sets(description))
    y = arrays["bfloat16.y"]
    tally.same(bfloat16(y), arrays["bfloat16.rounded"], "bfloat16", "rounded = the bfloat16 formula on y's bits")
    if hasattr(module, "to_bfloat16"):  # ref's and a twin's own rounding, where the module has one
        got = tally.call("bfloat16", "to_bfloat16", module.to_bfloat16, y)
        if got is not None:
            tally.same(np.asarray(got), arrays["bfloat16.rounded"], "bfloat16", "to_bfloat16(y)")


def check_steps(where, name, want, qparams, module, tally):
    """The backend's quantize_rows and int8_rows_matmul on want["x"], step by step. acc, y_rescaled and the
    bfloat16 step are checked by their definitions on the vectors' own integers and scales (no backend computes
    them apart: a GEMM path's only output is y)."""
    got = tally.call(where, "quantize_rows", module.quantize_rows, want["x"])
    if got is not None:
        tally.same(np.asarray(got[0]), want["x_int"], where, "x_int")
        tally.same(np.asarray(got[1]), want["e"], where, "row exponents e")
    tally.same(want["x_int"] @ qparams[name + ".int"].astype(np.int64), want["acc"], where, "acc = x_int @ W_int")
    tally.same(rescale(want["acc"], qparams[name + ".scale"], want["e"]), want["y_rescaled"], where,
               "y_rescaled = float32((acc * s) * 2^e)")
    tally.same(rounded(want["y_rescaled"], name), want["y"], where,
               "y = bfloat16(y_rescaled)" if rounds(name) else "y = y_rescaled")
    got = tally.call(where, "int8_rows_matmul", module.int8_rows_matmul, want["x"], qparams, name)
    if got is not None:
        tally.same(np.asarray(got), want["y"], where, "y")


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

def request(asked, expected):
    """The request's arrays without rule 4's answers: rule 2's, with y_rescaled, the bf16_edge rows' steps and
    bfloat16.rounded added."""
    asked = m1_integer.request(asked, expected, STEP_ANSWERS, ("trace.", "edge.", "bf16_edge."))
    expected["bfloat16.rounded"] = asked.pop("bfloat16.rounded")
    return asked


def answer(description, arrays, qparams, cfg, module, impl):
    """The backend's answers to rule 4's own questions (request above)."""
    def rescaled(steps, product):
        return {"y_rescaled": rescale(steps["acc"], qparams[product + ".scale"], steps["e"])}

    answers = m1_integer.answer(description, arrays, qparams, cfg, module, impl, module.int8_rows_matmul, rescaled,
                                step_sets(description))
    answers["bfloat16.rounded"] = getattr(module, "to_bfloat16", bfloat16)(arrays["bfloat16.y"])
    return answers
