"""Numba kernels for the fast CPU Transformer: everything between the matrix products.

`fast/cpu/transformer.py` does the matrix products with NumPy's BLAS and calls these kernels for the rest, so that
each elementwise or row-wise step is one pass over memory instead of the handful of NumPy temporaries the reference
makes. Every kernel works for float32 and float64 arrays (Numba compiles one version per dtype).

Conventions shared by all kernels:
- Rows are independent: a kernel parallelised over rows (`prange`) computes each row with the same arithmetic
  whatever the batch size or the number of threads, so forward logits of a row do not depend on the other rows.
- Sums over a row (RMS, softmax normaliser, logsumexp) are accumulated in float64, then cast to the data's dtype.
- Sums *across* rows (gradients of norm scales, of relative biases, of the embedding) are done in a fixed number of
  chunks, each summed in order, so results do not depend on how many threads run; no atomics.
- No fastmath anywhere: the forward pass feeds M1's probabilities to the arithmetic coder (docs/design.md "Conventions"),
  and the backward kernels are bound by memory traffic, not by the reassociation that fastmath would allow.
- Attention matrices are laid out [B*H, T, T] (row i = query, column j = key); only j <= i is ever read or written
  except for zero-filling the future, which the next matrix product reads.
"""
import math

import numpy as np
from numba import njit, prange

from equalinfo.fast.cpu.threads import one_thread_below
from equalinfo.ref.transformer import RMS_EPS

N_CHUNKS = 32  # fixed number of row chunks for cross-row reductions (independent of the thread count)
PARALLEL_MIN_ELEMENTS = 1 << 15  # below this many elements a kernel runs on the calling thread only


def threads_for(n_elements):
    """The kernels inside run on one thread when the work is small (fast.cpu.threads.one_thread_below)."""
    return one_thread_below(n_elements, PARALLEL_MIN_ELEMENTS)


def chunk_bounds(n_rows, n_chunks=N_CHUNKS):
    """Start offsets of `n_chunks` near-equal slices of range(n_rows) (as an int64 array of n_chunks + 1 entries)."""
    n_chunks = max(1, min(n_chunks, n_rows))
    return np.linspace(0, n_rows, n_chunks + 1).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------------------
# RMSNorm
# ----------------------------------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def rmsnorm_forward(x, scale, out, rrms):
    """out = x * r * scale with r = 1 / sqrt(mean(x^2) + eps) per row; r is stored for the backward.

    x, out [N, d]; scale [d]; rrms [N] (all of one dtype). Same operation order as the reference: (x * r) * scale.
    """
    N, d = x.shape
    for n in prange(N):
        total = 0.0
        for c in range(d):
            value = np.float64(x[n, c])
            total += value * value
        r = x.dtype.type(1.0 / math.sqrt(total / d + RMS_EPS))
        rrms[n] = r
        for c in range(d):
            out[n, c] = x[n, c] * r * scale[c]


@njit(parallel=True, cache=True)
def rmsnorm_apply(x, scale, rrms, out):
    """Recompute out = x * r * scale from the stored r (cheaper to redo in the backward than to keep)."""
    N, d = x.shape
    for n in prange(N):
        r = rrms[n]
        for c in range(d):
            out[n, c] = x[n, c] * r * scale[c]


@njit(parallel=True, cache=True)
def rmsnorm_backward_add(dy, x, rrms, scale, dx, bounds, dscale_partial):
    """dx += r * (g - x * r^2 * mean(g * x)) with g = dy * scale; dscale_partial[chunk] = sum over the chunk's rows of
    dy * x * r (float64; the caller sums the chunks).

    Adding into dx fuses the residual connection: the gradient flowing past the block and through the norm meet here.
    dy, x, dx [N, d]; rrms [N]; scale [d]; bounds [n_chunks + 1]; dscale_partial [n_chunks, d] float64.
    """
    N, d = x.shape
    n_chunks = bounds.shape[0] - 1
    for chunk in prange(n_chunks):
        partial = dscale_partial[chunk]
        partial[:] = 0.0
        for n in range(bounds[chunk], bounds[chunk + 1]):
            r = np.float64(rrms[n])
            dot = 0.0
            for c in range(d):
                g = np.float64(dy[n, c]) * scale[c]
                dot += g * x[n, c]
                partial[c] += np.float64(dy[n, c]) * x[n, c] * r
            coef = r * r * (dot / d)
            for c in range(d):
                g = np.float64(dy[n, c]) * scale[c]
                dx[n, c] += r * (g - x[n, c] * coef)


# ----------------------------------------------------------------------------------------------------------------------
# Attention: head layout, softmax with relative bias and causal mask, and its backward
# ----------------------------------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def split_qkv(qkv, n_heads, q_scale, q, k, v):
    """Scatter the fused projection into contiguous per-head arrays; q is multiplied by q_scale = 1/sqrt(dh) here so
    that q . k is already the scaled score.

    qkv [B*T, 3*H*dh] (columns: q heads, then k heads, then v heads) -> q, k, v [B*H, T, dh].
    """
    BH, T, dh = q.shape
    H = n_heads
    inner = H * dh
    scale = q.dtype.type(q_scale)
    for bh in prange(BH):
        b, h = bh // H, bh % H
        for t in range(T):
            row = b * T + t
            for c in range(dh):
                q[bh, t, c] = qkv[row, h * dh + c] * scale
                k[bh, t, c] = qkv[row, inner + h * dh + c]
                v[bh, t, c] = qkv[row, 2 * inner + h * dh + c]


@njit(parallel=True, cache=True)
def merge_heads(ctx, out):
    """ctx [B*H, T, dh] -> out [B*T, H*dh] (head h fills columns h*dh .. (h+1)*dh - 1)."""
    BH, T, dh = ctx.shape
    H = out.shape[1] // dh
    for row in prange(out.shape[0]):
        b, t = row // T, row % T
        for h in range(H):
            for c in range(dh):
                out[row, h * dh + c] = ctx[b * H + h, t, c]


@njit(parallel=True, cache=True)
def split_heads(x, out):
    """x [B*T, H*dh] -> out [B*H, T, dh] (the gradient's path back through merge_heads)."""
    BH, T, dh = out.shape
    H = x.shape[1] // dh
    for bh in prange(BH):
        b, h = bh // H, bh % H
        for t in range(T):
            for c in range(dh):
                out[bh, t, c] = x[b * T + t, h * dh + c]


@njit(parallel=True, cache=True)
def merge_qkv_grads(dq, dk, dv, q_scale, dqkv):
    """Inverse of split_qkv for the gradients: dqkv [B*T, 3*H*dh] from dq (times q_scale, the chain rule through the
    scaling that split_qkv applied), dk, dv [B*H, T, dh]."""
    BH, T, dh = dq.shape
    inner = dqkv.shape[1] // 3
    H = inner // dh
    scale = dq.dtype.type(q_scale)
    for row in prange(dqkv.shape[0]):
        b, t = row // T, row % T
        for h in range(H):
            bh = b * H + h
            for c in range(dh):
                dqkv[row, h * dh + c] = dq[bh, t, c] * scale
                dqkv[row, inner + h * dh + c] = dk[bh, t, c]
                dqkv[row, 2 * inner + h * dh + c] = dv[bh, t, c]


@njit(parallel=True, cache=True)
def attention_softmax(scores, bias_by_offset, n_heads, block):
    """In place: scores[bh, i, j] <- softmax over j <= i of (scores + bias); 0 for i < j < the end of i's block.

    scores [B*H, T, T] hold q.k / sqrt(dh) for j up to the end of i's block (of `block` rows; see _causal_scores in
    transformer.py); columns past that are neither read nor written. bias_by_offset [H, T] holds the relative bias
    of query i and key j at index T - 1 - i + j (that is rel_bias[bucket(i - j), h]), so a row reads it forwards.
    Normalised as the reference does: subtract the row max, exponentiate (in the data's dtype), divide by the sum
    (accumulated in float64).
    """
    BH, T, _ = scores.shape
    for bh in prange(BH):
        bias = bias_by_offset[bh % n_heads]
        for i in range(T):
            row = scores[bh, i]
            offset = T - 1 - i
            top = row[0] + bias[offset]
            for j in range(i + 1):
                value = row[j] + bias[offset + j]
                row[j] = value
                top = max(top, value)
            total = 0.0
            for j in range(i + 1):
                e = math.exp(row[j] - top)
                row[j] = e
                total += e
            norm = row.dtype.type(total)
            for j in range(i + 1):
                row[j] = row[j] / norm
            for j in range(i + 1, min(T, (i // block + 1) * block)):
                row[j] = 0.0


@njit(parallel=True, cache=True)
def attention_softmax_backward(probs, dprobs, dbias_by_offset, block):
    """In place: dprobs[bh, i, j] <- P_ij * (dP_ij - sum_k P_ik dP_ik) for j <= i (dscores), 0 for i < j < the end
    of i's block (as in attention_softmax).

    Also dbias_by_offset[bh, T - 1 - i + j] accumulates dscores[bh, i, j] (float64): the gradient of the bias at
    each query-key offset, which the caller folds into relative-position buckets.
    probs, dprobs [B*H, T, T]; dbias_by_offset [B*H, T] float64.
    """
    BH, T, _ = probs.shape
    for bh in prange(BH):
        acc = dbias_by_offset[bh]
        acc[:] = 0.0
        for i in range(T):
            p = probs[bh, i]
            dp = dprobs[bh, i]
            dot = 0.0
            for j in range(i + 1):
                dot += np.float64(p[j]) * dp[j]
            dot_t = dp.dtype.type(dot)
            offset = T - 1 - i
            for j in range(i + 1):
                ds = p[j] * (dp[j] - dot_t)
                dp[j] = ds
                acc[offset + j] += ds
            for j in range(i + 1, min(T, (i // block + 1) * block)):
                dp[j] = 0.0


# ----------------------------------------------------------------------------------------------------------------------
# Gated ReLU MLP
# ----------------------------------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def gated_relu(gate_up, act):
    """act = relu(gate) * up, where gate_up [N, 2*ff] holds gate in columns :ff and up in ff: (one fused GEMM)."""
    N, ff = act.shape
    for n in prange(N):
        for c in range(ff):
            g = gate_up[n, c]
            act[n, c] = (g if g > 0 else 0.0) * gate_up[n, ff + c]


@njit(parallel=True, cache=True)
def gated_relu_backward(dact, gate_up):
    """In place: gate_up <- [dgate | dup] with dgate = dact * up * (gate > 0) and dup = dact * relu(gate).

    relu'(0) is taken as 0, as in the reference. Overwriting gate_up saves a [N, 2*ff] buffer: it is not needed after.
    """
    N, ff = dact.shape
    for n in prange(N):
        for c in range(ff):
            g = gate_up[n, c]
            u = gate_up[n, ff + c]
            if g > 0:
                gate_up[n, c] = dact[n, c] * u
                gate_up[n, ff + c] = dact[n, c] * g
            else:
                gate_up[n, c] = 0.0
                gate_up[n, ff + c] = 0.0


# ----------------------------------------------------------------------------------------------------------------------
# Softmax cross-entropy with z-loss, and the embedding
# ----------------------------------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def cross_entropy_backward(logits, targets, weights, total_weight, z_loss, row_terms):
    """In place: logits [N, V] <- dloss/dlogits = w / W * (softmax * (1 + 2 z lse) - onehot(target)).

    row_terms [N, 2] float64 receives per row w * (lse - logit[target]) and w * lse^2; the caller sums them (in a
    fixed order) into the loss. Rows with weight 0 get a zero gradient and contribute nothing, whatever their target.
    logsumexp is computed in float64 from the row max, as the reference's `logsumexp` does (in the data's dtype).
    """
    N, V = logits.shape
    for n in prange(N):
        row = logits[n]
        w = np.float64(weights[n])
        if w == 0.0:
            row[:] = 0.0
            row_terms[n, 0] = 0.0
            row_terms[n, 1] = 0.0
            continue
        top = -np.inf
        for c in range(V):
            if row[c] > top:
                top = row[c]
        target = targets[n]
        target_logit = np.float64(row[target])
        total = 0.0
        for c in range(V):  # one exp per entry: keep exp(logit - max) in the row, rescale it below
            e = math.exp(np.float64(row[c]) - top)
            row[c] = e
            total += e
        lse = top + math.log(total)
        row_terms[n, 0] = w * (lse - target_logit)
        row_terms[n, 1] = w * lse * lse
        factor = (1.0 + 2.0 * z_loss * lse) * (w / total_weight) / total
        for c in range(V):
            row[c] = row[c] * factor
        row[target] -= w / total_weight


@njit(parallel=True, cache=True)
def embedding_backward(dx, ids, vocab, n_col_chunks):
    """dtable[v] = sum of dx[n] over rows with ids[n] == v, as a new [vocab, d] array.

    Parallel over column slices (each thread owns whole columns), rows added in order: no races and the same
    summation order as the reference's np.add.at.   dx [N, d], ids [N] -> [vocab, d]
    """
    N, d = dx.shape
    dtable = np.zeros((vocab, d), dtype=dx.dtype)
    width = (d + n_col_chunks - 1) // n_col_chunks
    for chunk in prange(n_col_chunks):
        start = chunk * width
        stop = min(d, start + width)
        for n in range(N):
            v = ids[n]
            for c in range(start, stop):
                dtable[v, c] += dx[n, c]
    return dtable


@njit(parallel=True, cache=True)
def add_into(x, y):
    """x += y (both [N, d]), parallel over rows: the residual add after a projection."""
    for n in prange(x.shape[0]):
        for c in range(x.shape[1]):
            x[n, c] += y[n, c]
