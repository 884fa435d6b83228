"""fast.cpu fused path (encode_probs / decode_probs): the same bits as ref's quantize + Encoder, the same errors."""
import numpy as np
import pytest

from fast.cpu import arithmetic as fast_arith
from ref import arithmetic as ref_arith
from ref.arithmetic import CoderError


def stress_rows(rng, n_symbols, dtype):
    """Rows that stress the float rule: one-hot, tiny, huge, subnormal, dyadic, all-but-one zero, ties.

    The extremes are those of dtype, so that float32 rows are neither inf nor all zero.
    """
    info = np.finfo(dtype)
    eye = np.eye(n_symbols)
    return np.stack([eye[0], eye[-1], eye[n_symbols // 2], np.full(n_symbols, float(info.tiny) * 1e3),
                     np.full(n_symbols, float(info.smallest_subnormal)), np.full(n_symbols, float(info.max) / 1e3),
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
    bits = fast_arith.encode_probs(probs, symbols, precision)
    assert np.array_equal(bits, ref_bits(probs, symbols, precision))
    assert np.array_equal(fast_arith.decode_probs(bits, probs, precision), symbols)


@pytest.mark.parametrize("n_symbols", [1, 2, 3, 5, 40])
def test_small_alphabets_and_block_edges(n_symbols):
    """V = 1 (every width fixed), tiny V where cdf_V is read on both sides, and n around the block of 4 rows."""
    rng = np.random.default_rng(n_symbols)
    for n in (0, 1, 2, 3, 4, 5, 9):
        probs = rng.dirichlet(np.full(n_symbols, 0.3), n) if n else np.zeros((0, n_symbols))
        symbols = rng.integers(0, n_symbols, n)
        for precision in (max(1, int(np.ceil(np.log2(n_symbols)))), 14, 16):
            bits = fast_arith.encode_probs(probs, symbols, precision)
            assert np.array_equal(bits, ref_bits(probs, symbols, precision))
            assert np.array_equal(fast_arith.decode_probs(bits, probs, precision), symbols)


def test_long_stream_equals_unfused_fast_path():
    """A longer stream against fast.cpu's quantize + encode_cdfs / decode_cdfs (themselves tested against ref)."""
    rng = np.random.default_rng(7)
    probs = random_rows(rng, 6000, 257)
    symbols = symbols_for(rng, probs)
    bits = fast_arith.encode_probs(probs, symbols)
    assert np.array_equal(bits, fast_arith.encode_cdfs(fast_arith.quantize(probs), symbols))
    assert np.array_equal(fast_arith.decode_probs(bits, probs), symbols)
    assert np.array_equal(fast_arith.decode_probs(bits[:0], probs[:0].astype(np.float32)), np.zeros(0))


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
    bits = fast_arith.encode_probs(good, symbols)
    for probs in cases:
        probs = probs.astype(dtype)
        message = ref_error(probs)
        with pytest.raises(CoderError, match=message):
            fast_arith.encode_probs(probs, symbols)
        with pytest.raises(CoderError, match=message):
            fast_arith.decode_probs(bits, probs)


def test_bad_shapes_symbols_and_precisions_raise():
    probs = np.full((3, 257), 1.0)
    for shape in [(0,), (3, 0)]:
        with pytest.raises(CoderError, match="non-empty last axis"):
            fast_arith.encode_probs(np.ones(shape), np.zeros(shape[0], dtype=int))
    with pytest.raises(CoderError, match=r"\[n, V\]"):
        fast_arith.decode_probs(np.zeros(4, dtype=np.uint8), np.ones((2, 3, 257)))
    for precision in (8, 17, 0):  # 257 symbols need precision 9
        message = ref_error(probs, precision)
        with pytest.raises(CoderError, match=message.replace("^", r"\^").replace("(", r"\(").replace(")", r"\)")):
            fast_arith.encode_probs(probs, [0, 1, 2], precision)
    with pytest.raises(CoderError, match="symbol 257 out of range for a CDF over 257 symbols"):
        fast_arith.encode_probs(probs, [0, 257, 1])
    with pytest.raises(CoderError, match="same length"):
        fast_arith.encode_probs(probs, [0, 1])
    with pytest.raises(CoderError, match="bits must be"):
        fast_arith.decode_probs(np.array([0, 2]), probs)


def outcome(function):
    """('bits', result) or ('error', message): what a call does, for comparing two paths on odd input."""
    try:
        return "bits", function().tolist()
    except CoderError as error:
        return "error", str(error)


def test_overflowing_sum_behaves_like_the_unfused_path():
    """Finite entries whose float64 sum overflows: quantize lets them through, the fused kernel falls back to it."""
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(257), 6)
    probs[2] = 1e308  # every prefix beyond the second is inf: a broken CDF, which the coder rejects
    probs[4, :] = 1e-3
    probs[4, -1] = 1.7e308  # only the total overflows: every share is 0, a valid CDF
    symbols = rng.integers(0, 257, 6)
    for rows in ([2], [4], [0, 2, 4]):
        fused = outcome(lambda: fast_arith.encode_probs(probs[rows], symbols[rows]))
        unfused = outcome(lambda: fast_arith.encode_cdfs(fast_arith.quantize(probs[rows]), symbols[rows]))
        assert fused == unfused
