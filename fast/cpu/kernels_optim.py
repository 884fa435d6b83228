"""Numba kernels for the fast CPU optimizers (fast/cpu/optim.py): one or two passes over each tensor per update.

The reference makes about ten full-size temporaries per parameter per Adafactor step (g^2, its means, u, the
clipped u, p - step*u, ...). Here each tensor is read a few times and written once:
- `sum_squares`: global gradient norm (for clipping) and rms(p), float64 accumulation in fixed chunks;
- `factored_moments`: row and column means of g^2 + eps1 for Adafactor's factored second moments;
- `factored_update_rms` / `factored_apply`: sum of u^2 for update clipping, then p - coef * u, u = g * row * col;
- `unfactored_update`/`unfactored_apply`: the same for vectors and small matrices, with the full EMA v;
- `adamw_update`: m, v and p in one pass.
Gradients come in with a `grad_scale` (the global-norm clipping factor, 1.0 when not clipping), applied as
dtype(g * grad_scale) like the reference's `(g * factor).astype(dtype)`, so clipping needs no scaled copy.
Sums accumulate in float64 over a fixed number of chunks (results do not depend on the thread count).
No fastmath: these kernels are memory-bound, so reassociating the arithmetic would buy little.
"""
import math

import numpy as np
from numba import njit, prange

N_CHUNKS = 32


@njit(parallel=True, cache=True)
def sum_squares(flat, grad_scale):
    """sum((flat * grad_scale)^2) in float64 over a 1-D array, in N_CHUNKS fixed chunks."""
    n = flat.shape[0]
    partial = np.zeros(N_CHUNKS)
    for chunk in prange(N_CHUNKS):
        total = 0.0
        for i in range(chunk * n // N_CHUNKS, (chunk + 1) * n // N_CHUNKS):
            value = np.float64(flat.dtype.type(flat[i] * grad_scale))
            total += value * value
        partial[chunk] = total
    return partial.sum()


@njit(parallel=True, cache=True)
def factored_moments(g, grad_scale, eps1, row_mean, col_partial):
    """row_mean[r] = mean_c(g^2 + eps1) and col_partial[chunk, c] = sum over the chunk's rows of (g^2 + eps1).

    g [R, C]; row_mean [R] float64; col_partial [n_chunks, C] float64 (the caller sums the chunks and divides by R).
    g^2 + eps1 is rounded to g's dtype first, as in the reference.
    """
    R, C = g.shape
    n_chunks = col_partial.shape[0]
    for chunk in prange(n_chunks):
        cols = col_partial[chunk]
        cols[:] = 0.0
        for r in range(chunk * R // n_chunks, (chunk + 1) * R // n_chunks):
            total = 0.0
            for c in range(C):
                value = g.dtype.type(g[r, c] * grad_scale)
                g2 = np.float64(g.dtype.type(value * value + eps1))
                total += g2
                cols[c] += g2
            row_mean[r] = total / C


@njit(parallel=True, cache=True)
def factored_update_rms(g, grad_scale, row_factor, col_factor, p):
    """(sum of u^2, sum of p^2) in float64, u = g * row_factor[r] * col_factor[c]; g, p [R, C]."""
    R, C = g.shape
    u_partial = np.zeros(N_CHUNKS)
    p_partial = np.zeros(N_CHUNKS)
    for chunk in prange(N_CHUNKS):
        su = 0.0
        sp = 0.0
        for r in range(chunk * R // N_CHUNKS, (chunk + 1) * R // N_CHUNKS):
            rf = row_factor[r]
            for c in range(C):
                u = np.float64(g.dtype.type(g[r, c] * grad_scale) * rf * col_factor[c])
                su += u * u
                sp += np.float64(p[r, c]) * p[r, c]
        u_partial[chunk] = su
        p_partial[chunk] = sp
    return u_partial.sum(), p_partial.sum()


@njit(parallel=True, cache=True)
def factored_apply(g, grad_scale, row_factor, col_factor, p, coef, out):
    """out = p - coef * g * row_factor[r] * col_factor[c]  (coef = lr * scale / clip, one number)."""
    R, C = g.shape
    coef_t = p.dtype.type(coef)
    for r in prange(R):
        rf = row_factor[r]
        for c in range(C):
            u = g.dtype.type(g[r, c] * grad_scale) * rf * col_factor[c]
            out[r, c] = p[r, c] - coef_t * u


@njit(parallel=True, cache=True)
def unfactored_update(g, grad_scale, eps1, beta2, v, p, v_out):
    """v_out = beta2 * v + (1 - beta2) * (g^2 + eps1); returns (sum of u^2, sum of p^2), u = g / sqrt(v_out).

    All 1-D (flattened) arrays of one dtype."""
    n = g.shape[0]
    u_partial = np.zeros(N_CHUNKS)
    p_partial = np.zeros(N_CHUNKS)
    b2 = v.dtype.type(beta2)
    one_minus = v.dtype.type(1.0 - beta2)
    for chunk in prange(N_CHUNKS):
        su = 0.0
        sp = 0.0
        for i in range(chunk * n // N_CHUNKS, (chunk + 1) * n // N_CHUNKS):
            value = g.dtype.type(g[i] * grad_scale)
            g2 = g.dtype.type(value * value + eps1)
            new_v = b2 * v[i] + one_minus * g2
            v_out[i] = new_v
            u = np.float64(value / math.sqrt(new_v))
            su += u * u
            sp += np.float64(p[i]) * p[i]
        u_partial[chunk] = su
        p_partial[chunk] = sp
    return u_partial.sum(), p_partial.sum()


@njit(parallel=True, cache=True)
def unfactored_apply(g, grad_scale, v, p, coef, out):
    """out = p - coef * g / sqrt(v) (1-D arrays)."""
    coef_t = p.dtype.type(coef)
    for i in prange(g.shape[0]):
        value = g.dtype.type(g[i] * grad_scale)
        out[i] = p[i] - coef_t * (value / p.dtype.type(math.sqrt(v[i])))


@njit(parallel=True, cache=True)
def adamw_update(g, grad_scale, m, v, p, b1, b2, correction1, correction2, eps, lr, decay, m_out, v_out, p_out):
    """One AdamW step on 1-D arrays: m, v moments, then p - lr * (mhat / (sqrt(vhat) + eps) + decay * p).

    decay is weight_decay for tensors that decay and 0 for the others."""
    t = p.dtype.type
    b1_t, b2_t, one_b1, one_b2 = t(b1), t(b2), t(1.0 - b1), t(1.0 - b2)
    c1, c2, eps_t, lr_t, decay_t = t(correction1), t(correction2), t(eps), t(lr), t(decay)
    for i in prange(g.shape[0]):
        value = g.dtype.type(g[i] * grad_scale)
        new_m = b1_t * m[i] + one_b1 * value
        new_v = b2_t * v[i] + one_b2 * value * value
        m_out[i] = new_m
        v_out[i] = new_v
        direction = (new_m / c1) / (t(math.sqrt(new_v / c2)) + eps_t)
        if decay != 0.0:
            direction = direction + decay_t * p[i]
        p_out[i] = p[i] - lr_t * direction
