"""Exact rule 4 (ref/int8_rows_m1.py): 7-bit int8 rows, one float32 GEMM per K-chunk, rule 3's rescale, and the key
and value products rounded to bfloat16. Checked here on ref alone, against independent arithmetic: the docstring's
exactness table, the chunked product at the extreme operands, the bfloat16 rounding bit by bit (a truncating or
ties-away rounding fails), the rows' quantization, which products are rounded, and M1's fingerprint.
(fast/gpu's twin: tests/test_fast_gpu_quantized_m1.py.)"""
import math
import re

import numpy as np
import pytest
from helpers import m1_inputs
from test_int8_m1 import largest_inner_width
from test_integer_m1 import small

from equalinfo.ref import int8_m1, int8_rows_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.exact_rules import RULE_MODULES, rule_module
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import ModelError

TERM = 127 * 127  # the largest |x_int * W_int|


@pytest.fixture(scope="module")
def model32():
    params, cfg = small()
    return int8_rows_m1.quantize_params(params, cfg), cfg, params


# ------------------------------------------------------------------------------------------------- the exactness bound


def test_docstring_table_states_every_size():
    """The table in ref/int8_rows_m1.py's docstring: every size of ref.transformer.SIZES (and no other) with its
    true d_model, d_ff, largest n, chunk count, largest chunk sum, |acc| bound and the power of two just above it."""
    rows = re.findall(r"^\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) \* 16129 = ([\d.e+]+)\s+([\d.e+]+)\s+"
                      r"\(< 2\^(\d+)\)", int8_rows_m1.__doc__, re.MULTILINE)
    assert sorted(row[0] for row in rows) == sorted(tr.SIZES)
    for size, d_model, d_ff, n, count, terms, chunk_sum, bound, power in rows:
        d_model, d_ff, n, count, terms, power = map(int, (d_model, d_ff, n, count, terms, power))
        shape = tr.SIZES[size]
        assert (d_model, d_ff, n) == (shape["d_model"], shape["d_ff"], largest_inner_width(size)), size
        assert count == -(-n // int8_rows_m1.CHUNK) == len(int8_rows_m1.chunks(n)), size
        assert terms == min(n, int8_rows_m1.CHUNK), size
        assert terms * TERM <= 2 ** 24  # every chunk's float32 sum is exact
        assert abs(float(chunk_sum) - terms * TERM) <= 0.005 * terms * TERM, size
        exact_bound = n * int8_rows_m1.ROW_MAX * int8_rows_m1.WEIGHT_MAX
        assert abs(float(bound) - exact_bound) <= 0.005 * exact_bound, size
        assert 2 ** (power - 1) <= exact_bound < 2 ** power, size  # "(< 2^k)" names the next power of two


@pytest.mark.parametrize("n", [1, 1039, 1040, 1041, 2080])  # one chunk, exactly full, one term over, two full
def test_chunked_product_is_the_exact_integer_at_the_extreme_operands(n):
    """Rows of +-127 against weights of +-127: chunked_product equals int64 arithmetic, |acc| reaches n * 127^2,
    and each chunk's float32 sum, term by term in order, stays exact (1040 terms at most)."""
    rng = np.random.default_rng(n)
    x_int = np.stack([np.full(n, 127.0), np.full(n, -127.0), rng.choice([-127.0, 127.0], size=n)])
    w_int = np.stack([np.full(n, 127), np.full(n, -127), rng.choice([-127, 127], size=n)], axis=1).astype(np.int8)
    exact = x_int.astype(np.int64) @ w_int.astype(np.int64)
    assert np.abs(exact).max() == n * TERM
    got = int8_rows_m1.chunked_product(x_int, w_int)
    assert got.dtype == np.float64 and np.array_equal(got, exact.astype(np.float64))
    # the same operands through the whole product: e = 0 for a row whose max is 127, scales of 1
    y = int8_rows_m1.int8_rows_matmul(x_int.astype(np.float32), {"w.int": w_int, "w.scale": np.ones(3)}, "w")
    assert np.array_equal(y, exact.astype(np.float32))
    for chunk in int8_rows_m1.chunks(n):
        terms = np.full(chunk.stop - chunk.start, np.float32(TERM))
        assert terms.size <= 1040
        assert np.array_equal(np.cumsum(terms, dtype=np.float32).astype(np.int64), np.cumsum(terms.astype(np.int64)))


# ------------------------------------------------------------------------------------------------- bfloat16


def bfloat16_edge_values():
    """float32 values where a bfloat16 rounding can go wrong: exact ties with an even and an odd kept mantissa, a
    unit either side of a tie, subnormals, signed zeros, the largest finite values (which round to infinity),
    infinities, a carry into the exponent, and random bit patterns of every exponent (no NaNs)."""
    rng = np.random.default_rng(16)
    kept = rng.integers(0, 0x7F80, size=400, dtype=np.uint32) << 16  # sign 0, exponents 0..254, any 7-bit mantissa
    kept = np.concatenate([kept, kept | 0x80000000, np.uint32([0x00000000, 0x00010000, 0x7F7F0000, 0x3F7F0000])])
    low = np.uint32([0x8000, 0x7FFF, 0x8001, 0x0001, 0xFFFF, 0x0000])  # tie, just below, just above, ...
    bits = (kept[:, None] | low[None, :]).reshape(-1)
    random = rng.integers(0, 2 ** 32, size=4000, dtype=np.uint64).astype(np.uint32)
    random = random[(random & 0x7F800000) != 0x7F800000]  # finite: no NaNs, infinities added below
    bits = np.concatenate([bits, random, np.uint32([0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x80000000])])
    return bits.view(np.float32)


def nearest_bfloat16(values):
    """An independent bfloat16 rounding, in float64 arithmetic: the two bfloat16 neighbours of |v| (multiples of
    its binade's bfloat16 step 2^(E-8), 2^-133 below float32's normal range), the nearer one, at a tie the one
    whose significand (the multiple) is even; beyond the largest bfloat16, infinity; v's sign kept."""
    out = []
    for v in np.asarray(values, dtype=np.float32).astype(np.float64):
        magnitude = abs(v)
        if math.isinf(magnitude) or magnitude == 0:
            out.append(v)
            continue
        step = 2.0 ** (max(math.frexp(magnitude)[1], -125) - 8)  # bfloat16 keeps 8 significant bits
        below = math.floor(magnitude / step)  # exact: a power-of-two division of a float32
        lower, upper = below * step, (below + 1) * step
        if magnitude - lower < upper - magnitude or (magnitude - lower == upper - magnitude and below % 2 == 0):
            rounded = lower
        else:
            rounded = upper
        out.append(math.copysign(math.inf if rounded >= 2.0 ** 128 else rounded, v))
    return np.array(out).astype(np.float32)


def test_to_bfloat16_is_the_nearest_ties_to_even():
    values = bfloat16_edge_values()
    want = nearest_bfloat16(values)
    got = int8_rows_m1.to_bfloat16(values)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)  # a bfloat16 in float32's clothes
    # the test tells the rule from the usual wrong ones
    bits = values.view(np.uint32).astype(np.uint64)
    truncated = (bits & 0xFFFF0000).astype(np.uint32).view(np.float32)
    ties_away = ((bits + 0x8000) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    assert not np.array_equal(truncated.view(np.uint32), want.view(np.uint32))
    assert not np.array_equal(ties_away.view(np.uint32), want.view(np.uint32))


def test_to_bfloat16_of_float64_rounds_through_float32_and_keeps_the_dtype():
    y = np.array([1 + 2.0 ** -8 + 2.0 ** -30, 1 + 2.0 ** -8 + 2.0 ** -7, -3e-39, 3.4e38, 0.1])
    got = int8_rows_m1.to_bfloat16(y)
    assert got.dtype == np.float64
    assert np.array_equal(got, nearest_bfloat16(y.astype(np.float32)).astype(np.float64))
    # 1 + 2^-8 + 2^-30 is nearer 1 + 2^-7 in float64 but is the tie 1 + 2^-8 in float32: to even, 1
    assert got[0] == 1.0 and got[1] == 1 + 2.0 ** -6 and got[3] == np.inf


# ------------------------------------------------------------------------------------------------- quantizing rows


def test_rows_quantize_to_7_bits_of_their_max():
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(8, 29)) * 10.0 ** rng.integers(-6, 4, size=(8, 1))).astype(np.float32)
    x[1] = 0.0  # a zero row: e = 0
    x[2] = np.float32(0.5)  # 0.5 = 0.5 * 2^0 -> e = -7: 0.5 * 2^7 = 64, the smallest row max
    x[3, 0], x[3, 1:] = np.float32(-127.75), 1.0  # e = 0: -127.75 rounds to -128, clipped to -127
    x[4, ::2], x[4, 1::2] = np.float32(1.5 * 2 ** -6), np.float32(2.5 * 2 ** -12)  # e = -12: 96, and 2.5 -> 2
    x[5, ::2], x[5, 1::2] = np.float32(-100.0), np.float32(3.5)  # a negative max; 3.5 rounds to 4
    x_int, e = int8_rows_m1.quantize_rows(x)
    for r, row in enumerate(x.astype(np.float64)):
        top = np.abs(row).max()
        assert e[r] == (math.frexp(top)[1] - 7 if top > 0 else 0), r  # the exponent rule, from Python's frexp
        assert np.array_equal(x_int[r], np.clip(np.rint(row / 2.0 ** e[r]), -127, 127)), r
    assert x_int.dtype == np.float64 and e.dtype == np.int64
    assert np.all(x_int == np.rint(x_int)) and np.abs(x_int).max() == 127
    nonzero = np.abs(x).max(axis=1) > 0
    assert np.all((np.abs(x_int).max(axis=1)[nonzero] >= 64)) and np.all(x_int[1] == 0) and e[1] == 0
    assert e[2] == -7 and x_int[2, 0] == 64
    assert e[3] == 0 and x_int[3, 0] == -127 and x_int[3, 1] == 1
    assert e[4] == -12 and x_int[4, 0] == 96 and x_int[4, 1] == 2  # 2.5 to even
    assert e[5] == 0 and x_int[5, 0] == -100 and x_int[5, 1] == 4  # 3.5 to even
    error = np.abs(x_int * np.ldexp(1.0, e)[:, None] - x)
    assert np.all(error <= np.ldexp(0.5, e)[:, None] * (1 + 1e-12) + 0.25 * (np.arange(8) == 3)[:, None])


# ------------------------------------------------------------------------------------------------- which products


def unrounded_product(x, qparams, name):
    """y by rule 4 before any bfloat16 rounding, from ref's steps: quantize, integer product (in int64), rescale."""
    x_int, e = int8_rows_m1.quantize_rows(x)
    acc = (x_int.astype(np.int64) @ qparams[name + ".int"].astype(np.int64)).astype(np.float64)
    return ((acc * qparams[name + ".scale"]) * np.ldexp(1.0, e)[:, None]).astype(x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_only_key_and_value_products_are_rounded_to_bfloat16(model32, dtype):
    qparams, cfg, _ = model32
    rng = np.random.default_rng(5)
    for name in [n[:-len(".int")] for n in qparams if n.endswith(".int")]:
        x = rng.normal(size=(6, qparams[name + ".int"].shape[0])).astype(dtype)  # d_model wide, d_ff for w_down
        y = int8_rows_m1.int8_rows_matmul(x, qparams, name)
        plain = unrounded_product(x, qparams, name)
        assert y.dtype == dtype
        if name.rsplit(".", 1)[-1] in ("wk", "wv"):
            assert int8_rows_m1.rounds_to_bfloat16(name)
            assert np.array_equal(y, int8_rows_m1.to_bfloat16(plain)) and not np.array_equal(y, plain), name
            assert np.all(y.astype(np.float32).view(np.uint32) & 0xFFFF == 0), name
        else:
            assert not int8_rows_m1.rounds_to_bfloat16(name)
            assert np.array_equal(y, plain), name


def test_rule_4_rows_are_rule_3s_arithmetic_with_7_bit_rows_and_bfloat16_keys(model32, monkeypatch):
    """Rule 4's rows differ from rule 3's (on the same arrays) yet stay close; in a forward pass exactly the key
    and value products' outputs are bfloat16 values, the others use all of float32's bits."""
    qparams, cfg, params = model32
    inputs = m1_inputs((2, 12))
    rule4 = int8_rows_m1.next_probs(qparams, cfg, inputs)
    rule3 = int8_m1.next_probs(qparams, cfg, inputs)
    assert rule4.dtype == np.float64 and np.all(np.abs(rule4.sum(axis=-1) - 1) < 1e-12) and np.all(rule4 > 0)
    assert 0 < np.abs(rule4 - rule3).max() < 2e-2
    outputs = {}
    product = int8_rows_m1.int8_rows_matmul

    def recording(x, qp, name):
        outputs[name] = y = product(x, qp, name)
        return y

    monkeypatch.setattr(int8_rows_m1, "int8_rows_matmul", recording)
    assert np.array_equal(int8_rows_m1.next_probs(qparams, cfg, inputs), rule4)
    assert len(outputs) == 7 * cfg.n_layers + 1
    for name, y in outputs.items():
        low_bits_zero = np.all(y.view(np.uint32) & 0xFFFF == 0)
        assert low_bits_zero == (name.rsplit(".", 1)[-1] in ("wk", "wv")), name


# ------------------------------------------------------------------------------------------------- M1 as a coding model


def test_rule_4_model_runs_on_rule_3s_arrays_with_its_own_fingerprint(model32):
    qparams, cfg, params = model32
    assert RULE_MODULES[4] == "int8_rows_m1" and rule_module(4) is int8_rows_m1
    assert int8_rows_m1.EXACT_M1_VERSION == 4
    int8_rows_m1.check_params(qparams, cfg)  # rule 3's arrays, unchanged
    model = TransformerModel(qparams, cfg, rule=4)
    arrays = model.arrays()
    assert int(arrays["coding.exact_m1_version"]) == 4
    assert fingerprint(arrays) != fingerprint(TransformerModel(qparams, cfg, rule=3).arrays())
    rebuilt = TransformerModel.from_arrays(arrays)
    assert rebuilt.rule == 4 and fingerprint(rebuilt.arrays()) == fingerprint(arrays)
    inputs = m1_inputs((1, 7))
    assert np.array_equal(rebuilt.next_probs(inputs), int8_rows_m1.next_probs(qparams, cfg, inputs))
    with pytest.raises(ModelError, match="rule-4 parameters"):
        TransformerModel(params, cfg, rule=4)  # float arrays
