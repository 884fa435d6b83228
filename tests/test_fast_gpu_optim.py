"""Conformance of fast/gpu/optim.py with ref/optim.py.

Everywhere (the CUDA simulator in CI, or a GPU): two updates of every path (Adafactor unfactored, factored, with
global-norm clipping; AdamW with clipping binding and weight decay) on random tensors, float64, to 1e-12 against
ref, with the same state names; inputs are not modified.
GPU only: llm.c's check, ten training steps of a small Transformer with both backends from the same start: the
same loss at every step and the same final parameters and state (float64 to 1e-10, float32 to 2e-4).
"""
import numpy as np
import pytest
from helpers import OPTIMIZERS, optimizer_trajectory
from gpu_support import gpu_only, needs_kernels, on_host, quick_simulator_threads, rel_err  # noqa: F401

from equalinfo.fast.gpu import optim as go
from equalinfo.fast.gpu import transformer as gt
from equalinfo.ref import optim as ro
from equalinfo.ref import transformer as tr

pytestmark = needs_kernels

def random_tensors(seed):
    rng = np.random.default_rng(seed)
    shapes = {"embed": (20, 17), "blocks.0.wq": (17, 24), "blocks.0.rel_bias": (8, 3), "final_norm": (17,)}
    return {name: rng.standard_normal(shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_two_updates_match_ref(name):
    params, grads = random_tensors(0), random_tensors(1)
    before = {key: value.copy() for key, value in {**params, **grads}.items()}
    ours, theirs = OPTIMIZERS[name](go), OPTIMIZERS[name](ro)
    state, ref_state = ours.init(params), theirs.init(params)
    assert sorted(state) == sorted(ref_state)
    new, ref_new = params, params
    for step in range(2):
        new, state = ours.update(new, grads, state, step)
        ref_new, ref_state = theirs.update(ref_new, grads, ref_state, step)
    for key in ref_new:
        assert rel_err(new[key], ref_new[key]) < 1e-12, key
    for key in ref_state:
        assert rel_err(state[key], ref_state[key]) < 1e-12, key
    assert all(np.array_equal(value, {**params, **grads}[key]) for key, value in before.items())
    assert any(not np.array_equal(new[key], params[key]) for key in params)  # it moved


def test_global_norm_and_clipping_match_ref():
    grads = random_tensors(2)
    assert abs(go.global_norm(grads) - ro.global_norm(grads)) < 1e-12 * ro.global_norm(grads)
    clipped, norm = go.clip_by_global_norm(grads, 1.0)
    assert abs(ro.global_norm(clipped) - 1.0) < 1e-12 and norm > 1.0


def test_from_config_builds_our_classes():
    assert isinstance(go.from_config(ro.Adafactor().config()), go.Adafactor)
    assert isinstance(go.from_config(ro.AdamW().config()), go.AdamW)


# ----------------------------------------------------------------------------------------------------------------------
# GPU only: ten-step trajectories of a Transformer
# ----------------------------------------------------------------------------------------------------------------------


def train(model, optim_module, make_opt, dtype, steps=10, place=lambda arrays: arrays):
    """Ten steps on a fixed learnable batch with padding; returns (losses, params, state) as NumPy."""
    losses, params, state = optimizer_trajectory(model, optim_module, make_opt, dtype, steps, place)
    return losses, {key: on_host(value) for key, value in params.items()}, {key: on_host(value)
                                                                            for key, value in state.items()}


@gpu_only
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_ten_step_trajectory_matches_ref(name, dtype, tol):
    ref_losses, ref_params, ref_state = train(tr, ro, OPTIMIZERS[name], dtype)
    losses, params, state = train(gt, go, OPTIMIZERS[name], dtype, place=gt.to_device)  # params stay on the GPU
    assert ref_losses[-1] < 0.8 * ref_losses[0]  # it trains, so the comparison means something
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12 if dtype == "float64" else 1e-5)
    assert set(state) == set(ref_state)
    for key in ref_params:
        assert rel_err(params[key], ref_params[key]) < tol, key
    for key in ref_state:
        assert rel_err(state[key], ref_state[key]) < 10 * tol, key
