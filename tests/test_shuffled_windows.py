"""train/shuffled_windows.py: each row keeps its multiset of windows, padding and cut windows stay in place, the
order changes, and the result depends on the seed and the row alone."""
from collections import Counter

import numpy as np
import pytest

from equalinfo.train.shuffled_windows import shuffle_row, shuffle_windows

K = 4  # tokens per window (b = 32 bits of N = 8-bit tokens)


def rows(rng, n=40, length=64):
    """[n, length] tokens with distinct windows, and weights whose kept prefix may end inside a window."""
    tokens = rng.integers(0, 256, (n, length))
    kept = rng.integers(length // 2, length + 1, n)
    weights = (np.arange(length)[None, :] < kept[:, None]).astype(np.float32)
    return tokens, weights


def window_multiset(row, weight):
    whole = int((weight > 0).sum()) // K
    return Counter(tuple(window) for window in row[:whole * K].reshape(whole, K))


def test_each_row_keeps_its_windows_and_its_padding_in_place():
    rng = np.random.default_rng(0)
    tokens, weights = rows(rng)
    shuffled = shuffle_windows(tokens, weights, K, seed=1)
    assert shuffled.shape == tokens.shape and shuffled.dtype == tokens.dtype
    for row, new, weight in zip(tokens, shuffled, weights):
        assert window_multiset(new, weight) == window_multiset(row, weight)
        whole_end = int((weight > 0).sum()) // K * K
        assert np.array_equal(new[whole_end:], row[whole_end:])  # a cut window's tokens and the padding


def test_the_order_changes():
    """40 rows of 8-16 distinct windows: a row left as it was has probability at most 1/8!, so none should be."""
    rng = np.random.default_rng(2)
    tokens, weights = rows(rng)
    shuffled = shuffle_windows(tokens, weights, K, seed=3)
    assert all(not np.array_equal(a, b) for a, b in zip(tokens, shuffled))
    # every window lands anywhere: the first window of the rows moves to each of the first 8 slots some time
    first = [next(i for i in range(len(new) // K) if np.array_equal(new[i * K:(i + 1) * K], row[:K]))
             for row, new in zip(tokens, shuffled)]
    assert len(set(first)) >= 6


def test_deterministic_for_a_seed_and_a_row_index():
    rng = np.random.default_rng(4)
    tokens, weights = rows(rng)
    once = shuffle_windows(tokens, weights, K, seed=7)
    assert np.array_equal(once, shuffle_windows(tokens, weights, K, seed=7))
    assert not np.array_equal(once, shuffle_windows(tokens, weights, K, seed=8))
    # rows shuffled in two parts (a resumed build) give the same rows as all at once
    parts = np.concatenate([shuffle_windows(tokens[:15], weights[:15], K, seed=7),
                            shuffle_windows(tokens[15:], weights[15:], K, seed=7, first_row=15)])
    assert np.array_equal(once, parts)
    row = shuffle_row(tokens[20], weights[20], K, np.random.default_rng([7, 20]))
    assert np.array_equal(row, once[20])


def test_padding_must_come_last():
    tokens = np.arange(8)[None, :]
    with pytest.raises(ValueError, match="padding"):
        shuffle_windows(tokens, np.array([[1, 1, 0, 1, 1, 1, 1, 1]]), 2, seed=0)
    with pytest.raises(ValueError, match="same"):
        shuffle_windows(tokens, np.ones((1, 7)), 2, seed=0)
