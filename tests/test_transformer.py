"""Checks of ref/transformer.py that a wrong implementation would fail.

Gradients: float64 central differences with Richardson extrapolation along random directions, one set of directions
per parameter tensor and for the embedded input, with and without loss weights/padding. Loss: an independent
mpmath implementation (loops, 50 digits) of the architecture as docs/design.md describes it. Buckets: the exact integer
definition and hand-computed values. Counts: the paper's size names.
"""
import math

import mpmath
import numpy as np
import pytest
from helpers import perturbed_params

from equalinfo.ref import transformer as tr

# Two layers, several heads, T = 40 > 16 so the logarithmic buckets are used; small sizes keep FD cheap.
FD_CFG = tr.Config(vocab_in=11, vocab_out=7, d_model=16, n_heads=4, n_layers=2, d_ff=24, z_loss=0.05,
                   dtype="float64")
FD_B, FD_T = 2, 40
# A variant with few buckets and a short max distance, so T = 40 also reaches the clipped last bucket.
FD_CFG_CLIPPED = tr.Config(vocab_in=11, vocab_out=7, d_model=16, n_heads=4, n_layers=2, d_ff=24, num_buckets=8,
                           max_distance=20, z_loss=0.05, dtype="float64")


def batch(cfg, seed, B=FD_B, T=FD_T):
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, cfg.vocab_in, (B, T))
    targets = rng.integers(0, cfg.vocab_out, (B, T))
    return inputs, targets


def padded_weights(B, T, seed):
    """Fractional weights with trailing padding (weight 0) of different lengths per row."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.2, 2.0, (B, T))
    for b in range(B):
        weights[b, T - 7 - 5 * b:] = 0.0
    return weights


def directional_fd(f, x, direction, h=1e-4):
    """d/da f(x + a * u) at a = 0 times |direction|, u = direction / |direction|: central differences with one
    Richardson step (error O(h^4)). The step is small along a unit vector so that no ReLU input crosses zero."""
    scale = np.linalg.norm(direction)
    direction = direction / scale
    def central(step):
        return (f(x + step * direction) - f(x - step * direction)) / (2 * step)
    return (4 * central(h / 2) - central(h)) / 3 * scale


def relative_error(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


@pytest.mark.parametrize("cfg", [FD_CFG, FD_CFG_CLIPPED], ids=["32buckets", "8buckets_clipped"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted_padded"])
def test_gradients_match_finite_differences(cfg, weighted):
    params = perturbed_params(cfg, 1)
    inputs, targets = batch(cfg, 2)
    weights = padded_weights(FD_B, FD_T, 3) if weighted else None
    if weighted:
        targets = np.where(weights == 0, -1, targets)  # padding targets are ignored, even invalid ones
    loss, grads = tr.loss_and_grads(params, cfg, inputs, targets, weights)
    assert set(grads) == set(params)
    rng = np.random.default_rng(4)
    worst = {}
    for name in params:
        assert grads[name].shape == params[name].shape and grads[name].dtype == np.float64
        assert np.any(grads[name] != 0), name

        def loss_along(value, name=name):
            return tr.loss_and_grads({**params, name: value}, cfg, inputs, targets, weights)[0]

        # two directions: a random one, and one leaning on the gradient so the derivative is never tiny
        g = grads[name] / np.linalg.norm(grads[name])
        for direction in (rng.standard_normal(g.shape), g + 0.5 * rng.standard_normal(g.shape) / math.sqrt(g.size)):
            numeric = directional_fd(loss_along, params[name], direction)
            analytic = float(np.sum(grads[name] * direction))
            worst[name] = max(worst.get(name, 0.0), relative_error(numeric, analytic))
    bad = {name: err for name, err in worst.items() if err > 1e-6}
    assert not bad, f"relative errors above 1e-6: {bad}"


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted_padded"])
def test_input_path_gradient_matches_finite_differences(weighted):
    cfg = FD_CFG
    params = perturbed_params(cfg, 5)
    inputs, targets = batch(cfg, 6)
    weights = padded_weights(FD_B, FD_T, 7) if weighted else None
    x = params["embed"][inputs]
    _, _, dx = tr.loss_and_grads_from_embeddings(params, cfg, x, targets, weights)
    rng = np.random.default_rng(8)

    def loss_at(value):
        return tr.loss_and_grads_from_embeddings(params, cfg, value, targets, weights)[0]

    for direction in (rng.standard_normal(x.shape), dx / np.linalg.norm(dx)):
        numeric = directional_fd(loss_at, x, direction)
        assert relative_error(numeric, float(np.sum(dx * direction))) < 1e-6
    # a few single coordinates, including ones at padded positions (whose gradient must be exactly what FD says)
    for b, t, c in ((0, 0, 0), (1, FD_T - 1, 3), (0, FD_T // 2, 7)):
        e = np.zeros_like(x)
        e[b, t, c] = 1.0
        numeric = directional_fd(loss_at, x, e)
        assert abs(numeric - dx[b, t, c]) <= 1e-6 * max(abs(numeric), np.abs(dx).max())


def test_embedding_gradient_accumulates_repeated_ids():
    cfg = FD_CFG
    params = perturbed_params(cfg, 9)
    inputs, targets = batch(cfg, 10)
    x = params["embed"][inputs]
    _, grads, dx = tr.loss_and_grads_from_embeddings(params, cfg, x, targets)
    _, full = tr.loss_and_grads(params, cfg, inputs, targets)
    for v in range(cfg.vocab_in):
        np.testing.assert_allclose(full["embed"][v], dx[inputs == v].sum(axis=0), rtol=1e-12, atol=1e-15)


def test_padding_is_ignored():
    """A padded batch has the loss and gradients of the same batch without the padded positions."""
    cfg = FD_CFG
    params = perturbed_params(cfg, 11)
    inputs, targets = batch(cfg, 12, B=1)
    n = 25
    weights = np.zeros((1, FD_T))
    weights[0, :n] = 1.0
    padded_inputs = inputs.copy()
    padded_inputs[0, n:] = 0  # what lies in the padding must not matter either
    loss_padded, grads_padded = tr.loss_and_grads(params, cfg, padded_inputs, np.where(weights > 0, targets, -1),
                                                  weights)
    loss_short, grads_short = tr.loss_and_grads(params, cfg, inputs[:, :n], targets[:, :n])
    assert loss_padded == pytest.approx(loss_short, rel=1e-12)
    for name in params:
        np.testing.assert_allclose(grads_padded[name], grads_short[name], rtol=1e-9, atol=1e-13, err_msg=name)


def test_zero_total_weight_is_an_error():
    params = tr.init_params(FD_CFG, 0)
    inputs, targets = batch(FD_CFG, 0)
    with pytest.raises(ValueError, match="sum to zero"):
        tr.loss_and_grads(params, FD_CFG, inputs, targets, np.zeros(inputs.shape))


# ----------------------------------------------------------------------------------------------------------------------
# An independent high-precision implementation (mpmath, loops, written from docs/design.md's description)
# ----------------------------------------------------------------------------------------------------------------------


def mp_bucket(n, num_buckets, max_distance):
    n = max(n, 0)
    exact = num_buckets // 2
    if n < exact:
        return n
    value = exact + int(mpmath.floor(mpmath.log(mpmath.mpf(n) / exact) / mpmath.log(mpmath.mpf(max_distance) / exact)
                                     * (num_buckets - exact)))
    return min(value, num_buckets - 1)


def mp_loss(params, cfg, inputs, targets, weights):
    mpmath.mp.dps = 50
    P = {name: mpmath.matrix(value.reshape(value.shape[0], -1).tolist()) if value.ndim == 2
         else [mpmath.mpf(float(v)) for v in value] for name, value in params.items()}
    d, H, dh = cfg.d_model, cfg.n_heads, cfg.head_dim

    def norm(vec, scale):
        r = 1 / mpmath.sqrt(sum(v * v for v in vec) / len(vec) + mpmath.mpf(1e-6))
        return [v * r * s for v, s in zip(vec, scale)]

    def matvec(vec, M):  # vec [n] @ M [n, m]
        return [sum(vec[i] * M[i, j] for i in range(M.rows)) for j in range(M.cols)]

    total, weight_sum = mpmath.mpf(0), mpmath.mpf(0)
    for b in range(inputs.shape[0]):
        T = inputs.shape[1]
        xs = [[P["embed"][int(inputs[b, t]), c] for c in range(d)] for t in range(T)]
        for layer in range(cfg.n_layers):
            p = f"blocks.{layer}."
            hs = [norm(x, P[p + "attn_norm"]) for x in xs]
            qs, ks, vs = ([matvec(h, P[p + w]) for h in hs] for w in ("wq", "wk", "wv"))
            new = []
            for i in range(T):
                ctx = [mpmath.mpf(0)] * (H * dh)
                for head in range(H):
                    cols = range(head * dh, (head + 1) * dh)
                    scores = [sum(qs[i][c] * ks[j][c] for c in cols) / mpmath.sqrt(dh)
                              + P[p + "rel_bias"][mp_bucket(i - j, cfg.num_buckets, cfg.max_distance), head]
                              for j in range(i + 1)]
                    top = max(scores)
                    exps = [mpmath.exp(s - top) for s in scores]
                    z = sum(exps)
                    for c in cols:
                        ctx[c] = sum(exps[j] / z * vs[j][c] for j in range(i + 1))
                out = matvec(ctx, P[p + "wo"])
                new.append([xs[i][c] + out[c] for c in range(d)])
            xs = new
            for i in range(T):
                h = norm(xs[i], P[p + "mlp_norm"])
                gate, up = matvec(h, P[p + "w_gate"]), matvec(h, P[p + "w_up"])
                act = [max(g, 0) * u for g, u in zip(gate, up)]
                out = matvec(act, P[p + "w_down"])
                xs[i] = [xs[i][c] + out[c] for c in range(d)]
        for t in range(T):
            logits = matvec(norm(xs[t], P["final_norm"]), P["unembed"])
            lse = mpmath.log(sum(mpmath.exp(v) for v in logits))
            w = mpmath.mpf(float(weights[b, t]))
            total += w * (lse - logits[int(targets[b, t])] + cfg.z_loss * lse * lse)
            weight_sum += w
    return total / weight_sum


def test_loss_matches_mpmath():
    # 8 buckets with max distance 6 and T = 7: distances 0-3 are exact, 4-5 logarithmic, 6 clipped.
    cfg = tr.Config(vocab_in=6, vocab_out=5, d_model=4, n_heads=2, n_layers=2, d_ff=6, num_buckets=8,
                    max_distance=6, z_loss=0.1, dtype="float64")
    params = perturbed_params(cfg, 13)
    inputs, targets = batch(cfg, 14, B=2, T=7)
    weights = np.array([[1, 1, 0.5, 2, 1, 1, 0], [1, 0, 1, 1, 1, 3, 1.5]])
    ours, _ = tr.loss_and_grads(params, cfg, inputs, targets, weights)
    exact = mp_loss(params, cfg, inputs, targets, weights)
    assert abs(ours - float(exact)) <= 1e-13 * abs(float(exact))


# ----------------------------------------------------------------------------------------------------------------------
# Structure
# ----------------------------------------------------------------------------------------------------------------------


def test_causality():
    cfg = FD_CFG
    params = perturbed_params(cfg, 15)
    inputs, _ = batch(cfg, 16)
    base = tr.forward(params, cfg, inputs)
    for t in (0, 17, FD_T - 1):
        changed = inputs.copy()
        changed[:, t] = (changed[:, t] + 1) % cfg.vocab_in
        logits = tr.forward(params, cfg, changed)
        np.testing.assert_allclose(logits[:, :t], base[:, :t], rtol=1e-13, atol=1e-13)
        assert np.all(np.abs(logits[:, t] - base[:, t]).max(axis=-1) > 1e-6)


def test_prefix_logits_do_not_depend_on_length():
    """Relative positions: the logits of a prefix equal the first rows of the logits of the whole sequence."""
    cfg = FD_CFG_CLIPPED
    params = perturbed_params(cfg, 17)
    inputs, _ = batch(cfg, 18)
    full = tr.forward(params, cfg, inputs)
    for T in (1, 9, 30):
        np.testing.assert_allclose(tr.forward(params, cfg, inputs[:, :T]), full[:, :T], rtol=1e-12, atol=1e-12)


def test_relative_bias_uses_buckets_and_heads():
    """Raising rel_bias[k, h] changes exactly the attention of head h at distances in bucket k."""
    cfg = FD_CFG
    params = perturbed_params(cfg, 19)
    inputs, _ = batch(cfg, 20, B=1)
    h = tr.rmsnorm_forward(params["embed"][inputs], params["blocks.0.attn_norm"])[0]
    names = ("wq", "wk", "wv", "wo", "rel_bias")

    def probs(rel_bias):
        args = [params["blocks.0." + n] for n in names[:-1]] + [rel_bias]
        return tr.attention_forward(h, *args, cfg)[1][4]  # [1, H, T, T]

    before = probs(params["blocks.0.rel_bias"])
    bias = params["blocks.0.rel_bias"].copy()
    bias[17, 2] += 1.0  # distances 19 and 20
    after = probs(bias)
    changed_rows = np.abs(after - before).max(axis=-1)[0]  # [H, T]
    assert np.all(changed_rows[[0, 1, 3]] == 0)
    assert np.all(changed_rows[2, :19] == 0) and np.all(changed_rows[2, 19:] > 0)
    i, j = 30, 30 - 19
    ratio = (after[0, 2, i, j] / after[0, 2, i, j - 1]) / (before[0, 2, i, j] / before[0, 2, i, j - 1])
    assert ratio == pytest.approx(1.0, rel=1e-12)  # j - 1 is at distance 20: the same bucket, raised alike
    ratio = (after[0, 2, i, j] / after[0, 2, i, j + 1]) / (before[0, 2, i, j] / before[0, 2, i, j + 1])
    assert ratio == pytest.approx(math.e, rel=1e-12)  # j + 1 is at distance 18: bucket 16


def exact_bucket(n, num_buckets=32, max_distance=128):
    """Integer-only definition: the largest k with exact * (max_distance/exact)^(k/half) <= n, via n^h >= e^h r^k."""
    n = max(n, 0)
    exact = num_buckets // 2
    if n < exact:
        return n
    half = num_buckets - exact
    k = 0
    # n >= exact * (max/exact)^(k/half)  <=>  n^half * exact^k >= exact^half * max^k
    while k + 1 < half + 1 and n ** half * exact ** (k + 1) >= exact ** half * max_distance ** (k + 1):
        k += 1
    return min(exact + k, num_buckets - 1)


def test_bucket_table_hand_values():
    hand = {-5: 0, 0: 0, 1: 1, 7: 7, 15: 15, 16: 16, 18: 16, 19: 17, 20: 17, 21: 18, 32: 21, 64: 26, 112: 30,
            113: 31, 127: 31, 128: 31, 129: 31, 10**6: 31}
    got = tr.relative_position_bucket(np.array(list(hand)))
    assert dict(zip(hand, got.tolist())) == hand
    n = np.arange(0, 3000)
    assert tr.relative_position_bucket(n).tolist() == [exact_bucket(int(v)) for v in n]
    assert tr.relative_position_bucket(np.arange(40), 8, 20).tolist() == [exact_bucket(v, 8, 20) for v in range(40)]
    table = tr.bucket_table(200)
    i, j = np.indices(table.shape)
    assert np.all(table[j > i] == 0)
    assert np.array_equal(table, np.vectorize(exact_bucket)(i - j))


def test_parameter_names_and_shapes():
    cfg = tr.make_config("3m")
    params = tr.init_params(cfg, 0)
    assert params["embed"].shape == (258, 256) and params["unembed"].shape == (256, 257)
    assert params["blocks.2.rel_bias"].shape == (32, 4) and params["blocks.0.wo"].shape == (256, 256)
    assert params["blocks.1.w_gate"].shape == (256, 1024) and params["blocks.1.w_down"].shape == (1024, 256)
    expected = {"embed", "final_norm", "unembed"} | {
        f"blocks.{i}.{n}" for i in range(3) for n in
        ("attn_norm", "wq", "wk", "wv", "wo", "rel_bias", "mlp_norm", "w_gate", "w_up", "w_down")}
    assert set(params) == expected
    assert all(v.dtype == np.float32 for v in params.values())
    again = tr.init_params(cfg, 0)
    assert all(np.array_equal(params[n], again[n]) for n in params)
    assert not np.array_equal(params["embed"], tr.init_params(cfg, 1)["embed"])


@pytest.mark.parametrize("size,paper", [("3m", 3.15e6), ("25m", 25.2e6), ("113m", 113.2e6), ("403m", 402.7e6)])
def test_parameter_counts_match_paper(size, paper):
    counts = tr.count_params(tr.make_config(size))
    digits = 2 if size == "3m" else 1
    assert round(counts["matrices"] / 1e6, digits) == round(paper / 1e6, digits)
    assert 0 < counts["non_embedding"] / counts["matrices"] - 1 < 1e-3  # norms and relative biases are tiny
    cfg = tr.make_config(size)
    assert counts["total"] == sum(int(np.prod(s)) for s in tr.param_shapes(cfg).values())
    assert counts["embedding"] == cfg.d_model * (cfg.vocab_in + cfg.vocab_out)


def test_flops_per_token():
    cfg = tr.make_config("3m")
    flops = tr.flops_per_token(cfg, 1024)
    assert flops["training"] == 3 * flops["forward"]
    assert flops["forward"] == 2 * 3145728 + 2 * 256 * 257 + 3 * 4 * 1024 * 256


def test_float32_matches_float64():
    cfg64 = FD_CFG
    cfg32 = tr.Config(**{**cfg64.to_dict(), "dtype": "float32"})
    p64 = perturbed_params(cfg64, 21)
    p32 = {n: v.astype(np.float32) for n, v in p64.items()}
    inputs, targets = batch(cfg64, 22)
    l64, g64 = tr.loss_and_grads(p64, cfg64, inputs, targets)
    l32, g32 = tr.loss_and_grads(p32, cfg32, inputs, targets)
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert all(g32[n].dtype == np.float32 for n in g32)
    for n in p64:
        assert np.abs(g32[n] - g64[n]).max() <= 1e-4 * np.abs(g64[n]).max() + 1e-7, n
    assert tr.forward(p32, cfg32, inputs).dtype == np.float32


def test_bad_inputs_raise_clear_errors():
    cfg = FD_CFG
    params = tr.init_params(cfg, 0)
    with pytest.raises(ValueError, match="input ids"):
        tr.forward(params, cfg, np.array([[0, cfg.vocab_in]]))
    with pytest.raises(ValueError, match="targets"):
        tr.loss_and_grads(params, cfg, np.zeros((1, 3), int), np.array([[0, 1, cfg.vocab_out]]))
    with pytest.raises(ValueError, match="dtype|config says"):
        tr.forward({n: v.astype(np.float32) for n, v in params.items()}, cfg, np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="divisible"):
        tr.Config(vocab_in=5, vocab_out=5, d_model=10, n_heads=3, n_layers=1, d_ff=4)
    with pytest.raises(ValueError, match="unknown model size"):
        tr.make_config("7b")
