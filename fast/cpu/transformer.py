"""The fast CPU Transformer: ref/transformer.py's model and interface, with fused Numba kernels between BLAS calls.

Same public functions as the reference (DESIGN.md "Backends with identical interfaces"): `forward`,
`loss_and_grads`, `loss_and_grads_from_embeddings`, and, re-exported from ref because they are shared definitions,
`Config`, `SIZES`, `make_config`, `param_shapes`, `init_params`, `check_params`, `count_params`, `flops_per_token`,
`relative_position_bucket`, `bucket_table`, `RMS_EPS`. Inputs are checked by the same code as ref, so bad inputs
raise the same errors.

Where the time goes, and what this file does about it:
- Matrix products (~85-90% of the FLOPs) go to NumPy's BLAS on contiguous 2-D/3-D arrays. The three attention
  projections run as one product with the concatenation [wq | wk | wv] ([d, 3*H*dh]), and the MLP's gate and up
  projections as one with [w_gate | w_up] ([d, 2*ff]); their backward products are fused the same way. The
  concatenated weights are rebuilt on every call (a copy of 3 d^2 + 2 d ff numbers, small beside the products).
- Everything else (RMSNorm, the head split/merge, the relative bias + causal mask + softmax and its backward, the
  gated ReLU, the cross-entropy with z-loss, the embedding scatter-add) is one Numba pass each, in
  `fast/cpu/kernels_nn.py`, writing into preallocated buffers and overwriting buffers in place when the old value is
  no longer needed (scores -> probabilities, dprobs -> dscores, gate|up -> dgate|dup, logits -> dlogits).
- The backward keeps per layer only what it cannot cheaply recompute: the block input x and the norm's 1/rms, q, k,
  v, the attention probabilities, the merged attention output, the mid-block x and its 1/rms, and gate|up. The
  normalised activations and relu(gate) * up are recomputed from these in the backward (one cheap pass each).

Arithmetic differs from ref's only in rounding order (e.g. q is scaled before q.k rather than after, and row sums
accumulate in float64), so float64 results agree with ref to ~1e-12 relative and float32 to float32 rounding.
Row-wise kernels compute each row the same way whatever the batch, and forward has no fastmath (its logits feed the
coder). The matrix products are BLAS's: their rounding may depend on the matrix shapes.
"""
import math

import numpy as np

from ref.transformer import (  # noqa: F401  (re-exported: shared definitions, not reimplemented)
    RMS_EPS, SIZES, Config, bucket_table, check_params, count_params, flops_per_token, init_params, make_config,
    param_shapes, relative_position_bucket, _check_inputs, _dtype_of)

from . import kernels_nn as K

assert K.RMS_EPS == RMS_EPS


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------


def _bias_by_offset(rel_bias, T, cfg):
    """[H, T] relative bias indexed by T - 1 - (i - j) for the distances i - j = T-1 .. 0 (see attention_softmax)."""
    buckets = relative_position_bucket(np.arange(T - 1, -1, -1), cfg.num_buckets, cfg.max_distance)  # [T]
    return np.ascontiguousarray(rel_bias[buckets].T)  # [H, T]


def _fold_bias_grad(dbias_by_offset, B, T, cfg, dtype):
    """Gradient of rel_bias [num_buckets, H] from per-(b, h) sums by offset [B*H, T] (float64): sum over the batch,
    then add each offset's total into its distance's bucket."""
    per_head = dbias_by_offset.reshape(B, cfg.n_heads, T).sum(axis=0)  # [H, T], offset T-1-n is distance n
    buckets = relative_position_bucket(np.arange(T - 1, -1, -1), cfg.num_buckets, cfg.max_distance)  # [T]
    grad = np.zeros((cfg.num_buckets, cfg.n_heads))
    np.add.at(grad, buckets, per_head.T)
    return grad.astype(dtype)


def _fused_weights(params, prefix):
    """[wq | wk | wv] [d, 3*H*dh] and [w_gate | w_up] [d, 2*ff] for one block."""
    wqkv = np.concatenate([params[prefix + "wq"], params[prefix + "wk"], params[prefix + "wv"]], axis=1)
    wgu = np.concatenate([params[prefix + "w_gate"], params[prefix + "w_up"]], axis=1)
    return wqkv, wgu


class _Workspace:
    """Buffers reused by every layer of one call (the per-layer saved tensors are allocated separately)."""

    def __init__(self, cfg, B, T, dtype, backward=False):
        N, d, inner, ff, H, dh = B * T, cfg.d_model, cfg.n_heads * cfg.head_dim, cfg.d_ff, cfg.n_heads, cfg.head_dim
        self.h = np.empty((N, d), dtype)  # normalised activations
        self.proj = np.empty((N, d), dtype)  # output of wo or w_down before the residual add
        self.ctx = np.empty((B * H, T, dh), dtype)  # attention output per head
        self.act = np.empty((N, ff), dtype)  # relu(gate) * up
        self.scores = np.empty((B * H, T, T), dtype) if backward else None  # dprobs -> dscores


# ----------------------------------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------------------------------


def _block_forward(x, params, prefix, cfg, B, T, ws, keep):
    """One block, in place on the residual stream x [B*T, d]. Returns what the backward needs (None if not keep)."""
    dtype = x.dtype
    N, H, dh = B * T, cfg.n_heads, cfg.head_dim
    wqkv, wgu = _fused_weights(params, prefix)

    # attention
    x_in = x.copy() if keep else None
    rrms1 = np.empty(N, dtype)
    K.rmsnorm_forward(x, params[prefix + "attn_norm"], ws.h, rrms1)
    qkv = ws.h @ wqkv  # [N, 3*inner]
    q, k, v = (np.empty((B * H, T, dh), dtype) for _ in range(3))
    q_scale = 1.0 / math.sqrt(dh)
    K.split_qkv(qkv, H, q_scale, q, k, v)
    del qkv
    probs = np.matmul(q, k.transpose(0, 2, 1))  # [B*H, T, T] scores
    K.attention_softmax(probs, _bias_by_offset(params[prefix + "rel_bias"], T, cfg), H)
    np.matmul(probs, v, out=ws.ctx)  # [B*H, T, dh]
    attended = np.empty((N, H * dh), dtype)
    K.merge_heads(ws.ctx, attended)
    np.matmul(attended, params[prefix + "wo"], out=ws.proj)
    K.add_into(x, ws.proj)

    # MLP
    x_mid = x.copy() if keep else None
    rrms2 = np.empty(N, dtype)
    K.rmsnorm_forward(x, params[prefix + "mlp_norm"], ws.h, rrms2)
    gate_up = ws.h @ wgu  # [N, 2*ff]
    K.gated_relu(gate_up, ws.act)
    np.matmul(ws.act, params[prefix + "w_down"], out=ws.proj)
    K.add_into(x, ws.proj)
    if not keep:
        return None
    return dict(x_in=x_in, rrms1=rrms1, q=q, k=k, v=v, probs=probs, attended=attended, x_mid=x_mid, rrms2=rrms2,
                gate_up=gate_up, wqkv=wqkv, wgu=wgu, q_scale=q_scale)


def _hidden_forward(params, cfg, x, keep):
    """Blocks and final norm on x [B, T, d] (not modified). Returns (final normed hidden [B*T, d], caches)."""
    B, T, d = x.shape
    stream = np.array(x, dtype=x.dtype, order="C").reshape(B * T, d)  # the residual stream, updated in place
    ws = _Workspace(cfg, B, T, x.dtype)
    caches = [_block_forward(stream, params, f"blocks.{i}.", cfg, B, T, ws, keep) for i in range(cfg.n_layers)]
    h = np.empty_like(stream)
    rrms = np.empty(B * T, x.dtype)
    K.rmsnorm_forward(stream, params["final_norm"], h, rrms)
    return h, (caches, stream, rrms)


def forward(params, cfg, inputs):
    """Logits [B, T, vocab_out] for int inputs [B, T]; row t predicts the id after input t (causal)."""
    _dtype_of(params, cfg)
    inputs = _check_inputs(inputs, cfg)
    B, T = inputs.shape
    x = params["embed"][inputs]  # [B, T, d]
    h, _ = _hidden_forward(params, cfg, x, keep=False)
    return (h @ params["unembed"]).reshape(B, T, cfg.vocab_out)


# ----------------------------------------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------------------------------------


def _rmsnorm_backward_add(dy, x, rrms, scale, dx):
    """dx += RMSNorm backward of dy; returns dscale (summed over row chunks in float64, cast to the dtype)."""
    bounds = K.chunk_bounds(x.shape[0])
    partial = np.empty((len(bounds) - 1, x.shape[1]))
    K.rmsnorm_backward_add(dy, x, rrms, scale, dx, bounds, partial)
    return partial.sum(axis=0).astype(x.dtype)


def _block_backward(dx, cache, params, prefix, cfg, B, T, ws, grads):
    """Backward of one block, in place on dx [B*T, d] (the gradient of the residual stream); fills grads."""
    N, H, dh, ff = B * T, cfg.n_heads, cfg.head_dim, cfg.d_ff
    c = cache

    # MLP: x_out = x_mid + act @ w_down, act = relu(gate) * up, gate|up = norm(x_mid) @ [w_gate | w_up]
    K.gated_relu(c["gate_up"], ws.act)
    grads[prefix + "w_down"] = ws.act.T @ dx  # [ff, d]
    dact = dx @ params[prefix + "w_down"].T  # [N, ff]
    K.gated_relu_backward(dact, c["gate_up"])  # gate_up now holds dgate | dup
    del dact
    K.rmsnorm_apply(c["x_mid"], params[prefix + "mlp_norm"], c["rrms2"], ws.h)
    dwgu = ws.h.T @ c["gate_up"]  # [d, 2*ff]
    grads[prefix + "w_gate"], grads[prefix + "w_up"] = np.ascontiguousarray(dwgu[:, :ff]), np.ascontiguousarray(
        dwgu[:, ff:])
    del dwgu
    dnormed = c["gate_up"] @ c["wgu"].T  # [N, d]
    grads[prefix + "mlp_norm"] = _rmsnorm_backward_add(dnormed, c["x_mid"], c["rrms2"], params[prefix + "mlp_norm"],
                                                       dx)
    del dnormed

    # attention: x_mid = x_in + attended @ wo
    grads[prefix + "wo"] = c["attended"].T @ dx  # [inner, d]
    dattended = dx @ params[prefix + "wo"].T  # [N, inner]
    dctx = np.empty_like(c["q"])
    K.split_heads(dattended, dctx)  # [B*H, T, dh]
    del dattended
    probs, q, k, v = c["probs"], c["q"], c["k"], c["v"]
    dprobs = np.matmul(dctx, v.transpose(0, 2, 1), out=ws.scores)  # [B*H, T, T]
    dv = np.matmul(probs.transpose(0, 2, 1), dctx)  # [B*H, T, dh]
    dbias = np.empty((B * H, T))
    K.attention_softmax_backward(probs, dprobs, dbias)  # dprobs now holds dscores
    grads[prefix + "rel_bias"] = _fold_bias_grad(dbias, B, T, cfg, dx.dtype)
    dq = np.matmul(dprobs, k, out=dctx)  # [B*H, T, dh], times q_scale in merge_qkv_grads
    dk = np.matmul(dprobs.transpose(0, 2, 1), q)  # [B*H, T, dh]
    del dprobs
    dqkv = np.empty((N, 3 * H * dh), dx.dtype)
    K.merge_qkv_grads(dq, dk, dv, c["q_scale"], dqkv)
    del dq, dk, dv
    K.rmsnorm_apply(c["x_in"], params[prefix + "attn_norm"], c["rrms1"], ws.h)
    dwqkv = ws.h.T @ dqkv  # [d, 3*inner]
    inner = H * dh
    for j, name in enumerate(("wq", "wk", "wv")):
        grads[prefix + name] = np.ascontiguousarray(dwqkv[:, j * inner:(j + 1) * inner])
    del dwqkv
    dnormed = dqkv @ c["wqkv"].T  # [N, d]
    grads[prefix + "attn_norm"] = _rmsnorm_backward_add(dnormed, c["x_in"], c["rrms1"], params[prefix + "attn_norm"], dx)


def _check_targets(targets, weights, shape, cfg, dtype):
    """The reference's checks of targets and weights, with its messages (ref.transformer.loss_and_grads_from_...)."""
    targets = np.asarray(targets)
    weights = np.ones(targets.shape, dtype=dtype) if weights is None else np.asarray(weights, dtype=dtype)
    if targets.shape != shape or weights.shape != shape:
        raise ValueError(f"targets {targets.shape} and weights {weights.shape} must have the inputs' shape {shape}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("loss weights must be finite and non-negative")
    used = targets[weights != 0]
    if used.size and (used.min() < 0 or used.max() >= cfg.vocab_out):
        raise ValueError(f"targets with non-zero weight must lie in [0, {cfg.vocab_out})")
    total_weight = float(weights.sum(dtype=np.float64))
    if not total_weight > 0:
        raise ValueError("the loss weights sum to zero: there is no position to compute a loss on")
    safe_targets = np.where(weights != 0, targets, 0).astype(np.int64).reshape(-1)
    return safe_targets, np.ascontiguousarray(weights).reshape(-1), total_weight


def loss_and_grads_from_embeddings(params, cfg, x, targets, weights=None):
    """Loss and gradients from already-embedded inputs x [B, T, d] (as ref's function of the same name).

    Returns (loss, grads, dx) with grads for every parameter except "embed" and dx = dloss/dx [B, T, d].
    """
    dtype = _dtype_of(params, cfg)
    B, T, d = x.shape
    targets, weights, total_weight = _check_targets(targets, weights, (B, T), cfg, dtype)
    x = np.asarray(x, dtype=dtype)

    # forward
    h, (caches, stream, rrms) = _hidden_forward(params, cfg, x, keep=True)  # h [N, d]
    dlogits = h @ params["unembed"]  # [N, V_out]: logits, turned into their gradient in place
    row_terms = np.empty((B * T, 2))
    K.cross_entropy_backward(dlogits, targets, weights, total_weight, float(cfg.z_loss), row_terms)
    sums = row_terms.sum(axis=0)
    loss = (sums[0] + cfg.z_loss * sums[1]) / total_weight

    # backward
    grads = {"unembed": h.T @ dlogits}  # [d, V_out]
    dh = dlogits @ params["unembed"].T  # [N, d]
    del dlogits
    dx = np.zeros_like(stream)
    grads["final_norm"] = _rmsnorm_backward_add(dh, stream, rrms, params["final_norm"], dx)
    del dh, h, stream
    ws = _Workspace(cfg, B, T, dtype, backward=True)
    for i in reversed(range(cfg.n_layers)):
        _block_backward(dx, caches[i], params, f"blocks.{i}.", cfg, B, T, ws, grads)
        caches[i] = None  # free this layer's saved tensors as soon as they are used
    return float(loss), grads, dx.reshape(B, T, d)


def loss_and_grads(params, cfg, inputs, targets, weights=None):
    """(loss, grads): the reference's loss and its gradient for every parameter (same names, shapes and dtype).

    inputs [B, T] ints in [0, vocab_in); targets [B, T] ints in [0, vocab_out) where the weight is non-zero;
    weights [B, T] non-negative (default: all ones). The loss is a Python float.
    """
    inputs = _check_inputs(inputs, cfg)
    x = params["embed"][inputs]  # [B, T, d]
    loss, grads, dx = loss_and_grads_from_embeddings(params, cfg, x, targets, weights)
    d = cfg.d_model
    grads["embed"] = K.embedding_backward(dx.reshape(-1, d), inputs.reshape(-1), cfg.vocab_in, min(d, 16))
    return loss, {name: grads[name] for name in params}
