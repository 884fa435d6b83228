"""Family `quantization`: float probability rows -> integer CDFs (the rule of ref.arithmetic.quantize).

Rows of every kind that stresses the rule (random, peaked, near-uniform, denormal-adjacent and tiny-scaled, huge,
unnormalised, widths from 2 to 4,096 with 257 the usual one, V = 2^precision where no unit is left to share) at
precisions 8..16, and rows the rule must reject (negative, NaN, infinite, zero sum, too large, too many symbols,
precision out of range).
"""
import numpy as np

from equalinfo.conformance.tally import MUST_REJECT, refuses

NAME = "quantization"
SEED = 1401
SMALLEST_NORMAL = np.finfo(np.float64).tiny  # 2^-1022
SMALLEST_DENORMAL = np.nextafter(0.0, 1.0)  # 2^-1074


def _rows(rng, precision):
    """(kind, row) pairs for one precision; widths never exceed 2^precision."""
    wide = 257 if (1 << precision) >= 257 else 200
    rows = [
        ("random", rng.dirichlet(np.ones(wide))),
        ("peaked", np.where(np.arange(wide) == rng.integers(wide), 1.0, 1e-12)),
        ("near-uniform", np.full(wide, 1.0 / wide) * (1.0 + 1e-9 * rng.standard_normal(wide))),
        ("sparse-dirichlet", rng.dirichlet(np.full(wide, 0.05))),
        ("unnormalised-counts", rng.integers(0, 50, wide).astype(np.float64) + 1.0),
        ("width-2", rng.dirichlet(np.ones(2))),
        ("width-3", np.array([1.0, 2.0, 3.0]) / 7.0),
        ("width-17", rng.dirichlet(np.ones(17))),
    ]
    denormal = rng.dirichlet(np.ones(wide))
    denormal[::3] = SMALLEST_DENORMAL
    denormal[1::7] = SMALLEST_NORMAL
    denormal[2::11] = np.nextafter(SMALLEST_NORMAL, 0.0)  # the largest denormal
    denormal[5::13] = 0.0
    rows.append(("denormal-adjacent", denormal))
    rows.append(("tiny-scaled", rng.dirichlet(np.ones(wide)) * 1e-310))  # every entry denormal
    rows.append(("huge-scaled", rng.dirichlet(np.ones(wide)) * 1e300))  # S * F stays finite
    if precision == 16:
        rows.append(("width-4096", rng.dirichlet(np.ones(4096))))
    if precision <= 10:
        rows.append(("no-free-unit", rng.random(1 << precision)))  # V = 2^p: F = 0, every width exactly 1
    return [(kind, row) for kind, row in rows if len(row) <= (1 << precision)]


REJECTED = [  # (kind, row maker, precision, the rule it breaks)
    ("negative", lambda: np.array([0.5, -0.25, 0.75]), 14, "entries must be finite and non-negative"),
    ("nan", lambda: np.array([0.5, np.nan, 0.5]), 14, "entries must be finite and non-negative"),
    ("infinite", lambda: np.array([0.5, np.inf, 0.5]), 14, "entries must be finite and non-negative"),
    ("zero-sum", lambda: np.zeros(4), 14, "the sum must be positive"),
    ("too-large", lambda: np.full(4, 1e305), 16, "S * (2^precision - V) must be finite"),
    ("too-many-symbols", lambda: np.full(257, 1.0), 8, "V <= 2^precision"),
    ("precision-17", lambda: np.ones(4), 17, "1 <= precision <= 16"),
    ("precision-0", lambda: np.ones(1), 0, "1 <= precision <= 16"),
]

HAND_ROW = np.array([0.1, 0.2, 0.3, 0.4])  # docs/conformance.md works this row out by hand at precision 8


def build():
    from equalinfo.ref.arithmetic import quantize

    rng = np.random.default_rng(SEED)
    cases, arrays = [], {}
    rows = [(8, "hand", HAND_ROW)] + [(p, kind, row) for p in range(8, 17) for kind, row in _rows(rng, p)]
    for number, (precision, kind, row) in enumerate(rows):
        key = f"{number:03d}"
        arrays[f"probs.{key}"] = row
        arrays[f"cdf.{key}"] = quantize(row, precision)
        cases.append({"id": key, "kind": kind, "precision": precision, "n_symbols": len(row)})
    rejected = []
    for number, (kind, make, precision, rule) in enumerate(REJECTED):
        key = f"{number:03d}"
        arrays[f"rejected.{key}"] = make()
        rejected.append({"id": key, "kind": kind, "precision": precision, "breaks": rule})
    description = {
        "family": NAME,
        "rule": "cdf_0 = 0; cdf_k = k + min(F, floor(((C_k * F) / S) + 0.5)) for k = 1..V-1; cdf_V = 2^precision; "
                "F = 2^precision - V, C_k = p_0 + ... + p_(k-1) summed left to right in float64, S = C_V",
        "arrays": {"probs.ID": "<f8 [V] the row", "cdf.ID": "<i8 [V+1] its CDF",
                   "rejected.ID": "<f8 [V] a row the rule must reject at the case's precision"},
        "cases": cases,
        "rejected": rejected,
    }
    return description, arrays


def check(description, arrays, impl, tally):
    quantize = impl.arithmetic.quantize
    for case in description["cases"]:
        where = f"case {case['id']} ({case['kind']}, precision {case['precision']})"
        got = tally.call(where, "quantize", quantize, arrays[f"probs.{case['id']}"], case["precision"])
        if got is not None:
            tally.same(got, arrays[f"cdf.{case['id']}"], where, "CDF")
    for case in description["rejected"]:
        where = f"rejected {case['id']} ({case['kind']})"
        tally.raises(where, "quantize", quantize, arrays[f"rejected.{case['id']}"], case["precision"])


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

def request(description, arrays):
    """(description, arrays, expected) for an outside program: the rows without their CDFs; the answers are
    cdf.ID for every case and rejected.ID (true) for every row the rule refuses."""
    asked = {key: value for key, value in arrays.items() if not key.startswith("cdf.")}
    expected = {f"cdf.{case['id']}": arrays[f"cdf.{case['id']}"] for case in description["cases"]}
    expected.update({f"rejected.{case['id']}": MUST_REJECT for case in description["rejected"]})
    return description, asked, expected


def answer(description, arrays, impl):
    """The answers of `impl` (implementations.load) to a request: its CDFs, and whether it refused each row."""
    quantize = impl.arithmetic.quantize
    answers = {f"cdf.{case['id']}": quantize(arrays[f"probs.{case['id']}"], case["precision"])
               for case in description["cases"]}
    for case in description["rejected"]:
        answers[f"rejected.{case['id']}"] = refuses(quantize, arrays[f"rejected.{case['id']}"], case["precision"])
    return answers
