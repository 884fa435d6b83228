"""The GPU Transformer: ref/transformer.py's model and interface, with cuBLAS products and fused numba.cuda kernels.

Same public functions as ref and fast.cpu (docs/design.md "Backends with identical interfaces"): `forward`,
`loss_and_grads`, `loss_and_grads_from_embeddings`, and, re-exported from ref because they are shared definitions,
`Config`, `SIZES`, `make_config`, `param_shapes`, `init_params`, `check_params`, `count_params`, `flops_per_token`,
`relative_position_bucket`, `bucket_table`, `RMS_EPS`. Inputs, targets and weights are checked on the host by the
same code as ref and fast.cpu, so bad inputs raise the same errors.

Where arrays live: the results follow the parameters. With CuPy parameters (training keeps them on the GPU between
steps: `to_device`), logits, gradients and dx are CuPy arrays; with NumPy parameters they are copied to the GPU for
the call and every result comes back as NumPy, so the module is a drop-in for ref (slower: the weights travel on
every call). The loss is always a Python float. Inputs, targets and weights may be NumPy or CuPy.
Under numba's CUDA simulator (fast/gpu/device.py) every array is NumPy and the same code runs on the CPU.

The computation is fast/cpu's: the three attention projections are one product with [wq | wk | wv] and the gate
and up projections one with [w_gate | w_up]; the 1/sqrt(dh) of the scores is applied in the softmax kernel and as
the alpha of the backward products; residual adds are fused into the products (beta = 1) or into the norm backward;
the logits become their gradient in place. The matrix products go through fast/gpu/blas.py, whose precision
(float32 by default, or TF32 / bf16 tensor cores) is one module setting, `set_matmul_precision`. The attention
matrices [B*H, T, T] are materialised per layer and kept for the backward, as in ref (no flash attention).
"""
import numpy as np

from equalinfo.ref.transformer import (RMS_EPS, SIZES, Config, bucket_table, check_inputs, check_params, count_params,
    dtype_of, flops_per_token, init_params, make_config, param_shapes, relative_position_bucket)

from equalinfo.fast.cpu import transformer as cpu_transformer

from . import device
from . import kernels_nn as K
from .blas import matmul, matmul_precision, set_matmul_precision  # noqa: F401  (re-exported)
from .device import GPUUnavailable, to_device, to_host  # noqa: F401  (re-exported)


__all__ = ["forward", "loss_and_grads", "loss_and_grads_from_embeddings", "set_matmul_precision", "matmul_precision",
           "to_device", "to_host", "GPUUnavailable", "Config", "SIZES", "make_config", "param_shapes", "init_params",
           "check_params", "count_params", "flops_per_token", "relative_position_bucket", "bucket_table", "RMS_EPS"]

NORM_CHUNKS = 32  # row chunks of the norm-scale gradient sums (a fixed partition: see kernels_nn)


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------


def _bias_by_offset(rel_bias, T, cfg):
    """[H, T] relative bias at offset T - 1 - (i - j), i.e. for the distances i - j = T-1 .. 0 (see the softmax)."""
    buckets = device.asarray(relative_position_bucket(np.arange(T - 1, -1, -1), cfg.num_buckets, cfg.max_distance))
    return device.xp().ascontiguousarray(rel_bias[buckets].T)


def _fold_bias_grad(dbias_by_offset, B, T, cfg, dtype):
    """rel_bias gradient [num_buckets, H] from per-(b, h) sums by offset [B*H, T] (float64): sum over the batch, then
    add each offset's total into its distance's bucket (a product with the one-hot [T, num_buckets] matrix)."""
    xp = device.xp()
    per_head = dbias_by_offset.reshape(B, cfg.n_heads, T).sum(axis=0)  # [H, T]
    buckets = relative_position_bucket(np.arange(T - 1, -1, -1), cfg.num_buckets, cfg.max_distance)  # [T]
    one_hot = device.asarray(np.eye(cfg.num_buckets)[buckets])  # [T, num_buckets] float64
    return xp.ascontiguousarray((per_head @ one_hot).T).astype(dtype)


def _split_qkv(qkv, B, T, H, j):
    """Head-major copy of the j-th of the three column blocks of qkv [B*T, 3*H*dh]: -> contiguous [B*H, T, dh]."""
    dh = qkv.shape[1] // (3 * H)
    heads = qkv.reshape(B, T, 3, H, dh)[:, :, j].transpose(0, 2, 1, 3)  # [B, H, T, dh], a view
    return device.xp().ascontiguousarray(heads).reshape(B * H, T, dh)


def _merge_heads(x, B, T, H):
    """[B*H, T, dh] -> [B, T, H, dh] view (head h fills columns h*dh .. (h+1)*dh - 1 once reshaped to [B*T, H*dh])."""
    return x.reshape(B, H, T, x.shape[2]).transpose(0, 2, 1, 3)


def _norm_backward_add(dy, x, rrms, scale, dx):
    """dx += RMSNorm's input gradient; returns the scale's gradient (float64 chunk sums, then the dtype)."""
    partial = device.xp().empty((min(NORM_CHUNKS, x.shape[0]), x.shape[1]), np.float64)
    K.rmsnorm_backward_add(dy, x, rrms, scale, dx, partial)
    return partial.sum(axis=0).astype(x.dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------------------------------------


def _block_forward(x, params, layer, cfg, B, T, keep):
    """One block, in place on the residual stream x [B*T, d]; with keep, returns what the backward needs."""
    xp, dtype, prefix = device.xp(), x.dtype, f"blocks.{layer}."
    N, d, H, ff = B * T, cfg.d_model, cfg.n_heads, cfg.d_ff
    inner = H * cfg.head_dim

    # attention: x += softmax(q k^T / sqrt(dh) + bias) v @ wo, q|k|v = norm(x) @ [wq | wk | wv]
    x_in, h, rrms1 = (x.copy() if keep else None), xp.empty((N, d), dtype), xp.empty(N, dtype)
    K.rmsnorm_forward(x, params[prefix + "attn_norm"], h, rrms1)
    wqkv = xp.concatenate([params[prefix + "wq"], params[prefix + "wk"], params[prefix + "wv"]], axis=1)
    qkv = matmul(h, wqkv)  # [N, 3*inner]
    q, k, v = (_split_qkv(qkv, B, T, H, j) for j in range(3))  # [B*H, T, dh] each
    probs = matmul(q, k, trans_b=True)  # [B*H, T, T] scores q.k, unscaled
    K.attention_softmax(probs, _bias_by_offset(params[prefix + "rel_bias"], T, cfg), H, 1.0 / np.sqrt(cfg.head_dim))
    attended = xp.ascontiguousarray(_merge_heads(matmul(probs, v), B, T, H)).reshape(N, inner)
    matmul(attended, params[prefix + "wo"], out=x, accumulate=True)

    # MLP: x += (relu(gate) * up) @ w_down, gate|up = norm(x) @ [w_gate | w_up]
    x_mid, rrms2 = (x.copy() if keep else None), xp.empty(N, dtype)
    K.rmsnorm_forward(x, params[prefix + "mlp_norm"], h, rrms2)
    wgu = xp.concatenate([params[prefix + "w_gate"], params[prefix + "w_up"]], axis=1)
    gate_up = matmul(h, wgu)  # [N, 2*ff]
    act = xp.empty((N, ff), dtype)
    K.gated_relu(gate_up, act)
    matmul(act, params[prefix + "w_down"], out=x, accumulate=True)
    if not keep:
        return None
    return dict(x_in=x_in, rrms1=rrms1, wqkv=wqkv, q=q, k=k, v=v, probs=probs, attended=attended, x_mid=x_mid,
                rrms2=rrms2, wgu=wgu, gate_up=gate_up)


def _hidden_forward(params, cfg, x, keep):
    """Blocks and final norm on x [B, T, d] (not modified) -> (normed hidden [N, d], stream [N, d], its 1/rms [N],
    per-layer caches, or Nones without keep)."""
    xp = device.xp()
    B, T, d = x.shape
    stream = x.reshape(B * T, d).copy()  # the residual stream, updated in place
    caches = [_block_forward(stream, params, layer, cfg, B, T, keep) for layer in range(cfg.n_layers)]
    h, rrms = xp.empty_like(stream), xp.empty(B * T, x.dtype)
    K.rmsnorm_forward(stream, params["final_norm"], h, rrms)
    return h, stream, rrms, caches


def _device_params(params, cfg):
    """(params on the device, whether the caller's were already there)."""
    dtype_of(params, cfg)
    on_device = device.is_device_array(params["embed"])
    return (params if on_device else device.to_device(params)), on_device


def _device_ids(inputs, cfg):
    inputs = check_inputs(device.host(inputs), cfg)  # checked on the host, with ref's messages
    return inputs, device.asarray(inputs)


def forward(params, cfg, inputs):
    """Logits [B, T, vocab_out] for int inputs [B, T]; row t predicts the id after input t (causal)."""
    params, on_device = _device_params(params, cfg)
    host_inputs, inputs = _device_ids(inputs, cfg)
    B, T = host_inputs.shape
    h, _, _, _ = _hidden_forward(params, cfg, params["embed"][inputs], keep=False)
    logits = matmul(h, params["unembed"]).reshape(B, T, cfg.vocab_out)
    return logits if on_device else device.host(logits)


# ----------------------------------------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------------------------------------


def _block_backward(dx, params, layer, cfg, B, T, saved, grads):
    """Backward of one block, in place on dx [B*T, d] (the residual stream's gradient); fills grads."""
    xp, dtype, prefix = device.xp(), dx.dtype, f"blocks.{layer}."
    N, d, H, ff = B * T, cfg.d_model, cfg.n_heads, cfg.d_ff
    inner = H * cfg.head_dim
    scale = 1.0 / np.sqrt(cfg.head_dim)
    h = xp.empty((N, d), dtype)

    # MLP
    gate_up = saved["gate_up"]
    act = xp.empty((N, ff), dtype)
    K.gated_relu(gate_up, act)  # recomputed rather than kept
    grads[prefix + "w_down"] = matmul(act, dx, trans_a=True)  # [ff, d]
    dact = matmul(dx, params[prefix + "w_down"], out=act, trans_b=True)  # [N, ff]; act is no longer needed
    K.gated_relu_backward(dact, gate_up)  # gate_up now holds dgate | dup
    K.rmsnorm_apply(saved["x_mid"], params[prefix + "mlp_norm"], saved["rrms2"], h)
    dwgu = matmul(h, gate_up, trans_a=True)  # [d, 2*ff]
    grads[prefix + "w_gate"], grads[prefix + "w_up"] = dwgu[:, :ff].copy(), dwgu[:, ff:].copy()
    dnormed = matmul(gate_up, saved["wgu"], trans_b=True)  # [N, d]
    grads[prefix + "mlp_norm"] = _norm_backward_add(dnormed, saved["x_mid"], saved["rrms2"],
                                                    params[prefix + "mlp_norm"], dx)

    # attention
    grads[prefix + "wo"] = matmul(saved["attended"], dx, trans_a=True)  # [inner, d]
    dattended = matmul(dx, params[prefix + "wo"], trans_b=True)  # [N, inner]
    dctx = xp.ascontiguousarray(dattended.reshape(B, T, H, -1).transpose(0, 2, 1, 3)).reshape(B * H, T, -1)
    probs, q, k, v = saved["probs"], saved["q"], saved["k"], saved["v"]
    dscores = matmul(dctx, v, trans_b=True)  # dprobs [B*H, T, T]
    dv = matmul(probs, dctx, trans_a=True)  # [B*H, T, dh]
    dbias = xp.empty((B * H, T), np.float64)
    K.attention_softmax_backward(probs, dscores, dbias)  # dprobs -> dscores in place
    grads[prefix + "rel_bias"] = _fold_bias_grad(dbias, B, T, cfg, dtype)
    dqkv = xp.empty((N, 3 * inner), dtype)
    by_part = dqkv.reshape(B, T, 3, H, cfg.head_dim)  # a view: [:, :, 0] is dq's columns, 1 dk's, 2 dv's
    by_part[:, :, 0] = _merge_heads(matmul(dscores, k, alpha=scale), B, T, H)  # dq
    by_part[:, :, 1] = _merge_heads(matmul(dscores, q, trans_a=True, alpha=scale), B, T, H)  # dk
    by_part[:, :, 2] = _merge_heads(dv, B, T, H)
    K.rmsnorm_apply(saved["x_in"], params[prefix + "attn_norm"], saved["rrms1"], h)
    dwqkv = matmul(h, dqkv, trans_a=True)  # [d, 3*inner]
    for j, name in enumerate(("wq", "wk", "wv")):
        grads[prefix + name] = dwqkv[:, j * inner:(j + 1) * inner].copy()
    dnormed = matmul(dqkv, saved["wqkv"], trans_b=True)  # [N, d]
    grads[prefix + "attn_norm"] = _norm_backward_add(dnormed, saved["x_in"], saved["rrms1"],
                                                     params[prefix + "attn_norm"], dx)


def _check_targets(targets, weights, shape, cfg, dtype):
    """ref's checks of targets and weights, with its messages, on the host (fast.cpu's); returns device arrays [N]."""
    weights = None if weights is None else device.host(weights)
    safe_targets, flat_weights, total_weight = cpu_transformer.flat_targets(device.host(targets), weights, shape,
                                                                            cfg, dtype)
    return device.asarray(safe_targets), device.asarray(flat_weights), total_weight


def _loss_and_grads_on_device(params, cfg, x, targets, weights):
    """(loss, grads without "embed", dx [B, T, d]) with every array on the device."""
    xp, dtype = device.xp(), x.dtype
    B, T, d = x.shape
    targets, weights, total_weight = _check_targets(targets, weights, (B, T), cfg, dtype)
    h, stream, rrms, caches = _hidden_forward(params, cfg, x, keep=True)
    dlogits = matmul(h, params["unembed"])  # logits [N, V_out], turned into their gradient in place
    row_terms = xp.empty((B * T, 2), np.float64)
    K.cross_entropy(dlogits, targets, weights, total_weight, cfg.z_loss, row_terms)
    sums = row_terms.sum(axis=0)
    loss = (sums[0] + cfg.z_loss * sums[1]) / total_weight  # a device scalar until the caller reads it

    grads = {"unembed": matmul(h, dlogits, trans_a=True)}  # [d, V_out]
    dh = matmul(dlogits, params["unembed"], trans_b=True)  # [N, d]
    dx = xp.zeros((B * T, d), dtype)
    grads["final_norm"] = _norm_backward_add(dh, stream, rrms, params["final_norm"], dx)
    for layer in reversed(range(cfg.n_layers)):
        _block_backward(dx, params, layer, cfg, B, T, caches[layer], grads)
        caches[layer] = None  # free the layer's activations as soon as they are used
    return float(loss), grads, dx.reshape(B, T, d)


def loss_and_grads_from_embeddings(params, cfg, x, targets, weights=None):
    """Loss and gradients from already-embedded inputs x [B, T, d] (as ref's function of the same name).

    Returns (loss, grads, dx) with grads for every parameter except "embed" and dx = dloss/dx [B, T, d].
    """
    params, on_device = _device_params(params, cfg)
    x = device.asarray(x, dtype=np.dtype(cfg.dtype))
    loss, grads, dx = _loss_and_grads_on_device(params, cfg, x, targets, weights)
    if on_device:
        return loss, grads, dx
    return loss, device.to_host(grads), device.host(dx)


def _embedding_grad(dx, host_inputs, vocab):
    """dtable [vocab, d] = sum of dx rows by input id: positions sorted by id on the host (stably), segments summed in
    order on the device (kernels_nn._embedding_backward)."""
    ids = host_inputs.reshape(-1)
    order = np.argsort(ids, kind="stable")
    unique, starts = np.unique(ids[order], return_index=True)
    starts = np.append(starts, ids.size)
    dtable = device.xp().zeros((vocab, dx.shape[-1]), dx.dtype)
    K.embedding_backward(dx.reshape(-1, dx.shape[-1]), device.asarray(order), device.asarray(starts),
                         device.asarray(unique), dtable)
    return dtable


def loss_and_grads(params, cfg, inputs, targets, weights=None):
    """(loss, grads): the reference's loss and its gradient for every parameter (same names, shapes and dtype).

    inputs [B, T] ints in [0, vocab_in); targets [B, T] ints in [0, vocab_out) where the weight is non-zero;
    weights [B, T] non-negative (default: all ones). The loss is a Python float; grads live where params live.
    """
    params, on_device = _device_params(params, cfg)
    host_inputs, inputs = _device_ids(inputs, cfg)
    loss, grads, dx = _loss_and_grads_on_device(params, cfg, params["embed"][inputs], targets, weights)
    grads["embed"] = _embedding_grad(dx, host_inputs, cfg.vocab_in)
    grads = {name: grads[name] for name in params}
    return loss, (grads if on_device else device.to_host(grads))
