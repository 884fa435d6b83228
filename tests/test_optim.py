"""Checks of ref/optim.py: the update rules against their definitions, the schedules, clipping, and that both
optimizers train a tiny Transformer on a fixed batch."""
import math

import numpy as np
import pytest

from equalinfo.ref import optim
from equalinfo.ref import transformer as tr


def test_rsqrt_schedule():
    assert optim.rsqrt_schedule(0) == pytest.approx(0.01)
    assert optim.rsqrt_schedule(9_999) == pytest.approx(0.01)
    assert optim.rsqrt_schedule(40_000) == pytest.approx(1 / 200)
    assert optim.rsqrt_schedule(90_000, base=2.0) == pytest.approx(2 / 300)


def test_warmup_cosine_schedule():
    f = lambda s: optim.warmup_cosine_schedule(s, 1.0, 10, 110, final_lr_fraction=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55)  # halfway down the cosine: (1 + 0.1) / 2
    assert f(110) == pytest.approx(0.1) and f(10_000) == pytest.approx(0.1)
    values = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_global_norm_clipping():
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    clipped, before = optim.clip_by_global_norm(grads, norm / 2)
    assert before == pytest.approx(norm)
    assert optim.global_norm(clipped) == pytest.approx(norm / 2)
    for name in grads:
        np.testing.assert_allclose(clipped[name], grads[name] / 2)
    same, _ = optim.clip_by_global_norm(grads, norm * 2)
    assert all(same[n] is grads[n] for n in grads)


def test_adafactor_first_step_is_a_sign_step():
    """At step 0 beta2 = 0, so V = g^2 exactly (and the factored estimate is exact for a rank-one g^2): the update is
    lr * max(rms(p), eps2) * sign(g), whose rms is 1, under the clipping threshold."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(6), rng.standard_normal(5)
    params = {"matrix": rng.standard_normal((6, 5)), "vector": 1e-5 * rng.standard_normal(7)}
    grads = {"matrix": np.outer(a, b), "vector": rng.standard_normal(7)}
    opt = optim.Adafactor(base_lr=1.0, warmup_steps=4, min_dim_size_to_factor=5)
    state = opt.init(params)
    assert set(state) == {"v_row/matrix", "v_col/matrix", "v/vector"}
    new, state = opt.update(params, grads, state, step=0)
    lr = 0.5  # 1 / sqrt(max(0, 4))
    matrix_rms = math.sqrt(np.mean(params["matrix"] ** 2))
    np.testing.assert_allclose(new["matrix"], params["matrix"] - lr * matrix_rms * np.sign(grads["matrix"]),
                               rtol=1e-12, atol=1e-12)
    # the vector's rms is below epsilon2 = 1e-3, so its step is lr * 1e-3
    np.testing.assert_allclose(new["vector"], params["vector"] - lr * 1e-3 * np.sign(grads["vector"]),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state["v_row/matrix"], (grads["matrix"] ** 2).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(state["v_col/matrix"], (grads["matrix"] ** 2).mean(axis=0), rtol=1e-12)


def test_adafactor_second_step_decay_and_update_clipping():
    """At step 1, beta2 = 1 - 2^-0.8. A gradient much larger than the first gives u = g / sqrt((1 - beta2) g^2),
    |u| = 2^0.4 > 1 everywhere, so update clipping scales it back to rms 1."""
    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal(8) + 3.0}
    opt = optim.Adafactor(base_lr=0.1, warmup_steps=0, min_dim_size_to_factor=128)
    state = opt.init(params)
    params1, state = opt.update(params, {"w": 1e-6 * rng.standard_normal(8)}, state, step=0)
    g = rng.standard_normal(8)
    params2, state = opt.update(params1, {"w": g}, state, step=1)
    beta2 = 1 - 2 ** -0.8
    np.testing.assert_allclose(state["v/w"], (1 - beta2) * g ** 2, rtol=1e-6)  # the first g^2 is negligible
    step_size = 0.1 * math.sqrt(np.mean(params1["w"] ** 2))  # lr = 0.1 / sqrt(max(1, 0))
    np.testing.assert_allclose(params2["w"], params1["w"] - step_size * np.sign(g), rtol=1e-6)
    # without clipping the step would have been 2^0.4 times larger
    unclipped = optim.Adafactor(base_lr=0.1, warmup_steps=0, clipping_threshold=None)
    state = unclipped.init(params)
    p1, state = unclipped.update(params, {"w": 1e-6 * np.ones(8)}, state, step=0)
    p2, _ = unclipped.update(p1, {"w": g}, state, step=1)
    step = np.abs(p2["w"] - p1["w"]) / (0.1 * math.sqrt(np.mean(p1["w"] ** 2)))
    np.testing.assert_allclose(step, 2 ** 0.4, rtol=1e-4)


def test_adamw_first_step():
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((4, 3)), "norm": rng.standard_normal(3)}
    grads = {"w": rng.standard_normal((4, 3)), "norm": rng.standard_normal(3)}
    opt = optim.AdamW(peak_lr=0.1, warmup_steps=2, total_steps=10, weight_decay=0.5, eps=1e-12, clip_norm=None)
    new, state = opt.update(params, grads, opt.init(params), step=0)
    lr = 0.05  # warmup: step 0 of 2
    np.testing.assert_allclose(new["w"], params["w"] - lr * (np.sign(grads["w"]) + 0.5 * params["w"]), rtol=1e-10)
    np.testing.assert_allclose(new["norm"], params["norm"] - lr * np.sign(grads["norm"]), rtol=1e-10)
    np.testing.assert_allclose(state["m/w"], 0.1 * grads["w"])
    np.testing.assert_allclose(state["v/w"], 0.05 * grads["w"] ** 2)


def train(opt, steps, dtype="float64"):
    cfg = tr.Config(vocab_in=12, vocab_out=10, d_model=32, n_heads=4, n_layers=2, d_ff=48, dtype=dtype)
    params = tr.init_params(cfg, 0)
    rng = np.random.default_rng(4)
    inputs = rng.integers(0, 12, (4, 24))
    targets = (inputs[:, ::-1] * 7 + 3) % 10  # learnable given the inputs
    state = opt.init(params)
    losses = []
    for step in range(steps):
        loss, grads = tr.loss_and_grads(params, cfg, inputs, targets)
        losses.append(loss)
        params, state = opt.update(params, grads, state, step)
    return losses, params, state


@pytest.mark.parametrize("opt", [
    optim.Adafactor(base_lr=0.1, warmup_steps=10),
    optim.Adafactor(base_lr=0.1, warmup_steps=10, min_dim_size_to_factor=16),  # factors the 32x48 matrices too
    optim.AdamW(peak_lr=1e-2, warmup_steps=5, total_steps=40),
], ids=["adafactor", "adafactor_factored", "adamw"])
def test_optimizers_reduce_loss(opt):
    losses, params, state = train(opt, 40)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.25 * losses[0], losses
    assert all(v.dtype == np.float64 for v in state.values())


def test_float32_training_keeps_float32():
    losses, params, state = train(optim.Adafactor(base_lr=1.0, warmup_steps=10), 3, dtype="float32")
    assert all(v.dtype == np.float32 for v in params.values()) and all(v.dtype == np.float32 for v in state.values())


def test_optimizer_config_round_trip():
    for opt in (optim.Adafactor(base_lr=0.5, min_dim_size_to_factor=8), optim.AdamW(peak_lr=3e-4)):
        again = optim.from_config(opt.config())
        assert type(again) is type(opt) and again.config() == opt.config()
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.from_config({"name": "sgd"})
