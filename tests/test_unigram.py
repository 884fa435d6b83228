"""report/unigram.py against independent computations: LOO by removing each token and refitting, the uniform floor
log2(V) on uniform tokens, the entropy of a known distribution, the old add-one formula."""
import math

import numpy as np
import pytest

from equalinfo.report import unigram


def brute_loo(tokens, vocab, alpha):
    """Sum over training tokens of ln p(token) under the additive-alpha fit of all the OTHER tokens."""
    total = 0.0
    for i in range(len(tokens)):
        rest = np.delete(tokens, i)
        counts = np.zeros(vocab)
        for t in rest:
            counts[t] += 1
        total += math.log((counts[tokens[i]] + alpha) / (len(rest) + alpha * vocab))
    return total


TINY = np.array([0, 0, 1, 2, 0, 3, 1, 0, 5])  # word 4 unseen, 2 / 3 / 5 singletons


@pytest.mark.parametrize("alpha", [1e-3, 0.2, 1.0, 7.5, 1e4])
def test_loo_objective_is_remove_refit_score(alpha):
    counts = unigram.counts_of(TINY, np.ones(len(TINY)), 6)
    assert unigram.loo_log_likelihood(counts, alpha) == pytest.approx(brute_loo(TINY, 6, alpha), rel=1e-12)


def test_chosen_alpha_maximises_the_brute_force_loo():
    counts = unigram.counts_of(TINY, np.ones(len(TINY)), 6)
    alpha = unigram.choose_alpha(counts)
    best_on_grid = max(brute_loo(TINY, 6, a) for a in np.logspace(-4, 4, 801))
    assert brute_loo(TINY, 6, alpha) >= best_on_grid - 1e-9
    assert 1e-4 < alpha < 1e4  # singletons and repeats both present: an interior maximum


def test_padding_is_not_counted():
    tokens = np.array([[3, 3, 0, 0], [1, 3, 0, 0]])
    weights = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], dtype=np.float32)
    assert unigram.counts_of(tokens, weights, 5).tolist() == [0, 1, 0, 3, 0]


def test_alpha_one_is_the_old_add_one_floor():
    rng = np.random.default_rng(1)
    train, val = rng.integers(0, 40, 300), rng.integers(0, 40, 100)
    val_weights = rng.integers(0, 2, 100).astype(float)
    counts = np.ones(40)
    np.add.at(counts, train, 1)  # the add-one fit as train/m2.py wrote it
    old = -(np.log2(counts / counts.sum())[val] * val_weights).sum() / val_weights.sum()
    floor = unigram.heldout_floor(train, np.ones(300), val, val_weights, 40)
    assert floor.addone_bits_per_token == pytest.approx(old, rel=1e-12)


@pytest.mark.parametrize("n_tokens", [1_000, 5_000])
def test_uniform_tokens_in_a_65k_vocabulary_stay_at_log2_v(n_tokens):
    """Expected held-out cross-entropy of uniform tokens is log2(V) + KL(uniform || fit) >= log2 V; the LOO fit
    keeps the KL tiny while add-one (the failure the module explains) lands measurably above log2 V."""
    rng = np.random.default_rng(n_tokens)
    vocab = 1 << 16
    train, val = rng.integers(0, vocab, n_tokens), rng.integers(0, vocab, 20_000)
    floor = unigram.heldout_floor(train, np.ones(n_tokens), val, np.ones(len(val)), vocab)
    assert floor.bits_per_token <= 16 + 1e-3
    assert floor.addone_bits_per_token > 16 + 1e-3
    assert floor.alpha > 1  # near-uniform data: LOO smooths hard


def test_many_samples_of_a_known_distribution_give_its_entropy():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(64, 0.3))
    p = np.concatenate([p, np.zeros(192)])  # 256 words, 192 never occur
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    train, val = rng.choice(256, 200_000, p=p), rng.choice(256, 200_000, p=p)
    floor = unigram.heldout_floor(train, np.ones(len(train)), val, np.ones(len(val)), 256)
    # sampling error of a 200k-token mean is ~0.005 bits; the fit's own error is O(V/N)
    assert floor.bits_per_token == pytest.approx(entropy, abs=0.02)
    assert floor.alpha < 1  # plenty of data: little smoothing


def test_skewed_tokens_get_a_small_alpha_and_a_lower_floor_than_add_one():
    rng = np.random.default_rng(3)
    vocab = 1 << 16
    p = 1 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    train, val = rng.choice(vocab, 5_000, p=p), rng.choice(vocab, 5_000, p=p)
    floor = unigram.heldout_floor(train, np.ones(5_000), val, np.ones(5_000), vocab)
    assert floor.alpha < 0.5 and floor.bits_per_token < floor.addone_bits_per_token - 0.5
    # and the LOO choice is at least as good as add-one on the held-out tokens here
    assert floor.bits_per_token < 16
