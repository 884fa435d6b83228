"""Conformance of fast/gpu/transformer.py with ref/transformer.py (as llm.c's test_gpt2.c checks its model).

The same random parameters and batch go through both; logits, loss and every gradient tensor must agree.
- Everywhere (the CUDA simulator in CI, the GPU where there is one): float64, to 1e-9 relative per tensor. Under the
  simulator this runs the whole GPU code path (the kernels, the head layouts, the fused products, the bias and
  embedding gradients) with NumPy products in place of cuBLAS.
- GPU only: float32 with cuBLAS products (2e-5 on logits and loss, 1e-3 per gradient tensor: float32 rounding
  through a few layers), and the tensor-core options with looser tolerances stated in `PRECISION_TOL`; arrays stay
  on the device; two calls give the same bits.
"""
import numpy as np
import pytest
from helpers import perturbed_params, training_batch
from gpu_support import gpu_only, needs_kernels, on_host, quick_simulator_threads, rel_err  # noqa: F401

from equalinfo.fast.gpu import device
from equalinfo.fast.gpu import transformer as gt
from equalinfo.ref import transformer as tr

pytestmark = needs_kernels


def make_cfg(dtype="float64", **overrides):
    base = dict(vocab_in=11, vocab_out=7, d_model=16, n_heads=2, n_layers=1, d_ff=24, z_loss=0.05, dtype=dtype,
                num_buckets=8, max_distance=12)
    return tr.Config(**{**base, **overrides})


def compare(cfg, params, inputs, targets, weights, logit_tol, loss_tol, grad_tol):
    logits = gt.forward(params, cfg, inputs)
    assert logits.shape == inputs.shape + (cfg.vocab_out,) and logits.dtype == np.dtype(cfg.dtype)
    assert rel_err(logits, tr.forward(params, cfg, inputs)) < logit_tol
    loss, grads = gt.loss_and_grads(params, cfg, inputs, targets, weights)
    ref_loss, ref_grads = tr.loss_and_grads(params, cfg, inputs, targets, weights)
    assert isinstance(loss, float) and abs(loss - ref_loss) <= loss_tol * abs(ref_loss)
    assert list(grads) == list(ref_grads)  # same names, same order
    for name, want in ref_grads.items():
        assert grads[name].shape == want.shape and grads[name].dtype == want.dtype, name
        assert rel_err(grads[name], want) < grad_tol, name
    return logits, loss, grads


# (config overrides, B, T, padded): each exercises a different part of the attention, bucket and loss code
CASES = [
    (dict(), 2, 19, False),  # T > max_distance: exact, logarithmic and clipped buckets; two heads
    (dict(n_heads=1, d_model=12, n_layers=2, vocab_in=9), 1, 6, True),  # one head, two layers, B = 1, padding
    (dict(), 2, 1, False),  # a single position
]


@pytest.mark.parametrize("overrides,B,T,padded", CASES, ids=["T19", "one_head_padded", "T1"])
def test_float64_matches_ref(overrides, B, T, padded):
    cfg = make_cfg(**overrides)
    params = perturbed_params(cfg, 1)
    before = {name: value.copy() for name, value in params.items()}
    inputs, targets, weights = training_batch(cfg, 2, B, T, padded)
    logits, _, grads = compare(cfg, params, inputs, targets, weights, 1e-9, 1e-9, 1e-9)
    assert isinstance(logits, np.ndarray) and all(isinstance(g, np.ndarray) for g in grads.values())  # NumPy in,
    assert all(np.array_equal(params[name], before[name]) for name in params)  # NumPy out, params untouched


def test_gradient_of_the_embedded_input_matches_ref():
    cfg = make_cfg()
    params = perturbed_params(cfg, 3)
    x = np.random.default_rng(5).standard_normal((2, 5, cfg.d_model))
    targets = np.random.default_rng(6).integers(0, cfg.vocab_out, (2, 5))
    loss, grads, dx = gt.loss_and_grads_from_embeddings(params, cfg, x, targets)
    ref_loss, ref_grads, ref_dx = tr.loss_and_grads_from_embeddings(params, cfg, x, targets)
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss) and "embed" not in grads
    assert rel_err(dx, ref_dx) < 1e-9


def test_bad_inputs_raise_refs_errors():
    cfg = make_cfg()
    params = tr.init_params(cfg, 0)
    inputs = np.zeros((1, 3), np.int64)
    for call, match in [
        (lambda: gt.forward(params, cfg, np.array([[0, 11]])), "input ids must lie"),
        (lambda: gt.forward(params, cfg, np.zeros(3, np.int64)), r"\[batch, time\]"),
        (lambda: gt.loss_and_grads(params, cfg, inputs, np.array([[0, 1, 7]])), "targets with non-zero weight"),
        (lambda: gt.loss_and_grads(params, cfg, inputs, inputs, np.zeros((1, 3))), "sum to zero"),
        (lambda: gt.loss_and_grads(params, cfg, inputs, inputs, -np.ones((1, 3))), "non-negative"),
        (lambda: gt.forward(tr.init_params(make_cfg("float32"), 0), cfg, inputs), "parameters are float32"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


# ----------------------------------------------------------------------------------------------------------------------
# GPU only: float32 on cuBLAS, the tensor-core options, arrays on the device, repeatability
# ----------------------------------------------------------------------------------------------------------------------

# (logits and loss, every gradient tensor), relative to ref in float32. TF32 rounds the inputs of every product to a
# 10-bit mantissa, bf16 to 7 bits (fast/gpu/blas.py); the gradients pass through about twice as many products.
PRECISION_TOL = {"float32": (2e-5, 1e-3), "tf32": (5e-3, 3e-2), "bf16": (3e-2, 1.5e-1)}


@gpu_only
@pytest.mark.parametrize("precision", list(PRECISION_TOL))
def test_float32_on_the_gpu_matches_ref(precision):
    cfg = make_cfg("float32", d_model=64, n_heads=4, n_layers=2, d_ff=96, vocab_in=258, vocab_out=257,
                   num_buckets=32, max_distance=128)
    params = perturbed_params(cfg, 7)
    inputs, targets, weights = training_batch(cfg, 8, 3, 150, padded=True)
    logit_tol, grad_tol = PRECISION_TOL[precision]
    with gt.matmul_precision(precision):
        compare(cfg, params, inputs, targets, weights, logit_tol, logit_tol, grad_tol)


@gpu_only
def test_device_params_give_device_results_and_repeat_bit_for_bit():
    cfg = make_cfg("float32", d_model=32, n_heads=2, n_layers=2, d_ff=48)
    host_params = perturbed_params(cfg, 9)
    params = gt.to_device(host_params)
    inputs, targets, weights = training_batch(cfg, 10, 2, 40, padded=True)
    first_loss, first = gt.loss_and_grads(params, cfg, inputs, targets, weights)
    second_loss, second = gt.loss_and_grads(params, cfg, inputs, targets, weights)
    assert all(device.is_device_array(g) for g in first.values())
    assert device.is_device_array(gt.forward(params, cfg, inputs))
    assert first_loss == second_loss  # no atomics anywhere: the same bits every time
    assert all(np.array_equal(on_host(first[name]), on_host(second[name])) for name in first)
    host_loss, host_grads = gt.loss_and_grads(host_params, cfg, inputs, targets, weights)
    assert host_loss == first_loss and all(np.array_equal(host_grads[n], on_host(first[n])) for n in first)
