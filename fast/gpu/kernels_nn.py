"""numba.cuda kernels of the GPU Transformer: everything between the matrix products, one pass over memory each.

fast/gpu/transformer.py does the products with cuBLAS (fast/gpu/blas.py) and calls the launchers at the bottom of
this file for the rest: RMSNorm and its backward, the relative-bias causal softmax and its backward (plus the
bias gradient by query-key offset), the gated ReLU and its backward, the cross-entropy with z-loss (loss terms and
dlogits in one kernel) and the embedding's scatter-add. The same source runs on a GPU (CuPy arrays) and under
numba's CUDA simulator (NumPy arrays; fast/gpu/device.py), which is how CI tests it against ref.

Conventions (the same as fast/cpu/kernels_nn.py, so the two backends round alike):
- A row is reduced by one block: each thread sums a strided slice in float64, then a tree in shared memory.
  Row sums (RMS, softmax normaliser, logsumexp, softmax-backward dot) are float64, results in the data's dtype.
- Sums across rows (norm-scale gradients, relative-bias gradients, the embedding gradient) use a fixed partition
  and a fixed order, never atomics: results do not depend on the launch shape and repeat bit for bit.
- Rows loop over blockIdx (block-stride) and elementwise kernels over the whole grid (grid-stride), so any grid
  gives the same result: the simulator launches few, small blocks; a GPU one block per row.
- No fastmath: M1's probabilities feed the coder.
"""
import math

import numba
from numba import cuda

from equalinfo.ref.transformer import RMS_EPS

from .device import REDUCE_BLOCKS, THREADS, blocks_for, kernel_arrays

MAX_THREADS = 1024  # size of the shared reduction buffers; a block may use up to this many threads (a power of 2)


# ----------------------------------------------------------------------------------------------------------------------
# Block reductions (device functions)
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit(device=True)
def block_sum(buf, value):
    """Sum of `value` over the threads of the block (blockDim.x a power of two), returned to every thread.
    buf: a shared float64 array of at least blockDim.x entries, free for reuse when this returns."""
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def block_max(buf, value):
    """Maximum of `value` over the threads of the block, returned to every thread (as block_sum)."""
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            buf[tid] = max(buf[tid], buf[tid + step])
        cuda.syncthreads()
        step //= 2
    top = buf[0]
    cuda.syncthreads()
    return top


# ----------------------------------------------------------------------------------------------------------------------
# RMSNorm
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _rmsnorm_forward(x, scale, out, rrms):
    """out = x * r * scale, r = 1 / sqrt(mean(x^2) + eps) per row, stored in rrms.   x, out [N, d]; rrms [N]"""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    N, d = x.shape
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    for n in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        acc = 0.0
        for c in range(tid, d, nt):
            value = numba.float64(x[n, c])
            acc += value * value
        total = block_sum(buf, acc)
        if tid == 0:
            rrms[n] = 1.0 / math.sqrt(total / d + RMS_EPS)  # rounded to the data's dtype by the store
        cuda.syncthreads()
        r = rrms[n]
        for c in range(tid, d, nt):
            out[n, c] = x[n, c] * r * scale[c]


@cuda.jit
def _rmsnorm_apply(x, scale, rrms, out):
    """out = x * r * scale from the stored r (recomputed in the backward rather than kept).   [N, d]"""
    N, d = x.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, N * d, stride):
        n, c = i // d, i % d
        out[n, c] = x[n, c] * rrms[n] * scale[c]


@cuda.jit
def _rmsnorm_backward_add(dy, x, rrms, scale, dx):
    """dx += r * (g - x * r^2 * mean(g * x)) with g = dy * scale (dx is the residual stream's gradient).   [N, d]"""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    N, d = x.shape
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    for n in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        acc = 0.0
        for c in range(tid, d, nt):
            acc += numba.float64(dy[n, c]) * scale[c] * x[n, c]
        dot = block_sum(buf, acc)
        r = numba.float64(rrms[n])
        coef = r * r * (dot / d)
        for c in range(tid, d, nt):
            g = numba.float64(dy[n, c]) * scale[c]
            dx[n, c] += r * (g - x[n, c] * coef)


@cuda.jit
def _column_partials(dy, x, rrms, partial):
    """partial[k, c] = sum of dy[n, c] * x[n, c] * rrms[n] over the k-th of K equal row chunks (float64): the norm
    scale's gradient before the final sum over chunks. One thread per (chunk, column): reads are coalesced."""
    N, d = x.shape
    K = partial.shape[0]
    for k in range(cuda.blockIdx.y, K, cuda.gridDim.y):
        for c in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, d, cuda.gridDim.x * cuda.blockDim.x):
            acc = 0.0
            for n in range(k * N // K, (k + 1) * N // K):
                acc += numba.float64(dy[n, c]) * x[n, c] * rrms[n]
            partial[k, c] = acc


# ----------------------------------------------------------------------------------------------------------------------
# Attention: relative-bias causal softmax, its backward, the bias gradient
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _attention_softmax(scores, bias_by_offset, n_heads, scale):
    """In place: scores[bh, i, j] <- softmax over j <= i of (scores * scale + bias), 0 for j > i (the future).

    scores [B*H, T, T] hold q.k; bias_by_offset [H, T] holds rel_bias[bucket(i - j), h] at T - 1 - i + j.
    As the reference: subtract the row max, exponentiate in the data's dtype, divide by the float64 sum.
    """
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    BH, T, _ = scores.shape
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    for row in range(cuda.blockIdx.x, BH * T, cuda.gridDim.x):
        bh, i = row // T, row % T
        h, offset = bh % n_heads, T - 1 - i
        top = -math.inf
        for j in range(tid, i + 1, nt):
            value = scores[bh, i, j] * scale + bias_by_offset[h, offset + j]
            scores[bh, i, j] = value
            top = max(top, numba.float64(scores[bh, i, j]))
        top = block_max(buf, top)
        acc = 0.0
        for j in range(tid, i + 1, nt):
            e = math.exp(scores[bh, i, j] - top)
            scores[bh, i, j] = e
            acc += numba.float64(scores[bh, i, j])
        total = block_sum(buf, acc)
        for j in range(tid, T, nt):
            if j <= i:
                scores[bh, i, j] = scores[bh, i, j] / total
            else:
                scores[bh, i, j] = 0.0


@cuda.jit
def _attention_softmax_backward(probs, dprobs):
    """In place: dprobs[bh, i, j] <- P_ij (dP_ij - sum_k P_ik dP_ik) for j <= i (dscores), 0 above the diagonal.
    probs, dprobs [B*H, T, T]"""
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    BH, T, _ = probs.shape
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    for row in range(cuda.blockIdx.x, BH * T, cuda.gridDim.x):
        bh, i = row // T, row % T
        acc = 0.0
        for j in range(tid, i + 1, nt):
            acc += numba.float64(probs[bh, i, j]) * dprobs[bh, i, j]
        dot = block_sum(buf, acc)
        for j in range(tid, T, nt):
            if j <= i:
                dprobs[bh, i, j] = probs[bh, i, j] * (dprobs[bh, i, j] - dot)
            else:
                dprobs[bh, i, j] = 0.0


@cuda.jit
def _bias_grad_by_offset(dscores, out):
    """out[bh, o] = sum over queries i of dscores[bh, i, j] with T - 1 - i + j = o (float64, i in increasing order):
    the gradient of the bias at each query-key offset. One thread per (bh, offset); neighbours read neighbours."""
    BH, T, _ = dscores.shape
    for bh in range(cuda.blockIdx.y, BH, cuda.gridDim.y):
        for o in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, T, cuda.gridDim.x * cuda.blockDim.x):
            distance = T - 1 - o  # i - j
            acc = 0.0
            for i in range(distance, T):
                acc += dscores[bh, i, i - distance]
            out[bh, o] = acc


# ----------------------------------------------------------------------------------------------------------------------
# Gated ReLU
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _gated_relu(gate_up, act):
    """act = relu(gate) * up; gate_up [N, 2*ff] holds gate in columns :ff and up in ff: (one fused product)."""
    N, ff = act.shape
    for i in range(cuda.grid(1), N * ff, cuda.gridsize(1)):
        n, c = i // ff, i % ff
        g = gate_up[n, c]
        act[n, c] = (g if g > 0 else 0.0) * gate_up[n, ff + c]


@cuda.jit
def _gated_relu_backward(dact, gate_up):
    """In place: gate_up <- [dgate | dup] = [dact * up * (gate > 0) | dact * relu(gate)] (relu'(0) = 0)."""
    N, ff = dact.shape
    for i in range(cuda.grid(1), N * ff, cuda.gridsize(1)):
        n, c = i // ff, i % ff
        g = gate_up[n, c]
        if g > 0:
            u = gate_up[n, ff + c]
            gate_up[n, c] = dact[n, c] * u
            gate_up[n, ff + c] = dact[n, c] * g
        else:
            gate_up[n, c] = 0.0
            gate_up[n, ff + c] = 0.0


# ----------------------------------------------------------------------------------------------------------------------
# Cross-entropy with z-loss, and the embedding gradient
# ----------------------------------------------------------------------------------------------------------------------


@cuda.jit
def _cross_entropy(logits, targets, weights, total_weight, z_loss, row_terms):
    """In place: logits [N, V] <- dloss/dlogits = w / W * (softmax * (1 + 2 z lse) - onehot(target)).

    row_terms [N, 2] (float64) get w * (lse - logit[target]) and w * lse^2, summed by the caller into the loss.
    Rows of weight 0 get a zero gradient and zero terms, whatever their target.
    """
    buf = cuda.shared.array(MAX_THREADS, numba.float64)
    N, V = logits.shape
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    for n in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        w = numba.float64(weights[n])
        if w == 0.0:  # the same for every thread of the block: no thread skips a barrier the others reach
            for c in range(tid, V, nt):
                logits[n, c] = 0.0
            if tid == 0:
                row_terms[n, 0] = 0.0
                row_terms[n, 1] = 0.0
            continue
        target = targets[n]
        target_logit = numba.float64(logits[n, target])
        top = -math.inf
        for c in range(tid, V, nt):
            top = max(top, numba.float64(logits[n, c]))
        top = block_max(buf, top)  # every thread has read logits[n, target] before any exponentiates it
        acc = 0.0
        for c in range(tid, V, nt):
            e = math.exp(numba.float64(logits[n, c]) - top)
            logits[n, c] = e  # keep exp(logit - max) and rescale it below: one exp per logit
            acc += e
        total = block_sum(buf, acc)
        lse = top + math.log(total)
        if tid == 0:
            row_terms[n, 0] = w * (lse - target_logit)
            row_terms[n, 1] = w * lse * lse
        factor = (1.0 + 2.0 * z_loss * lse) * (w / total_weight) / total
        for c in range(tid, V, nt):
            logits[n, c] = logits[n, c] * factor
        cuda.syncthreads()
        if tid == 0:
            logits[n, target] -= w / total_weight
        cuda.syncthreads()


@cuda.jit
def _embedding_backward(dx, order, starts, ids, dtable):
    """dtable[ids[s]] = sum of dx[order[k]] for k in starts[s]..starts[s+1]-1, added in that order.

    `order` lists the positions sorted by id (stably), so segment s holds every position of id ids[s] in the order
    they occur: the same sums, in the same order, as the reference's np.add.at, and no atomics.
    One thread per (segment, column).   dx [N, d]; dtable [V, d] (ids without a segment stay as they are: zero).
    """
    S = ids.shape[0]
    d = dx.shape[1]
    for s in range(cuda.blockIdx.y, S, cuda.gridDim.y):
        for c in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, d, cuda.gridDim.x * cuda.blockDim.x):
            acc = dtable[ids[s], c]
            for k in range(starts[s], starts[s + 1]):
                acc += dx[order[k], c]
            dtable[ids[s], c] = acc


# ----------------------------------------------------------------------------------------------------------------------
# Launchers: shapes in, grid chosen here
# ----------------------------------------------------------------------------------------------------------------------


def _rows(n_rows):
    return blocks_for(n_rows), THREADS


def _columns(n_columns, n_chunks):
    """Grid (column blocks, chunks) for kernels with one thread per (chunk, column)."""
    return (blocks_for(n_columns, THREADS), blocks_for(n_chunks)), THREADS


def rmsnorm_forward(x, scale, out, rrms):
    """out [N, d], rrms [N] <- RMSNorm of x [N, d] with scale [d]."""
    _rmsnorm_forward[_rows(x.shape[0])](*kernel_arrays(x, scale, out, rrms))


def rmsnorm_apply(x, scale, rrms, out):
    _rmsnorm_apply[blocks_for(x.size, THREADS), THREADS](*kernel_arrays(x, scale, rrms, out))


def rmsnorm_backward_add(dy, x, rrms, scale, dx, partial):
    """dx += the input gradient of RMSNorm; partial [K, d] (float64) <- the scale gradient by row chunk."""
    _rmsnorm_backward_add[_rows(x.shape[0])](*kernel_arrays(dy, x, rrms, scale, dx))
    _column_partials[_columns(x.shape[1], partial.shape[0])](*kernel_arrays(dy, x, rrms, partial))


def attention_softmax(scores, bias_by_offset, n_heads, scale):
    BH, T, _ = scores.shape
    _attention_softmax[_rows(BH * T)](*kernel_arrays(scores, bias_by_offset), n_heads, scale)


def attention_softmax_backward(probs, dprobs, dbias_by_offset):
    """dprobs -> dscores in place; dbias_by_offset [B*H, T] (float64) <- the bias gradient by offset."""
    BH, T, _ = probs.shape
    _attention_softmax_backward[_rows(BH * T)](*kernel_arrays(probs, dprobs))
    _bias_grad_by_offset[_columns(T, BH)](*kernel_arrays(dprobs, dbias_by_offset))


def gated_relu(gate_up, act):
    _gated_relu[blocks_for(act.size, THREADS), THREADS](*kernel_arrays(gate_up, act))


def gated_relu_backward(dact, gate_up):
    _gated_relu_backward[blocks_for(dact.size, THREADS), THREADS](*kernel_arrays(dact, gate_up))


def cross_entropy(logits, targets, weights, total_weight, z_loss, row_terms):
    """logits [N, V] -> dlogits in place; row_terms [N, 2] float64 (see _cross_entropy)."""
    threads = THREADS if logits.shape[1] < 8192 else 4 * THREADS  # long rows (v = 65,536) get wider blocks
    _cross_entropy[blocks_for(logits.shape[0]), threads](*kernel_arrays(logits, targets, weights), float(total_weight),
                                                         float(z_loss), *kernel_arrays(row_terms))


def embedding_backward(dx, order, starts, ids, dtable):
    """dtable [V, d] (zeros) += dx rows by id; order/starts/ids describe the id segments (see _embedding_backward)."""
    _embedding_backward[_columns(dx.shape[1], ids.shape[0])](*kernel_arrays(dx, order, starts, ids, dtable))


__all__ = ["RMS_EPS", "REDUCE_BLOCKS", "rmsnorm_forward", "rmsnorm_apply", "rmsnorm_backward_add",
           "attention_softmax", "attention_softmax_backward", "gated_relu", "gated_relu_backward", "cross_entropy",
           "embedding_backward"]
