"""report/window_floors.py against direct computations: whole windows counted by hand, the bigram's leave-one-out by
removing and refitting, the token unigram when a window is one token, and what each floor must (not) see."""
import math
from collections import Counter

import numpy as np
import pytest

from equalinfo.report import unigram, window_floors
from equalinfo.train.shuffled_windows import shuffle_windows

# N = 2 bits per token (v = 4), b = 4 bits per window: 2 tokens per window, 16 possible windows. L = 5: the fifth
# token of a row is a window cut by the row's end. Padding (weight 0) holds arbitrary token values.
TRAIN_TOKENS = np.array([[1, 2, 1, 2, 3],
                         [1, 2, 0, 3, 2],
                         [3, 3, 1, 2, 0],
                         [0, 3, 1, 2, 1]])
TRAIN_WEIGHTS = np.array([[1, 1, 1, 1, 1],
                          [1, 1, 1, 1, 0],
                          [1, 1, 1, 1, 1],
                          [1, 1, 0, 0, 0]])
VAL_TOKENS = np.array([[1, 2, 3, 3, 2],
                       [2, 2, 1, 2, 3],
                       [0, 3, 2, 0, 0]])
VAL_WEIGHTS = np.array([[1, 1, 1, 1, 1],
                        [1, 1, 1, 1, 0],
                        [1, 1, 1, 0, 0]])  # row 2: a window (2, 0) whose second token is padding: not scored


def hand_windows(tokens, weights):
    """[(row, (t0, t1))] of the windows whose two tokens both have weight 1, by loops."""
    out = []
    for r in range(len(tokens)):
        for start in range(0, len(tokens[r]) - 1, 2):
            if weights[r][start] == 1 and weights[r][start + 1] == 1:
                out.append((r, (int(tokens[r][start]), int(tokens[r][start + 1]))))
    return out


def test_whole_window_floor_equals_a_direct_computation():
    train = Counter(window for _, window in hand_windows(TRAIN_TOKENS, TRAIN_WEIGHTS))
    dense = np.zeros(16)  # the 16 windows of 4 bits, window (t0, t1) at 4 * t0 + t1
    for (t0, t1), count in train.items():
        dense[4 * t0 + t1] = count
    alpha = unigram.choose_alpha(dense)
    total = sum(train.values())
    row_bits = np.zeros(3)
    for row, window in hand_windows(VAL_TOKENS, VAL_WEIGHTS):
        row_bits[row] -= math.log2((train.get(window, 0) + alpha) / (total + 16 * alpha))
    floor = window_floors.whole_window_floor(TRAIN_TOKENS, TRAIN_WEIGHTS, VAL_TOKENS, VAL_WEIGHTS, 4, 2)
    scored = 2 * len(hand_windows(VAL_TOKENS, VAL_WEIGHTS))
    assert floor.smoothing == pytest.approx(alpha, rel=1e-12)
    assert (floor.val_tokens, floor.train_tokens, floor.tokens_per_window) == (scored, 2 * total, 2)
    assert floor.unscored_tokens == 2  # row 0's fifth token; the 2 of row 2's window (2, 0) cut by padding
    assert floor.row_bits == pytest.approx(row_bits, rel=1e-12)
    assert list(floor.row_tokens) == [4, 4, 2]
    assert floor.bits_per_token == pytest.approx(row_bits.sum() / scored, rel=1e-12)


def test_bigram_loo_is_remove_refit_score():
    """LOO(beta) summed over training tokens by removing each token from the pair counts and the unigram counts,
    refitting (alpha fixed, as the unigram's alpha is chosen before beta) and scoring it."""
    windows = [w for _, w in hand_windows(TRAIN_TOKENS, TRAIN_WEIGHTS)]
    pairs = [(4, t0) for t0, _ in windows] + [(t0, t1) for t0, t1 in windows]  # context 4: a window's start
    token_counts = np.bincount([t for _, t in pairs], minlength=4).astype(float)
    alpha = unigram.choose_alpha(token_counts)
    n = token_counts.sum()

    def brute(beta):
        total = 0.0
        for index, (context, token) in enumerate(pairs):
            rest = pairs[:index] + pairs[index + 1:]
            c_pair = sum(1 for p in rest if p == (context, token))
            c_context = sum(1 for c, _ in rest if c == context)
            p_unigram = (sum(1 for _, t in rest if t == token) + alpha) / (n - 1 + 4 * alpha)
            total += math.log((c_pair + beta * p_unigram) / (c_context + beta))
        return total

    contexts, tokens = window_floors.context_token_pairs(np.array(windows), 4)
    keys, counts = np.unique(contexts * 4 + tokens, return_counts=True)
    loo_unigram = (token_counts - 1 + alpha) / (n - 1 + 4 * alpha)
    context_totals = np.bincount(contexts, minlength=5).astype(float)
    for beta in (0.01, 0.7, 3.0, 250.0):
        assert window_floors.bigram_loo(counts.astype(float), keys // 4, keys % 4, context_totals, loo_unigram,
                                        beta) == pytest.approx(brute(beta), rel=1e-12)


def test_bigram_floor_equals_a_direct_computation_at_its_chosen_beta():
    floor = window_floors.bigram_floor(TRAIN_TOKENS, TRAIN_WEIGHTS, VAL_TOKENS, VAL_WEIGHTS, 4, 2)
    beta = floor.smoothing
    assert math.isfinite(beta)
    windows = [w for _, w in hand_windows(TRAIN_TOKENS, TRAIN_WEIGHTS)]
    pairs = Counter([(4, t0) for t0, _ in windows] + [(t0, t1) for t0, t1 in windows])
    token_counts = np.bincount([t for (_, t), c in pairs.items() for _ in range(c)], minlength=4).astype(float)
    alpha = unigram.choose_alpha(token_counts)
    p_unigram = (token_counts + alpha) / (token_counts.sum() + 4 * alpha)
    row_bits = np.zeros(3)
    for row, (t0, t1) in hand_windows(VAL_TOKENS, VAL_WEIGHTS):
        for context, token in ((4, t0), (t0, t1)):
            context_total = sum(c for (cc, _), c in pairs.items() if cc == context)
            p = (pairs.get((context, token), 0) + beta * p_unigram[token]) / (context_total + beta)
            row_bits[row] -= math.log2(p)
    assert floor.row_bits == pytest.approx(row_bits, rel=1e-12)
    assert floor.bits_per_token == pytest.approx(row_bits.sum() / floor.val_tokens, rel=1e-12)


def random_rows(rng, rows, length, vocab, dependent, kept_from=0.6):
    """[rows, length] tokens (Zipf-like) and 0/1 weights (kept prefix, then padding of random values). dependent:
    every second token of a 2-token window is a function of the first."""
    probs = 1.0 / np.arange(1, vocab + 1) ** 1.1
    tokens = rng.choice(vocab, size=(rows, length), p=probs / probs.sum())
    if dependent:
        tokens[:, 1::2] = (tokens[:, 0::2] * 7 + 3) % vocab
    kept = 2 * rng.integers(int(kept_from * length) // 2, length // 2 + 1, rows)
    weights = (np.arange(length)[None, :] < kept[:, None]).astype(np.float32)
    return tokens, weights


def test_one_token_per_window_gives_the_token_unigram_floor():
    rng = np.random.default_rng(0)
    train = random_rows(rng, 80, 32, 256, dependent=False)
    val = random_rows(rng, 40, 32, 256, dependent=False)
    expected = unigram.heldout_floor(*train, *val, 256).bits_per_token
    assert window_floors.whole_window_floor(*train, *val, 8, 8).bits_per_token == pytest.approx(expected, rel=1e-12)
    assert window_floors.bigram_floor(*train, *val, 8, 8).bits_per_token == pytest.approx(expected, rel=1e-9)


def test_floors_see_within_window_dependence_and_only_that():
    """Second token a function of the first: both floors fall far below the token unigram (the second token is
    nearly free); tokens drawn independently: the bigram finds nothing (within 1% of the unigram)."""
    rng = np.random.default_rng(1)
    for dependent in (True, False):
        train = random_rows(rng, 300, 64, 64, dependent)
        val = random_rows(rng, 100, 64, 64, dependent)
        token_floor = unigram.heldout_floor(*train, *val, 64).bits_per_token
        bigram = window_floors.bigram_floor(*train, *val, 12, 6).bits_per_token
        whole = window_floors.whole_window_floor(*train, *val, 12, 6).bits_per_token
        if dependent:
            assert bigram < 0.7 * token_floor and whole < 0.7 * token_floor
        else:
            assert bigram == pytest.approx(token_floor, rel=0.01)
            assert bigram <= whole  # 4,096 windows from ~8,000 training windows: the bigram generalises better


def test_uniform_windows_sit_at_the_uniform_floor():
    """Random 32-bit windows are almost never repeated: the whole-window floor is log2(2^32) bits per window, i.e.
    N = 8 bits per token (a vocabulary of only the windows seen would give far less)."""
    rng = np.random.default_rng(2)
    train = (rng.integers(0, 256, (100, 64)), np.ones((100, 64)))
    val = (rng.integers(0, 256, (50, 64)), np.ones((50, 64)))
    assert window_floors.whole_window_floor(*train, *val, 32, 8).bits_per_token == pytest.approx(8.0, abs=1e-3)


def test_padding_values_and_window_order_do_not_matter():
    """The floors read whole windows only: other values under weight 0, or the windows of each row in another
    order (train/shuffled_windows.py), give the same floors."""
    rng = np.random.default_rng(3)
    train = random_rows(rng, 60, 40, 32, dependent=True)
    val = random_rows(rng, 30, 40, 32, dependent=True)
    repadded = [(np.where(w > 0, t, rng.integers(0, 32, t.shape)), w) for t, w in (train, val)]
    shuffled = [(shuffle_windows(t, w, 2, seed=5), w) for t, w in (train, val)]
    for floor in (window_floors.whole_window_floor, window_floors.bigram_floor):
        reference = floor(*train, *val, 10, 5)
        for other in (repadded, shuffled):
            again = floor(*other[0], *other[1], 10, 5)
            assert again.bits_per_token == pytest.approx(reference.bits_per_token, rel=1e-12)
            assert again.row_bits == pytest.approx(reference.row_bits, rel=1e-12)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="whole number"):
        window_floors.whole_window_floor(TRAIN_TOKENS, TRAIN_WEIGHTS, VAL_TOKENS, VAL_WEIGHTS, 12, 8)
    with pytest.raises(ValueError, match="weights of 0"):
        window_floors.bigram_floor(TRAIN_TOKENS, TRAIN_WEIGHTS * 0.5, VAL_TOKENS, VAL_WEIGHTS, 4, 2)
    with pytest.raises(ValueError, match="no whole window"):
        window_floors.bigram_floor(TRAIN_TOKENS, TRAIN_WEIGHTS * 0, VAL_TOKENS, VAL_WEIGHTS, 4, 2)
