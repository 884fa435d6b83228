"""M1's probabilities with an exactly specified arithmetic, so encoder and decoder get the same bits everywhere.

Why this exists. The coders quantise each of M1's probability rows into an integer CDF, and a decoder, which sees a
window's prefix one symbol at a time, must rebuild exactly the rows the encoder used. Ordinary float code does not
promise that: BLAS picks kernels and summation orders by matrix shape and thread count, NumPy's `sum` is pairwise
and its `exp` is a SIMD routine that differs between builds, GPUs fuse multiply-adds. Then the same prefix gives
rows that differ in the last bits with the batch size, the padded length, the backend or the machine -- and now
and then a different CDF and a garbled window (docs/design.md, "Determinism of M1's probabilities").

So this module *specifies* the arithmetic of M1's forward pass down to the order of every rounding, using only
operations IEEE 754 rounds exactly the same way everywhere (+, -, *, /, sqrt, max, scaling by powers of two), and
computes it in plain NumPy. The rule, called EXACT_M1_VERSION below, in the parameters' dtype (float32 for a
trained M1; float64 also allowed):

- every reduction runs in one fixed order, left to right, starting from +0.0, one rounding per multiply and per
  add (never a fused multiply-add):  dot(a, b) = (((0 + a0*b0) + a1*b1) + ...);
- matmul:   y[r, j] = dot(x[r, :], w[:, j])                                   (order: k = 0 .. n-1)
- RMSNorm:  ms = dot(x, x) / d;  inv = 1 / sqrt(ms + 1e-6);  y_i = (x_i * inv) * scale_i
- attention, per head h and query i over keys j <= i (T5 causal bucketing as in ref/transformer.py):
      s_j = dot(q_i, k_j) * (1/sqrt(dh)) + rel_bias[bucket(i - j), h]         (scale rounded to the dtype once)
      m = max_j s_j;  e_j = dtype(exp64(float64(s_j) - float64(m)))           (exp64: below)
      z = sum_j e_j (order j = 0 .. i);  o_c = (sum_j e_j * v_j[c]) / z      (order j = 0 .. i)
- gated MLP: relu(h @ w_gate) * (h @ w_up) then @ w_down; residual adds x + f(x) in the dtype;
- probabilities in float64: l = float64(logits), m = max, e = exp64(l - m), z = sum (order 0 .. 256), p = e / z;
- exp64(x): n = floor(x / ln2 + 1/2) (as x * INV_LN2 + 0.5), r = (x - n*LN2_HI) - n*LN2_LO, the degree-12
  Taylor polynomial of e^r by Horner's rule from the highest coefficient, times 2^n; x < -700 gives 0 (every
  argument here is <= 0 after subtracting the row maximum, so no overflow, and e^-700 is far below what a
  14-bit CDF can see).
A row then depends on its own prefix and the weights alone: not on the batch size, the padded length T, the
padding, the other rows, the backend or the machine. fast/cpu/exact_m1.py (Numba) and fast/gpu/exact_m1.py
(numba.cuda, every rounded operation an explicitly rounded intrinsic so the compiler fuses no multiply-add)
compute the same rule and are tested bit for bit against this file.

The price: fixed-order reductions forgo BLAS. Here each reduction is a Python loop over its index with NumPy
vectorising across every other axis (all rows at once), which is slow but short to read; the Numba twin is the
fast one. Probabilities are not identical to ref/transformer.py's `forward` (other rounding order), only close.
"""
import math

import numpy as np

from equalinfo.ref.transformer import (RMS_EPS, bucket_table, check_params)  # noqa: F401 (rule 1 reads the float parameters)

EXACT_M1_VERSION = 1  # bump when any rounding above changes: it is part of the coding model's fingerprint

LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two so that n * LN2_HI is exact for |n| < 2^11
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
EXP_COEFFS = tuple(1.0 / math.factorial(k) for k in range(12, -1, -1))  # Horner order: 1/12!, 1/11!, ..., 1
EXP_UNDERFLOW = -700.0
QUERY_BLOCK = 256  # queries per attention block (bounds the [B, H, queries, T] score array; no effect on values)


def exp64(x):
    """e^x for a float64 array by the rule in the module docstring (0 below -700)."""
    x = np.asarray(x, dtype=np.float64)
    safe = np.where(x < EXP_UNDERFLOW, 0.0, x)  # -inf and tiny values take the 0 branch below
    n = np.floor(safe * INV_LN2 + 0.5)
    r = (safe - n * LN2_HI) - n * LN2_LO
    poly = np.full_like(r, EXP_COEFFS[0])
    for coefficient in EXP_COEFFS[1:]:
        poly = poly * r + coefficient
    return np.where(x < EXP_UNDERFLOW, 0.0, np.ldexp(poly, n.astype(np.int64)))


def matmul(x, w):
    """y = x @ w, summing over k = 0 .. n-1 in order.   x [N, n], w [n, m] -> y [N, m]"""
    y = np.zeros((x.shape[0], w.shape[1]), dtype=w.dtype)
    for k in range(w.shape[0]):
        y += x[:, k:k + 1] * w[k]
    return y


def dot_last(a, b):
    """Fixed-order dot product over the last axis, broadcasting the others (a, b [..., n] -> [...])."""
    total = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=a.dtype)
    for c in range(a.shape[-1]):
        total += a[..., c] * b[..., c]
    return total


def rms_norm(x, scale):
    """x / sqrt(mean(x^2) + eps) * scale with the fixed rounding order.   x [N, d] -> [N, d]"""
    dtype = x.dtype.type
    inv = dtype(1) / np.sqrt(dot_last(x, x) / dtype(x.shape[1]) + dtype(RMS_EPS))  # [N]
    return (x * inv[:, None]) * scale


def float_product(x, params, name):
    """x @ params[name] by this rule's fixed-order reductions; a rule with other products (ref/integer_m1.py)
    passes its own `product(x, params, name)` to attention, mlp and logits.   x [N, n] -> [N, m]"""
    return matmul(x, params[name])


def attention(h, params, prefix, cfg, batch, length, product=float_product):
    """Causal multi-head attention with relative bias.   h [B*T, d] (row b*T + t) -> [B*T, d]"""
    q, k, v = (product(h, params, prefix + name) for name in ("wq", "wk", "wv"))
    merged = attend(q, k, v, params[prefix + "rel_bias"], cfg, batch, length)
    return product(merged, params, prefix + "wo")


def attend(q, k, v, rel_bias, cfg, batch, length):
    """The heads' softmax-weighted values by the rule.   q, k, v [B*T, H*dh] (row b*T + t) -> [B*T, H*dh]"""
    H, dh = cfg.n_heads, cfg.head_dim
    dtype = q.dtype.type

    def heads(x):  # [B*T, H*dh] -> [B, H, T, dh]
        return x.reshape(batch, length, H, dh).transpose(0, 2, 1, 3)

    q, k, v = heads(q), heads(k), heads(v)
    scale = dtype(1.0 / math.sqrt(dh))
    bias = rel_bias[bucket_table(length, cfg.num_buckets, cfg.max_distance)]  # [T, T, H]
    bias = bias.transpose(2, 0, 1)  # [H, T, T]
    out = np.empty((batch, H, length, dh), dtype=q.dtype)
    for start in range(0, length, QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, length)
        scores = dot_last(q[:, :, start:stop, None, :], k[:, :, None, :, :]) * scale + bias[:, start:stop]
        future = np.arange(length)[None, :] > np.arange(start, stop)[:, None]  # [queries, T]
        scores = np.where(future, -np.inf, scores)  # [B, H, queries, T]
        top = scores.max(axis=-1, keepdims=True)  # exact: max does not round
        weights = exp64(scores.astype(np.float64) - top.astype(np.float64)).astype(q.dtype)  # 0 on the future
        # sums in key order j = 0 .. T-1; the future's exact zeros leave every partial sum unchanged
        total = np.zeros(weights.shape[:-1], dtype=q.dtype)  # [B, H, queries]
        attended = np.zeros((batch, H, stop - start, dh), dtype=q.dtype)
        for j in range(length):
            total += weights[..., j]
            attended += weights[..., j, None] * v[:, :, j, None, :]
        out[:, :, start:stop] = attended / total[..., None]
    return out.transpose(0, 2, 1, 3).reshape(batch * length, H * dh)


def mlp(h, params, prefix, product=float_product):
    """(relu(h W_gate) * (h W_up)) W_down.   h [N, d] -> [N, d]"""
    gate = product(h, params, prefix + "w_gate")
    hidden = np.maximum(gate, gate.dtype.type(0)) * product(h, params, prefix + "w_up")
    return product(hidden, params, prefix + "w_down")


def logits(params, cfg, inputs, product=float_product):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated), by the exact rule."""
    batch, length = inputs.shape
    x = params["embed"][inputs.reshape(-1)]  # [B*T, d]
    for layer in range(cfg.n_layers):
        prefix = f"blocks.{layer}."
        x = x + attention(rms_norm(x, params[prefix + "attn_norm"]), params, prefix, cfg, batch, length, product)
        x = x + mlp(rms_norm(x, params[prefix + "mlp_norm"]), params, prefix, product)
    out = product(rms_norm(x, params["final_norm"]), params, "unembed")
    return out.reshape(batch, length, -1)


def softmax64(logit_rows):
    """float64 probabilities of logit rows [..., V] by the exact rule (sum in index order)."""
    rows = np.asarray(logit_rows).astype(np.float64)
    e = exp64(rows - rows.max(axis=-1, keepdims=True))
    total = np.zeros(e.shape[:-1])
    for i in range(e.shape[-1]):
        total += e[..., i]
    return e / total[..., None]


def next_probs(params, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
    return softmax64(logits(params, cfg, np.asarray(inputs, dtype=np.int64)))
