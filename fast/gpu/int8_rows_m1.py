"""GPU twin of ref/int8_rows_m1.py: M1's rows by exact rule 4 with float32 cuBLAS products, bit for bit with ref.

Read ref/int8_rows_m1.py for the rule and its exactness bound. Rule 4 is rule 3's twin (fast/gpu/int8_m1.py) with
three changes, so this module keeps only those and borrows the rest:
- rows are quantized to 7 bits (int8 values in [-127, 127]): rule 2's device step (fast/gpu/integer_m1.py) with
  rule 4's fraction_bits and row_max;
- each product is ONE float32 GEMM per K-chunk of at most 1040 terms, on the int8-valued row itself (no split):
  `xp.matmul` on float32 arrays, i.e. cuBLAS's SGEMM, exact whatever its order, blocking or split-K (every partial
  sum is an integer of magnitude <= 1040 * 127 * 127 <= 2^24); the chunks' results are summed in float64, in
  order, from +0, as ref does (fast/gpu/int8_m1.py's `_sum_over_chunks`, over the same cached float32 weight
  chunks: rules 3 and 4 read the same int8 arrays). As for rule 3, TF32 stays off;
- the outputs of the key and value products (`wk`, `wv`) are rounded to bfloat16, ties to even, by ref's bit
  formula b' = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000 on the 32 bits b of float32(y), computed on the device
  with integer operations on a uint32 view (`_to_bfloat16_dev`). uint32 arithmetic wraps where ref's uint64 does
  not (only for b >= 0xFFFF8000, negative NaNs), but the mask keeps only bits 16..31, which are the same modulo
  2^32: the bits are ref's for every input. Nothing is left to a float conversion whose rounding a library
  might choose.
The rescale (rule 3's two multiplies) is fast/gpu/integer_m1.py's `_rescale_dev`; RMSNorm, attention, the gated
ReLU, the residual adds and softmax64 are rule 1's numba.cuda kernels (fast/gpu/exact_m1.py), which read the
bfloat16-valued keys and values as the float32 arrays they are. A cache holding their upper 16 bits is a later
optimization of a grower; these functions recompute the whole prefix, as rule 3's twin does.
Public functions take and return NumPy, like rule 3's twin.
"""
import numpy as np

from equalinfo.fast.gpu import device, int8_m1, integer_m1
from equalinfo.fast.gpu.exact_m1 import rule_functions
from equalinfo.ref.int8_rows_m1 import EXACT_M1_VERSION, FRACTION_BITS, ROW_MAX, rounds_to_bfloat16  # noqa: F401

_ROUNDING_BIAS = np.uint32(0x7FFF)  # half a bfloat16 step less one unit: the +1 of an odd mantissa makes ties even
_KEPT_BITS = np.uint32(0xFFFF0000)  # sign, exponent and the 7 mantissa bits bfloat16 keeps


def _quantize_rows_dev(x):
    """(x_int float64, e int64 [N]) as ref.int8_rows_m1.quantize_rows, on the device: rule 2's step with 7 bits."""
    return integer_m1._quantize_rows_dev(x, FRACTION_BITS, ROW_MAX)


def _chunked_product_dev(x_int, w_chunks):
    """acc float64 [N, m] = x_int @ W_int, one float32 GEMM per K-chunk, as ref.int8_rows_m1.chunked_product."""
    xp = device.xp()
    rows = x_int.astype(np.float32)  # int8 values: exact in float32

    def part(start, stop, w):  # SGEMM: exact integers, any order
        return xp.matmul(rows[:, start:stop], w).astype(np.float64)

    return int8_m1._sum_over_chunks(w_chunks, x_int.shape[0], part)


def _to_bfloat16_dev(y):
    """y rounded to the nearest bfloat16 (ties to even) through float32, in y's dtype: ref.int8_rows_m1.to_bfloat16's
    bits, by integer operations on the device."""
    bits = y.astype(np.float32).view(np.uint32)
    rounded = (bits + _ROUNDING_BIAS + ((bits >> np.uint32(16)) & np.uint32(1))) & _KEPT_BITS
    return rounded.view(np.float32).astype(y.dtype)


def _int8_rows_matmul_dev(x, qparams, name):
    """y = x @ W by rule 4 on the device (keys and values then rounded to bfloat16).   x [N, n] -> [N, m]"""
    x_int, e = _quantize_rows_dev(x)
    acc = _chunked_product_dev(x_int, int8_m1._float32_chunks(qparams[name + ".int"]))
    y = integer_m1._rescale_dev(acc, qparams[name + ".scale"], e, x.dtype)
    return _to_bfloat16_dev(y) if rounds_to_bfloat16(name) else y


def quantize_rows(x):
    """(x_int float64 [N, n], e int64 [N]) of a NumPy x [N, n], computed on the device; as
    ref.int8_rows_m1.quantize_rows."""
    x_int, e = _quantize_rows_dev(device.asarray(np.ascontiguousarray(x)))
    return np.asarray(device.host(x_int)), np.asarray(device.host(e))


def to_bfloat16(y):
    """A NumPy y rounded to bfloat16 on the device; as ref.int8_rows_m1.to_bfloat16 (tests check the device's bits
    on edge values: ties, subnormals, infinities)."""
    return np.asarray(device.host(_to_bfloat16_dev(device.asarray(np.ascontiguousarray(y)))))


def int8_rows_matmul(x, qparams, name):
    """y = x @ W by rule 4 for a NumPy x [N, n], on the device; as ref.int8_rows_m1.int8_rows_matmul."""
    return int8_m1.host_product(_int8_rows_matmul_dev, x, qparams, name)


_logits, _next_probs_on_device, _next_probs = rule_functions(_int8_rows_matmul_dev, integer_m1._device_params)


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated); as ref.int8_rows_m1.logits."""
    return _logits(qparams, cfg, inputs)


def next_probs_on_device(qparams, cfg, inputs):
    """float64 probabilities [B*T, vocab_out] left on the device (for callers that quantize there)."""
    return _next_probs_on_device(qparams, cfg, inputs)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.int8_rows_m1.next_probs."""
    return _next_probs(qparams, cfg, inputs)
