"""The integer coder: quantisation rule, round trips, exact-interval oracle, invariants, bad input."""
import math

import warnings

import numpy as np
import pytest

from helpers import cell_inside, exact_final_interval, ideal_bits
from equalinfo.ref.arithmetic import STATE_BITS, CoderError, Decoder, Encoder, check_cdf, quantize


def quantize_by_hand(probs, precision):
    """The documented rule with Python floats and a plain loop (no NumPy), as an independent implementation."""
    free = float((1 << precision) - len(probs))
    cumulative, sums = 0.0, [0.0]
    for p in probs:
        cumulative += float(p)
        sums.append(cumulative)
    total = sums[-1]
    cdf = [k + min(int(free), math.floor((c * free) / total + 0.5)) for k, c in enumerate(sums)]
    cdf[-1] = 1 << precision
    return cdf


@pytest.mark.parametrize("precision", [9, 12, 14, 16])
def test_quantize_matches_the_documented_rule(precision):
    rng = np.random.default_rng(precision)
    for concentration in (0.01, 0.3, 10.0):
        probs = rng.dirichlet(np.full(257, concentration), size=20)
        cdf = quantize(probs, precision)
        assert cdf.shape == (20, 258) and cdf.dtype == np.int64
        for row in range(20):
            assert list(cdf[row]) == quantize_by_hand(probs[row], precision)


def test_quantize_properties_and_accuracy():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(257, 0.1), size=200)
    probs[0] = 0.0
    probs[0, 3] = 1.0  # a one-hot row: every other symbol still needs width 1
    cdf = quantize(probs, 14)
    widths = np.diff(cdf, axis=-1)
    assert np.all(cdf[:, 0] == 0) and np.all(cdf[:, -1] == 1 << 14)
    assert widths.min() >= 1
    # each width is 1 + the share of the free units, off by less than one unit from cumulative rounding
    expected = 1 + probs / probs.sum(-1, keepdims=True) * ((1 << 14) - 257)
    assert np.abs(widths - expected).max() < 1.0 + 1e-9


def test_quantize_is_scale_free_and_float32_exact():
    rng = np.random.default_rng(2)
    probs32 = rng.dirichlet(np.ones(257), size=5).astype(np.float32)
    assert np.array_equal(quantize(probs32, 14), quantize(probs32.astype(np.float64), 14))
    dyadic = rng.dirichlet(np.ones(257), size=5)
    assert np.array_equal(quantize(dyadic * 4.0, 14), quantize(dyadic, 14))  # exact scaling by a power of two


@pytest.mark.parametrize("bad, message", [
    (np.array([0.5, -0.1, 0.6]), "non-negative"),
    (np.array([0.5, np.nan, 0.5]), "finite"),
    (np.zeros(4), "positive sum"),
])
def test_quantize_rejects_bad_probabilities(bad, message):
    with pytest.raises(CoderError, match=message):
        quantize(bad, 14)


def test_quantize_rejects_rows_too_large_to_quantize_faithfully():
    """Rows whose sum times F = 2^p - V overflows float64 would make C_k * F inf (a staircase CDF, not a proportional
    one): rejected with a clear error, checked after the entries and the sums, and without a RuntimeWarning."""
    free = (1 << 14) - 257
    limit = np.finfo(np.float64).max / free / 257  # 257 equal entries of this size: sum * F ~ float64's maximum
    last_only = np.full(257, 1e-3)
    last_only[-1] = 1.7e308  # finite entries, only the total (and its products) overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for row in (np.full(257, 1e308), np.full(257, 1e305), last_only, np.full(257, limit * 1.001)):
            with pytest.raises(CoderError, match="too large to quantize"):
                quantize(np.stack([np.ones(257), row]), 14)
        with pytest.raises(CoderError, match="positive sum"):  # a zero-sum row is reported first
            quantize(np.stack([np.full(257, 1e308), np.zeros(257)]), 14)
        cdf = quantize(np.full(257, limit * 0.999), 14)  # just inside: proportional, equal widths within one unit
    assert np.ptp(np.diff(cdf)) <= 1 and cdf[-1] == 1 << 14


def test_quantize_rejects_bad_precision():
    with pytest.raises(CoderError, match="precision >= 9"):
        quantize(np.ones(257), 8)
    with pytest.raises(CoderError, match="precision must be"):
        quantize(np.ones(4), 17)


@pytest.mark.parametrize("cdf, message", [
    ([0, 5, 3, 16], "non-monotone"),
    ([0, 5, 5, 16], "zero-width"),
    ([0, 5, 9, 15], "from 0 to"),
    ([1, 5, 9, 16], "from 0 to"),
    ([0.0, 5.0, 16.0], "integers"),
])
def test_check_cdf_rejects_malformed_cdfs(cdf, message):
    with pytest.raises(CoderError, match=message):
        check_cdf(np.array(cdf), 4)
    with pytest.raises(CoderError, match=message):
        Encoder(4).encode(np.array(cdf), 0)


def test_symbol_out_of_range():
    cdf = np.array([0, 4, 9, 16])
    for symbol in (-1, 3):
        with pytest.raises(CoderError, match="out of range"):
            Encoder(4).encode(cdf, symbol)


class CountingEncoder(Encoder):
    carries = 0

    def _carry(self):
        CountingEncoder.carries += 1
        super()._carry()


def random_stream(rng, n, n_symbols, precision):
    concentration = rng.choice([0.02, 0.5, 5.0])
    probs = rng.dirichlet(np.full(n_symbols, concentration), size=n)
    cdfs = quantize(probs, precision)
    symbols = np.array([rng.choice(n_symbols, p=p) for p in probs])
    return cdfs, symbols


@pytest.mark.parametrize("precision", list(range(8, 17)))
def test_round_trip_and_exact_oracle(precision):
    """Bits decode to the symbols, name a point inside the exact final interval, and cost ideal + <= 2 bits."""
    rng = np.random.default_rng(100 + precision)
    CountingEncoder.carries = 0
    for trial in range(12):
        n_symbols = 257 if precision >= 9 else 200
        cdfs, symbols = random_stream(rng, int(rng.integers(0, 400)), n_symbols, precision)
        encoder = CountingEncoder(precision)
        for cdf, symbol in zip(cdfs, symbols):
            encoder.encode(cdf, symbol)
        bits = encoder.finish()
        decoder = Decoder(bits, precision)
        assert [decoder.decode(cdf) for cdf in cdfs] == list(symbols)
        low, width, scale = exact_final_interval(cdfs, symbols, precision)
        assert cell_inside(bits, low, width, scale)
        ideal = ideal_bits(cdfs, symbols, precision)
        overhead = len(symbols) * -math.log2(1 - 2.0 ** (precision - STATE_BITS + 1))
        assert ideal - 1e-9 <= len(bits) <= ideal + 2 + overhead
    assert CountingEncoder.carries > 0, "the fuzz never exercised carry propagation"


def test_tail_bits_do_not_matter_inside_the_interval():
    """Any continuation of the finished bits still lies in the final interval, so decoding is unchanged."""
    rng = np.random.default_rng(7)
    cdfs, symbols = random_stream(rng, 300, 257, 14)
    encoder = Encoder(14)
    for cdf, symbol in zip(cdfs, symbols):
        encoder.encode(cdf, symbol)
    bits = encoder.finish()
    for tail_bit in (0, 1):
        decoder = Decoder(bits, 14, tail_bit=tail_bit)
        # the cell named by the bits lies inside the interval, so its last point decodes the same
        assert [decoder.decode(cdf) for cdf in cdfs] == list(symbols)


def test_decoder_rejects_non_bits():
    with pytest.raises(CoderError, match="0/1"):
        Decoder(np.array([0, 2, 1]), 14)
