"""Rule 2's own fields in family m1_integer_m1; m1_rows.py builds the rows, CDFs and windows that every rule has.

A port of rule 2 (ref/integer_m1.py) that gets a probability row wrong has to find which step of the rule differs:
the row exponent (frexp), the rounding (rint, halves to even), the clip, the integer sum or the rescale. So besides
the rows, this family holds:
- the tiny M1 quantized by ref.integer_m1.quantize_params (param.NAME.int int16, param.NAME.scale float64; embed,
  the norms and rel_bias float32). The embedding of ZERO_SYMBOL is set to zero first, as an embedding that never
  received a gradient would be: an input holding that symbol gives layer 0's normalised activations a zero row,
  the one row whose exponent is e_r = 0 by definition rather than by frexp;
- EXTRA_TEXT, an input with that symbol (added to the inputs of every rule's family fields);
- `long.*`: one input of 141 positions (BOS, LONG_TEXT), and its rows at POSITIONS, chosen on both sides of
  the relative-position buckets' boundaries (the first logarithmic bucket at distance 16, the last at 113, saturation at
  max_distance 128), without storing the rows in between;
- `trace.NAME.*`: x, x_int, e, acc and y of the TRACED products in the forward pass over `inputs`;
- `edge.*`: hand-made rows through EDGE_PRODUCT, one per edge case of the rule (EDGE_ROWS);
- `forward_pass` in the JSON: per product, how many rows, zero rows, halfway ties and clipped entries the forward
  pass over `inputs` met, so anyone can see which edge cases the model's own rows exercise.
"""
import numpy as np

ZERO_SYMBOL = ord("~")
EXTRA_TEXT = "~zero~ rows: ~e = 0~"
LONG_TEXT = ("Equal-Info windows restart M1 often, so its far relative-position buckets are rare there; plain AC "
             "reads long contexts and reaches them all.")  # 140 bytes
POSITIONS = [0, 15, 16, 17, 112, 113, 127, 128, 129, 140]  # the row at t sees distances 0..t
TRACED = ["blocks.0.wq", "blocks.0.w_down"]  # the first product of the pass, and the one after the gated ReLU
EDGE_PRODUCT = "blocks.0.w_gate"
H = 2.0 ** -14  # rows below whose largest |x| lies in [1, 2) have e = -14: x = k * H scales to the integer k
BELOW_HALF = float(np.nextafter(np.float32(0.5), np.float32(0)))  # 0.5 - 2^-25
EDGE_ROWS = [  # (what the row exercises, its 8 float32 entries)
    ("zero row: e = 0, x_int, acc and y all zero", [0.0] * 8),
    ("halves round to even (e = -14): 16384.5 0.5 1.5 2.5 3.5 -0.5 -1.5 -16385.5 -> 16384 0 2 2 4 -0 -2 -16386",
     [k * H for k in (16384.5, 0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -16385.5)]),
    ("halves at e = 0: 30000.5 -> 30000, -12345.5 -> -12346, 0.5 -> 0",
     [30000.5, -12345.5, 0.5, 1.0, -7.25, 100.0, 0.0, 2.5]),
    ("largest |x| a power of two (0.25 = 0.5 * 2^-1): scaled max 2^14, the bottom of [2^14, 2^15)",
     [0.25, -0.125, 0.1, -0.2, 0.0625, 0.01, -0.24, 0.0]),
    ("largest |x| just below a power of two (0.5 - 2^-25): scaled 32767.998 rounds to 32768, clipped to +-32767",
     [BELOW_HALF, -BELOW_HALF, 0.4999, 0.25, -0.3, 0.0, 0.125, -0.001]),
    ("one nonzero entry (-3 = -0.75 * 2^2: e = -13, x_int -24576)", [0.0, 0.0, 0.0, -3.0, 0.0, 0.0, 0.0, 0.0]),
    ("wide range: entries below 2^-16 of the largest round to zero",
     [1000.0, 1e-3, -1e-4, 0.01, 1.0, -0.03, 5e-4, -999.0]),
    ("tiny values (largest 3e-30 = 0.95 * 2^-98: e = -113)",
     [3e-30, -1e-30, 2e-31, 0.0, -2.9e-30, 1e-33, 5e-30 / 3, 0.0]),
    ("an ordinary row", [0.81, -1.37, 0.05, 2.2, -0.66, 1.01, -2.49, 0.3]),
]


def model(params, cfg, quantize_params=None):
    """The family's M1: the tiny float M1 with embed[ZERO_SYMBOL] = 0, quantized by the rule (rule 2's unless
    quantize_params is given: m1_int8.py passes rule 3's)."""
    if quantize_params is None:
        from equalinfo.ref.integer_m1 import quantize_params

    params = dict(params)
    params["embed"] = params["embed"].copy()
    params["embed"][ZERO_SYMBOL] = 0
    return quantize_params(params, cfg)


def long_inputs():
    """[1, T] int64: BOS then LONG_TEXT's symbols."""
    from equalinfo.ref.symbols import BOS, bytes_to_symbols

    return np.concatenate([[BOS], bytes_to_symbols(LONG_TEXT.encode())]).astype(np.int64)[None, :]


def steps(x, qparams, name):
    """{x, x_int, e, acc, y} of one product by ref.integer_m1, x_int and acc as exact int64."""
    from equalinfo.ref import integer_m1

    x_int, e = integer_m1.quantize_rows(x)
    acc = integer_m1.integer_product(x_int, qparams[name + ".int"])
    return {"x": x, "x_int": x_int.astype(np.int64), "e": e, "acc": acc.astype(np.int64),
            "y": integer_m1.int_matmul(x, qparams, name)}


def forward_pass(qparams, cfg, ids, rule=None, steps=None, matmul=None, traced=TRACED, count_more=None):
    """({product: counts of the rule's edge cases met}, {traced product: its steps}) over ref's forward pass under
    `rule` (ref.integer_m1 by default; m1_int8.py passes ref.int8_m1 and its own steps; m1_int8_rows.py rule 4's
    module, its product `matmul`, its `traced` products and `count_more(x, params, name, seen)`, which adds the
    rule's own counts of the product of x to the product's dict `seen`)."""
    from equalinfo.ref import exact_m1, integer_m1

    rule, steps = rule or integer_m1, steps or globals()["steps"]
    int_max = getattr(rule, "INT_MAX", None) or rule.ROW_MAX  # the largest |x_int|: rule 2's, rules 3 and 4's
    matmul = matmul or getattr(rule, "int_matmul", None) or rule.int8_matmul
    counts, traces = {}, {}

    def product(x, params, name):
        e = integer_m1.row_exponents(x, rule.FRACTION_BITS)  # each rule's step 1, with its row width
        scaled = np.ldexp(x.astype(np.float64), -e[:, None])
        seen = counts.setdefault(name, {"rows": 0, "zero_rows": 0, "halfway_ties": 0, "clipped": 0})
        seen["rows"] += len(x)
        seen["zero_rows"] += int(np.sum(~np.any(x, axis=1)))
        seen["halfway_ties"] += int(np.sum(np.abs(scaled - np.floor(scaled)) == 0.5))
        seen["clipped"] += int(np.sum(np.abs(np.rint(scaled)) > int_max))
        if name in traced:
            traces[name] = steps(x, params, name)
        if count_more is not None:
            count_more(x, params, name, seen)
        return matmul(x, params, name)

    exact_m1.logits(qparams, cfg, ids, product=product)
    return counts, traces


def build(description, arrays, qparams, cfg, ids, module):
    """Add rule 2's fields (module docstring) to the family's description and arrays."""
    counts, traced = add_rows_and_steps(description, arrays, qparams, cfg, ids, module, forward_pass, steps, EDGE_ROWS)
    description["arrays"].update({
        "param.NAME.int": "<i2 [n, m] W_int of each product's matrix (the 7 of each block, unembed)",
        "param.NAME.scale": "<f8 [m] s, the per-output-channel scales",
        "param.NAME": "<f4 embed, the norms' scales, rel_bias (embed[126] = 0)",
        "long.inputs": "<i8 [1, T] a long input", "long.positions": "<i8 [K] the rows stored",
        "long.probs": "<f8 [K, 257] rows at long.positions", "long.cdfs": "<i8 [K, 258] their CDFs",
        "trace.NAME.x": "<f4 [N, n] the product's input in the forward pass over inputs (N = B * T)",
        "trace.NAME.x_int": "<i8 [N, n]", "trace.NAME.e": "<i8 [N]", "trace.NAME.acc": "<i8 [N, m]",
        "trace.NAME.y": "<f4 [N, m]", "edge.x, edge.x_int, edge.e, edge.acc, edge.y": "as trace, for edge_rows"})
    description.update({"zero_symbol": ZERO_SYMBOL, "long_positions": POSITIONS, "traced": traced,
                        "edge_product": EDGE_PRODUCT, "edge_rows": [what for what, _ in EDGE_ROWS],
                        "forward_pass": counts})


def add_rows_and_steps(description, arrays, qparams, cfg, ids, module, forward_pass, steps, edge_rows):
    """Add a rule's long rows, the steps of its traced products over ids (forward_pass) and of its edge rows through
    EDGE_PRODUCT (steps) to arrays; returns forward_pass's counts and the traced products' names. Rules 2 and 3
    (m1_int8.py) share it."""
    from equalinfo.ref.arithmetic import quantize

    long_ids = long_inputs()
    rows = module.next_probs(qparams, cfg, long_ids)[0, POSITIONS]
    arrays.update({"long.inputs": long_ids, "long.positions": np.array(POSITIONS), "long.probs": rows,
                   "long.cdfs": quantize(rows, description["precision"])})
    counts, traces = forward_pass(qparams, cfg, ids)
    for name, trace in traces.items():
        arrays.update({f"trace.{name}.{key}": value for key, value in trace.items()})
    edge_x = np.array([row for _, row in edge_rows], dtype=np.float32)
    arrays.update({f"edge.{key}": value for key, value in steps(edge_x, qparams, EDGE_PRODUCT).items()})
    return counts, list(traces)


def check(description, arrays, qparams, cfg, module, impl, tally):
    """Compare the backend's long rows and each step of the traced and edge products with the vectors."""
    check_rows_and_steps(description, arrays, qparams, cfg, module, impl, tally, check_steps,
                         ("x", "x_int", "e", "acc", "y"))


def stepped(description, more=()):
    """[(array prefix, product name)] of the products whose steps the family stores: each traced product
    (trace.NAME), the edge rows (edge, through edge_product), then `more` such pairs (rule 4's)."""
    return ([(f"trace.{name}", name) for name in description["traced"]] + [("edge", description["edge_product"])]
            + list(more))


def check_rows_and_steps(description, arrays, qparams, cfg, module, impl, tally, check_steps, keys, sets=None):
    """The long rows, then check_steps on each traced product and the edge rows (arrays NAME.KEY for keys), or on
    `sets`, [(array prefix, product)] (default stepped(description))."""
    rows = tally.call("long", "next_probs", module.next_probs, qparams, cfg, arrays["long.inputs"])
    if rows is not None:
        rows = np.asarray(rows)[0, arrays["long.positions"]]
        tally.same(rows, arrays["long.probs"], "long", "rows at long.positions")
        cdfs = tally.call("long", "quantize", impl.arithmetic.quantize, rows, description["precision"])
        if cdfs is not None:
            tally.same(cdfs, arrays["long.cdfs"], "long", "CDFs")
    for name, product in sets or stepped(description):
        check_steps(name, product, {key: arrays[f"{name}.{key}"] for key in keys}, qparams, module, tally)


def check_steps(where, name, want, qparams, module, tally):
    """The backend's quantize_rows and int_matmul on want["x"], step by step; acc is checked as the exact
    integer product of the vectors' own x_int and W_int (int64 arithmetic: no backend computes it apart)."""
    got = tally.call(where, "quantize_rows", module.quantize_rows, want["x"])
    if got is not None:
        tally.same(got[0], want["x_int"], where, "x_int")
        tally.same(got[1], want["e"], where, "row exponents e")
    tally.same(want["x_int"] @ qparams[name + ".int"].astype(np.int64), want["acc"], where, "acc = x_int @ W_int")
    got = tally.call(where, "int_matmul", module.int_matmul, want["x"], qparams, name)
    if got is not None:
        tally.same(got, want["y"], where, "y")


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

STEP_ANSWERS = ("x_int", "e", "acc", "y")  # of each traced and edge product; x stays in the request


def request(asked, expected, step_answers=STEP_ANSWERS, prefixes=("trace.", "edge.")):
    """The request's arrays without rule 2's answers, which move into `expected` (same names): long.probs,
    long.cdfs, and trace.NAME.KEY / edge.KEY for KEY in step_answers (acc: the program's own integer product of
    its x_int and W_int). Rules 3 and 4 (m1_int8.py, m1_int8_rows.py) pass their own step_answers, rule 4 its
    array prefixes too."""
    answers = [key for key in asked if key in ("long.probs", "long.cdfs") or key.rsplit(".", 1)[-1] in step_answers
               and key.startswith(prefixes)]
    expected.update({key: asked[key] for key in answers})
    return {key: value for key, value in asked.items() if key not in answers}


def answer(description, arrays, qparams, cfg, module, impl, matmul=None, extra_steps=None, sets=None):
    """The backend's answers to rule 2's own questions (request above); rules 3 and 4 (m1_int8.py,
    m1_int8_rows.py) pass their product `matmul` (default module.int_matmul), `extra_steps(steps, product)` ->
    {KEY: array} for their own steps (steps: this product's x_int, e, acc and y answers), and rule 4 its `sets`
    (stepped's pairs)."""
    matmul = matmul or module.int_matmul
    rows = np.asarray(module.next_probs(qparams, cfg, arrays["long.inputs"]))[0, arrays["long.positions"]]
    answers = {"long.probs": rows, "long.cdfs": impl.arithmetic.quantize(rows, description["precision"])}
    for name, product in sets or stepped(description):
        x_int, e = module.quantize_rows(arrays[f"{name}.x"])
        steps = {"x_int": x_int, "e": e,
                 "acc": np.asarray(x_int, np.int64) @ qparams[product + ".int"].astype(np.int64),
                 "y": matmul(arrays[f"{name}.x"], qparams, product)}
        if extra_steps is not None:
            steps.update(extra_steps(steps, product))
        answers.update({f"{name}.{key}": value for key, value in steps.items()})
    return answers
