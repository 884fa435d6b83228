"""The simple models and the CDF cursor, checked against naive counting."""
from collections import Counter

import numpy as np
import pytest

from equalinfo.ref.arithmetic import quantize
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.models import MarkovModel, ModelError, UnigramModel
from equalinfo.ref.stored_models import model_from_arrays
from equalinfo.ref.symbols import BOS, N_SYMBOLS, bytes_to_symbols


def naive_markov_probs(symbols, order, context):
    """(count + 1) / (total + 257) for `context`, counting by hand every position under its ordinary context and
    under each start-of-sequence context (BOS * (order - j) + last j symbols, j < order)."""
    counts = Counter()
    history = [BOS] * order + list(symbols)
    for t, symbol in enumerate(symbols):
        ordinary = history[t:t + order]
        for kept in range(order + 1):
            ctx = tuple([BOS] * (order - kept) + (ordinary[order - kept:] if kept else []))
            counts[ctx, symbol] += 1
    row = np.array([counts[tuple(context), s] for s in range(N_SYMBOLS)], dtype=np.float64)
    return (row + 1) / (row.sum() + N_SYMBOLS)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_matches_naive_counts(order):
    symbols = bytes_to_symbols(b"the cat sat on the mat; the hat is flat.")
    model = MarkovModel.fit(symbols, order)
    inputs = np.concatenate([[BOS], symbols])[None]
    probs = model.next_probs(inputs)
    assert probs.shape == (1, len(symbols) + 1, N_SYMBOLS)
    padded = [BOS] * order + list(inputs[0])
    for t in range(inputs.shape[1]):
        context = padded[t + 1:t + 1 + order]
        assert np.allclose(probs[0, t], naive_markov_probs(symbols, order, context), rtol=0, atol=1e-15)
    unseen = np.array([[BOS, 1, 2, 3]])  # bytes 1, 2, 3 never occur: uniform
    assert np.allclose(model.next_probs(unseen)[0, -1], 1 / N_SYMBOLS)


def test_unigram_matches_counts():
    symbols = bytes_to_symbols(b"abracadabra")
    probs = UnigramModel.fit(symbols).next_probs(np.array([[BOS, 97, 98]]))
    assert probs.shape == (1, 3, N_SYMBOLS)
    assert probs[0, 1, 97] == pytest.approx(6 / (11 + 257))
    assert probs[0, 2, 0] == pytest.approx(1 / (11 + 257))
    assert np.allclose(probs.sum(-1), 1)


def test_rows_depend_on_context_only():
    rng = np.random.default_rng(0)
    model = MarkovModel.fit(rng.integers(0, 20, 2000), 2)
    sequence = np.concatenate([[BOS], rng.integers(0, 20, 50)])
    whole = model.next_probs(sequence[None])[0]
    for t in (0, 1, 2, 30, 50):
        assert np.array_equal(model.next_probs(sequence[None, :t + 1])[0, -1], whole[t])


def test_cursor_cache_equals_direct_evaluation():
    rng = np.random.default_rng(1)
    for model in (MarkovModel.fit(rng.integers(0, 30, 3000), 3), UnigramModel.fit(rng.integers(0, 30, 100))):
        cursor = CdfCursor(model, 14)
        sequence = rng.integers(0, 30, 40)
        direct = quantize(model.next_probs(np.concatenate([[BOS], sequence])[None])[0], 14)
        for t, symbol in enumerate(sequence):
            assert np.array_equal(cursor.cdf(), direct[t])
            cursor.push(symbol)
        cursor.reset()
        assert np.array_equal(cursor.cdf(), direct[0])


def test_model_round_trip_through_arrays():
    model = MarkovModel.fit(bytes_to_symbols(b"hello world, hello there"), 2)
    again = model_from_arrays(model.kind, model.arrays())
    inputs = np.array([[BOS, 104, 101, 108]])
    assert np.array_equal(again.next_probs(inputs), model.next_probs(inputs))


def test_bad_models_raise():
    with pytest.raises(ModelError, match="order"):
        MarkovModel.fit([1, 2, 3], order=9)
    with pytest.raises(ModelError, match="unknown model kind"):
        model_from_arrays("transformer?", {})
    with pytest.raises(ModelError, match="missing"):
        model_from_arrays("markov", {"order": np.array(2)})
    with pytest.raises(ModelError, match="input ids"):
        UnigramModel.fit([1]).next_probs(np.array([[BOS, 300]]))


class WholePrefixModel:
    """A context_length=None model (like M1) whose rows depend on the whole prefix; counts its calls."""

    context_length = None

    def __init__(self):
        self.calls = 0

    def next_probs(self, inputs):
        self.calls += 1
        inputs = np.asarray(inputs)
        prefix_sums = np.cumsum(inputs, axis=1)  # row t sees inputs 0..t only
        probs = np.ones(inputs.shape + (N_SYMBOLS,))
        probs[..., 0] += (prefix_sums % 7)  # the row changes with the whole prefix
        return probs


def test_prefetch_gives_the_per_step_rows_in_one_call():
    model = WholePrefixModel()
    upcoming = [5, 9, 2, 2, 7]
    step_by_step = CdfCursor(model, 14)
    expected = []
    for symbol in upcoming:
        expected.append(step_by_step.cdf())
        step_by_step.push(symbol)
    expected.append(step_by_step.cdf())
    model.calls = 0
    cursor = CdfCursor(model, 14)
    cursor.prefetch(upcoming)
    for t, symbol in enumerate(upcoming):
        assert np.array_equal(cursor.cdf(), expected[t])
        cursor.push(symbol)
    assert np.array_equal(cursor.cdf(), expected[-1]) and model.calls == 1
    cursor.reset()
    cursor.prefetch(upcoming)
    cursor.push(5)
    cursor.push(3)  # leaves the prefetched path: the cursor must evaluate again
    fresh = CdfCursor(model, 14)
    fresh.push(5)
    fresh.push(3)
    assert np.array_equal(cursor.cdf(), fresh.cdf())


def test_prefetch_grows_lazily_and_keeps_the_rows():
    """A long announcement is evaluated in doubling chunks (16, 32, 64 rows), each row as a decoder would get it."""
    model = WholePrefixModel()
    upcoming = list(np.random.default_rng(0).integers(0, 256, 50))
    cursor, reference = CdfCursor(model, 14), CdfCursor(model, 14)
    cursor.prefetch(upcoming)
    model.calls = 0
    for symbol in upcoming:
        assert np.array_equal(cursor.cdf(), reference.cdf())
        cursor.push(symbol)
        reference.push(symbol)
    assert model.calls == 50 + 3  # the reference's 50 one-row calls and the cursor's three chunks
