"""Conformance of fast/cpu/optim.py with ref/optim.py.

The main check is llm.c's (test_gpt2.c): ten training steps of a small Transformer, each backend with its own model
and optimizer from the same start, must give the same loss at every step and the same final parameters and
optimizer state (float64: to ~1e-10; float32: to float32 rounding accumulated over ten steps). Single updates on
random tensors check each path (factored, unfactored, clipped, weight decay, > 2-D fallback) tightly in float64.
"""
import math

import numpy as np
import pytest
from helpers import OPTIMIZERS, optimizer_trajectory, rel_err

from equalinfo.fast.cpu import optim as fo
from equalinfo.fast.cpu import transformer as ft
from equalinfo.ref import optim as ro
from equalinfo.ref import transformer as tr

@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_ten_step_trajectory_matches_ref(name, dtype, tol):
    ref_losses, ref_params, ref_state = optimizer_trajectory(tr, ro, OPTIMIZERS[name], dtype)
    losses, params, state = optimizer_trajectory(ft, fo, OPTIMIZERS[name], dtype)
    assert ref_losses[-1] < 0.8 * ref_losses[0]  # it trains, so the comparison means something
    loss_tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(losses, ref_losses, rtol=loss_tol)
    assert set(state) == set(ref_state)
    for key in params:
        assert params[key].dtype == np.dtype(dtype)
        assert rel_err(params[key], ref_params[key]) < tol, (key, rel_err(params[key], ref_params[key]))
    for key in state:
        assert state[key].dtype == np.dtype(dtype) and state[key].shape == ref_state[key].shape
        assert rel_err(state[key], ref_state[key]) < 10 * tol, (key, rel_err(state[key], ref_state[key]))


def random_problem(seed, shapes):
    rng = np.random.default_rng(seed)
    params = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    grads = {name: rng.standard_normal(shape) * 10 ** rng.uniform(-3, 1) for name, shape in shapes.items()}
    return params, grads


SHAPES = {"blocks.0.w": (40, 36), "blocks.0.rel_bias": (8, 3), "norm": (36,), "tiny": (2,), "small_rms": (5, 4)}


@pytest.mark.parametrize("name", ["adafactor", "adafactor_factored", "adafactor_clipped", "adamw"])
def test_single_updates_match_ref(name):
    """Three updates from a non-zero state (so the EMAs and bias corrections matter) on random tensors."""
    params, _ = random_problem(0, SHAPES)
    params["small_rms"] *= 1e-5  # below epsilon2: Adafactor's step uses epsilon2 instead of rms(p)
    ref_opt, fast_opt = OPTIMIZERS[name](ro), OPTIMIZERS[name](fo)
    ref_p, fast_p = params, params
    ref_s, fast_s = ref_opt.init(params), fast_opt.init(params)
    for step in (0, 1, 7):
        _, grads = random_problem(step + 1, SHAPES)
        before = {key: value.copy() for key, value in {**fast_p, **grads, **fast_s}.items()}
        new_fast_p, new_fast_s = fast_opt.update(fast_p, grads, fast_s, step)
        for key, value in {**fast_p, **grads, **fast_s}.items():
            assert np.array_equal(value, before[key]), f"update modified its input {key}"
        ref_p, ref_s = ref_opt.update(ref_p, grads, ref_s, step)
        fast_p, fast_s = new_fast_p, new_fast_s
        for key in ref_p:
            assert rel_err(fast_p[key], ref_p[key]) < 1e-12, (step, key)
        for key in ref_s:
            assert rel_err(fast_s[key], ref_s[key]) < 1e-12, (step, key)


def test_adafactor_higher_dimensional_tensor_falls_back_to_ref():
    shapes = {"cube": (3, 130, 129), "matrix": (130, 129)}
    params, grads = random_problem(5, shapes)
    for clip in (None, 0.1):
        ref_opt, fast_opt = ro.Adafactor(base_lr=0.3, clip_norm=clip), fo.Adafactor(base_lr=0.3, clip_norm=clip)
        ref_p, ref_s = ref_opt.update(params, grads, ref_opt.init(params), 0)
        fast_p, fast_s = fast_opt.update(params, grads, fast_opt.init(params), 0)
        assert set(fast_s) == set(ref_s) == {"v_row/cube", "v_col/cube", "v_row/matrix", "v_col/matrix"}
        for key in ref_p:
            assert rel_err(fast_p[key], ref_p[key]) < 1e-12, key
        for key in ref_s:
            assert rel_err(fast_s[key], ref_s[key]) < 1e-12, key


def test_state_moves_between_backends():
    """A state written by ref continues on fast (a checkpoint resumes on either backend)."""
    params, grads = random_problem(6, SHAPES)
    ref_opt, fast_opt = ro.Adafactor(min_dim_size_to_factor=16), fo.Adafactor(min_dim_size_to_factor=16)
    p1, s1 = ref_opt.update(params, grads, ref_opt.init(params), 0)
    _, grads2 = random_problem(7, SHAPES)
    ref_p, ref_s = ref_opt.update(p1, grads2, s1, 1)
    fast_p, fast_s = fast_opt.update(p1, grads2, s1, 1)
    assert all(rel_err(fast_p[k], ref_p[k]) < 1e-12 for k in ref_p)
    assert all(rel_err(fast_s[k], ref_s[k]) < 1e-12 for k in ref_s)


def test_global_norm_and_clipping_match_ref():
    params, grads = random_problem(8, SHAPES)
    grads32 = {k: v.astype(np.float32) for k, v in grads.items()}
    for g in (grads, grads32):
        assert fo.global_norm(g) == pytest.approx(ro.global_norm(g), rel=1e-12)
        norm = ro.global_norm(g)
        clipped, before = fo.clip_by_global_norm(g, norm / 3)
        ref_clipped, _ = ro.clip_by_global_norm(g, norm / 3)
        assert before == pytest.approx(norm, rel=1e-12)
        for key in g:
            assert clipped[key].dtype == g[key].dtype
            np.testing.assert_array_equal(clipped[key], ref_clipped[key])
        same, _ = fo.clip_by_global_norm(g, norm * 2)
        assert all(same[k] is g[k] for k in g)
    assert math.isclose(fo.global_norm({"z": np.zeros(3)}), 0.0)


def test_config_round_trip_and_interchange_with_ref():
    for opt in (fo.Adafactor(base_lr=0.5, min_dim_size_to_factor=8), fo.AdamW(peak_lr=3e-4)):
        again = fo.from_config(opt.config())
        assert type(again) is type(opt) and again.config() == opt.config()
        assert ro.from_config(opt.config()).config() == opt.config()  # the same JSON as ref's
        assert isinstance(opt, ro.Adafactor if opt.config()["name"] == "adafactor" else ro.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fo.from_config({"name": "sgd"})
    with pytest.raises(ValueError, match="invalid adamw settings"):
        fo.from_config({"name": "adamw", "momentum": 0.9})
    with pytest.raises(ValueError, match="invalid Adafactor settings"):
        fo.Adafactor(base_lr=-1)
