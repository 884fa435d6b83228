"""Every fused kernel of fast/gpu/kernels_nn.py against ref's NumPy formulas, on small shapes.

Runs the real kernels on a GPU and the same source under numba's CUDA simulator elsewhere (tests/conftest.py), so
CI checks each kernel without a GPU. Float64 inputs must agree with ref to ~1e-12 (only the order of the float64
sums differs); a float32 case per kernel family checks the dtype handling. Rows are longer than a block's threads
and shapes are not multiples of anything, so the strided loops and the tree reductions are exercised. The
optimizer kernels are checked through whole updates in tests/test_fast_gpu_optim.py.
"""
import math

import numpy as np
import pytest
from gpu_support import needs_kernels, on_device, on_host, quick_simulator_threads, rel_err  # noqa: F401

from equalinfo.fast.gpu import device
from equalinfo.fast.gpu import kernels_nn as K
from equalinfo.ref import transformer as tr

pytestmark = needs_kernels
TOL = {"float64": 1e-12, "float32": 2e-6}


def test_eps_matches_ref():
    assert K.RMS_EPS == tr.RMS_EPS


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rmsnorm_forward_apply_and_backward(dtype):
    rng = np.random.default_rng(0)
    N, d = 5, 13
    x = rng.standard_normal((N, d)).astype(dtype)
    scale = (1 + 0.3 * rng.standard_normal(d)).astype(dtype)
    dy = rng.standard_normal((N, d)).astype(dtype)
    want, cache = tr.rmsnorm_forward(x, scale)
    want_dx, want_dscale = tr.rmsnorm_backward(dy, cache)

    out, rrms = on_device(np.zeros((N, d), dtype)), on_device(np.zeros(N, dtype))
    K.rmsnorm_forward(on_device(x), on_device(scale), out, rrms)
    assert rel_err(out, want) < TOL[dtype]
    assert rel_err(rrms, cache[1][:, 0]) < TOL[dtype]
    again = on_device(np.zeros((N, d), dtype))
    K.rmsnorm_apply(on_device(x), on_device(scale), rrms, again)
    assert np.array_equal(on_host(again), on_host(out))  # the same arithmetic, so the same bits

    residual = rng.standard_normal((N, d)).astype(dtype)
    dx, partial = on_device(residual.copy()), on_device(np.zeros((3, d)))
    K.rmsnorm_backward_add(on_device(dy), on_device(x), rrms, on_device(scale), dx, partial)
    assert rel_err(on_host(dx) - residual, want_dx) < 10 * TOL[dtype]  # added into the residual's gradient
    assert rel_err(on_host(partial).sum(axis=0), want_dscale) < 10 * TOL[dtype]


def _ref_attention(scores, rel_bias, T, scale, num_buckets=8, max_distance=12):
    """ref's bias + mask + softmax on given scores [BH, T, T] (H = rel_bias.shape[1])."""
    H = rel_bias.shape[1]
    buckets = tr.bucket_table(T, num_buckets, max_distance)
    bias = rel_bias[buckets].transpose(2, 0, 1)  # [H, T, T]
    z = scores.reshape(-1, H, T, T) * scale + bias + tr.causal_mask(T, scores.dtype.name)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=-1, keepdims=True)).reshape(scores.shape), buckets


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_attention_softmax_and_backward(dtype):
    rng = np.random.default_rng(1)
    B, H, T, nb, maxd = 2, 2, 19, 8, 12  # T > max_distance: exact, logarithmic and clipped buckets
    scale = 1 / math.sqrt(4)
    scores = rng.standard_normal((B * H, T, T)).astype(dtype) * 3
    rel_bias = rng.standard_normal((nb, H)).astype(dtype)
    want, buckets = _ref_attention(scores, rel_bias, T, scale, nb, maxd)
    offsets = tr.relative_position_bucket(np.arange(T - 1, -1, -1), nb, maxd)
    bias_by_offset = np.ascontiguousarray(rel_bias[offsets].T)

    probs = on_device(scores.copy())
    K.attention_softmax(probs, on_device(bias_by_offset), H, scale)
    assert rel_err(probs, want) < TOL[dtype]
    assert np.all(np.triu(on_host(probs), k=1) == 0)  # the future is exactly zero

    dprobs = rng.standard_normal((B * H, T, T)).astype(dtype)
    want_ds = want * (dprobs - np.sum(dprobs * want, axis=-1, keepdims=True))
    ds, dbias = on_device(dprobs.copy()), on_device(np.zeros((B * H, T)))
    K.attention_softmax_backward(probs, ds, dbias)
    assert rel_err(ds, want_ds) < 10 * TOL[dtype]
    # the bias gradient by offset, folded into buckets, is ref's scatter of dscores over (bucket, head)
    want_bias = np.zeros((nb, H))
    for h in range(H):
        np.add.at(want_bias[:, h], buckets, want_ds.reshape(B, H, T, T)[:, h].sum(axis=0))
    per_head = on_host(dbias).reshape(B, H, T).sum(axis=0)
    got_bias = np.zeros((nb, H))
    np.add.at(got_bias, offsets, per_head.T)
    assert rel_err(got_bias, want_bias) < 10 * TOL[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gated_relu_and_backward(dtype):
    rng = np.random.default_rng(2)
    N, ff = 7, 9
    gate_up = rng.standard_normal((N, 2 * ff)).astype(dtype)
    gate_up[0, :3] = 0.0  # relu'(0) = 0, as in ref
    dact = rng.standard_normal((N, ff)).astype(dtype)
    gate, up = gate_up[:, :ff], gate_up[:, ff:]
    act = on_device(np.zeros((N, ff), dtype))
    K.gated_relu(on_device(gate_up), act)
    assert np.array_equal(on_host(act), np.maximum(gate, 0) * up)  # one multiply: bit for bit
    buffer = on_device(gate_up.copy())
    K.gated_relu_backward(on_device(dact), buffer)
    assert np.array_equal(on_host(buffer), np.concatenate([dact * up * (gate > 0), dact * np.maximum(gate, 0)], 1))


@pytest.mark.parametrize("dtype,V", [("float64", 23), ("float32", 23), ("float64", 300)])
def test_cross_entropy_loss_terms_and_gradient(dtype, V):
    rng = np.random.default_rng(3)
    N, z_loss = 6, 0.05
    logits = (3 * rng.standard_normal((N, V))).astype(dtype)
    targets = rng.integers(0, V, N)
    weights = rng.uniform(0.2, 2.0, N)
    weights[[1, 4]] = 0.0  # padding: any target, no loss, no gradient
    targets[1] = -1
    safe = np.where(weights != 0, targets, 0)
    want_loss, cache = tr.loss_forward(logits[None], safe[None], weights[None].astype(dtype), z_loss)
    want_grad = tr.loss_backward(cache)[0]

    grad, terms = on_device(logits.copy()), on_device(np.zeros((N, 2)))
    K.cross_entropy(grad, on_device(safe), on_device(weights.astype(dtype)), weights.sum(), z_loss, terms)
    sums = on_host(terms).sum(axis=0)
    assert abs((sums[0] + z_loss * sums[1]) / weights.sum() - want_loss) < 10 * TOL[dtype] * abs(want_loss)
    assert rel_err(grad, want_grad) < 10 * TOL[dtype]
    assert np.all(on_host(grad)[[1, 4]] == 0) and np.all(on_host(terms)[[1, 4]] == 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_embedding_backward_sums_in_ref_order(dtype):
    rng = np.random.default_rng(4)
    N, d, V = 17, 5, 9
    ids = rng.integers(0, V - 2, N)  # the last ids never occur: their rows stay zero
    dx = rng.standard_normal((N, d)).astype(dtype)
    want = tr.embedding_backward(dx, ids, V)
    order = np.argsort(ids, kind="stable")
    unique, starts = np.unique(ids[order], return_index=True)
    table = on_device(np.zeros((V, d), dtype))
    K.embedding_backward(on_device(dx), on_device(order), on_device(np.append(starts, N)), on_device(unique), table)
    assert np.array_equal(on_host(table), want)  # the same additions in the same order as np.add.at


def test_kernels_leave_their_inputs_alone():
    """Kernels that write in place do so only where documented: the norm's input and scale are untouched."""
    rng = np.random.default_rng(5)
    x, scale = rng.standard_normal((3, 6)), rng.standard_normal(6)
    dx, dscale = on_device(x), on_device(scale)
    K.rmsnorm_forward(dx, dscale, on_device(np.zeros((3, 6))), on_device(np.zeros(3)))
    assert np.array_equal(on_host(dx), x) and np.array_equal(on_host(dscale), scale)
    assert device.is_device_array(dx)
