"""Exact rule 2 (ref/integer_m1.py): integer matrix products give M1 rows that are the same bits in ref and fast/cpu,
whatever the batch, length, padding, thread count or summation order, and stay exact at every size's largest sums."""
import re

import numpy as np
import pytest
from helpers import assert_cpu_windows_are_refs, m1_inputs

from equalinfo.fast.cpu import integer_m1 as cpu_int
from equalinfo.ref import exact_m1, integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import ModelError


def small(dtype="float32", seed=0, trained_like=False, **overrides):
    """A small float M1 with non-trivial norms and biases, and 8 buckets up to distance 6 (T ~ 16 reaches all).
    trained_like: heavy-tailed weights with a spread of channel scales and a few outliers, as trained M1s have."""
    settings = dict(vocab_in=258, vocab_out=257, d_model=16, n_heads=2, n_layers=2, d_ff=24, num_buckets=8,
                    max_distance=6)
    cfg = tr.Config(**{**settings, "dtype": dtype, **overrides})
    params = tr.init_params(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for name in params:
        if name.endswith("norm") or name.endswith("rel_bias"):
            params[name] = (1.0 + rng.normal(size=params[name].shape)).astype(cfg.dtype)
        elif trained_like and params[name].ndim == 2:
            shape = params[name].shape
            w = rng.standard_t(3, size=shape) * np.exp(rng.normal(scale=0.7, size=shape[1]))  # per-channel spread
            w[rng.random(shape) < 0.002] *= 20.0  # outliers set a few channels' scales
            params[name] = (w * 0.05).astype(cfg.dtype)
    return params, cfg


@pytest.fixture(scope="module")
def model32():
    params, cfg = small()
    return integer_m1.quantize_params(params, cfg), cfg, params


# ------------------------------------------------------------------------------------------------- quantizing


def test_rows_quantize_to_15_bits_of_their_max_identically_in_ref_and_cpu():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(6, 33)) * 10.0 ** rng.integers(-6, 4, size=(6, 1))).astype(np.float32)
    x[1] = 0.0  # a zero row
    x[2, :] = np.float32(0.5)  # halves after scaling: rint rounds them to even
    x[3, 0] = np.float32(-32767.75)  # scales to -32767.75 * 2^0: rounds to -32768, clipped to -32767
    x[3, 1:] = 1.0
    x_int, e = integer_m1.quantize_rows(x)
    got_int, got_e = cpu_int.quantize_rows(x)
    assert np.array_equal(x_int, got_int) and np.array_equal(e, got_e)
    assert np.all(x_int == np.rint(x_int)) and np.abs(x_int).max() <= 32767
    nonzero = np.abs(x).max(axis=1) > 0
    top = np.abs(x_int).max(axis=1)
    assert np.all((top[nonzero] >= 2 ** 14) & (top[nonzero] <= 2 ** 15 - 1)) and np.all(x_int[1] == 0)
    assert x_int[2, 0] == 2 ** 14  # 0.5 = 2^-1 -> e = -15: 0.5 * 2^15 exactly, no rounding
    assert x_int[3, 0] == -32767 and e[3] == 0
    # x ~ x_int * 2^e to half a step of the row's scale
    assert np.all(np.abs(x_int * np.ldexp(1.0, e)[:, None] - x) <= np.ldexp(0.5, e)[:, None] * 1.0001 + 0.25 * (
        np.arange(6) == 3)[:, None])


def test_quantized_rows_stay_close_to_the_float_model(model32):
    qparams, cfg, params = model32
    inputs = m1_inputs((2, 12))
    diff = np.abs(integer_m1.next_probs(qparams, cfg, inputs) - exact_m1.next_probs(params, cfg, inputs))
    assert 0 < diff.max() < 1e-3  # different arithmetic (so not equal), 16-bit close


def test_check_params_names_the_problem(model32):
    qparams, cfg, params = model32
    integer_m1.check_params(qparams, cfg)
    with pytest.raises(ValueError, match="rule-2 parameters"):
        integer_m1.check_params(params, cfg)
    bad = dict(qparams)
    bad["unembed.int"] = bad["unembed.int"].copy()
    bad["unembed.int"][0, 0] = -32768
    with pytest.raises(ValueError, match="-32768"):
        integer_m1.check_params(bad, cfg)


# ------------------------------------------------------------------------------------------------- bit-identical rows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17)])  # 17 > max_distance 6: every bucket
def test_cpu_rows_equal_ref_rows(dtype, shape):
    params, cfg = small(dtype)
    qparams = integer_m1.quantize_params(params, cfg)
    inputs = m1_inputs(shape)
    want = integer_m1.next_probs(qparams, cfg, inputs)
    assert want.dtype == np.float64 and want.shape == shape + (257,)
    assert np.array_equal(cpu_int.next_probs(qparams, cfg, inputs), want)


def blocked_shuffled_product(rng):
    """An integer product summed in a random order: k permuted, cut into random blocks, blocks summed shuffled."""

    def product(x_int, w_int):
        n = w_int.shape[0]
        order = rng.permutation(n)
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(3, n - 1), replace=False)) if n > 1 else []
        w = w_int.astype(np.float64)
        partials = [x_int[:, block] @ w[block] for block in np.split(order, cuts)]
        total = np.zeros((x_int.shape[0], w.shape[1]))
        for index in rng.permutation(len(partials)):
            total = total + partials[index]
        return total

    return product


def test_summation_order_does_not_matter(model32, monkeypatch):
    """Property: M1's rows are the same bits with the integer products summed in any (random, blocked) order."""
    qparams, cfg, _ = model32
    inputs = m1_inputs((2, 10), seed=7)
    want = integer_m1.next_probs(qparams, cfg, inputs)
    for seed in range(4):
        monkeypatch.setattr(integer_m1, "integer_product", blocked_shuffled_product(np.random.default_rng(seed)))
        assert np.array_equal(integer_m1.next_probs(qparams, cfg, inputs), want)


def test_float32_products_would_not_be_exact(model32, monkeypatch):
    """The order-independence above needs exact sums: the same products in float32 change M1's rows (so the
    property test above can fail)."""
    qparams, cfg, _ = model32
    inputs = m1_inputs((2, 10), seed=7)
    want = integer_m1.next_probs(qparams, cfg, inputs)
    monkeypatch.setattr(integer_m1, "integer_product",
                        lambda x_int, w_int: (x_int.astype(np.float32) @ w_int.astype(np.float32)).astype(np.float64))
    assert not np.array_equal(integer_m1.next_probs(qparams, cfg, inputs), want)


# ------------------------------------------------------------------------------------------------- the exactness bound


def largest_inner_width(size):
    shape = tr.SIZES[size]
    return max(shape["d_model"], shape["d_ff"])  # the products' n: d_model (q, k, v, o, gate, up, unembed) or d_ff


@pytest.mark.parametrize("size", sorted(tr.SIZES))
def test_worst_case_sums_are_exact_at_every_size(size):
    """Every partial sum of the largest products at each size's largest n is an exact float64 integer, in order
    and blocked, for all-maximal operands (the largest sums) and for random worst-magnitude signs."""
    n = largest_inner_width(size)
    assert integer_m1.accumulation_bound(n) <= 2 ** 53
    integer_m1.check_exact(n)
    top = integer_m1.INT_MAX
    rng = np.random.default_rng(n)
    for signs in (np.ones(n), rng.choice([-1.0, 1.0], size=n)):
        x = np.full(n, float(top))
        w = signs * top
        running = np.cumsum(x * w)  # float64, left to right: every partial sum
        exact = np.cumsum((x * w).astype(np.int64))  # int64 holds n * 2^30 < 2^43 exactly
        assert np.array_equal(running, exact.astype(np.float64)) and np.all(np.abs(exact) < 2 ** 53)
        assert int(running[-1]) == int(sum(int(a) * int(b) for a, b in zip(x, w)))
        x_rows = np.tile(x, (3, 1))
        assert np.array_equal(integer_m1.integer_product(x_rows, w.astype(np.int16)[:, None])[:, 0],
                              np.full(3, exact[-1], dtype=np.float64))
    with pytest.raises(ValueError, match="2\\^53"):
        integer_m1.check_exact(2 ** 53 // (top * top) + 1)


def test_docstring_table_states_every_size():
    """The bound table in ref/integer_m1.py's docstring lists every size with its true n and n * 32767^2."""
    doc = integer_m1.__doc__
    for size, shape in tr.SIZES.items():
        line = re.search(rf"^\s+{re.escape(size)}\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.e+]+)", doc, re.MULTILINE)
        assert line, f"size {size} missing from the docstring's table"
        d_model, d_ff, n, bound = int(line[1]), int(line[2]), int(line[3]), float(line[4])
        assert (d_model, d_ff, n) == (shape["d_model"], shape["d_ff"], largest_inner_width(size))
        assert abs(bound - integer_m1.accumulation_bound(n)) <= 0.005 * integer_m1.accumulation_bound(n)


# ------------------------------------------------------------------------------------------------- M1 as a coding model


def test_rule_2_model_arrays_round_trip_and_differ_from_rule_1(model32):
    qparams, cfg, params = model32
    model = TransformerModel(qparams, cfg, rule=2)
    arrays = model.arrays()
    assert int(arrays["coding.exact_m1_version"]) == 2 and "params.unembed.int" in arrays
    rebuilt = TransformerModel.from_arrays(arrays)
    assert rebuilt.rule == 2 and rebuilt.cfg == cfg
    assert fingerprint(rebuilt.arrays()) == fingerprint(arrays)
    assert fingerprint(TransformerModel(params, cfg).arrays()) != fingerprint(arrays)
    inputs = m1_inputs((1, 6))
    assert np.array_equal(rebuilt.next_probs(inputs), integer_m1.next_probs(qparams, cfg, inputs))
    with pytest.raises(ModelError, match="rule-2 parameters"):
        TransformerModel(params, cfg, rule=2)
    with pytest.raises(ModelError, match=f"version {max(RULE_MODULES) + 1} of the exact arithmetic"):
        TransformerModel(qparams, cfg, rule=max(RULE_MODULES) + 1)


def test_files_made_with_cpu_decode_with_ref(model32):
    """Equal-Info windows compressed by fast.cpu with rule 2 decode with ref's coder and rows, and vice versa."""
    qparams, cfg, _ = model32
    ref_model = TransformerModel(qparams, cfg, rule=2)
    cpu_model = TransformerModel(qparams, cfg, rule=2, rows=cpu_int.next_probs)
    assert_cpu_windows_are_refs(cpu_model, ref_model)
