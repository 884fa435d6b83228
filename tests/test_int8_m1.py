"""Exact rule 3 (ref/int8_m1.py): int8-valued float32 products give M1 rows that are the same bits in ref and
fast/cpu, whatever the batch, length, padding, thread count, chunking or summation order, and every float32 sum
stays exact at the extreme operands of every size's largest product."""
import re

import numpy as np
import pytest
from helpers import assert_cpu_windows_are_refs, m1_inputs
from test_integer_m1 import small

from equalinfo.fast.cpu import equalinfo as fast_ei
from equalinfo.fast.cpu import exact_m1 as cpu_exact
from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.ref import equalinfo, exact_m1, int8_m1, integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.exact_rules import rule_module
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import ModelError
from equalinfo.ref.symbols import bytes_to_symbols


@pytest.fixture(scope="module")
def model32():
    params, cfg = small()
    return int8_m1.quantize_params(params, cfg), cfg, params


# ------------------------------------------------------------------------------------------------- quantizing


def test_every_row_integer_splits_into_two_int8_halves():
    """Exhaustive over [-16383, 16383]: x_int = 128 * hi + lo with |hi|, |lo| <= 127, lo of x_int's sign."""
    x_int = np.arange(-int8_m1.ROW_MAX, int8_m1.ROW_MAX + 1, dtype=np.float64)[None, :]
    hi, lo = int8_m1.split_rows(x_int)
    assert hi.dtype == lo.dtype == np.float32
    assert np.array_equal(128 * hi.astype(np.int64) + lo.astype(np.int64), x_int.astype(np.int64))
    assert np.abs(hi).max() == 127 and np.abs(lo).max() == 127
    assert np.all(np.sign(lo) * np.sign(x_int) >= 0) and np.all(hi == np.rint(hi)) and np.all(lo == np.rint(lo))


def test_rows_quantize_to_14_bits_of_their_max_identically_in_ref_and_cpu():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(7, 33)) * 10.0 ** rng.integers(-6, 4, size=(7, 1))).astype(np.float32)
    x[1] = 0.0  # a zero row
    x[2, :] = np.float32(0.5)  # 0.5 = 2^-1 -> e = -14: 0.5 * 2^14 exactly
    x[3, 0] = np.float32(-16383.75)  # e = 0: rounds to -16384, clipped to -16383
    x[3, 1:] = 1.0
    x[4, ::2] = np.float32(1.5 * 2 ** -13)  # max 1.5 * 2^-13 -> e = -26: 12288 exactly; halves round to even
    x[4, 1::2] = np.float32(2.5 * 2 ** -26)
    x_int, e = int8_m1.quantize_rows(x)
    both, got_e = cpu_int8.quantize_split(x)
    hi, lo = int8_m1.split_rows(x_int)
    assert np.array_equal(both, np.concatenate([hi, lo])) and np.array_equal(e, got_e)
    assert np.all(x_int == np.rint(x_int)) and np.abs(x_int).max() <= 16383
    nonzero = np.abs(x).max(axis=1) > 0
    top = np.abs(x_int).max(axis=1)
    assert np.all((top[nonzero] >= 2 ** 13) & (top[nonzero] <= 2 ** 14 - 1)) and np.all(x_int[1] == 0)
    assert x_int[2, 0] == 2 ** 13 and x_int[3, 0] == -16383 and e[3] == 0
    assert x_int[4, 0] == 12288 and x_int[4, 1] == 2  # 2.5 rounds to even
    # x ~ x_int * 2^e to half a step of the row's scale (row 3's clipped entry a step off)
    error = np.abs(x_int * np.ldexp(1.0, e)[:, None] - x)
    assert np.all(error <= np.ldexp(0.5, e)[:, None] * 1.0001 + 0.25 * (np.arange(7) == 3)[:, None])


def test_quantized_rows_stay_close_to_the_float_model(model32):
    qparams, cfg, params = model32
    inputs = m1_inputs((2, 12))
    diff = np.abs(int8_m1.next_probs(qparams, cfg, inputs) - exact_m1.next_probs(params, cfg, inputs))
    assert 0 < diff.max() < 2e-2  # different arithmetic (so not equal), 8-bit-weights close


def test_check_params_names_the_problem(model32):
    qparams, cfg, params = model32
    int8_m1.check_params(qparams, cfg)
    with pytest.raises(ValueError, match="rule-3 parameters"):
        int8_m1.check_params(params, cfg)
    with pytest.raises(ValueError, match="int16 .* rule 3 needs int8"):
        int8_m1.check_params(integer_m1.quantize_params(params, cfg), cfg)  # rule 2's arrays
    bad = dict(qparams)
    bad["unembed.int"] = bad["unembed.int"].copy()
    bad["unembed.int"][0, 0] = -128
    with pytest.raises(ValueError, match="-128"):
        int8_m1.check_params(bad, cfg)


# ------------------------------------------------------------------------------------------------- bit-identical rows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trained_like", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (20, 9)])  # 17 > max_distance 6: every bucket; 20 rows > 16
def test_cpu_rows_equal_ref_rows(dtype, trained_like, shape):
    params, cfg = small(dtype, trained_like=trained_like)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs(shape)
    want = int8_m1.next_probs(qparams, cfg, inputs)
    assert want.dtype == np.float64 and want.shape == shape + (257,)
    assert np.all(np.abs(want.sum(axis=-1) - 1) < 1e-12) and np.all(want > 0)
    assert np.array_equal(cpu_int8.next_probs(qparams, cfg, inputs), want)


def test_cpu_rows_equal_ref_rows_with_several_chunks():
    """d_ff = 2,100 > 2 * 1,040: w_down's products run over three K-chunks (the cpu path that adds chunks)."""
    params, cfg = small(d_ff=2100, n_layers=1)
    qparams = int8_m1.quantize_params(params, cfg)
    assert int8_m1.n_chunks(cfg.d_ff) == 3
    inputs = m1_inputs((2, 9), seed=4)
    assert np.array_equal(cpu_int8.next_probs(qparams, cfg, inputs), int8_m1.next_probs(qparams, cfg, inputs))


@pytest.mark.parametrize("n", [40, 2100])  # one K-chunk, and three
def test_products_side_by_side_equal_each_product_alone(n):
    """int8_products (the rows quantized once, one sgemm against several weights' columns side by side) gives
    each product's bits as ref's int8_matmul gives them one at a time, with extreme rows and weights."""
    rng = np.random.default_rng(10)
    qparams = {}
    for name, width in (("a", 5), ("b", 7), ("c", 1)):
        qparams[name + ".int"], qparams[name + ".scale"] = int8_m1.quantize_weight(rng.standard_t(3, (n, width)))
    qparams["a.int"][:, 0] = int8_m1.WEIGHT_MAX  # a column of extreme weights
    x = (rng.normal(size=(6, n)) * 10.0 ** rng.integers(-3, 3, size=(6, 1))).astype(np.float32)
    x[0] = np.float32(3.0)  # a row whose every value quantizes to the largest integer
    x[1] = 0  # a zero row
    got = cpu_int8.int8_products(x, qparams, ["a", "b", "c"])
    for name, y in zip("abc", got):
        assert y.flags.c_contiguous and np.array_equal(y, int8_m1.int8_matmul(x, qparams, name))


def test_vectorized_elementwise_kernels_keep_rule_1s_bits():
    """RMSNorm and softmax64 with rows side by side equal fast.cpu.exact_m1's row-at-a-time kernels."""
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        for n_rows in (1, 15, 16, 37):
            x = (rng.normal(size=(n_rows, 48)) * 10.0 ** rng.integers(-3, 3, size=(n_rows, 1))).astype(dtype)
            scale = rng.normal(size=48).astype(dtype)
            assert np.array_equal(cpu_int8.rms_norm(x, scale), cpu_exact.rms_norm(x, scale))
            logit_rows = (rng.normal(size=(n_rows, 257)) * 8).astype(dtype)
            assert np.array_equal(cpu_int8.softmax64(logit_rows), cpu_exact.softmax64(logit_rows))


# ------------------------------------------------------------------------------------------------- summation order


def float32_sum_in_order(hi_or_lo, w, order):
    """A float32 GEMM summed term by term in the given order of k (one rounding per add, as a scalar loop does).
    a [N, K], w [K, m] float32 -> [N, m] float32"""
    total = np.zeros((hi_or_lo.shape[0], w.shape[1]), dtype=np.float32)
    for k in order:
        total += hi_or_lo[:, k, None] * w[k]
    return total


def shuffled_split_product(rng, largest_chunk=int8_m1.CHUNK):
    """rule 3's acc with k permuted in both operands, cut into random chunks of at most largest_chunk, each chunk's
    two GEMMs summed in a random order in float32, and the chunks combined in a random order."""

    def product(x_int, w_int):
        n = w_int.shape[0]
        order = rng.permutation(n)
        hi, lo = int8_m1.split_rows(x_int[:, order])
        w = w_int[order].astype(np.float32)
        cuts, start = [], 0
        while start < n:
            start += int(rng.integers(1, min(largest_chunk, n) + 1))
            cuts.append(min(start, n))
        bounds = list(zip([0] + cuts[:-1], cuts))
        acc = np.zeros((x_int.shape[0], w.shape[1]))
        for index in rng.permutation(len(bounds)):
            a, b = bounds[index]
            part_order = rng.permutation(b - a)
            p_hi = float32_sum_in_order(hi[:, a:b], w[a:b], part_order)
            p_lo = float32_sum_in_order(lo[:, a:b], w[a:b], part_order[::-1])
            acc = acc + (int8_m1.SPLIT * p_hi.astype(np.float64) + p_lo.astype(np.float64))
        return acc

    return product


def test_summation_order_does_not_matter(model32, monkeypatch):
    """Property: M1's rows are the same bits with the products' terms permuted, chunked and summed in any order."""
    qparams, cfg, _ = model32
    inputs = m1_inputs((2, 10), seed=7)
    want = int8_m1.next_probs(qparams, cfg, inputs)
    for seed in range(4):
        monkeypatch.setattr(int8_m1, "split_product", shuffled_split_product(np.random.default_rng(seed)))
        assert np.array_equal(int8_m1.next_probs(qparams, cfg, inputs), want)


def test_unsplit_float32_products_would_not_be_exact():
    """Without the split, 14-bit rows straight into a float32 GEMM pass 2^24 and the sum depends on the order:
    so the property test above can fail, and the split is needed."""
    rng = np.random.default_rng(9)
    n = 1024
    x_int = rng.integers(-16383, 16384, size=(4, n)).astype(np.float32)
    w = rng.integers(-127, 128, size=(n, 8)).astype(np.float32)
    exact = x_int.astype(np.int64) @ w.astype(np.int64)
    in_order = float32_sum_in_order(x_int, w, range(n)).astype(np.int64)
    shuffled = float32_sum_in_order(x_int, w, rng.permutation(n)).astype(np.int64)
    assert not np.array_equal(in_order, exact) and not np.array_equal(in_order, shuffled)
    hi, lo = int8_m1.split_rows(x_int.astype(np.float64))  # the same sums split: exact in both orders
    for order in (range(n), rng.permutation(n)):
        split = 128 * float32_sum_in_order(hi, w, order).astype(np.int64) + float32_sum_in_order(lo, w, order).astype(
            np.int64)
        assert np.array_equal(split, exact)


# ------------------------------------------------------------------------------------------------- the exactness bound


def largest_inner_width(size):
    shape = tr.SIZES[size]
    return max(shape["d_model"], shape["d_ff"])  # the products' n: d_model (q, k, v, o, gate, up, unembed) or d_ff


def test_a_chunk_of_1040_extreme_terms_is_exact_and_1041_is_not():
    """The bound is tight: 1040 terms of 127 * 127, summed in float32, stay exact integers; a 1041st is lost."""
    assert int8_m1.CHUNK == 1040 and int8_m1.chunk_bound(1040) <= 2 ** 24 < int8_m1.chunk_bound(1041)
    terms = np.full(1041, np.float32(127) * np.float32(127), dtype=np.float32)
    running = np.cumsum(terms, dtype=np.float32)  # float32, left to right
    exact = np.cumsum(np.full(1041, 127 * 127, dtype=np.int64))
    assert np.array_equal(running[:1040].astype(np.int64), exact[:1040])
    assert int(running[1040]) != exact[1040]


@pytest.mark.parametrize("size", sorted(tr.SIZES))
def test_worst_case_products_are_exact_at_every_size(size):
    """Rows of +-16383 (halves +-127) against weights of +-127 at each size's largest n: every chunk's float32
    sum, in order and in a random order, is an exact integer, and the combined acc equals int64 arithmetic."""
    n = largest_inner_width(size)
    int8_m1.check_exact(n)
    assert int8_m1.accumulation_bound(n) < 2 ** 53
    rng = np.random.default_rng(n)
    x_int = np.stack([np.full(n, 16383.0), -np.full(n, 16383.0), rng.choice([-16383.0, 16383.0], size=n)])
    w_int = np.stack([np.full(n, 127), rng.choice([-127, 127], size=n)], axis=1).astype(np.int8)  # [n, 2]
    exact = x_int.astype(np.int64) @ w_int.astype(np.int64)  # |acc| < 2^35: exact in int64
    assert np.abs(exact).max() == int8_m1.accumulation_bound(n)  # the extreme is reached
    assert np.array_equal(int8_m1.split_product(x_int, w_int), exact.astype(np.float64))
    assert np.array_equal(cpu_int8.int8_matmul(x_int.astype(np.float32), {"w.int": w_int, "w.scale": np.ones(2)},
                                               "w"), exact.astype(np.float32))  # e = 0: acc rescaled by 1
    hi, _ = int8_m1.split_rows(x_int)
    w = w_int.astype(np.float32)
    for chunk in int8_m1.chunks(n):
        k = chunk.stop - chunk.start
        assert k <= int8_m1.CHUNK and int8_m1.chunk_bound(k) <= 2 ** 24
        terms = hi[0, chunk] * w[chunk, 0]  # all +127 * +127: the largest partial sums
        assert np.array_equal(np.cumsum(terms, dtype=np.float32).astype(np.int64), np.cumsum(
            terms.astype(np.int64)))
        order = rng.permutation(k)
        got = float32_sum_in_order(hi[:, chunk], w[chunk], order)
        assert np.array_equal(got.astype(np.int64), hi[:, chunk].astype(np.int64) @ w_int[chunk].astype(np.int64))
    with pytest.raises(ValueError, match="2\\^53"):
        int8_m1.check_exact(2 ** 53 // (int8_m1.ROW_MAX * int8_m1.WEIGHT_MAX) + 1)


def test_docstring_table_states_every_size():
    """The bound table in ref/int8_m1.py's docstring lists every size with its true n, chunks, chunk sum and
    |acc| bound."""
    doc = int8_m1.__doc__
    for size, shape in tr.SIZES.items():
        line = re.search(rf"^\s+{re.escape(size)}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) \* 16129 = ([\d.e+]+)\s+"
                         rf"([\d.e+]+)", doc, re.MULTILINE)
        assert line, f"size {size} missing from the docstring's table"
        d_model, d_ff, n, count, terms = (int(line[i]) for i in range(1, 6))
        chunk_sum, bound = float(line[6]), float(line[7])
        assert (d_model, d_ff, n) == (shape["d_model"], shape["d_ff"], largest_inner_width(size))
        assert count == int8_m1.n_chunks(n) and terms == min(n, int8_m1.CHUNK)
        assert abs(chunk_sum - int8_m1.chunk_bound(terms)) <= 0.005 * int8_m1.chunk_bound(terms)
        assert abs(bound - int8_m1.accumulation_bound(n)) <= 0.005 * int8_m1.accumulation_bound(n)


# ------------------------------------------------------------------------------------------------- M1 as a coding model


def test_rule_3_model_arrays_round_trip_and_differ_from_rule_2(model32):
    qparams, cfg, params = model32
    assert rule_module(3) is int8_m1
    model = TransformerModel(qparams, cfg, rule=3)
    arrays = model.arrays()
    assert int(arrays["coding.exact_m1_version"]) == 3 and arrays["params.unembed.int"].dtype == np.int8
    rebuilt = TransformerModel.from_arrays(arrays)
    assert rebuilt.rule == 3 and rebuilt.cfg == cfg
    assert fingerprint(rebuilt.arrays()) == fingerprint(arrays)
    assert fingerprint(TransformerModel(integer_m1.quantize_params(params, cfg), cfg, rule=2).arrays()) != \
        fingerprint(arrays)
    inputs = m1_inputs((1, 6))
    assert np.array_equal(rebuilt.next_probs(inputs), int8_m1.next_probs(qparams, cfg, inputs))
    with pytest.raises(ModelError, match="rule-3 parameters"):
        TransformerModel(params, cfg, rule=3)
    with pytest.raises(ModelError, match="rule 2 needs int16"):
        TransformerModel(qparams, cfg, rule=2)  # rule-3 arrays claiming rule 2


def test_files_made_with_cpu_decode_with_ref(model32):
    """Equal-Info windows compressed by fast.cpu with rule 3 decode with ref's coder and rows, and vice versa."""
    qparams, cfg, _ = model32
    ref_model = TransformerModel(qparams, cfg, rule=3)
    cpu_model = TransformerModel(qparams, cfg, rule=3, rows=cpu_int8.next_probs)
    assert isinstance(prefix_rows(cpu_model, 2), cpu_int8.PrefixRows)  # the decoders grow prefixes with rule 3's cache
    assert_cpu_windows_are_refs(cpu_model, ref_model)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_split_finds_the_row_max_through_the_bits_in_every_case(dtype):
    """quantize_split takes each row's max |x| as an integer max over the bits: the same exponents and halves as
    ref for negative maxima, -0.0, subnormals, ties, huge and tiny rows, in both GEMMs' forms (float32 halves and
    uint8 halves + 128)."""
    from equalinfo.fast.cpu import int8_gemm
    rng = np.random.default_rng(7)
    x = rng.normal(size=(9, 21)) * 10.0 ** rng.integers(-30, 30, size=(9, 1))
    x[0] = -0.0  # a zero row of negative zeros
    x[1, 3] = -7.0  # the max is negative
    x[1, 4] = 6.9
    x[2] = np.finfo(np.float32).smallest_subnormal * np.arange(-10, 11)  # float32's subnormals (float64's would
    # need 2^-e > 2^1023: neither ref nor cpu scales such a row exactly, a known edge outside any M1's range)
    x[3, :] = 3.0
    x[3, ::3] = -3.0  # ties between +max and -max
    x[4] = np.finfo(dtype).max / 2 * np.linspace(-1, 1, 21)
    x = x.astype(dtype)
    x_int, e = int8_m1.quantize_rows(x)
    hi, lo = int8_m1.split_rows(x_int)
    for gemm in (int8_gemm.SGEMM, int8_gemm.ONNXRUNTIME):
        both, got_e = cpu_int8.quantize_split(x, gemm)
        want = np.concatenate([hi, lo]).astype(np.float64) + gemm.row_offset
        assert both.dtype == gemm.row_dtype and np.array_equal(both.astype(np.float64), want)
        assert np.array_equal(got_e, e)
    assert e[0] == 0 and np.all(x_int[0] == 0)


def test_equal_info_bytes_do_not_depend_on_the_lockstep_width_or_lookahead(model32):
    """The lockstep encoder with M1's cached grower gives the same windows whether the examples run 1, 3 or 64 in
    lockstep, and whatever rows it asks per call (fixed 1, 2, 7, or the adaptive lookahead, which predicts each
    window's end per stream): which rows are evaluated never changes a row. And ref agrees on a few of them."""
    qparams, cfg, _ = model32
    cpu_model = TransformerModel(qparams, cfg, rule=3, rows=cpu_int8.next_probs)
    rng = np.random.default_rng(3)
    source = bytes_to_symbols(b"Whether 'tis nobler in the mind to suffer the slings and arrows of outrageous "
                              b"fortune, or to take arms against a sea of troubles")
    texts = [source[rng.integers(0, 40):][:rng.integers(0, 60)] for _ in range(64)]
    alone = [fast_ei.compress_batch([t], cpu_model, 16)[0] for t in texts]  # width 1
    for width in (3, 64):
        for lookahead in (None, 1, 2, 7):
            got = []
            for first in range(0, len(texts), width):
                got += fast_ei.compress_batch(texts[first:first + width], cpu_model, 16, lookahead=lookahead)
            assert all(np.array_equal(g, a) for g, a in zip(got, alone)), (width, lookahead)
    ref_model = TransformerModel(qparams, cfg, rule=3)
    for text, coded in list(zip(texts, alone))[:3]:
        assert np.array_equal(coded, equalinfo.compress(text, ref_model, 16))


def test_windows_decode_the_same_whatever_slots_and_chunks(model32, monkeypatch):
    """Equal-Info decoding with M1 serves M1_SLOTS windows at a time, a window taking the slot an ended one leaves,
    in chunks of DECODE_CHUNK windows that reuse one grower: 1, 3 and more slots than windows, chunks of 2 windows
    and of all, give the same symbols."""
    from equalinfo.fast.cpu import window_decoding
    qparams, cfg, _ = model32
    cpu_model = TransformerModel(qparams, cfg, rule=3, rows=cpu_int8.next_probs)
    texts = [bytes_to_symbols(t) for t in (b"To be, or not to be, that is", b"the question:", b"", b"Whether 'tis")]
    bits = fast_ei.compress_batch(texts, cpu_model, 16)
    monkeypatch.setattr(window_decoding, "M1_CAPACITY", 2)  # the caches grow while slots are reused, too
    for slots in (1, 3, 1024):
        for chunk in (2, 16384):
            monkeypatch.setattr(window_decoding, "M1_SLOTS", slots)
            monkeypatch.setattr(window_decoding, "DECODE_CHUNK", chunk)
            decoded = fast_ei.decompress_batch(bits, cpu_model, 16, n_symbols=[len(t) for t in texts])
            assert all(np.array_equal(d, t) for d, t in zip(decoded, texts)), (slots, chunk)
