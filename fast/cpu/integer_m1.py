"""NumPy-BLAS + Numba twin of ref/integer_m1.py: M1's rows by exact rule 2, bit for bit, at dgemm speed.

Read ref/integer_m1.py for the rule and its exactness bound. Here:
- the integer products go to NumPy's `@` on float64 arrays holding integers, i.e. OpenBLAS's dgemm with whatever
  kernel, blocking and thread count it picks: every partial sum is an integer below 2^53, so all of them give the
  same, exact acc;
- quantizing a row (its max, frexp, the power-of-two scaling, rint, the clip) and rescaling (two float64
  multiplies, one rounding to the dtype) are one compiled pass each, the same IEEE operations as ref's NumPy;
- everything else is rule 1's Numba code (fast/cpu/exact_m1.py): RMSNorm, attention, the gated ReLU, softmax64.
The float64 copies of the stored int16 weights are made once per weight array and kept (`_float64_weights`).
`PrefixRows` is fast/cpu/exact_m1.PrefixRows with the integer products: the key/value-cached grower that lets the
decoder and the encoder evaluate about one M1 position per coded symbol.
"""
import math

import numpy as np
from numba import njit

from equalinfo.fast.cpu import exact_m1
from equalinfo.fast.cpu.exact_m1 import softmax64
from equalinfo.ref.integer_m1 import EXACT_M1_VERSION, FRACTION_BITS, INT_MAX, check_exact  # noqa: F401


@njit(cache=True)
def row_exponent(x, r, fraction_bits):
    """e_r of row r of x: its largest |x| * 2^-e_r in [2^(fraction_bits-1), 2^fraction_bits), 0 for a zero row
    (ref.integer_m1.row_exponents; rule 3 passes its 14 bits)."""
    top = 0.0
    for k in range(x.shape[1]):
        top = max(top, abs(np.float64(x[r, k])))
    if top > 0:
        return math.frexp(top)[1] - fraction_bits
    return 0


@njit(cache=True)
def _quantize_rows(x, x_int, exponents):
    """x_int[r] = clip(rint(x[r] * 2^-e_r), -INT_MAX, INT_MAX), e_r from the row's max (ref.integer_m1)."""
    for r in range(x.shape[0]):
        e = row_exponent(x, r, FRACTION_BITS)
        exponents[r] = e
        scale = math.ldexp(1.0, -e)  # a power of two: the multiply below is exact
        for k in range(x.shape[1]):
            v = np.rint(np.float64(x[r, k]) * scale)
            x_int[r, k] = min(max(v, -INT_MAX), INT_MAX)


@njit(cache=True)
def _rescale(acc, scale, exponents, y):
    """y[r, j] = dtype((acc[r, j] * scale[j]) * 2^e_r).   acc [N, m] float64, y [N, m] in the dtype"""
    for r in range(acc.shape[0]):
        power = math.ldexp(1.0, exponents[r])
        for j in range(acc.shape[1]):
            y[r, j] = (acc[r, j] * scale[j]) * power


def quantize_rows(x):
    """(x_int float64 [N, n], e int64 [N]) as ref.integer_m1.quantize_rows."""
    x = np.ascontiguousarray(x)
    x_int = np.empty(x.shape, dtype=np.float64)
    exponents = np.empty(x.shape[0], dtype=np.int64)
    _quantize_rows(x, x_int, exponents)
    return x_int, exponents


_WEIGHT_CACHE = {}  # id(int16 array) -> (int16 array, float64 copy); the array is kept so that its id stays unique


def _float64_weights(w_int):
    """The float64 copy of a stored int16 weight matrix, made once."""
    cached = _WEIGHT_CACHE.get(id(w_int))
    if cached is None or cached[0] is not w_int:
        check_exact(w_int.shape[0])
        cached = (w_int, np.ascontiguousarray(w_int, dtype=np.float64))
        _WEIGHT_CACHE[id(w_int)] = cached
    return cached[1]


def int_matmul(x, qparams, name):
    """y = x @ W by rule 2 (W as qparams[name + '.int'] and '.scale').   x [N, n] -> [N, m] in x's dtype"""
    x_int, exponents = quantize_rows(x)
    acc = x_int @ _float64_weights(qparams[name + ".int"])  # dgemm: exact integers, any order (ref.integer_m1)
    y = np.empty(acc.shape, dtype=x.dtype)
    _rescale(acc, np.ascontiguousarray(qparams[name + ".scale"]), exponents, y)
    return y


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated): fast.cpu.exact_m1's forward pass with
    every matrix product by `int_matmul`, as ref.integer_m1.logits."""
    return exact_m1.logits(qparams, cfg, inputs, product=int_matmul)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.integer_m1.next_probs."""
    return softmax64(logits(qparams, cfg, np.asarray(inputs, dtype=np.int64)))


class PrefixRows(exact_m1.PrefixRows):
    """Rule 2's key/value-cached grower: fast.cpu.exact_m1.PrefixRows with integer products (same bits as
    next_probs, tested)."""

    def _product(self, x, name):
        return int_matmul(x, self.params, name)
