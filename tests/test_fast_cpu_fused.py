"""fast/cpu/fused.py (encode_probs / decode_probs): the same bits as ref's quantize + Encoder, the same errors."""
import re

import numpy as np
import pytest

from equalinfo.fast.cpu import arithmetic as fast_arith
from equalinfo.fast.cpu import fused as fast_fused
from equalinfo.ref import arithmetic as ref_arith
from equalinfo.ref.arithmetic import CoderError


def largest_entry(n_symbols, dtype):
    """A value near the largest that a row of n_symbols equal entries may hold and still quantize at any precision
    up to 16 (its sum times F < 2^16 must stay finite in float64), or dtype's own range if that is smaller."""
    return min(float(np.finfo(dtype).max) / 1e3, float(np.finfo(np.float64).max) / 2.0 ** 17 / n_symbols)


def stress_rows(rng, n_symbols, dtype):
    """Rows that stress the float rule: one-hot, tiny, huge, subnormal, dyadic, all-but-one zero, ties.

    The extremes are those of dtype, so that float32 rows are neither inf nor all zero; huge rows stay just inside
    what quantize accepts (largest_entry).
    """
    info = np.finfo(dtype)
    eye = np.eye(n_symbols)
    return np.stack([eye[0], eye[-1], eye[n_symbols // 2], np.full(n_symbols, float(info.tiny) * 1e3),
                     np.full(n_symbols, float(info.smallest_subnormal)),
                     np.full(n_symbols, largest_entry(n_symbols, dtype)),
                     np.r_[1.0, np.full(n_symbols - 1, 1e-17)], 2.0 ** -rng.integers(0, 60, n_symbols).astype(float),
                     rng.integers(0, 3, n_symbols).astype(float) + eye[0], np.arange(n_symbols, dtype=float) ** 4,
                     np.r_[1.0, rng.dirichlet(np.full(n_symbols - 1, 0.01))] * float(info.tiny)]).astype(dtype)


def random_rows(rng, n, n_symbols, dtype=np.float64):
    """Dirichlet rows of several concentrations, stress rows and scaled (unnormalised) copies, shuffled."""
    rows = [rng.dirichlet(np.full(n_symbols, alpha), n // 5) for alpha in (0.003, 0.05, 1.0, 30.0)]
    rows += [rng.dirichlet(np.ones(n_symbols), 7) * rng.uniform(1e-5, 1e5, (7, 1))]
    rows = np.concatenate([row.astype(dtype) for row in rows] + [stress_rows(rng, n_symbols, dtype)])
    return rows[rng.permutation(len(rows))]


def symbols_for(rng, probs):
    """Symbols drawn from the rows (often likely ones), with a share of uniform picks and both ends."""
    normalised = probs / probs.max(axis=1, keepdims=True)  # no overflow, no subnormal sums
    drawn = np.array([rng.choice(len(row), p=row / row.sum()) for row in normalised])
    uniform = rng.integers(0, probs.shape[1], len(probs))
    symbols = np.where(rng.random(len(probs)) < 0.3, uniform, drawn)
    symbols[:2] = [0, probs.shape[1] - 1]
    return symbols


def ref_bits(probs, symbols, precision):
    encoder = ref_arith.Encoder(precision)
    for cdf, symbol in zip(ref_arith.quantize(probs, precision), symbols):
        encoder.encode(cdf, int(symbol))
    return encoder.finish()


@pytest.mark.parametrize("precision", range(9, 17))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bits_identical_to_ref_quantize_and_encoder(precision, dtype):
    rng = np.random.default_rng(precision)
    probs = random_rows(rng, 200, 257, dtype)
    symbols = symbols_for(rng, probs.astype(np.float64))
    assert np.all(probs.sum(axis=1, dtype=np.float64) > 0) and np.all(np.isfinite(probs))
    bits = fast_fused.encode_probs(probs, symbols, precision)
    assert np.array_equal(bits, ref_bits(probs, symbols, precision))
    assert np.array_equal(fast_fused.decode_probs(bits, probs, precision), symbols)


@pytest.mark.parametrize("n_symbols", [1, 2, 3, 5, 40])
def test_small_alphabets_and_block_edges(n_symbols):
    """V = 1 (every width fixed), tiny V where cdf_V is read on both sides, and n around the block of 4 rows."""
    rng = np.random.default_rng(n_symbols)
    for n in (0, 1, 2, 3, 4, 5, 9):
        probs = rng.dirichlet(np.full(n_symbols, 0.3), n) if n else np.zeros((0, n_symbols))
        symbols = rng.integers(0, n_symbols, n)
        for precision in (max(1, int(np.ceil(np.log2(n_symbols)))), 14, 16):
            bits = fast_fused.encode_probs(probs, symbols, precision)
            assert np.array_equal(bits, ref_bits(probs, symbols, precision))
            assert np.array_equal(fast_fused.decode_probs(bits, probs, precision), symbols)


def test_long_stream_equals_unfused_fast_path():
    """A longer stream against fast.cpu's quantize + encode_cdfs / decode_cdfs (themselves tested against ref)."""
    rng = np.random.default_rng(7)
    probs = random_rows(rng, 6000, 257)
    symbols = symbols_for(rng, probs)
    bits = fast_fused.encode_probs(probs, symbols)
    assert np.array_equal(bits, fast_arith.encode_cdfs(fast_arith.quantize(probs), symbols))
    assert np.array_equal(fast_fused.decode_probs(bits, probs), symbols)
    assert np.array_equal(fast_fused.decode_probs(bits[:0], probs[:0].astype(np.float32)), np.zeros(0))


def ref_error(probs, precision=14):
    """The message of the CoderError that ref's quantize raises on probs."""
    with pytest.raises(CoderError) as caught:
        ref_arith.quantize(probs, precision)
    return str(caught.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bad_probabilities_raise_like_quantize(dtype):
    rng = np.random.default_rng(3)
    good = rng.dirichlet(np.ones(257), 9)
    cases = []
    for row, column, value in [(0, 5, np.nan), (8, 0, np.inf), (4, 256, -np.inf), (6, 100, -1e-30)]:
        bad = good.copy()
        bad[row, column] = value
        cases.append(bad)
    zero = good.copy()
    zero[5] = 0.0
    cases.append(zero)
    both = zero.copy()  # a zero-sum row before a NaN row: quantize reports the NaN
    both[7, 3] = np.nan
    cases.append(both)
    negative_zero = good.copy()
    negative_zero[2] = -0.0  # -0.0 is not negative; the row sums to zero
    cases.append(negative_zero)
    symbols = rng.integers(0, 257, 9)
    bits = fast_fused.encode_probs(good, symbols)
    for probs in cases:
        probs = probs.astype(dtype)
        message = ref_error(probs)
        with pytest.raises(CoderError, match=message):
            fast_fused.encode_probs(probs, symbols)
        with pytest.raises(CoderError, match=message):
            fast_fused.decode_probs(bits, probs)


def test_bad_shapes_symbols_and_precisions_raise():
    probs = np.full((3, 257), 1.0)
    for shape in [(0,), (3, 0)]:
        with pytest.raises(CoderError, match="non-empty last axis"):
            fast_fused.encode_probs(np.ones(shape), np.zeros(shape[0], dtype=int))
    with pytest.raises(CoderError, match=r"\[n, V\]"):
        fast_fused.decode_probs(np.zeros(4, dtype=np.uint8), np.ones((2, 3, 257)))
    for precision in (8, 17, 0):  # 257 symbols need precision 9
        message = ref_error(probs, precision)
        with pytest.raises(CoderError, match=message.replace("^", r"\^").replace("(", r"\(").replace(")", r"\)")):
            fast_fused.encode_probs(probs, [0, 1, 2], precision)
    with pytest.raises(CoderError, match="symbol 257 out of range for a CDF over 257 symbols"):
        fast_fused.encode_probs(probs, [0, 257, 1])
    with pytest.raises(CoderError, match="same length"):
        fast_fused.encode_probs(probs, [0, 1])
    with pytest.raises(CoderError, match="bits must be"):
        fast_fused.decode_probs(np.array([0, 2]), probs)


def test_rows_too_large_to_quantize_raise_everywhere():
    """Rows whose sum times F overflows float64: ref, fast quantize and the fused kernels raise the same error.

    Three ways to get there: the sum overflows to inf from finite entries; the sum is finite but sum * F is not;
    only the last prefix overflows. A row just inside the limit still quantizes, proportionally (equal entries,
    equal widths within one unit), and the same everywhere.
    """
    rng = np.random.default_rng(4)
    n_symbols, precision = 257, 14
    free = (1 << precision) - n_symbols
    limit = float(np.finfo(np.float64).max) / free / n_symbols  # equal entries of this size: sum * F ~ max
    good = rng.dirichlet(np.ones(n_symbols), 6)
    symbols = rng.integers(0, n_symbols, 6)
    last_only = np.full(n_symbols, 1e-3)
    last_only[-1] = 1.7e308
    for row in (np.full(n_symbols, 1e308), np.full(n_symbols, 1e305), last_only, np.full(n_symbols, limit * 1.001)):
        probs = good.copy()
        probs[3] = row
        message = ref_error(probs, precision)
        assert "too large" in message
        with pytest.raises(CoderError, match=re.escape(message)):
            fast_arith.quantize(probs, precision)
        bits = fast_fused.encode_probs(good, symbols, precision)
        with pytest.raises(CoderError, match=re.escape(message)):
            fast_fused.encode_probs(probs, symbols, precision)
        with pytest.raises(CoderError, match=re.escape(message)):
            fast_fused.decode_probs(bits, probs, precision)
    inside = np.full((1, n_symbols), limit * 0.999)
    cdf = ref_arith.quantize(inside, precision)
    assert np.ptp(np.diff(cdf[0])) <= 1
    assert np.array_equal(fast_arith.quantize(inside, precision), cdf)
    bits = fast_fused.encode_probs(inside, [100], precision)
    assert np.array_equal(bits, ref_bits(inside, [100], precision))
    assert np.array_equal(fast_fused.decode_probs(bits, inside, precision), [100])


def test_error_precedence_over_rows_is_quantizes():
    """A too-large row before a zero-sum row reports the zero sum; a NaN anywhere wins over both (ref's order)."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(257), 12)
    symbols = rng.integers(0, 257, 12)
    bits = fast_fused.encode_probs(probs, symbols)
    probs[1] = 1e308
    probs[10] = 0.0
    for expected in ("positive sum", "finite and non-negative"):
        assert expected in ref_error(probs)
        for call in (lambda: fast_arith.quantize(probs), lambda: fast_fused.encode_probs(probs, symbols),
                     lambda: fast_fused.decode_probs(bits, probs)):
            with pytest.raises(CoderError, match=expected):
                call()
        probs[11, 7] = np.nan


def test_one_row_decoder_step_equals_the_cdf_decoder():
    """decode_one_probs (the per-symbol fused step) gives the symbols and the decoder state of find_symbol + consume."""
    rng = np.random.default_rng(6)
    for dtype in (np.float64, np.float32):
        rows = random_rows(rng, 300, 257, dtype)
        symbols = symbols_for(rng, rows.astype(np.float64))
        bits = fast_fused.encode_probs(rows, symbols)
        state = np.array(fast_arith.decoder_start(bits, 0), dtype=np.int64)
        decoder = ref_arith.Decoder(bits)
        for row, symbol in zip(rows, symbols):
            assert fast_fused.decode_one_probs(bits, state, row) == decoder.decode(ref_arith.quantize(row)) == symbol
            assert (int(state[0]), int(state[1]), int(state[2])) == (decoder.offset, decoder.range, decoder.position)
    for bad, message in ((np.full(257, 1e306), "too large"), (np.zeros(257), "positive sum")):
        with pytest.raises(CoderError, match=message):
            fast_fused.decode_one_probs(bits, state, bad)
