"""The shuffled-window control: Equal-Info rows with the order of their windows shuffled.

The paper says M2 learns Equal-Info tokens because it models the text across windows (docs/paper.md §5). An M2 can
also beat the token unigram floor by learning only what is inside a window: which windows are frequent, how a
window's tokens go together (report/window_floors.py). The control separates the two: the same rows with the
windows of each row in a random order keep every within-window statistic (each row keeps its multiset of windows,
so the dataset keeps its windows, their frequencies and its token counts) and destroy the order that carries the
text from one window to the next. An M2 trained and evaluated on shuffled rows can only learn within windows; "M2
learns across windows" is claimed only where M2 on the real rows beats M2 on the shuffled rows by more than the
noise.

What moves: the whole windows inside a row's kept tokens (weight 1, a prefix of the row: train/build.py pads at the
end). What stays: a window cut by the row's end (its first tokens) and the padding, both in place after the whole
windows. The permutation of row r is drawn from numpy.random.default_rng([seed, r]) with r the row's index in the
dataset: each row's order depends on the seed and the row alone, so a builder writing rows one at a time (and
resuming) shuffles the same way as one that shuffles all rows at once.
"""
import numpy as np


def shuffle_row(tokens, weights, tokens_per_window, rng):
    """One row [L] with its whole windows of `tokens_per_window` tokens permuted by `rng` (a numpy Generator)."""
    tokens = np.asarray(tokens)
    kept = np.asarray(weights) > 0
    if tokens.ndim != 1 or tokens.shape != kept.shape:
        raise ValueError(f"a row's tokens {tokens.shape} and weights {kept.shape} must be the same [L]")
    n_kept = int(kept.sum())
    if not kept[:n_kept].all():
        raise ValueError("a row's tokens must come first and its padding (weight 0) last")
    whole = n_kept // tokens_per_window
    windows = tokens[:whole * tokens_per_window].reshape(whole, tokens_per_window)  # [W, k]
    out = tokens.copy()
    out[:whole * tokens_per_window] = windows[rng.permutation(whole)].reshape(-1)
    return out


def shuffle_windows(tokens, weights, tokens_per_window, seed, first_row=0):
    """tokens [n, L] with each row's whole windows in a random order (module docstring); weights are unchanged
    (the kept positions do not move). Row i is row first_row + i of the dataset, which seeds its permutation."""
    tokens = np.asarray(tokens)
    weights = np.asarray(weights)
    if tokens.ndim != 2 or tokens.shape != weights.shape:
        raise ValueError(f"tokens {tokens.shape} and weights {weights.shape} must be the same [rows, L]")
    if int(tokens_per_window) < 1:
        raise ValueError(f"tokens_per_window must be >= 1, got {tokens_per_window}")
    return np.stack([shuffle_row(row, weight, int(tokens_per_window), np.random.default_rng([seed, first_row + i]))
                     for i, (row, weight) in enumerate(zip(tokens, weights))]) if len(tokens) else tokens.copy()
