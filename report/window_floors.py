"""Floors of within-window statistics: how far a model gets on Equal-Info tokens without looking past a window.

The paper's claim for Equal-Info windows (docs/paper.md §5) is that M2 learns the TEXT: it models what comes next
from the windows before. The unigram floor (report/unigram.py) does not test that. A window of b bits is cut into
b / N tokens of N bits, and the tokens of one window are strongly tied to each other (M1's coder wrote them
together, the last one holds the window's delimiting cell). A model that knew only which windows are frequent,
with no context at all, can beat the token unigram floor by a wide margin. Two floors that know everything about a
window and nothing about its neighbours:

- the whole-window unigram floor: each window's b bits are one symbol of a vocabulary of 2^b; its frequency is
  fitted on the training windows and the validation windows are scored under it, smoothed as report/unigram.py
  smooths (additive alpha chosen by leave-one-out, here with V = 2^b);
- the within-window bigram floor: each token is predicted from the previous token of the same window (a window's
  first token from a start state, id 2^N), and the bigram is smoothed towards the held-out token unigram:

      p(w | c) = (c_cw + beta * p_uni(w)) / (n_c + beta)      c_cw: training pairs, n_c: tokens after context c

  with p_uni report/unigram.py's smoothed unigram and beta chosen by leave-one-out over the training tokens (the
  token left out is also left out of p_uni, so the choice is honest): the best beta of report/unigram.py's search
  over [1e-8, 1e8], or beta = infinity (p = p_uni) when LOO scores the unigram itself higher. So the bigram is never
  worse than the unigram on LOO, and with one token per window (b = N: only the start context) it is the unigram
  floor: mixing additive smoothing with the raw frequencies is additive smoothing with a smaller alpha, and alpha
  was already the LOO-best.

Both in bits per token, like UnigramFloor: divide by the dataset's bytes per kept token (cr_kept, train/build.py)
for bits/byte, as train/m2.py does for the unigram floor. An M2 that does not beat them has learnt nothing that a
model of single windows could not; beating them is still not proof of modelling across windows (the shuffled-window
control, train/shuffled_windows.py, is that test).

Rows start at a window boundary (train/build.py cuts the bits of whole windows into tokens from the start). Weights
must be 0 (padding) or 1; a window is scored when all its b / N tokens have weight 1, so the tokens of a window cut
by the row's end are not scored (`unscored_tokens` counts them: none when L is a multiple of b / N, as in every
preset). Each floor also gives its bits and tokens per validation row, for report/uncertainty.py's standard errors
and for paired differences with M2 on the same rows.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from equalinfo.report import unigram


@dataclass
class WindowFloor:
    """A floor of within-window statistics in bits per token of the scored validation tokens."""
    bits_per_token: float
    smoothing: float  # alpha (whole-window floor) or beta (bigram floor; inf: the unigram), by leave-one-out
    tokens_per_window: int
    train_tokens: int  # training tokens in whole windows (what the floor was fitted on)
    val_tokens: int  # validation tokens scored (in whole windows)
    unscored_tokens: int  # validation tokens of weight 1 in a window cut by the row's end
    row_bits: np.ndarray = field(repr=False)  # [n] bits of each validation row's scored tokens
    row_tokens: np.ndarray = field(repr=False)  # [n] scored tokens of each validation row


def tokens_per_window(window_bits, bits_per_token):
    """b / N, which must be a whole number: a window boundary is then a token boundary."""
    if bits_per_token < 1 or window_bits < bits_per_token or window_bits % bits_per_token:
        raise ValueError(f"a window of {window_bits} bits is not a whole number of {bits_per_token}-bit tokens")
    return window_bits // bits_per_token


def whole_windows(tokens, weights, per_window):
    """(windows [W, k] int64, row of each window [W] int64, unscored tokens): the windows of k = per_window tokens
    whose tokens all have weight 1, row by row, from each row's start."""
    tokens = np.asarray(tokens)
    weights = np.asarray(weights)
    if tokens.ndim != 2 or tokens.shape != weights.shape:
        raise ValueError(f"tokens {tokens.shape} and weights {weights.shape} must be the same [rows, L]")
    if not np.isin(weights, (0, 1)).all():
        raise ValueError("window floors need weights of 0 (padding) or 1 (a token)")
    rows, length = tokens.shape
    whole = length // per_window
    cut = tokens[:, :whole * per_window].astype(np.int64).reshape(rows, whole, per_window)
    kept = weights[:, :whole * per_window].reshape(rows, whole, per_window).all(axis=2)  # [rows, whole]
    unscored = int(weights.sum() - kept.sum() * per_window)
    row_of = np.broadcast_to(np.arange(rows)[:, None], kept.shape)
    return cut[kept], row_of[kept], unscored


def _per_row(bits, rows_of, per_token_count, n_rows):
    """(row_bits [n], row_tokens [n]): bits summed per row, and the tokens they cover."""
    return (np.bincount(rows_of, weights=bits, minlength=n_rows),
            np.bincount(rows_of, minlength=n_rows).astype(np.float64) * per_token_count)


def whole_window_floor(train_tokens, train_weights, val_tokens, val_weights, window_bits, bits_per_token):
    """WindowFloor of each validation window's b bits as one symbol under the training windows' frequencies
    (additive alpha over all 2^b windows, chosen by leave-one-out)."""
    per_window = tokens_per_window(window_bits, bits_per_token)
    train, _, _ = whole_windows(train_tokens, train_weights, per_window)  # [Wt, k]
    val, val_rows, unscored = whole_windows(val_tokens, val_weights, per_window)  # [Wv, k]
    if len(train) == 0 or len(val) == 0:
        raise ValueError("no whole window on the training or the validation side")
    _, ids = np.unique(np.concatenate([train, val]), axis=0, return_inverse=True)  # one id per distinct window
    ids = ids.reshape(-1)
    counts = np.bincount(ids[:len(train)], minlength=int(ids.max()) + 1).astype(np.float64)  # [distinct]
    vocab = 2.0 ** window_bits  # every b-bit string is a window of the vocabulary
    alpha = unigram.choose_alpha_sparse(counts[counts > 0], vocab)
    bits = -(np.log2(counts[ids[len(train):]] + alpha) - math.log2(len(train) + alpha * vocab))  # [Wv]
    row_bits, row_tokens = _per_row(bits, val_rows, per_window, len(np.asarray(val_tokens)))
    return WindowFloor(bits_per_token=float(bits.sum() / (len(val) * per_window)), smoothing=alpha,
                       tokens_per_window=per_window, train_tokens=len(train) * per_window,
                       val_tokens=len(val) * per_window, unscored_tokens=unscored, row_bits=row_bits,
                       row_tokens=row_tokens)


def context_token_pairs(windows, vocab_size):
    """(contexts [W*k], tokens [W*k]) int64: each token of each window with the token before it in the window, the
    start state `vocab_size` for a window's first token."""
    windows = np.asarray(windows, dtype=np.int64)
    before = np.concatenate([np.full((len(windows), 1), vocab_size, np.int64), windows[:, :-1]], axis=1)
    return before.reshape(-1), windows.reshape(-1)


def bigram_loo(pair_counts, pair_contexts, pair_tokens, context_totals, loo_unigram, beta):
    """LOO(beta) in nats: the sum over training tokens of ln p(token | context) with that token removed from the
    bigram counts and from the unigram it is smoothed towards. Pairs are grouped: pair_counts [P] (c_cw of each
    distinct training pair), pair_contexts, pair_tokens [P] its c and w; context_totals [v + 1] n_c;
    loo_unigram [v]: (c_w - 1 + alpha) / (N - 1 + alpha v), the unigram of w with one w removed."""
    numerator = pair_counts - 1 + beta * loo_unigram[pair_tokens]
    return float((pair_counts * (np.log(numerator) - np.log(context_totals[pair_contexts] - 1 + beta))).sum())


def bigram_floor(train_tokens, train_weights, val_tokens, val_weights, window_bits, bits_per_token):
    """WindowFloor of each validation token predicted from the token before it in its window (module docstring)."""
    per_window = tokens_per_window(window_bits, bits_per_token)
    vocab = 1 << bits_per_token
    train, _, _ = whole_windows(train_tokens, train_weights, per_window)
    val, val_rows, unscored = whole_windows(val_tokens, val_weights, per_window)
    if len(train) == 0 or len(val) == 0:
        raise ValueError("no whole window on the training or the validation side")
    token_counts = np.bincount(train.reshape(-1), minlength=vocab).astype(np.float64)  # [v]
    n = token_counts.sum()
    alpha = unigram.choose_alpha(token_counts)
    unigram_p = (token_counts + alpha) / (n + alpha * vocab)  # [v] the held-out unigram's distribution
    loo_unigram = (np.maximum(token_counts - 1, 0) + alpha) / (n - 1 + alpha * vocab)  # [v] (n >= 2 when it matters)

    contexts, tokens = context_token_pairs(train, vocab)
    keys, pair_counts = np.unique(contexts * vocab + tokens, return_counts=True)  # [P] distinct pairs, sorted
    pair_counts = pair_counts.astype(np.float64)
    context_totals = np.bincount(contexts, minlength=vocab + 1).astype(np.float64)  # [v + 1]
    pair_contexts, pair_tokens = keys // vocab, keys % vocab
    beta = math.inf  # the unigram itself: when nothing can be left out, or when LOO prefers it to every finite beta
    if n >= 2:
        def loo(b):
            return bigram_loo(pair_counts, pair_contexts, pair_tokens, context_totals, loo_unigram, b)

        finite = unigram.maximise_over_log_alpha(loo)
        seen_tokens = token_counts > 0
        if loo(finite) > float((token_counts[seen_tokens] * np.log(loo_unigram[seen_tokens])).sum()):
            beta = finite

    val_contexts, val_tokens_flat = context_token_pairs(val, vocab)
    val_keys = val_contexts * vocab + val_tokens_flat
    where = np.minimum(np.searchsorted(keys, val_keys), len(keys) - 1)
    seen = np.where(keys[where] == val_keys, pair_counts[where], 0.0)  # c_cw of each validation pair
    if math.isinf(beta):
        p = unigram_p[val_tokens_flat]
    else:
        p = (seen + beta * unigram_p[val_tokens_flat]) / (context_totals[val_contexts] + beta)
    bits = -np.log2(p)  # [Wv * k]
    row_bits, row_tokens = _per_row(bits, np.repeat(val_rows, per_window), 1, len(np.asarray(val_tokens)))
    return WindowFloor(bits_per_token=float(bits.mean()), smoothing=beta, tokens_per_window=per_window,
                       train_tokens=int(n), val_tokens=len(bits), unscored_tokens=unscored, row_bits=row_bits,
                       row_tokens=row_tokens)
