"""numba.cuda kernels of the GPU optimizers (fast/gpu/optim.py): each tensor is read a few times and written once.

- `sum_squares`: per-block partial sums of g^2 for the global gradient norm; `finish_grad_scale` turns all of them
  into the clipping factor, on the device (no host round trip between tensors);
- Adafactor, factored matrices [R, C]: `factored_row_means` and `factored_col_partials` (the means of g^2 + eps1),
  `factored_sums` (sum of u^2 and p^2, u = g * row_factor * col_factor), `finish_coefficient` (lr * parameter scale /
  update clip, one number on the device) and `factored_apply` (p - coef * u);
- Adafactor, unfactored tensors (flattened): `unfactored_update` (the EMA v, the sums) and `unfactored_apply`;
- `adamw`: m, v and p in one pass.

Dtypes: a kernel computes in the data's dtype wherever the reference does (g * clip factor, g^2 + eps1, the EMAs,
u, the update), because its scalar arguments are passed as that dtype (`_scalar`) and the clip factor and step
coefficient live in 1-element arrays of that dtype; sums over a tensor are float64 in a fixed partition (a fixed
grid of REDUCE_BLOCKS blocks), so they repeat bit for bit. Like the reference, the clip factor multiplies the
gradient as it is read (no scaled copy).
"""
import math

import numba
import numpy as np
from numba import cuda

from .device import REDUCE_BLOCKS, THREADS, blocks_for, kernel_arrays
from .kernels_nn import MAX_THREADS, block_sum


def _scalar(value, dtype):
    """A Python number as a NumPy scalar of the data's dtype, so the kernel computes with it in that dtype."""
    return np.dtype(dtype).type(value)


# ----------------------------------------------------------------------------------------------------------------------
# Whole-tensor sums and the clipping factor
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _sum_squares(g, partial):
    """partial[block] = sum of g^2 (float64) over the block's grid-stride share of the flat array g."""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    acc = 0.0
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        value = numba.float64(g[i])
        acc += value * value
    total = block_sum(buf, acc)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit
def _finish_grad_scale(partials, max_norm, scale):
    """scale[0] = 1 if the global norm sqrt(sum(partials)) <= max_norm, else max_norm / norm (one block)."""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    flat_size = partials.shape[0] * partials.shape[1]
    acc = 0.0
    for i in range(cuda.threadIdx.x, flat_size, cuda.blockDim.x):
        acc += partials[i // partials.shape[1], i % partials.shape[1]]
    norm = math.sqrt(block_sum(buf, acc))
    if cuda.threadIdx.x == 0:
        scale[0] = 1.0 if norm <= max_norm else max_norm / norm


@cuda.jit
def _finish_coefficient(partial, size, lr, eps2, threshold, use_scale, coef):
    """coef[0] = lr * max(rms(p), eps2) / max(1, rms(u) / threshold) from partial [blocks, 2] = (sum u^2, sum p^2).
    threshold <= 0 means no update clipping; use_scale 0 means a scale of 1 (one block)."""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    su, sp = 0.0, 0.0
    for i in range(cuda.threadIdx.x, partial.shape[0], cuda.blockDim.x):
        su += partial[i, 0]
        sp += partial[i, 1]
    su = block_sum(buf, su)
    sp = block_sum(buf, sp)
    if cuda.threadIdx.x == 0:
        clip = 1.0
        if threshold > 0:
            clip = max(1.0, math.sqrt(su / size) / threshold)
        scale = max(math.sqrt(sp / size), eps2) if use_scale else 1.0
        coef[0] = lr * scale / clip


# ----------------------------------------------------------------------------------------------------------------------
# Adafactor
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _factored_row_means(g, grad_scale, eps1, row_mean):
    """row_mean[r] = mean over c of (g * s)^2 + eps1 (each term in g's dtype, the mean in float64).   g [R, C]"""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    R, C = g.shape
    s = grad_scale[0]
    for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        acc = 0.0
        for c in range(cuda.threadIdx.x, C, cuda.blockDim.x):
            value = g[r, c] * s
            acc += value * value + eps1
        total = block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            row_mean[r] = total / C


@cuda.jit
def _factored_col_partials(g, grad_scale, eps1, partial):
    """partial[k, c] = sum of (g * s)^2 + eps1 over the k-th of K row chunks (float64).   g [R, C], partial [K, C]"""
    R, C = g.shape
    K = partial.shape[0]
    s = grad_scale[0]
    for k in range(cuda.blockIdx.y, K, cuda.gridDim.y):
        for c in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, C, cuda.gridDim.x * cuda.blockDim.x):
            acc = 0.0
            for r in range(k * R // K, (k + 1) * R // K):
                value = g[r, c] * s
                acc += value * value + eps1
            partial[k, c] = acc


@cuda.jit
def _factored_sums(g, grad_scale, row_factor, col_factor, p, partial):
    """partial[block] = (sum of u^2, sum of p^2) over the block's share, u = g * s * row_factor[r] * col_factor[c]."""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    R, C = g.shape
    s = grad_scale[0]
    su, sp = 0.0, 0.0
    for i in range(cuda.grid(1), R * C, cuda.gridsize(1)):
        r, c = i // C, i % C
        u = numba.float64(g[r, c] * s * row_factor[r] * col_factor[c])
        su += u * u
        sp += numba.float64(p[r, c]) * p[r, c]
    su = block_sum(buf, su)
    sp = block_sum(buf, sp)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x, 0] = su
        partial[cuda.blockIdx.x, 1] = sp


@cuda.jit
def _factored_apply(g, grad_scale, row_factor, col_factor, p, coef, out):
    """out = p - coef * g * s * row_factor[r] * col_factor[c]."""
    R, C = g.shape
    s, k = grad_scale[0], coef[0]
    for i in range(cuda.grid(1), R * C, cuda.gridsize(1)):
        r, c = i // C, i % C
        out[r, c] = p[r, c] - k * (g[r, c] * s * row_factor[r] * col_factor[c])


@cuda.jit
def _unfactored_update(g, grad_scale, eps1, beta2, one_minus_beta2, v, p, v_out, partial):
    """v_out = beta2 v + (1 - beta2)((g s)^2 + eps1); partial[block] = (sum u^2, sum p^2), u = g s / sqrt(v_out).
    Flat arrays."""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    s = grad_scale[0]
    su, sp = 0.0, 0.0
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        value = g[i] * s
        new_v = beta2 * v[i] + one_minus_beta2 * (value * value + eps1)
        v_out[i] = new_v
        u = numba.float64(value / math.sqrt(new_v))
        su += u * u
        sp += numba.float64(p[i]) * p[i]
    su = block_sum(buf, su)
    sp = block_sum(buf, sp)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x, 0] = su
        partial[cuda.blockIdx.x, 1] = sp


@cuda.jit
def _unfactored_apply(g, grad_scale, v, p, coef, out):
    """out = p - coef * g s / sqrt(v) (flat arrays)."""
    s, k = grad_scale[0], coef[0]
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        out[i] = p[i] - k * (g[i] * s / math.sqrt(v[i]))


# ----------------------------------------------------------------------------------------------------------------------
# AdamW
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _adamw(g, grad_scale, m, v, p, b1, b2, one_b1, one_b2, c1, c2, eps, lr, decay, m_out, v_out, p_out):
    """m, v moments, then p - lr * (mhat / (sqrt(vhat) + eps) + decay * p) (decay 0 for tensors that do not decay)."""
    s = grad_scale[0]
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        value = g[i] * s
        new_m = b1 * m[i] + one_b1 * value
        new_v = b2 * v[i] + one_b2 * value * value
        m_out[i] = new_m
        v_out[i] = new_v
        direction = (new_m / c1) / (math.sqrt(new_v / c2) + eps)
        if decay != 0:
            direction = direction + decay * p[i]
        p_out[i] = p[i] - lr * direction


# ----------------------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------------------

_REDUCE = (REDUCE_BLOCKS, THREADS)  # fixed grid: the partition of every whole-tensor sum


def sum_squares(flat, partial):
    """partial [REDUCE_BLOCKS] (float64) <- partial sums of flat^2."""
    _sum_squares[_REDUCE](*kernel_arrays(flat, partial))


def finish_grad_scale(partials, max_norm, scale):
    _finish_grad_scale[1, THREADS](*kernel_arrays(partials), float(max_norm), *kernel_arrays(scale))


def finish_coefficient(partial, size, lr, eps2, threshold, use_scale, coef):
    _finish_coefficient[1, THREADS](*kernel_arrays(partial), float(size), float(lr), float(eps2),
                                     float(threshold or 0.0), int(use_scale), *kernel_arrays(coef))


def factored_moments(g, grad_scale, eps1, row_mean, col_partial):
    """row_mean [R] and col_partial [K, C] (float64) of (g * s)^2 + eps1."""
    R, C = g.shape
    eps1 = _scalar(eps1, g.dtype)
    _factored_row_means[blocks_for(R), THREADS](*kernel_arrays(g, grad_scale), eps1, *kernel_arrays(row_mean))
    grid = (blocks_for(C, THREADS), blocks_for(col_partial.shape[0]))
    _factored_col_partials[grid, THREADS](*kernel_arrays(g, grad_scale), eps1, *kernel_arrays(col_partial))


def factored_sums(g, grad_scale, row_factor, col_factor, p, partial):
    _factored_sums[_REDUCE](*kernel_arrays(g, grad_scale, row_factor, col_factor, p, partial))


def factored_apply(g, grad_scale, row_factor, col_factor, p, coef, out):
    _factored_apply[blocks_for(p.size, THREADS), THREADS](*kernel_arrays(g, grad_scale, row_factor, col_factor, p,
                                                                        coef, out))


def unfactored_update(g, grad_scale, eps1, beta2, v, p, v_out, partial):
    t = g.dtype
    _unfactored_update[_REDUCE](*kernel_arrays(g, grad_scale), _scalar(eps1, t), _scalar(beta2, t),
                                _scalar(1.0 - beta2, t), *kernel_arrays(v, p, v_out, partial))


def unfactored_apply(g, grad_scale, v, p, coef, out):
    _unfactored_apply[blocks_for(p.size, THREADS), THREADS](*kernel_arrays(g, grad_scale, v, p, coef, out))


def adamw(g, grad_scale, m, v, p, b1, b2, correction1, correction2, eps, lr, decay, m_out, v_out, p_out):
    """One AdamW step on flat arrays (the settings as Python numbers; computed in the data's dtype)."""
    t = p.dtype
    scalars = [_scalar(x, t) for x in (b1, b2, 1.0 - b1, 1.0 - b2, correction1, correction2, eps, lr, decay)]
    _adamw[blocks_for(p.size, THREADS), THREADS](*kernel_arrays(g, grad_scale, m, v, p), *scalars,
                                                 *kernel_arrays(m_out, v_out, p_out))
