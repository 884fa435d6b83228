"""The fast CPU Transformer: ref/transformer.py's model and interface, with fused Numba kernels between BLAS calls.

Same public functions as the reference (docs/design.md "Backends with identical interfaces"): `forward`,
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
import contextlib
import math
import threading

import numpy as np

from equalinfo.ref.transformer import (RMS_EPS, SIZES, Config, bucket_table, check_inputs, check_params,
    check_targets, count_params, dtype_of, flops_per_token, init_params, make_config, param_shapes,
    relative_position_bucket)

from . import kernels_nn as K


__all__ = ["forward", "loss_and_grads", "loss_and_grads_from_embeddings", "release_buffers", "ATTN_BLOCK",
           "Config", "SIZES", "make_config", "param_shapes", "init_params", "check_params", "count_params",
           "flops_per_token", "relative_position_bucket", "bucket_table", "RMS_EPS"]


# ----------------------------------------------------------------------------------------------------------------------
# Buffers kept between calls
# ----------------------------------------------------------------------------------------------------------------------

ATTN_BLOCK = 128  # query/key block size of the causal attention products (see _causal_scores)


class _Arena:
    """Named work buffers that survive from one call to the next (llm.c allocates its activations once, too).

    A training step at "25m", batch 4 x 512 needs ~0.5 GB of activations; allocating them afresh on every call
    costs a page fault per 4 KiB page (the kernel zeroes each one), about a tenth of the step's time. A buffer is
    reallocated only when its shape or dtype changes. Buffers never leave this module: everything returned to the
    caller (logits, gradients, dx) is a new array. `release_buffers()` frees them.
    """

    def __init__(self):
        self.buffers = {}

    def get(self, name, shape, dtype):
        buffer = self.buffers.get(name)
        if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
            self.buffers.pop(name, None)  # free the old one before allocating the new
            buffer = self.buffers[name] = np.empty(shape, dtype)
        return buffer


_ARENAS = {"forward": _Arena(), "train": _Arena()}
_ARENA_LOCK = threading.Lock()


@contextlib.contextmanager
def _arena(kind):
    """The shared arena of this kind, or a private one if another thread is using the shared ones."""
    if _ARENA_LOCK.acquire(blocking=False):
        try:
            yield _ARENAS[kind]
        finally:
            _ARENA_LOCK.release()
    else:
        yield _Arena()


def release_buffers():
    """Free the work buffers kept between calls (they are rebuilt on the next call)."""
    with _ARENA_LOCK:
        for arena in _ARENAS.values():
            arena.buffers.clear()


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


def _blocks(T):
    """(start, stop) of the ATTN_BLOCK-sized blocks of range(T)."""
    return [(start, min(T, start + ATTN_BLOCK)) for start in range(0, T, ATTN_BLOCK)]


# The attention matrices [B*H, T, T] are causal: row i uses columns j <= i only. Their products are done block by
# block so that BLAS skips the blocks above the diagonal: with 4 blocks it does 10/16 of the full products' work.
# Entries of a diagonal block above the diagonal are zeros (the kernels write them); blocks further right are never
# read or written.


def _causal_scores(a, b, out):
    """out[:, i, j] = a[:, i] . b[:, j] for j up to the end of i's block.   a, b [BH, T, dh] -> out [BH, T, T]"""
    for start, stop in _blocks(a.shape[1]):
        np.matmul(a[:, start:stop], b[:, :stop].transpose(0, 2, 1), out=out[:, start:stop, :stop])


def _causal_rows_times(p, b, out):
    """out[:, i] = sum_j p[:, i, j] b[:, j] (p causal).   p [BH, T, T], b [BH, T, dh] -> out [BH, T, dh]"""
    for start, stop in _blocks(p.shape[1]):
        np.matmul(p[:, start:stop, :stop], b[:, :stop], out=out[:, start:stop])


def _causal_columns_times(p, a, out):
    """out[:, j] = sum_i p[:, i, j] a[:, i] (p causal: i from j's block on).   -> out [BH, T, dh]"""
    for start, stop in _blocks(p.shape[1]):
        np.matmul(p[:, start:, start:stop].transpose(0, 2, 1), a[:, start:], out=out[:, start:stop])


# ----------------------------------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------------------------------


def _block_forward(x, params, layer, cfg, B, T, arena, keep):
    """One block, in place on the residual stream x [B*T, d]; with keep, what the backward needs stays in the arena
    under names "{layer}.*" (without, one set of buffers serves every layer)."""
    dtype, prefix = x.dtype, f"blocks.{layer}."
    N, d, H, dh, ff = B * T, cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.d_ff
    inner = H * dh
    slot = f"{layer}." if keep else "layer."

    def buf(name, shape):
        return arena.get(slot + name, shape, dtype)

    h, proj = arena.get("h", (N, d), dtype), arena.get("proj", (N, d), dtype)

    # attention
    if keep:
        np.copyto(buf("x_in", (N, d)), x)
    rrms1 = buf("rrms1", (N,))
    K.rmsnorm_forward(x, params[prefix + "attn_norm"], h, rrms1)
    wqkv = np.concatenate([params[prefix + "wq"], params[prefix + "wk"], params[prefix + "wv"]], axis=1,
                          out=buf("wqkv", (d, 3 * inner)))
    qkv = np.matmul(h, wqkv, out=arena.get("qkv", (N, 3 * inner), dtype))  # [N, 3*inner]
    q, k, v = (buf(name, (B * H, T, dh)) for name in ("q", "k", "v"))
    K.split_qkv(qkv, H, 1.0 / math.sqrt(dh), q, k, v)  # q comes out scaled by 1/sqrt(dh)
    probs = buf("probs", (B * H, T, T))
    _causal_scores(q, k, probs)  # scores
    K.attention_softmax(probs, _bias_by_offset(params[prefix + "rel_bias"], T, cfg), H, ATTN_BLOCK)
    ctx = arena.get("ctx", (B * H, T, dh), dtype)
    _causal_rows_times(probs, v, ctx)
    attended = buf("attended", (N, inner))
    K.merge_heads(ctx, attended)
    np.matmul(attended, params[prefix + "wo"], out=proj)
    K.add_into(x, proj)

    # MLP
    if keep:
        np.copyto(buf("x_mid", (N, d)), x)
    rrms2 = buf("rrms2", (N,))
    K.rmsnorm_forward(x, params[prefix + "mlp_norm"], h, rrms2)
    wgu = np.concatenate([params[prefix + "w_gate"], params[prefix + "w_up"]], axis=1, out=buf("wgu", (d, 2 * ff)))
    gate_up = np.matmul(h, wgu, out=buf("gate_up", (N, 2 * ff)))  # [N, 2*ff]
    act = arena.get("act", (N, ff), dtype)
    K.gated_relu(gate_up, act)
    np.matmul(act, params[prefix + "w_down"], out=proj)
    K.add_into(x, proj)


def _hidden_forward(params, cfg, x, arena, keep):
    """Blocks and final norm on x [B, T, d] (not modified). Returns (final normed hidden [B*T, d], residual stream
    [B*T, d], its 1/rms [B*T]), all arena buffers."""
    B, T, d = x.shape
    stream = arena.get("stream", (B * T, d), x.dtype)  # the residual stream, updated in place
    np.copyto(stream, x.reshape(B * T, d))
    for layer in range(cfg.n_layers):
        _block_forward(stream, params, layer, cfg, B, T, arena, keep)
    h = arena.get("final_h", (B * T, d), x.dtype)
    rrms = arena.get("final_rrms", (B * T,), x.dtype)
    K.rmsnorm_forward(stream, params["final_norm"], h, rrms)
    return h, stream, rrms


def forward(params, cfg, inputs):
    """Logits [B, T, vocab_out] for int inputs [B, T]; row t predicts the id after input t (causal)."""
    dtype = dtype_of(params, cfg)
    inputs = check_inputs(inputs, cfg)
    B, T = inputs.shape
    with _arena("forward") as arena, K.threads_for(B * T * cfg.d_model):
        x = params["embed"][inputs]  # [B, T, d]
        h, _, _ = _hidden_forward(params, cfg, x, arena, keep=False)
        logits = np.matmul(h, params["unembed"])  # a new array: never hand out an arena buffer
    return logits.reshape(B, T, cfg.vocab_out).astype(dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------------------------------------


def _rmsnorm_backward_add(dy, x, rrms, scale, dx):
    """dx += RMSNorm backward of dy; returns dscale (summed over row chunks in float64, cast to the dtype)."""
    bounds = K.chunk_bounds(x.shape[0])
    partial = np.empty((len(bounds) - 1, x.shape[1]))
    K.rmsnorm_backward_add(dy, x, rrms, scale, dx, bounds, partial)
    return partial.sum(axis=0).astype(x.dtype)


def _block_backward(dx, params, layer, cfg, B, T, arena, grads):
    """Backward of one block, in place on dx [B*T, d] (the gradient of the residual stream); fills grads."""
    dtype, prefix, slot = dx.dtype, f"blocks.{layer}.", f"{layer}."
    N, d, H, dh, ff = B * T, cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.d_ff
    inner = H * dh
    saved = {name[len(slot):]: value for name, value in arena.buffers.items() if name.startswith(slot)}
    h, act = arena.get("h", (N, d), dtype), arena.get("act", (N, ff), dtype)
    dnormed = arena.get("dnormed", (N, d), dtype)

    # MLP: x_out = x_mid + act @ w_down, act = relu(gate) * up, gate|up = norm(x_mid) @ [w_gate | w_up]
    gate_up = saved["gate_up"]
    K.gated_relu(gate_up, act)  # recomputed rather than kept
    grads[prefix + "w_down"] = act.T @ dx  # [ff, d]
    dact = np.matmul(dx, params[prefix + "w_down"].T, out=act)  # [N, ff]; act is no longer needed
    K.gated_relu_backward(dact, gate_up)  # gate_up now holds dgate | dup
    K.rmsnorm_apply(saved["x_mid"], params[prefix + "mlp_norm"], saved["rrms2"], h)
    dwgu = np.matmul(h.T, gate_up, out=arena.get("dwgu", (d, 2 * ff), dtype))  # [d, 2*ff]
    grads[prefix + "w_gate"], grads[prefix + "w_up"] = dwgu[:, :ff].copy(), dwgu[:, ff:].copy()
    np.matmul(gate_up, saved["wgu"].T, out=dnormed)  # [N, d]
    grads[prefix + "mlp_norm"] = _rmsnorm_backward_add(dnormed, saved["x_mid"], saved["rrms2"],
                                                       params[prefix + "mlp_norm"], dx)

    # attention: x_mid = x_in + attended @ wo, attended = merged heads of softmax(q k^T + bias) v
    grads[prefix + "wo"] = saved["attended"].T @ dx  # [inner, d]
    dattended = np.matmul(dx, params[prefix + "wo"].T, out=arena.get("dattended", (N, inner), dtype))
    dctx = arena.get("dctx", (B * H, T, dh), dtype)
    K.split_heads(dattended, dctx)  # [B*H, T, dh]
    probs, q, k, v = saved["probs"], saved["q"], saved["k"], saved["v"]
    dscores = arena.get("dscores", (B * H, T, T), dtype)
    _causal_scores(dctx, v, dscores)  # dprobs
    dv = arena.get("dv", (B * H, T, dh), dtype)
    _causal_columns_times(probs, dctx, dv)
    dbias = np.empty((B * H, T))
    K.attention_softmax_backward(probs, dscores, dbias, ATTN_BLOCK)  # dprobs -> dscores, in place
    grads[prefix + "rel_bias"] = _fold_bias_grad(dbias, B, T, cfg, dtype)
    dq = dctx  # dctx is no longer needed
    _causal_rows_times(dscores, k, dq)  # times 1/sqrt(dh) in merge_qkv_grads
    dk = arena.get("dk", (B * H, T, dh), dtype)
    _causal_columns_times(dscores, q, dk)  # q was scaled in the forward, so dk needs no scale
    dqkv = arena.get("dqkv", (N, 3 * inner), dtype)
    K.merge_qkv_grads(dq, dk, dv, 1.0 / math.sqrt(dh), dqkv)
    K.rmsnorm_apply(saved["x_in"], params[prefix + "attn_norm"], saved["rrms1"], h)
    dwqkv = np.matmul(h.T, dqkv, out=arena.get("dwqkv", (d, 3 * inner), dtype))  # [d, 3*inner]
    for j, name in enumerate(("wq", "wk", "wv")):
        grads[prefix + name] = dwqkv[:, j * inner:(j + 1) * inner].copy()
    np.matmul(dqkv, saved["wqkv"].T, out=dnormed)  # [N, d]
    grads[prefix + "attn_norm"] = _rmsnorm_backward_add(dnormed, saved["x_in"], saved["rrms1"],
                                                        params[prefix + "attn_norm"], dx)


def flat_targets(targets, weights, shape, cfg, dtype):
    """ref's checks of targets and weights (ref.transformer.check_targets), then what the loss kernel reads: (targets
    int64 [N] with 0 where the weight is 0, weights [N], their float64 total)."""
    targets, weights = check_targets(targets, weights, shape, cfg, dtype)
    safe_targets = np.where(weights != 0, targets, 0).astype(np.int64).reshape(-1)
    return safe_targets, np.ascontiguousarray(weights).reshape(-1), float(weights.sum(dtype=np.float64))


def loss_and_grads_from_embeddings(params, cfg, x, targets, weights=None):
    """Loss and gradients from already-embedded inputs x [B, T, d] (as ref's function of the same name).

    Returns (loss, grads, dx) with grads for every parameter except "embed" and dx = dloss/dx [B, T, d].
    """
    dtype = dtype_of(params, cfg)
    B, T, d = x.shape
    targets, weights, total_weight = flat_targets(targets, weights, (B, T), cfg, dtype)
    x = np.asarray(x, dtype=dtype)
    with _arena("train") as arena, K.threads_for(B * T * d):
        # forward
        h, stream, rrms = _hidden_forward(params, cfg, x, arena, keep=True)  # [N, d] each
        # logits [N, V_out], turned into their gradient in place
        dlogits = np.matmul(h, params["unembed"], out=arena.get("logits", (B * T, cfg.vocab_out), dtype))
        row_terms = np.empty((B * T, 2))
        K.cross_entropy_backward(dlogits, targets, weights, total_weight, float(cfg.z_loss), row_terms)
        sums = row_terms.sum(axis=0)
        loss = (sums[0] + cfg.z_loss * sums[1]) / total_weight

        # backward
        grads = {"unembed": h.T @ dlogits}  # [d, V_out]
        dh = np.matmul(dlogits, params["unembed"].T, out=arena.get("dnormed", (B * T, d), dtype))  # [N, d]
        dx = np.zeros((B * T, d), dtype)  # returned: not an arena buffer
        grads["final_norm"] = _rmsnorm_backward_add(dh, stream, rrms, params["final_norm"], dx)
        for layer in reversed(range(cfg.n_layers)):
            _block_backward(dx, params, layer, cfg, B, T, arena, grads)
    return float(loss), grads, dx.reshape(B, T, d)


def loss_and_grads(params, cfg, inputs, targets, weights=None):
    """(loss, grads): the reference's loss and its gradient for every parameter (same names, shapes and dtype).

    inputs [B, T] ints in [0, vocab_in); targets [B, T] ints in [0, vocab_out) where the weight is non-zero;
    weights [B, T] non-negative (default: all ones). The loss is a Python float.
    """
    inputs = check_inputs(inputs, cfg)
    x = params["embed"][inputs]  # [B, T, d]
    loss, grads, dx = loss_and_grads_from_embeddings(params, cfg, x, targets, weights)
    d = cfg.d_model
    with K.threads_for(dx.size):
        grads["embed"] = K.embedding_backward(dx.reshape(-1, d), inputs.reshape(-1), cfg.vocab_in, min(d, 16))
    return loss, {name: grads[name] for name in params}
