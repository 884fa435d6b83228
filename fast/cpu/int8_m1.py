"""NumPy-BLAS + Numba twin of ref/int8_m1.py: M1's rows by exact rule 3, bit for bit, at sgemm speed.

Read ref/int8_m1.py for the rule and its exactness bound. Here:
- one compiled pass quantizes a block of rows and splits them (`_quantize_split`): the high halves land in rows
  0..N-1 of one array and the low halves in rows N..2N-1, so that each K-chunk of a product is ONE GEMM of 2N
  int8-valued rows: by default NumPy's `@` on float32 (OpenBLAS's sgemm with whatever kernel, blocking and thread
  count it picks: every partial sum is an integer <= 2^24, so all of them give the same, exact integers), or,
  where the optional extra is installed and passes its self-check, onnxruntime's integer GEMM on the halves as
  uint8 (half + 128) -- fast/cpu/int8_gemm.py chooses, and says why both are exact;
- one compiled pass combines the halves, 128 * P_hi + P_lo, in float64 and rescales, (acc * s_j) * 2^e_r, one
  rounding to the dtype, straight into each product's own contiguous array (`_rescale_split_parts`: q, k and v
  leave one GEMM without a copy); a product of more than one chunk first adds the chunks' exact integers up in
  float64 (`_accumulate_split`);
- the quantizing pass finds each row's max |x| as an integer max over the floats' bits (sign cleared), which the
  compiler vectorises where it does not vectorise a float max; the same max, so the same bits (tested);
- the elementwise rest is rule 1's Numba code (fast/cpu/exact_m1.py: attention and the gated ReLU), with RMSNorm and
  the final softmax vectorized across rows: ROWS_PER_BLOCK rows share each step of their (still left-to-right)
  sums, so that the compiler's SIMD lanes hold rows instead of waiting on one row's chain of dependent adds. Each
  row's own sequence of roundings is rule 1's, so no bit changes (tested against ref).
The float32 (and contiguous int8) copies of the stored int8 weights, cut into K-chunks, are made once and kept; the
products that read the same rows (q, k, v; gate, up) keep theirs side by side and run as one quantizing pass and one
GEMM per K-chunk (`int8_products`).
`PrefixRows` is fast/cpu/exact_m1.PrefixRows with these products: the key/value-cached grower the coders use.
"""
import dataclasses
import math

import numpy as np
from numba import njit

from equalinfo.fast.cpu import exact_m1, int8_gemm, vnni_gemm
from equalinfo.fast.cpu.exact_m1 import _exp64_nonpositive, _gated_relu, attend
from equalinfo.ref.exact_m1 import RMS_EPS
from equalinfo.ref.int8_rows_m1 import to_bfloat16
from equalinfo.ref.int8_m1 import (CHUNK, EXACT_M1_VERSION, FRACTION_BITS, ROW_MAX, SPLIT, check_exact,  # noqa: F401
                                   chunks)

ROWS_PER_BLOCK = 16  # rows whose fixed-order sums advance together in the vectorized elementwise kernels


@dataclasses.dataclass(frozen=True)
class RowRule:
    """What an int8-product rule keeps of a row and how its products end: rule 3 (here) and rule 4
    (fast/cpu/int8_rows_m1.py) share every kernel below and differ only in these fields.
    fraction_bits, row_max: quantize_rows' widths; halves: int8 GEMM rows per row (2: hi and lo, 1: the row
    itself); bfloat16: the products (last name component) whose outputs are rounded to bfloat16."""
    fraction_bits: int
    row_max: int
    halves: int
    bfloat16: tuple = ()

    def rounds(self, name):
        return bool(self.bfloat16) and name.rsplit(".", 1)[-1] in self.bfloat16


RULE = RowRule(FRACTION_BITS, ROW_MAX, halves=2)  # rule 3


@njit(cache=True)
def _quantize_split(x, x_bits, mask, cell, cell_bits, both, exponents, offset, fraction_bits, row_max, halves):
    """Rows r of x -> their integers (rule 3: 14-bit, split in halves; rule 4: 7-bit, whole) plus offset: with two
    halves both[r] = hi + offset, both[N + r] = lo + offset (ref.int8_m1.quantize_rows, split_rows); with one,
    both[r] = x_int + offset (ref.int8_rows_m1.quantize_rows). offset 0 into float32 for sgemm, 128 into uint8 for
    an integer GEMM. x [N, n] in the dtype, both [halves * N, n] float32 or uint8, exponents int64 [N]; x_bits: x
    viewed as the signed integers of its width, mask their sign bit cleared; cell, cell_bits: one scratch value of
    x's dtype and the same memory as an integer.

    Why the row's max goes through the bits: the compiler does not vectorise a float max (NaN rules), but for
    non-NaN floats |a| < |b| exactly when the bits of |a| (sign cleared) are smaller as integers, and an integer max
    vectorises. The max found is the same float, so e_r is integer_m1.row_exponent's."""
    n_rows = x.shape[0]
    for r in range(n_rows):
        row_bits = x_bits[r]
        top = row_bits[0] & mask
        for k in range(1, row_bits.size):
            b = row_bits[k] & mask
            top = b if b > top else top
        cell_bits[0] = top
        largest = np.float64(cell[0])  # max_k |x[r, k]|
        e = math.frexp(largest)[1] - fraction_bits if largest > 0 else 0
        exponents[r] = e
        scale = math.ldexp(1.0, -e)  # a power of two: the multiply below is exact
        row, first = x[r], both[r]
        if halves == 1:
            for k in range(row.size):  # an integer in [-127, 127] (+ 128: [1, 255]): exact in either dtype
                first[k] = min(max(np.rint(np.float64(row[k]) * scale), -row_max), row_max) + offset
            continue
        lo_row = both[n_rows + r]
        for k in range(row.size):
            v = min(max(np.rint(np.float64(row[k]) * scale), -row_max), row_max)
            hi = math.trunc(v / SPLIT)
            first[k] = hi + offset  # an integer in [-127, 127] (+ 128: [1, 255]): exact in either dtype
            lo_row[k] = v - SPLIT * hi + offset


@njit(cache=True)
def _accumulate_split(partial, acc, halves):
    """acc += 128 * P_hi + P_lo (two halves) or P (one), exact integers in float64.
    partial float32 or int32 [halves * N, m], acc float64 [N, m]"""
    n_rows = acc.shape[0]
    for r in range(n_rows):
        if halves == 1:
            for j in range(acc.shape[1]):
                acc[r, j] += np.float64(partial[r, j])
            continue
        for j in range(acc.shape[1]):
            acc[r, j] += SPLIT * np.float64(partial[r, j]) + np.float64(partial[n_rows + r, j])


@njit(cache=True)
def _rescale_split(partial, scale, exponents, y):
    """y[r, j] = dtype(((128 * P_hi + P_lo) * s_j) * 2^e_r) for a one-chunk product.
    partial float32 or int32 [2N, m] (sgemm's or an integer GEMM's exact integers)"""
    n_rows = y.shape[0]
    for r in range(n_rows):
        power = math.ldexp(1.0, exponents[r])
        for j in range(y.shape[1]):
            acc = SPLIT * np.float64(partial[r, j]) + np.float64(partial[n_rows + r, j])
            y[r, j] = (acc * scale[j]) * power


@njit(cache=True)
def _rescale_split_parts(partial, scale, exponents, parts, halves, first=0):
    """_rescale_split into the products' own arrays: parts[p] takes columns [start_p, start_p + m_p) of the side-by-
    side product, so no copy is needed to hand each product out contiguous (the same operations per element). With
    one half (rule 4) acc is P itself. partial float32 or int32 [halves * n, >= m_1 + m_2 + ...] holds rows
    first .. first + n - 1 of the product (all of them unless a caller goes by chunks), parts a tuple of [N, m_p]
    arrays in the dtype, or one array [P, N, m] when every m_p = m"""
    n_rows = partial.shape[0] // halves
    start = 0
    for p in range(len(parts)):
        y = parts[p]
        for r in range(n_rows):
            power = math.ldexp(1.0, exponents[first + r])
            y_row, scale_p = y[first + r], scale[start:start + y.shape[1]]
            first_half = partial[r, start:start + y.shape[1]]
            if halves == 1:
                for j in range(y_row.size):
                    y_row[j] = (np.float64(first_half[j]) * scale_p[j]) * power
                continue
            lo = partial[n_rows + r, start:start + y.shape[1]]
            for j in range(y_row.size):
                acc = SPLIT * np.float64(first_half[j]) + np.float64(lo[j])
                y_row[j] = (acc * scale_p[j]) * power
        start += y.shape[1]


@njit(cache=True)
def _rescale_parts(acc, scale, exponents, parts):
    """fast.cpu.integer_m1._rescale (y = dtype((acc * s_j) * 2^e_r)) into the products' own arrays, as
    _rescale_split_parts.   acc float64 [N, m_1 + m_2 + ...], parts a tuple of [N, m_p] arrays in the dtype
    (or [P, N, m])"""
    start = 0
    for p in range(len(parts)):
        y = parts[p]
        for r in range(acc.shape[0]):
            power = math.ldexp(1.0, exponents[r])
            for j in range(y.shape[1]):
                y[r, j] = (acc[r, start + j] * scale[start + j]) * power
        start += y.shape[1]


_SIGN_MASKS = {4: (np.int32, np.int32(0x7FFFFFFF)), 8: (np.int64, np.int64(0x7FFFFFFFFFFFFFFF))}  # float32, float64
_SCRATCH = {}  # (dtype, GEMM name) -> (integer dtype, sign mask, one-value cell, its bits, the halves' offset)


def _scratch(dtype, gemm):
    """_quantize_split's extra arguments for rows of `dtype` going to `gemm`, made once per pair (a decoder
    quantizes 13 small blocks of rows per symbol): (integer dtype, sign mask, cell, its bits, the halves' offset)."""
    scratch = _SCRATCH.get((dtype, gemm.name))
    if scratch is None:
        integer, mask = _SIGN_MASKS[dtype.itemsize]
        cell = np.empty(1, dtype=dtype)
        scratch = _SCRATCH[(dtype, gemm.name)] = (integer, mask, cell, cell.view(integer),
                                                 gemm.row_dtype(gemm.row_offset))
    return scratch


def quantize_split(x, gemm=int8_gemm.SGEMM, rule=RULE):
    """(both [halves * N, n], e int64 [N]): the rule's row integers (rule 3: their split halves, hi rows first),
    in the form `gemm` reads (fast.cpu.int8_gemm: float32 for sgemm, uint8 + 128 for onnxruntime and vnni)."""
    x = np.ascontiguousarray(x)
    both = np.empty((rule.halves * x.shape[0], x.shape[1]), dtype=gemm.row_dtype)
    exponents = np.empty(x.shape[0], dtype=np.int64)
    if x.size == 0:
        return both, exponents
    integer, mask, cell, cell_bits, offset = _scratch(x.dtype, gemm)
    _quantize_split(x, x.view(integer), mask, cell, cell_bits, both, exponents, offset, rule.fraction_bits,
                    rule.row_max, rule.halves)
    return both, exponents


VNNI_CHUNK_ROWS = 16  # rows of x per kernel call of `_vnni_products` (their int32 results stay in L2)


@njit(cache=True)
def _vnni_products(x, x_bits, mask, cell, cell_bits, fraction_bits, row_max, halves, address, packed, corr, scale,
                   parts):
    """quantize -> the VNNI kernel -> rescale into parts, one compiled call (a decoder's product of a few rows: three
    calls from Python and their arrays cost about as much as the kernel). The same passes as the three steps the
    other GEMMs take (_quantize_split, fast.cpu.vnni_gemm.gemm_into, _rescale_split_parts), so the same bits.
    The kernel runs VNNI_CHUNK_ROWS rows (and their low halves) at a time and each chunk is rescaled at once: one
    int32 result of all 256 rows' halves of gate/up (512 x 2048, 4 MB) went to memory and back, which made an
    Equal-Info decoder's products 1.6x slower than onnxruntime's (bench/README.md, round 7).
    x [N, n] contiguous, packed/corr a PackedWeights' arrays, parts as _rescale_split_parts'"""
    n_rows = x.shape[0]
    both = np.empty((halves * n_rows, x.shape[1]), dtype=np.uint8)
    exponents = np.empty(n_rows, dtype=np.int64)
    _quantize_split(x, x_bits, mask, cell, cell_bits, both, exponents, np.uint8(vnni_gemm.ZERO_POINT),
                    fraction_bits, row_max, halves)
    chunk = min(n_rows, VNNI_CHUNK_ROWS)
    out = np.empty((halves * chunk, corr.shape[0]), dtype=np.int32)
    for first in range(0, n_rows, chunk):
        count = min(chunk, n_rows - first)
        vnni_gemm.gemm_into(address, both[first:first + count], packed, corr, out[:count])
        if halves == 2:  # the low halves' rows come after every high half's in `both`
            vnni_gemm.gemm_into(address, both[n_rows + first:n_rows + first + count], packed, corr,
                                out[count:2 * count])
        _rescale_split_parts(out[:halves * count], scale, exponents, parts, halves, first)


def quantize_rows(x):
    """(x_int float64 [N, n], e int64 [N]): ref.int8_m1.quantize_rows' integers, rebuilt from the split halves."""
    both, exponents = quantize_split(x)
    n_rows = len(exponents)
    return SPLIT * both[:n_rows].astype(np.float64) + both[n_rows:], exponents


_WEIGHT_CACHE = {}  # ids of int8 arrays -> (the arrays, their scales, K-chunks side by side, scales side by side)
_SEEN = {}  # (id(qparams), names) -> (qparams, [(key, array)], the result): skips rebuilding the key on every call


def side_by_side(qparams, names):
    """([(float32 [K_c, m_1 + m_2 + ...], int8 [K_c, m_1 + ...]) per K-chunk], float64 scales [m_1 + ...],
    widths (m_1, m_2, ...)) of the stored int8 weights of `names` (products of the same rows) with their columns
    side by side, made once and kept (float32 for sgemm, int8 for an integer GEMM: fast.cpu.int8_gemm)."""
    names = tuple(names)
    seen = _SEEN.get((id(qparams), names))  # the fast path: this dict asked these names before, arrays unchanged
    if seen is not None and seen[0] is qparams and all(qparams[name] is array for name, array in seen[1]):
        return seen[2]
    arrays = tuple(qparams[name + ".int"] for name in names)
    scales = tuple(qparams[name + ".scale"] for name in names)
    key = tuple(map(id, arrays))
    cached = _WEIGHT_CACHE.get(key)
    if cached is None or any(a is not b for a, b in zip(cached[0] + cached[1], arrays + scales)):
        w_int = np.concatenate(arrays, axis=1)  # [n, m_1 + m_2 + ...]
        check_exact(w_int.shape[0])
        cached = (arrays, scales, [(np.ascontiguousarray(w_int[chunk], dtype=np.float32),
                                    np.ascontiguousarray(w_int[chunk], dtype=np.int8)) for chunk in chunks(
            w_int.shape[0])], np.ascontiguousarray(np.concatenate(scales)))
        _WEIGHT_CACHE[key] = cached  # the arrays, kept here, keep their ids unique
    _SEEN[(id(qparams), names)] = (qparams, [(name + suffix, qparams[name + suffix]) for name in names
                                             for suffix in (".int", ".scale")],
                                    (cached[2], cached[3], tuple(a.shape[1] for a in arrays)))
    return cached[2], cached[3], tuple(a.shape[1] for a in arrays)


class Products:
    """The products of `names`, which read the same rows, by `rule`: their int8 weights side by side (one GEMM per
    K-chunk), planned once. Calling it on rows x [N, n] quantizes them once and gives [[N, m_1], [N, m_2], ...] in
    x's dtype, each contiguous: each output column is its own exact integer, so the bits are int8_matmul's one
    product at a time. The GEMM is fast.cpu.int8_gemm's choice (sgemm or onnxruntime's integer GEMM): both give
    the exact integers. Why a plan: a decoder's step runs 13 products of a few rows each, where finding the
    weights and the rounded parts anew cost a few microseconds a product (bench/README.md, round 5)."""

    def __init__(self, qparams, names, rule=RULE):
        self.weights, self.scale, self.widths = side_by_side(qparams, names)
        self.rule = rule
        self.rounded = tuple(p for p, name in enumerate(names) if rule.rounds(name))  # parts rounded to bfloat16
        self.same_width = min(self.widths) == max(self.widths)

    def __call__(self, x):
        rule, scale = self.rule, self.scale
        gemm = int8_gemm.choose(rule.halves * x.shape[0], x.shape[1], scale.shape[0])
        # q/k/v, gate/up: one [P, N, m] block whose [N, m] slices are the contiguous parts (a compiled call takes
        # one array faster than a tuple of P arrays); products of different widths get a tuple
        if self.same_width:
            parts = np.empty((len(self.widths), x.shape[0], self.widths[0]), dtype=x.dtype)
        else:
            parts = tuple(np.empty((x.shape[0], width), dtype=x.dtype) for width in self.widths)
        if gemm is int8_gemm.VNNI and len(self.weights) == 1 and x.size:
            self._vnni_call(x, parts)  # quantize, kernel and rescale in one compiled call
        elif len(self.weights) == 1:
            both, exponents = quantize_split(x, gemm, rule)
            _rescale_split_parts(gemm.products(both, *self.weights[0]), scale, exponents, parts, rule.halves)
        else:
            both, exponents = quantize_split(x, gemm, rule)
            acc = np.zeros((x.shape[0], scale.shape[0]))
            start = 0
            for w_f32, w_i8 in self.weights:
                _accumulate_split(gemm.products(np.ascontiguousarray(both[:, start:start + w_f32.shape[0]]), w_f32,
                                                w_i8), acc, rule.halves)
                start += w_f32.shape[0]
            _rescale_parts(acc, scale, exponents, parts)
        for p in self.rounded:
            round_to_bfloat16(parts[p])
        return list(parts)

    def _vnni_call(self, x, parts):
        """The one-chunk product through `_vnni_products` (the weights packed for the kernel at the first call)."""
        if self.__dict__.get("_packed") is None:
            self._packed = vnni_gemm.packed_for(self.weights[0][1])
            self._address = vnni_gemm.address()
        x = np.ascontiguousarray(x)
        integer, mask, cell, cell_bits, _ = _scratch(x.dtype, int8_gemm.VNNI)
        _vnni_products(x, x.view(integer), mask, cell, cell_bits, self.rule.fraction_bits, self.rule.row_max,
                       self.rule.halves, self._address, self._packed.packed, self._packed.corr, self.scale, parts)


def int8_products(x, qparams, names, rule=RULE):
    """[x @ W for W of names] by rule 3 (or `rule`), the rows quantized once and one GEMM per K-chunk against the
    weights side by side (`Products`).   x [N, n] -> [[N, m_1], [N, m_2], ...] in x's dtype, each contiguous"""
    return Products(qparams, names, rule)(x)


@njit(cache=True)
def _round_bits_to_bfloat16(bits):
    """float32 bits b -> (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000 in place (ref.int8_rows_m1.to_bfloat16),
    in 64-bit arithmetic as ref computes it.   bits uint32, any shape, contiguous"""
    flat = bits.reshape(-1)
    for i in range(flat.size):
        b = np.uint64(flat[i])
        flat[i] = np.uint32((b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) & np.uint64(0xFFFF0000))


def round_to_bfloat16(y):
    """y rounded to the nearest bfloat16 in place, ties to even (rule 4's keys and values).   y contiguous"""
    if y.dtype == np.float32:
        _round_bits_to_bfloat16(y.view(np.uint32))
    else:  # a float64 M1 (tests' toy models): through float32, as ref
        y[...] = to_bfloat16(y)


def int8_matmul(x, qparams, name, rule=RULE):
    """y = x @ W by rule 3 or `rule` (W as qparams[name + '.int'] and '.scale').   x [N, n] -> [N, m] in x's dtype"""
    return int8_products(x, qparams, [name], rule)[0]


# ---------------------------------------------------------------------------------------------------------------
# rule 1's row-wise reductions, many rows side by side (each row's roundings unchanged)


@njit(cache=True)
def _rms_norm_rows(x, scale, width, zero, one, eps, y):
    """y = RMSNorm(x) * scale by rule 1, ROWS_PER_BLOCK rows per pass over i.   x, y [N, d]"""
    n_rows, d = x.shape
    total = np.empty(ROWS_PER_BLOCK, dtype=x.dtype)
    for first in range(0, n_rows, ROWS_PER_BLOCK):
        rows = min(ROWS_PER_BLOCK, n_rows - first)
        for b in range(rows):
            total[b] = zero
        for i in range(d):  # each row's sum still runs i = 0 .. d-1; the rows are independent SIMD lanes
            for b in range(rows):
                v = x[first + b, i]
                total[b] += v * v
        for b in range(rows):
            inv = one / np.sqrt(total[b] / width + eps)
            for i in range(d):
                y[first + b, i] = (x[first + b, i] * inv) * scale[i]


def rms_norm(x, scale):
    """RMSNorm by rule 1 (the same bits as fast.cpu.exact_m1.rms_norm).   x [N, d] -> [N, d]"""
    dtype = x.dtype.type
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _rms_norm_rows(x, scale, dtype(x.shape[1]), dtype(0), dtype(1), dtype(RMS_EPS), y)
    return y


@njit(cache=True)
def _softmax64_rows(rows, out):
    """float64 softmax of each row by rule 1 (sum in index order), ROWS_PER_BLOCK rows per pass.   [N, V]"""
    n_rows, width = rows.shape
    top = np.empty(ROWS_PER_BLOCK)
    total = np.empty(ROWS_PER_BLOCK)
    bits = np.empty(width, dtype=np.int64)
    shifted = np.empty(width)  # a row minus its max; its exps go to out (not in place: see _exp64_nonpositive)
    for first in range(0, n_rows, ROWS_PER_BLOCK):
        count = min(ROWS_PER_BLOCK, n_rows - first)
        for b in range(count):
            best = -np.inf
            for i in range(width):
                best = max(best, np.float64(rows[first + b, i]))
            top[b] = best
            row = out[first + b]
            for i in range(width):
                shifted[i] = np.float64(rows[first + b, i]) - best
            _exp64_nonpositive(shifted, width, row, bits)  # one SIMD pass (fast/cpu/exact_m1.py)
            total[b] = 0.0
        for i in range(width):  # the rows' sums side by side, each in index order
            for b in range(count):
                total[b] += out[first + b, i]
        for b in range(count):
            for i in range(width):
                out[first + b, i] = out[first + b, i] / total[b]


def softmax64(logit_rows):
    """float64 probabilities of logit rows [..., V] by rule 1 (the same bits as fast.cpu.exact_m1.softmax64)."""
    rows = np.ascontiguousarray(logit_rows)
    out = np.empty(rows.shape, dtype=np.float64)
    _softmax64_rows(rows.reshape(-1, rows.shape[-1]), out.reshape(-1, rows.shape[-1]))
    return out


def logits(qparams, cfg, inputs, *, rule=RULE):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated): ref.int8_m1.logits' forward pass (or
    `rule`'s), with fast.cpu.exact_m1's attention and gated ReLU, the row-vectorized RMSNorm, and q/k/v and
    gate/up each computed as one product (`int8_products`)."""
    batch, length = inputs.shape
    x = qparams["embed"][inputs.reshape(-1)]  # [B*T, d]
    for layer in range(cfg.n_layers):
        prefix = f"blocks.{layer}."
        q, k, v = int8_products(rms_norm(x, qparams[prefix + "attn_norm"]), qparams,
                                [prefix + name for name in ("wq", "wk", "wv")], rule)
        x += int8_matmul(attend(q, k, v, qparams[prefix + "rel_bias"], cfg, batch, length), qparams, prefix + "wo",
                         rule)
        gate, up = int8_products(rms_norm(x, qparams[prefix + "mlp_norm"]), qparams,
                                 [prefix + "w_gate", prefix + "w_up"], rule)
        _gated_relu(gate, up, gate.dtype.type(0))
        x += int8_matmul(gate, qparams, prefix + "w_down", rule)
    out = int8_matmul(rms_norm(x, qparams["final_norm"]), qparams, "unembed", rule)
    return out.reshape(batch, length, -1)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.int8_m1.next_probs."""
    return softmax64(logits(qparams, cfg, np.asarray(inputs, dtype=np.int64)))


class PrefixRows(exact_m1.PrefixRows):
    """Rule 3's key/value-cached grower: fast.cpu.exact_m1.PrefixRows with int8-valued products (q/k/v and gate/up
    one product each) and the row-vectorized RMSNorm and softmax (the same bits as next_probs, tested). A subclass
    with another `rule` is that rule's grower (fast/cpu/int8_rows_m1.py)."""

    rule = RULE
    rms_norm = staticmethod(rms_norm)
    softmax64 = staticmethod(softmax64)

    def _planned(self, names):
        """The Products of names (a tuple, or one name), planned at their first use by this grower."""
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(names)
        if plan is None:
            plan = plans[names] = Products(self.params, (names,) if isinstance(names, str) else names, self.rule)
        return plan

    def _product(self, x, name):
        return self._planned(name)(x)[0]

    def _products(self, x, names):
        return self._planned(tuple(names))(x)
