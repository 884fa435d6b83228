"""The unigram floor of docs/paper.md §3.2, held out and sound for a large vocabulary.

The floor asks: how many bits per token does a model need that knows only how often each token occurs? We fit
token frequencies on the training tokens and measure the cross-entropy of the validation tokens. An M2 that does
not beat this has learnt nothing beyond token frequencies.

Additive smoothing gives every word of the vocabulary (size V) some mass, so an unseen validation token does not cost
infinitely many bits:

    p(w) = (c_w + alpha) / (N + alpha * V)        c_w: count of w among the N training tokens

Why add-one (alpha = 1) fails for a large vocabulary with few tokens. Take V = 65,536 and N = 5,000 training
tokens, nearly all distinct (AC's tokens are close to uniform). The unseen words then hold about
(V - 5,000) / (N + V) = 60,536 / 70,536 = 86% of the mass although they were never observed. Every unseen validation
token costs log2(N + V) = log2(V) + log2(1 + N/V) = 16 + 0.106 bits, MORE than the uniform floor log2(V) = 16;
a seen one (count 1) saves only 1 bit against that, and only about N/V = 8% of validation tokens are seen. So the
add-one floor is ~16 + 0.106 - 0.08 > 16: above the uniform floor, an artefact of the smoothing, not of the data.
With a skewed distribution the same arithmetic makes add-one spread far too much mass over the unseen words and
report a floor well above what a frequency model can actually reach.

What we do instead: choose alpha by leave-one-out (LOO) on the training tokens. Remove one training token, refit,
and score that token; summed over all N tokens (grouped by word, each of the c_w tokens of w sees count c_w - 1):

    LOO(alpha) = sum_w c_w * ln((c_w - 1 + alpha) / (N - 1 + alpha * V))

This is an honest held-out estimate of the log-likelihood that needs no separate split. Its behaviour:
- words seen once contribute ln(alpha / ...): alpha -> 0 is punished whenever singletons exist;
- as alpha -> infinity p tends to the uniform 1/V, so LOO(alpha) -> N ln(1/V): the best alpha is never worse, on
  LOO, than the uniform model. On near-uniform tokens LOO picks a large alpha (the floor approaches log2 V from the
  data, not from above by construction); on skewed tokens a small one (the floor follows the frequencies).
We maximise LOO over alpha by a grid in log10(alpha) from -8 to 8 (8 points per decade), then a golden-section
search in log(alpha) between the best grid point's neighbours (LOO is smooth, and unimodal in practice on this
bracket). The grid's ends are kept when the maximum lies there (alpha = 1e8 is uniform to within ~1e-4 bits for
N up to ~1e4; alpha = 1e-8 only when there are no singletons).

Tokens with weight 0 (padding) are not tokens: training counts use weights > 0 only, and the validation
cross-entropy weights each token by its weight.
"""
import math
from dataclasses import dataclass

import numpy as np

LOG10_ALPHA_GRID = np.linspace(-8.0, 8.0, 16 * 8 + 1)  # 129 points, 8 per decade
GOLDEN_STEPS = 60  # golden-section steps in log(alpha) after the grid: shrinks the bracket by 0.618^60 ~ 3e-13


def counts_of(tokens, weights, vocab_size):
    """counts [V] (float64) of the training tokens whose weight is > 0."""
    tokens = np.asarray(tokens).reshape(-1)
    weights = np.asarray(weights).reshape(-1)
    if tokens.shape != weights.shape:
        raise ValueError(f"tokens {tokens.shape} and weights {weights.shape} must have the same shape")
    return np.bincount(tokens[weights > 0].astype(np.int64), minlength=vocab_size).astype(np.float64)


def loo_log_likelihood(counts, alpha):
    """LOO(alpha) in nats: the sum over training tokens of ln p(token | the other N - 1 tokens), additive alpha.

    Words are grouped by their count (many words share one), so the cost is the number of distinct counts."""
    return _loo(_count_groups(counts), alpha)


def _count_groups(counts):
    """(distinct nonzero counts k, how many words have count k, N, V): all LOO needs."""
    counts = np.asarray(counts, dtype=np.float64)
    values, multiplicity = np.unique(counts[counts > 0], return_counts=True)
    return values, multiplicity, counts.sum(), len(counts)


def _loo(groups, alpha):
    values, multiplicity, n, vocab = groups
    return float((multiplicity * values * np.log(values - 1 + alpha)).sum() - n * math.log(n - 1 + alpha * vocab))


def choose_alpha(counts):
    """The alpha in [1e-8, 1e8] that maximises loo_log_likelihood(counts, alpha) (grid, then golden section)."""
    counts = np.asarray(counts, dtype=np.float64)
    return choose_alpha_sparse(counts[counts > 0], len(counts))


def choose_alpha_sparse(seen_counts, vocab_size):
    """choose_alpha for a vocabulary given by its size and the counts of the words seen (those > 0): the same
    choice, for vocabularies too large to hold one count per word (report/window_floors.py: 2^b windows)."""
    seen = np.asarray(seen_counts, dtype=np.float64).reshape(-1)
    if seen.sum() < 2:  # LOO needs a token left after removing one; nothing to learn: as uniform as allowed
        return float(10 ** LOG10_ALPHA_GRID[-1])
    values, multiplicity = np.unique(seen[seen > 0], return_counts=True)
    groups = (values, multiplicity, seen.sum(), vocab_size)
    return maximise_over_log_alpha(lambda alpha: _loo(groups, alpha))


def maximise_over_log_alpha(objective):
    """The alpha in [1e-8, 1e8] that maximises objective(alpha), searched in log(alpha): the grid of
    LOG10_ALPHA_GRID, then golden section between the best grid point's neighbours (module docstring)."""
    logs = LOG10_ALPHA_GRID * math.log(10)  # ln(alpha) on the grid

    def in_log(log_alpha):
        return objective(math.exp(log_alpha))

    scores = [in_log(x) for x in logs]
    best = int(np.argmax(scores))
    if best in (0, len(logs) - 1):
        return float(math.exp(logs[best]))
    low, high = logs[best - 1], logs[best + 1]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = in_log(a), in_log(b)
    for _ in range(GOLDEN_STEPS):
        if fa >= fb:  # the maximum lies in [low, b]
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = in_log(a)
        else:  # in [a, high]
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = in_log(b)
    return float(math.exp((low + high) / 2))


def cross_entropy_bits(counts, alpha, tokens, weights):
    """bits/token of `tokens` (weighted by `weights`) under p(w) = (c_w + alpha) / (N + alpha V)."""
    counts = np.asarray(counts, dtype=np.float64)
    log_p = np.log2(counts + alpha) - math.log2(counts.sum() + alpha * len(counts))  # [V]
    tokens = np.asarray(tokens).reshape(-1).astype(np.int64)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    return float(-(log_p[tokens] * weights).sum() / weights.sum())


@dataclass
class UnigramFloor:
    """The held-out unigram floor (LOO-chosen alpha) beside the old add-one floor, both in bits/token."""
    bits_per_token: float  # validation cross-entropy with alpha chosen by LOO
    addone_bits_per_token: float  # the same with alpha = 1 (the floor the project reported before)
    alpha: float  # the LOO choice
    train_tokens: int  # N: training tokens counted (weight > 0)
    distinct: int  # words seen at least once in training
    vocab_size: int


def heldout_floor(train_tokens, train_weights, val_tokens, val_weights, vocab_size):
    """UnigramFloor of validation tokens under the training tokens' frequencies."""
    counts = counts_of(train_tokens, train_weights, vocab_size)
    alpha = choose_alpha(counts)
    return UnigramFloor(bits_per_token=cross_entropy_bits(counts, alpha, val_tokens, val_weights),
                        addone_bits_per_token=cross_entropy_bits(counts, 1.0, val_tokens, val_weights),
                        alpha=alpha, train_tokens=int(counts.sum()), distinct=int((counts > 0).sum()),
                        vocab_size=int(vocab_size))
