"""Numba twin of ref/exact_m1.py: M1's probabilities by the exact rule, bit for bit, many rows at once.

Read ref/exact_m1.py for the rule and why it exists. This file computes the same roundings in the same order with
compiled loops: every reduction is a plain `acc += a * b` loop (Numba emits no fused multiply-add without fastmath,
and fastmath is never used here), `exp64` is the same polynomial, and scalar constants arrive already converted to
the parameters' dtype so that float32 stays float32. The tests (tests/test_exact_m1.py) compare the probabilities
with ref's bit for bit on several shapes and dtypes.

Speed comes from loop order, never from reordering a sum:
- `matmul` walks k in order for each output, but streams weight row k once for a block of ROW_BLOCK rows and
  updates that block's outputs across j in a vectorisable inner loop (each y[r, j] still sees k = 0, 1, ... in
  order); blocks run in parallel;
- attention runs one (sequence, head) pair per parallel task and visits only keys j <= i (the reference's extra
  future terms are exact zeros, so skipping them changes nothing); its loops put independent sums in the SIMD
  lanes -- scores with lanes = j (each still adds c = 0 .. dh-1 in order), weighted values with lanes = c (each
  still adds j = 0 .. i in order) -- and its exps (and softmax64's) run as one branch-free pass
  (`_exp64_nonpositive`, the same values as `_exp64`); the key/value cache is laid out [slot, head, block of 64
  positions, dh, position in the block] for keys and [slot, head, position, dh] for values so that both loops read
  memory contiguously, with blocks of 4 positions while a cache holds at most 64 (key_layout), whose four scores
  stay in registers (`_scores_by_fours`); with float32 arithmetic and heads of 64 the decoder's 64 sums of a loop
  stay in registers too, as four `Lanes` (a Numba type that is an LLVM vector of 16 float32: one IEEE operation
  per lane, so each sum keeps its order);
- parallel regions only where they pay: a region costs microseconds to start on an idle machine but about a
  scheduler tick (milliseconds) when the cores are busy, which the short calls of window-by-window coding cannot
  afford. So the cheap row-wise kernels are serial, and matmul and attention use one thread below PARALLEL_WORK
  multiply-adds. Thread counts never change a value (each output's loop order is fixed).
"""
import contextlib
import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, models, overload, register_model

from equalinfo.fast.cpu.threads import one_thread_below
from equalinfo.ref.exact_m1 import (EXACT_M1_VERSION, EXP_COEFFS, EXP_UNDERFLOW, INV_LN2, LN2_HI, LN2_LO, RMS_EPS)  # noqa: F401
from equalinfo.ref.transformer import bucket_table

ROW_BLOCK = 8  # rows that share one pass over a weight row in `matmul`
TASK_BLOCK = 32  # (row, head) tasks of `_attend_newest` that share one set of scratch arrays
QUERY_GROUP = 4  # queries of `_attend` that share each load of a key and of a value row (its loops are written for 4)
KEY_BLOCK = 64  # positions per block of a PrefixRows' key cache (_attend_newest says why blocks)
SMALL_KEY_BLOCK = 4  # positions per block while the cache holds at most KEY_BLOCK positions (key_layout says why)
PARALLEL_WORK = 1 << 22  # multiply-adds below which a call runs on one thread
_COEFFS = np.array(EXP_COEFFS, dtype=np.float64)


@njit(cache=True)
def _exp64(x):
    """ref.exact_m1.exp64 on one float64."""
    if x < EXP_UNDERFLOW:
        return 0.0
    n = math.floor(x * INV_LN2 + 0.5)
    r = (x - n * LN2_HI) - n * LN2_LO
    poly = _COEFFS[0]
    for i in range(1, _COEFFS.size):
        poly = poly * r + _COEFFS[i]
    return math.ldexp(poly, int(n))


@njit(cache=True)
def _exp64_nonpositive(x, n, out, bits):
    """out[j] = _exp64(x[j]) for j < n, for x[j] <= 0 (or -inf): what softmax-style callers pass, scores minus their
    max.   x, out float64 [>= n], bits int64 [>= n] (scratch)

    Pass x and out as DIFFERENT arrays: the same array gives the same values, but ~3.5x slower (7.9 against 2.2 ns
    per exp on 256 values, AMD EPYC Zen 4, /tmp-style loop of 20,000 calls): LLVM vectorises the loop behind a
    run-time check that out does not overlap x, and an array passed as both fails that check, so the scalar loop
    runs. Round 1's callers (attention, softmax64) exponentiated in place and got the scalar loop.

    Why a second exp: `_exp64` ends in math.ldexp, a library call that keeps the compiler from vectorising a loop of
    exps. Here the power of two 2^k is built from its bits instead, so the loop below is branch-free arithmetic that
    LLVM turns into SIMD code. The same values, bit for bit: r and the polynomial are the same operations in the
    same order, and for -700 <= x <= 0, k = floor(x / ln 2 + 1/2) lies in [-1010, 0], so 2^k is a normal float64 and
    poly (e^r, in [0.70, 1.42]) * 2^k >= 2^-1011 is normal too: the multiply is exact, as ldexp is. Below -700 both
    give 0 (tests/test_exact_m1.py compares them on the edges)."""
    for j in range(n):
        v = x[j]
        live = v >= EXP_UNDERFLOW  # False for -inf
        safe = v if live else EXP_UNDERFLOW
        k = np.floor(safe * INV_LN2 + 0.5)
        r = (safe - k * LN2_HI) - k * LN2_LO
        poly = _COEFFS[0]
        for i in range(1, _COEFFS.size):
            poly = poly * r + _COEFFS[i]
        out[j] = poly if live else 0.0
        bits[j] = (np.int64(k) + 1023) << 52  # the bits of the float64 2^k
    powers = bits.view(np.float64)
    for j in range(n):
        out[j] = out[j] * powers[j]


@njit(cache=True)
def _exp64_array(x, out):
    for i in range(x.size):
        out[i] = _exp64(x[i])


def exp64(x):
    """e^x for a float64 array by the exact rule (same values as ref.exact_m1.exp64)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _exp64_array(x.reshape(-1), out.reshape(-1))
    return out


@njit(parallel=True, cache=True)
def _matmul(x, w, y):
    n_rows, n = x.shape
    for block in prange((n_rows + ROW_BLOCK - 1) // ROW_BLOCK):
        first = block * ROW_BLOCK
        last = min(first + ROW_BLOCK, n_rows)
        for r in range(first, last):
            y[r, :] = 0
        for k in range(n):
            w_row = w[k]
            for r in range(first, last):
                x_rk, y_row = x[r, k], y[r]  # 1-D row views: LLVM vectorises the j loop only on these
                for j in range(y_row.size):
                    y_row[j] += x_rk * w_row[j]


@njit  # not cache=True: Numba cannot cache a function that reads the thread pool's state (compiled at first use)
def numba_threads():
    """numba.get_num_threads(), compiled: ~0.2 us a call where the Python function takes ~3 us (it takes two locks
    to check that the pool is started); a decoder's step asks it for every product and attention call."""
    return numba.get_num_threads()


def _threads_for(work):
    """All of Numba's threads for a call of `work` multiply-adds if it is large, else one (nothing to do when the
    pool is already at one thread, as in the decoders' small steps: checked by a compiled call, ~0.2 us)."""
    if numba_threads() == 1:
        return contextlib.nullcontext()
    return one_thread_below(work, PARALLEL_WORK)


def matmul(x, w):
    """y = x @ w with k summed in order.   x [N, n], w [n, m] -> y [N, m]"""
    y = np.empty((x.shape[0], w.shape[1]), dtype=w.dtype)
    with _threads_for(y.size * w.shape[0]):
        _matmul(np.ascontiguousarray(x, dtype=w.dtype), np.ascontiguousarray(w), y)
    return y


@njit(cache=True)
def _rms_norm(x, scale, width, zero, one, eps, y):
    for r in range(x.shape[0]):
        total = zero
        for i in range(x.shape[1]):
            total += x[r, i] * x[r, i]
        inv = one / np.sqrt(total / width + eps)
        for i in range(x.shape[1]):
            y[r, i] = (x[r, i] * inv) * scale[i]


def rms_norm(x, scale):
    """RMSNorm by the exact rule.   x [N, d] -> [N, d]"""
    dtype = x.dtype.type
    y = np.empty_like(x)
    _rms_norm(x, scale, dtype(x.shape[1]), dtype(0), dtype(1), dtype(RMS_EPS), y)
    return y


@njit(parallel=True, cache=True)
def _attend(q, k, v, rel_bias, buckets, scale, zero, out, share_loads=True):
    """out[b, i, h] = softmax-weighted sum of v[b, j <= i, h] by the exact rule.   q, k, v, out [B, T, H, dh]

    Each score q_i . k_j still sums c = 0 .. dh-1 in order; the loops run c outside and j inside over keys stored
    [dh, T], so the inner loop is a vectorisable sweep over independent scores instead of one latency-bound sum.
    Queries go QUERY_GROUP at a time: the keys j <= first (the group's first query) are seen by all four, so one
    load of key_row[j] (and of value row j) serves four independent sums, each still in its own order (c for a
    score, j for an output); the few keys only the later queries see follow, in the same order. Keys and values
    come from L2 at T = 256 (a 3m head's keys are 64 KB), so sharing their loads is what pays: 1.25-1.3x on 8 x 256
    positions (bench/attention_speed.py; bench/README.md, round 4). share_loads=False: one query at a time (the
    same values; the bench's baseline).
    """
    batch, length, n_heads, head_dim = q.shape
    for task in prange(batch * n_heads):
        b, h = task // n_heads, task % n_heads
        keys = np.empty((head_dim, length), dtype=q.dtype)  # [dh, T]
        for j in range(length):
            for c in range(head_dim):
                keys[c, j] = k[b, j, h, c]
        scores = np.empty((QUERY_GROUP, length), dtype=q.dtype)  # a group's scores, then their rounded weights
        shifted = np.empty(length)  # float64 scores - top
        exps = np.empty(length)  # their exps: an array of its own (_exp64_nonpositive says why)
        bits = np.empty(length, dtype=np.int64)
        acc = np.empty((QUERY_GROUP, head_dim), dtype=q.dtype)
        totals = np.empty(QUERY_GROUP, dtype=q.dtype)
        s0, s1, s2, s3 = scores[0], scores[1], scores[2], scores[3]
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        for first in range(0, length, QUERY_GROUP):
            size = min(QUERY_GROUP, length - first)  # queries first .. first + size - 1
            shared = first + 1 if share_loads and size == QUERY_GROUP else 0  # keys j < shared: four queries a load
            for r in range(size):
                for j in range(first + r + 1):
                    scores[r, j] = zero
            for c in range(head_dim if shared else 0):
                key_row = keys[c]
                q0, q1, q2, q3 = q[b, first, h, c], q[b, first + 1, h, c], q[b, first + 2, h, c], q[b, first + 3, h, c]
                for j in range(shared):  # lanes = j; four sums per key load
                    key = key_row[j]
                    s0[j] += q0 * key
                    s1[j] += q1 * key
                    s2[j] += q2 * key
                    s3[j] += q3 * key
            for r in range(size):  # the keys past `shared` that query first + r sees (each score: c in order)
                s_r = scores[r, shared:first + r + 1]  # a slice, so the loop counts from 0: a loop from a variable
                for c in range(head_dim):  # start vectorised poorly (the compiler cannot tell that j >= 0), 5x slower
                    q_rc, key_row = q[b, first + r, h, c], keys[c, shared:first + r + 1]
                    for j in range(s_r.size):
                        s_r[j] += q_rc * key_row[j]
            for r in range(size):
                i, s_r = first + r, scores[r]
                top = -np.inf
                for j in range(i + 1):
                    s_r[j] = s_r[j] * scale + rel_bias[buckets[i, j], h]
                    top = max(top, s_r[j])  # exact in any width
                for j in range(i + 1):
                    shifted[j] = np.float64(s_r[j]) - top
                _exp64_nonpositive(shifted, i + 1, exps, bits)  # all of the query's exps in one SIMD pass
                for j in range(i + 1):
                    s_r[j] = exps[j]  # storing rounds float64 to the dtype
                totals[r] = zero
                for c in range(head_dim):
                    acc[r, c] = zero
            t0, t1, t2, t3 = totals[0], totals[1], totals[2], totals[3]
            for j in range(shared):  # four outputs per value row; each acc[r, c] still sums j in order
                w0, w1, w2, w3 = s0[j], s1[j], s2[j], s3[j]
                t0 += w0
                t1 += w1
                t2 += w2
                t3 += w3
                value_row = v[b, j, h]
                for c in range(head_dim):  # lanes = c
                    value = value_row[c]
                    a0[c] += w0 * value
                    a1[c] += w1 * value
                    a2[c] += w2 * value
                    a3[c] += w3 * value
            if shared:
                totals[0], totals[1], totals[2], totals[3] = t0, t1, t2, t3
            for r in range(size):  # then the values past `shared`, in order
                a_r, s_r, total = acc[r], scores[r], totals[r]
                for j in range(shared, first + r + 1):
                    weight = s_r[j]
                    total += weight
                    value_row = v[b, j, h]
                    for c in range(head_dim):
                        a_r[c] += weight * value_row[c]
                for c in range(head_dim):
                    out[b, first + r, h, c] = a_r[c] / total


def float_product(x, params, name):
    """x @ params[name] by rule 1 (as ref.exact_m1.float_product).   x [N, n] -> [N, m]"""
    return matmul(x, params[name])


def attention(h, params, prefix, cfg, batch, length, product=float_product):
    """Causal multi-head attention with relative bias by the exact rule.   h [B*T, d] -> [B*T, d]"""
    q, k, v = (product(h, params, prefix + name) for name in ("wq", "wk", "wv"))
    return product(attend(q, k, v, params[prefix + "rel_bias"], cfg, batch, length), params, prefix + "wo")


def attend(q, k, v, rel_bias, cfg, batch, length):
    """The heads' softmax-weighted values by the rule.   q, k, v [B*T, H*dh] (row b*T + t) -> [B*T, H*dh]"""
    shape = (batch, length, cfg.n_heads, cfg.head_dim)
    q, k, v = (np.ascontiguousarray(a).reshape(shape) for a in (q, k, v))
    buckets = np.ascontiguousarray(bucket_table(length, cfg.num_buckets, cfg.max_distance))  # [T, T]
    dtype = q.dtype.type
    out = np.empty(shape, dtype=q.dtype)
    with _threads_for(batch * cfg.n_heads * length * length * cfg.head_dim):
        _attend(q, k, v, np.ascontiguousarray(rel_bias), buckets, dtype(1.0 / math.sqrt(cfg.head_dim)), dtype(0), out)
    return out.reshape(batch * length, -1)


@njit(cache=True)
def _gated_relu(gate, up, zero):
    """gate <- max(gate, 0) * up, in place.   gate, up [N, ff]"""
    for r in range(gate.shape[0]):
        for i in range(gate.shape[1]):
            g = gate[r, i]
            gate[r, i] = (g if g > zero else zero) * up[r, i]


def mlp(h, params, prefix, product=float_product):
    """(relu(h W_gate) * (h W_up)) W_down.   h [N, d] -> [N, d]"""
    gate = product(h, params, prefix + "w_gate")
    _gated_relu(gate, product(h, params, prefix + "w_up"), gate.dtype.type(0))
    return product(gate, params, prefix + "w_down")


def logits(params, cfg, inputs, product=float_product):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated), by the exact rule."""
    batch, length = inputs.shape
    x = params["embed"][inputs.reshape(-1)]  # [B*T, d]
    for layer in range(cfg.n_layers):
        prefix = f"blocks.{layer}."
        x += attention(rms_norm(x, params[prefix + "attn_norm"]), params, prefix, cfg, batch, length, product)
        x += mlp(rms_norm(x, params[prefix + "mlp_norm"]), params, prefix, product)
    out = product(rms_norm(x, params["final_norm"]), params, "unembed")
    return out.reshape(batch, length, -1)


@njit(cache=True)
def _softmax64(rows, out):
    bits = np.empty(rows.shape[1], dtype=np.int64)
    shifted = np.empty(rows.shape[1])  # a row minus its max; the exps go to out (not in place: see _exp64_nonpositive)
    for r in range(rows.shape[0]):
        top = -np.inf
        for i in range(rows.shape[1]):
            top = max(top, np.float64(rows[r, i]))
        row = out[r]
        for i in range(rows.shape[1]):
            shifted[i] = np.float64(rows[r, i]) - top
        _exp64_nonpositive(shifted, row.size, row, bits)
        total = 0.0
        for i in range(rows.shape[1]):
            total += row[i]
        for i in range(rows.shape[1]):
            out[r, i] = out[r, i] / total


def softmax64(logit_rows):
    """float64 probabilities of logit rows [..., V] by the exact rule."""
    rows = np.ascontiguousarray(logit_rows)
    out = np.empty(rows.shape, dtype=np.float64)
    _softmax64(rows.reshape(-1, rows.shape[-1]), out.reshape(-1, rows.shape[-1]))
    return out


def next_probs(params, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.exact_m1.next_probs."""
    return softmax64(logits(params, cfg, np.asarray(inputs, dtype=np.int64)))


# ---------------------------------------------------------------------------------------------------------------
# growing many prefixes one input at a time (a key/value cache), with the same bits


def widened(value):
    """A cached key or value as a float: itself if the cache holds floats, else (a bfloat16 cache's uint16, rule 4)
    the float32 whose upper 16 bits it is (exact: a bfloat16 is the upper half of the float32 it stands for).
    Compiled callers get the branch their cache's type needs, no test at run time, and the widening (zero-extend,
    shift, reinterpret) stays inside the SIMD loop that reads the cache."""
    if isinstance(value, np.integer):
        return np.array([np.uint32(value) << 16], dtype=np.uint32).view(np.float32)[0]
    return value


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bits are the uint32 `bits` (LLVM's bitcast: no instruction, no rounding)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@overload(widened)
def _widened(value):
    if isinstance(value, types.Integer):
        return lambda value: _float32_from_bits(np.uint32(value) << np.uint32(16))
    return lambda value: value


@njit(cache=True)
def _scores_by_blocks(q_row, key_head, n, zero, scores):
    """scores[j] = q_row . key j (c = 0 .. dh-1 in order) for j < n, c outside and lanes = positions of a block.
    q_row [dh], key_head [cap/block, dh, block], scores [>= n]"""
    block_size = key_head.shape[2]
    for j in range(n):
        scores[j] = zero
    for kb in range((n + block_size - 1) // block_size):
        block_keys = key_head[kb]  # [dh, block]: positions kb * block_size + l
        start = kb * block_size
        part = scores[start:min(n, start + block_size)]
        for c in range(q_row.size):
            q_c, key_row = q_row[c], block_keys[c]
            for l in range(part.size):  # lanes = positions
                part[l] += q_c * widened(key_row[l])


@njit(cache=True)
def _scores_by_fours(q_row, key_head, n, zero, scores):
    """_scores_by_blocks for blocks of 4 positions (key_layout's small blocks), each block's four sums held in
    registers: `part[l] +=` in a loop over a block's few positions kept every sum in memory, so each step over c
    waited on a store and a load (~10 cycles: ~640 per block), where a register add waits ~3. A block's last
    positions past n are summed too, from whatever the cache holds there (zeros, or an earlier window's keys:
    finite, and never read: each sum is its own lane). scores [>= n rounded up to 4]"""
    for kb in range((n + 3) // 4):
        block_keys = key_head[kb]  # [dh, 4]
        s0 = s1 = s2 = s3 = zero
        for c in range(q_row.size):  # each of the four sums runs c = 0 .. dh-1 in order
            q_c, key_row = q_row[c], block_keys[c]
            s0 += q_c * widened(key_row[0])
            s1 += q_c * widened(key_row[1])
            s2 += q_c * widened(key_row[2])
            s3 += q_c * widened(key_row[3])
        scores[4 * kb], scores[4 * kb + 1], scores[4 * kb + 2], scores[4 * kb + 3] = s0, s1, s2, s3


# Sixteen float32 sums in one SIMD register, for the decoder's attention (`_attend_newest`). Its two loops each
# carry many independent sums -- a block's 64 scores across c, a query's 64 outputs across j -- and written as
# `acc[l] += ...` over an array, every step of the outer loop stores the sums and loads them back (~10 cycles of
# store-to-load latency a step, where a register add waits 3); 64 scalar locals stay in registers but one lane
# each (LLVM's SLP vectoriser does not pack sums that run around a loop). So `Lanes` is a Numba type whose value IS
# an LLVM vector <16 x float> (one AVX-512 register): a loop's Lanes locals live in registers, and each operation
# below is one IEEE operation per lane -- fmul and fadd without fast-math flags, so no FMA and nothing reordered:
# each lane's sum keeps its own order, exactly as the array loops did.
LANES = 16
_LANES_IR = ir.VectorType(ir.FloatType(), LANES)


class Lanes(types.Type):
    """The Numba type of 16 float32 lanes (LLVM <16 x float>); made by `_lanes` and `_load_pair`."""

    def __init__(self):
        super().__init__(name="Lanes(float32 x 16)")


lanes_type = Lanes()
register_model(Lanes)(lambda dmm, fe_type: models.PrimitiveModel(dmm, fe_type, _LANES_IR))


@intrinsic
def _lanes(typingctx, value):
    """Lanes all holding the float32 `value`."""
    def codegen(context, builder, signature, args):
        one = builder.insert_element(ir.Constant(_LANES_IR, ir.Undefined), args[0], ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
    return lanes_type(types.float32), codegen


def _is_row(row, dtypes):
    return isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C" and row.dtype in dtypes


@intrinsic
def _load_pair(typingctx, row, start):
    """row[start : start + 32] as two Lanes, `widened`.   row: a contiguous 1-D float32 or uint16 array; the caller
    keeps start + 32 <= row.size (nothing checks)

    float32: (positions start + 0..15, start + 16..31). uint16 (a bfloat16 cache): (the even positions start + 0, 2,
    .., 30, the odd ones start + 1, 3, .., 31), from one 64-byte load of 16 uint32 words: a word's low half is an
    even position, its high half the next odd one, and `half << 16` or `word & 0xFFFF0000` is each one's float32 --
    two cheap lane-wise operations, where widening 16 uint16 into 16 uint32 in place (zero-extend) is a shuffle,
    which this CPU runs at half the rate (it was the loops' bottleneck). Any order of lanes is fine as long as
    `_store_pair` undoes it: each lane is its own sum."""
    if not _is_row(row, (types.float32, types.uint16)):
        return None
    wide = row.dtype == types.uint16

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.gep(data, [args[1]])
        if wide:
            words = builder.load(builder.bitcast(address, ir.VectorType(ir.IntType(32), LANES).as_pointer()), align=1)
            evens = builder.shl(words, ir.Constant(words.type, [16] * LANES))
            odds = builder.and_(words, ir.Constant(words.type, [0xFFFF0000] * LANES))
            pair = (builder.bitcast(evens, _LANES_IR), builder.bitcast(odds, _LANES_IR))
        else:
            first = builder.bitcast(address, _LANES_IR.as_pointer())
            second = builder.bitcast(builder.gep(address, [ir.Constant(ir.IntType(64), LANES)]), _LANES_IR.as_pointer())
            pair = (builder.load(first, align=1), builder.load(second, align=1))
        return context.make_tuple(builder, signature.return_type, pair)
    return types.UniTuple(lanes_type, 2)(row, types.intp), codegen


@intrinsic
def _store_pair(typingctx, row, start, first, second, source):
    """row[start : start + 32] = the 32 sums that `_load_pair(source, ...)` ordered as (first, second): for a
    uint16 source interleaved back into positions (two shuffles, once per 32 sums).   row: contiguous 1-D float32,
    start + 32 <= row.size (unchecked); source: only its type matters"""
    if not (_is_row(row, (types.float32,)) and _is_row(source, (types.float32, types.uint16))):
        return None
    wide = source.dtype == types.uint16

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.gep(data, [args[1]])
        low, high = args[2], args[3]
        if wide:  # (evens, odds) -> (positions 0..15, 16..31)
            indices = ir.VectorType(ir.IntType(32), LANES)
            low, high = (builder.shuffle_vector(args[2], args[3], ir.Constant(indices, [
                k // 2 + (LANES if k % 2 else 0) + half * LANES // 2 for k in range(LANES)])) for half in (0, 1))
        builder.store(low, builder.bitcast(address, _LANES_IR.as_pointer()), align=1)
        builder.store(high, builder.bitcast(builder.gep(address, [ir.Constant(ir.IntType(64), LANES)]),
                                            _LANES_IR.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.none(row, types.intp, lanes_type, lanes_type, source), codegen


@intrinsic
def _add_lanes(typingctx, a, b):
    """a + b, lane by lane (LLVM's fadd without fast-math flags: each lane one IEEE add)"""
    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])
    return lanes_type(lanes_type, lanes_type), codegen


@intrinsic
def _mul_lanes(typingctx, a, b):
    """a * b, lane by lane (fmul without fast-math flags: never fused with an add)"""
    def codegen(context, builder, signature, args):
        return builder.fmul(args[0], args[1])
    return lanes_type(lanes_type, lanes_type), codegen


@njit(cache=True)
def _scores_in_lanes(q_row, key_head, n, scores):
    """_scores_by_blocks for float32 arithmetic and blocks of 64 positions, a block's sums held in Lanes (registers)
    while c runs 0 .. dh-1: four Lanes (64 positions), or two where the block's positions below n fit in 32. The
    positions past n in the last Lanes are summed too, from whatever the cache holds there (each lane is its own
    sum: never read).   q_row float32 [dh], key_head [cap/64, dh, 64] float32 or uint16, scores float32 [>= n
    rounded up to 64]"""
    zeros, block = _lanes(np.float32(0)), 4 * LANES
    for kb in range((n + block - 1) // block):
        block_keys = key_head[kb]  # [dh, 64]
        start = kb * block
        s0 = s1 = s2 = s3 = zeros  # positions start + 0..31 as (s0, s1), 32..63 as (s2, s3): _load_pair's order
        if n - start > 2 * LANES:
            for c in range(q_row.size):
                q_c, key_row = _lanes(q_row[c]), block_keys[c]
                k0, k1 = _load_pair(key_row, 0)
                k2, k3 = _load_pair(key_row, 2 * LANES)
                s0 = _add_lanes(s0, _mul_lanes(q_c, k0))
                s1 = _add_lanes(s1, _mul_lanes(q_c, k1))
                s2 = _add_lanes(s2, _mul_lanes(q_c, k2))
                s3 = _add_lanes(s3, _mul_lanes(q_c, k3))
            _store_pair(scores, start + 2 * LANES, s2, s3, key_head[0, 0])
        else:  # half a block: half the work (a decoder's last block is half full on average)
            for c in range(q_row.size):
                q_c = _lanes(q_row[c])
                k0, k1 = _load_pair(block_keys[c], 0)
                s0 = _add_lanes(s0, _mul_lanes(q_c, k0))
                s1 = _add_lanes(s1, _mul_lanes(q_c, k1))
        _store_pair(scores, start, s0, s1, key_head[0, 0])


@njit(cache=True)
def _values_in_lanes(exps, value_head, n, zero, out_row):
    """out_row[c] = (sum over j < n, in order, of weight_j * value j's c) / (sum of weights_j, in order), weight_j =
    exps[j] rounded to float32, for a head of 64: its 64 sums held in four Lanes (registers) while j runs.
    exps float64 [>= n], value_head [cap, 64] float32 or uint16, out_row float32 [64]"""
    a0 = a1 = a2 = a3 = _lanes(zero)  # outputs 0..31 as (a0, a1), 32..63 as (a2, a3): _load_pair's order
    total = zero
    for j in range(n):
        weight = np.float32(exps[j])  # rounds float64 to float32, as storing into a float32 array does
        total += weight
        w, value_row = _lanes(weight), value_head[j]
        v0, v1 = _load_pair(value_row, 0)
        v2, v3 = _load_pair(value_row, 2 * LANES)
        a0 = _add_lanes(a0, _mul_lanes(w, v0))
        a1 = _add_lanes(a1, _mul_lanes(w, v1))
        a2 = _add_lanes(a2, _mul_lanes(w, v2))
        a3 = _add_lanes(a3, _mul_lanes(w, v3))
    _store_pair(out_row, 0, a0, a1, value_head[0])
    _store_pair(out_row, 2 * LANES, a2, a3, value_head[0])
    for c in range(out_row.size):
        out_row[c] = out_row[c] / total


@njit(cache=True)
def _values_by_rows(exps, value_head, n, zero, weights, acc, out_row):
    """_values_in_lanes for any dtype and head size: acc[c] += weight * value row j's c, lanes = c (each output
    still adds j = 0 .. n-1 in order); weights [>= n] scratch of the dtype (storing rounds exps to it), acc [dh]"""
    total = zero
    for c in range(acc.size):
        acc[c] = zero
    for j in range(n):
        weights[j] = exps[j]  # storing rounds float64 to the dtype
        weight = weights[j]
        total += weight
        value_row = value_head[j]
        for c in range(acc.size):  # lanes = c
            acc[c] += weight * widened(value_row[c])
    for c in range(acc.size):
        out_row[c] = acc[c] / total


def _task_scores(q_row, key_head, n, zero, scores):
    """One (row, head) task's scores by the loop that fits its arithmetic and key blocks (compiled only)."""


@overload(_task_scores, inline="always")
def _task_scores_for(q_row, key_head, n, zero, scores):
    if zero == types.float32 and key_head.layout == "C" and scores.layout == "C":  # Lanes for blocks of 64
        def in_lanes(q_row, key_head, n, zero, scores):
            if key_head.shape[2] == 4 * LANES:
                _scores_in_lanes(q_row, key_head, n, scores)
            elif key_head.shape[2] == 4:
                _scores_by_fours(q_row, key_head, n, zero, scores)
            else:
                _scores_by_blocks(q_row, key_head, n, zero, scores)
        return in_lanes

    def by_blocks(q_row, key_head, n, zero, scores):
        if key_head.shape[2] == 4:
            _scores_by_fours(q_row, key_head, n, zero, scores)
        else:
            _scores_by_blocks(q_row, key_head, n, zero, scores)
    return by_blocks


def _task_values(exps, value_head, n, zero, weights, acc, out_row):
    """One task's weighted values by the loop that fits its arithmetic and head size (compiled only)."""


@overload(_task_values, inline="always")
def _task_values_for(exps, value_head, n, zero, weights, acc, out_row):
    if zero == types.float32 and value_head.layout == "C" and out_row.layout == "C":  # Lanes for heads of 64
        def in_lanes(exps, value_head, n, zero, weights, acc, out_row):
            if out_row.size == 4 * LANES:
                _values_in_lanes(exps, value_head, n, zero, out_row)
            else:
                _values_by_rows(exps, value_head, n, zero, weights, acc, out_row)
        return in_lanes
    return lambda exps, value_head, n, zero, weights, acc, out_row: _values_by_rows(exps, value_head, n, zero,
                                                                                      weights, acc, out_row)


@njit(parallel=True, cache=True)
def _attend_newest(q, keys, values, slots, lengths, bias, scale, zero, out):
    """Attention of each slot's newest position i = lengths[a] over its cached keys j <= i, by the exact rule.

    q, out [A, H, dh]; keys [S, H, capacity/block, dh, block] (position j is keys[..., j // block, :, j % block]) and
    values [S, H, capacity, dh] (positions 0..i already written); bias [H, capacity] holds the relative bias by
    distance reversed: bias[h, capacity-1-d] for distance d, so that query i reads keys j = 0..i's biases as the
    contiguous bias[h, capacity-1-i : capacity].
    The sums are _attend's, term for term, in the same order; only the loops are turned so that the hardware's SIMD
    lanes hold independent sums: the scores with c outside and lanes = j (each score still adds c = 0 .. dh-1 in
    order), the exps in one vectorised pass, and the weighted values with lanes = c (each output still adds
    j = 0 .. i in order, reading value row j contiguously). Why the keys come in blocks of positions: a decoder's
    caches outgrow the CPU's caches (13 slots of the shipped M1: ~7 MB a layer), so attention waits on memory, and a
    [dh, capacity] layout made each query read 64 short runs (key row c's first i+1 positions) that the hardware's
    prefetcher follows poorly; a block [dh, block] is one contiguous run, and a query reads its blocks in order
    (bench/attention_speed.py, bench/README.md round 4: a decoder's attention ~1.2x faster). With float32
    arithmetic both loops hold their sums in registers (`_scores_in_lanes`, `_values_in_lanes`: bench/README.md
    round 7, a rule-4 decoder's attention ~1.4-1.5x faster).
    """
    n_rows, n_heads, head_dim = q.shape
    block_size = keys.shape[4]
    capacity = keys.shape[2] * block_size
    n_tasks = n_rows * n_heads
    n_blocks = (n_tasks + TASK_BLOCK - 1) // TASK_BLOCK
    for block in prange(n_blocks):  # scratch arrays once per block of tasks, not per task (allocations add up)
        scores = np.empty(capacity, dtype=q.dtype)  # scores, then (overwritten) their weights rounded to the dtype
        shifted = np.empty(capacity)  # float64 scores - top
        exps = np.empty(capacity)  # their exps (an array of its own: _exp64_nonpositive says why)
        bits = np.empty(capacity, dtype=np.int64)
        acc = np.empty(head_dim, dtype=q.dtype)
        for task in range(block * TASK_BLOCK, min(n_tasks, (block + 1) * TASK_BLOCK)):
            a, h = task // n_heads, task % n_heads
            slot, i = slots[a], lengths[a]
            n = i + 1
            key_head, value_head, bias_head = keys[slot, h], values[slot, h], bias[h]  # [cap/blk, dh, blk], ...
            _task_scores(q[a, h], key_head, n, zero, scores)
            first = capacity - n  # bias_head[first + j] is distance i - j's bias
            top = -np.inf
            for j in range(n):
                scores[j] = scores[j] * scale + bias_head[first + j]
                top = max(top, scores[j])  # exact in any width
            for j in range(n):
                shifted[j] = np.float64(scores[j]) - top
            _exp64_nonpositive(shifted, n, exps, bits)
            _task_values(exps, value_head, n, zero, scores, acc, out[a, h])


@njit(cache=True)
def take_positions(lengths, slots, counts, positions):
    """positions[a] = the position slots[a]'s entry takes (its slot's length plus its earlier entries in slots), and
    lengths += each slot's entries; returns the largest position (-1 for no entries), or -2 if a slot is out of
    range (nothing changed then). counts int64 [S]: scratch, all zero on entry and on return.

    Why compiled: a decoder's step is one or a few rows, where NumPy's argsort/searchsorted/add.at cost more than
    the step's arithmetic (bench/README.md, rule 3 round 2); this is one call."""
    n_slots = lengths.shape[0]
    for a in range(slots.shape[0]):
        if slots[a] < 0 or slots[a] >= n_slots:
            return -2
    top = -1
    for a in range(slots.shape[0]):
        s = slots[a]
        positions[a] = lengths[s] + counts[s]
        counts[s] += 1
        top = max(top, positions[a])
    for a in range(slots.shape[0]):
        s = slots[a]
        lengths[s] += counts[s]  # a repeated slot adds its count once: its counts[s] is 0 afterwards
        counts[s] = 0
    return top


def narrowed(value, cache):
    """A key or value as `cache` holds it: itself, or for a bfloat16 cache (uint16: rule 4, whose keys and values
    are bfloat16 values) the upper 16 bits of its float32 (exact: the lower 16 are zero). `widened` undoes it."""
    if np.issubdtype(cache.dtype, np.integer):
        return np.uint16(np.array([value], dtype=np.float32).view(np.uint32)[0] >> 16)
    return value


@intrinsic
def _bits_of_float32(typingctx, value):
    """The uint32 bits of the float32 `value` (LLVM's bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


@overload(narrowed)
def _narrowed(value, cache):
    if isinstance(cache.dtype, types.Integer):
        return lambda value, cache: np.uint16(_bits_of_float32(np.float32(value)) >> np.uint32(16))
    return lambda value, cache: value


@njit(cache=True)
def _store_newest(keys, values, slots, positions, k, v):
    """Position positions[a] of slot slots[a]: its key k[a] into the key blocks, its value v[a] into values (one
    compiled pass; `narrowed` to a bfloat16 cache's 16 bits).   keys [S, H, cap/block, dh, block], values
    [S, H, cap, dh], k, v [A, H, dh]"""
    block_size = keys.shape[4]
    for a in range(slots.shape[0]):
        s, p = slots[a], positions[a]
        kb, l = p // block_size, p % block_size
        for h in range(k.shape[1]):
            for c in range(k.shape[2]):
                keys[s, h, kb, c, l] = narrowed(k[a, h, c], keys)
                values[s, h, p, c] = narrowed(v[a, h, c], values)


def key_layout(capacity, block=KEY_BLOCK, small_block=SMALL_KEY_BLOCK):
    """(capacity, block) of a key cache that holds at least `capacity` positions, rounded up to whole blocks: blocks
    of `block` positions beyond `block` positions, of `small_block` up to there. block=None: always one block, the
    layout before blocks ([dh, capacity] per slot and head; bench/attention_speed.py).

    Why small blocks for small caches: an Equal-Info decoder's slots hold a few positions each (b=16 windows:
    ~4.5 symbols), and a block [dh, block] puts each of its dh key rows on its own cache line once block * 4 bytes
    reaches 64: one block of 16 positions made every query read 64 lines of keys, and every new key write 64
    lines, whatever its few positions; blocks of 4 positions are 16 lines each (bench/README.md, round 6)."""
    if block is None:
        return capacity, capacity
    size = block if capacity > block else min(small_block, block)
    return -(-capacity // size) * size, size


def regrouped(keys, capacity, block):
    """The key cache keys [S, H, blocks, dh, old block] moved into a larger one [S, H, capacity/block, dh, block],
    position by position (positions past the old capacity are left unwritten: only those below a slot's length
    are ever read). One copy in the two cases growth brings (a decoder's caches grow often: window by window)."""
    n_slots, n_heads, n_blocks, head_dim, old_block = keys.shape
    # zeros, not garbage, where no key is yet: _scores_by_fours sums a block's unused positions too (never read)
    grown = np.zeros((n_slots, n_heads, capacity // block, head_dim, block), dtype=keys.dtype)
    if old_block == block:  # whole blocks move as they are
        grown[:, :, :n_blocks] = keys
    elif n_blocks == 1 and old_block < block:  # a small cache's one block is the start of the first block
        grown[:, :, 0, :, :old_block] = keys[:, :, 0]
    else:  # any other regrouping (a layout changed between growths): through positions
        by_position = keys.transpose(0, 1, 3, 2, 4).reshape(n_slots, n_heads, head_dim, -1)  # [S, H, dh, old cap]
        for start in range(0, by_position.shape[3], block):
            part = by_position[..., start:start + block]
            grown[:, :, start // block, :, :part.shape[3]] = part
    return grown


class LayerNames:
    """The parameter names of one block (prefix 'blocks.{i}.'), made once per grower: a decoder's step would
    otherwise build them anew for every layer (string work that is a visible share of a one-row step)."""

    def __init__(self, prefix):
        self.attn_norm, self.mlp_norm = prefix + "attn_norm", prefix + "mlp_norm"
        self.qkv = (prefix + "wq", prefix + "wk", prefix + "wv")
        self.wo, self.gate_up, self.w_down = prefix + "wo", (prefix + "w_gate", prefix + "w_up"), prefix + "w_down"


class PrefixRows:
    """Rows of many sequences ("slots") grown a few inputs at a time, each layer's keys and values kept.

    A decoder learns a window's symbols one by one; re-evaluating the whole prefix for each costs L^2/2 positions
    per window of L symbols, keeping each position's keys and values costs L. An encoder, which knows the text,
    may add several inputs to a slot in one call. Every operation of the exact rule is per position except
    attention, which reads the cached keys and values of earlier positions -- the same values a full evaluation
    computes -- in the same order, so `extend` returns exactly next_probs' rows (tested). The matrix products go
    through `_products` (the products that read the same rows, q/k/v and gate/up, asked together, so that a rule
    may quantize the rows once and run one GEMM against the weights side by side: every output column is its own
    exact sum, so putting columns together changes no bit) and `_product`, which the growers of rule 2
    (fast/cpu/integer_m1.py) and rule 3 (fast/cpu/int8_m1.py) override, as they may `rms_norm` and `softmax64`.
    """

    rms_norm = staticmethod(rms_norm)
    softmax64 = staticmethod(softmax64)
    key_block = KEY_BLOCK  # positions per block of the key cache (key_layout)
    # True for a rule whose keys and values are bfloat16 values (rule 4): a float32 M1's caches then hold their
    # upper 16 bits (uint16), half the bytes attention reads per step, widened back exactly (`widened`)
    bfloat16_cache = False

    def __init__(self, params, cfg, n_slots, capacity=8):
        self.params, self.cfg = params, cfg
        dtype = params["embed"].dtype
        dtype = np.uint16 if self.bfloat16_cache and dtype == np.float32 else dtype
        capacity, block = key_layout(capacity, self.key_block)
        self.capacity = capacity
        shape = (n_slots, cfg.n_heads)
        # keys [S, H, capacity/block, dh, block] (in each block a key row c runs over the block's positions), values
        # [S, H, capacity, dh]: the layouts _attend_newest's SIMD loops read contiguously
        self.keys = [np.zeros(shape + (capacity // block, cfg.head_dim, block), dtype=dtype)  # see regrouped
                     for _ in range(cfg.n_layers)]
        self.values = [np.empty(shape + (capacity, cfg.head_dim), dtype=dtype) for _ in range(cfg.n_layers)]
        self.lengths = np.zeros(n_slots, dtype=np.int64)
        self._counts = np.zeros(n_slots, dtype=np.int64)  # take_positions' scratch
        self._layer_names = [LayerNames(f"blocks.{layer}.") for layer in range(cfg.n_layers)]  # once, not per step
        self.bias = None
        self._grow(capacity)

    def _grow(self, capacity):
        if capacity > self.capacity:
            capacity, block = key_layout(capacity, self.key_block)
            for layer in range(self.cfg.n_layers):
                self.keys[layer] = regrouped(self.keys[layer], capacity, block)
                old = self.values[layer]
                self.values[layer] = np.empty(old.shape[:2] + (capacity,) + old.shape[3:], dtype=old.dtype)
                self.values[layer][:, :, :old.shape[2]] = old
            self.capacity = capacity
        distances = np.arange(self.capacity)
        buckets = bucket_table(self.capacity, self.cfg.num_buckets, self.cfg.max_distance)[distances, 0]  # [cap]
        self.bias = [np.ascontiguousarray(self.params[f"blocks.{layer}.rel_bias"][buckets[::-1]].T)
                     for layer in range(self.cfg.n_layers)]  # [H, capacity], distance reversed (_attend_newest)

    def _product(self, x, name):
        """x @ params[name] by the rule.   x [A, n] -> [A, m]"""
        return matmul(x, self.params[name])

    def _products(self, x, names):
        """x @ params[name] for each of names, the same bits as `_product` one by one.   x [A, n] -> [[A, m], ...]"""
        return [self._product(x, name) for name in names]

    def reset(self, slots):
        """Start these slots' sequences afresh (their next input is position 0)."""
        self.lengths[slots] = 0

    def positions(self, slots):
        """The position each entry of slots [A] will take: a slot's length, plus its earlier entries in slots."""
        order = np.argsort(slots, kind="stable")
        ranked = slots[order]
        rank = np.empty(len(slots), dtype=np.int64)
        rank[order] = np.arange(len(slots)) - np.searchsorted(ranked, ranked, side="left")
        return self.lengths[slots] + rank

    def _place(self, slots):
        """(positions [A], the largest) the entries of slots [A] (int64) take, counted into `lengths`; the caches
        grown first if the largest is past their capacity."""
        positions = np.empty(len(slots), dtype=np.int64)
        top = take_positions(self.lengths, slots, self._counts, positions)  # lengths then counts the inputs
        if top == -2:
            raise IndexError(f"slots must lie in [0, {len(self.lengths)})")
        if top >= self.capacity:
            self._grow(max(2 * self.capacity, top + 1))
        return positions, top

    def extend(self, slots, inputs):
        """float64 rows [A, vocab_out] after appending inputs [A] to slots [A].

        A slot may appear several times: its inputs are appended in the order they appear (an encoder's
        lookahead); the rows are those of the prefixes ending at each appended input.
        """
        slots, inputs = np.asarray(slots, dtype=np.int64), np.asarray(inputs, dtype=np.int64)
        positions, top = self._place(slots)
        params, cfg = self.params, self.cfg
        dtype = params["embed"].dtype.type
        n_rows = len(slots)
        x = params["embed"][inputs]  # [A, d]
        for layer, names in enumerate(self._layer_names):
            h = self.rms_norm(x, params[names.attn_norm])
            q, k, v = (np.ascontiguousarray(y).reshape(n_rows, cfg.n_heads, cfg.head_dim)
                       for y in self._products(h, names.qkv))
            _store_newest(self.keys[layer], self.values[layer], slots, positions, k, v)  # every new key and value
            attended = np.empty_like(q)  # is in place before any query reads it
            with _threads_for(n_rows * cfg.n_heads * (top + 1) * cfg.head_dim):
                _attend_newest(q, self.keys[layer], self.values[layer], slots, positions, self.bias[layer],
                               dtype(1.0 / math.sqrt(cfg.head_dim)), dtype(0), attended)
            x += self._product(attended.reshape(n_rows, -1), names.wo)
            h = self.rms_norm(x, params[names.mlp_norm])
            gate, up = (np.ascontiguousarray(y) for y in self._products(h, names.gate_up))
            _gated_relu(gate, up, dtype(0))
            x += self._product(gate, names.w_down)
        return self.softmax64(self._product(self.rms_norm(x, params["final_norm"]), "unembed"))
