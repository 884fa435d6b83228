"""GPU twin of ref/int8_m1.py: M1's rows by exact rule 3 with float32 cuBLAS products, bit for bit with ref and cpu.

Read ref/int8_m1.py for the rule and its exactness bound. On the device (fast/gpu/device.py: CuPy on a GPU,
NumPy under numba's CUDA simulator):
- each product is two float32 GEMMs per K-chunk of at most 1040 terms, `xp.matmul` on float32 arrays holding
  int8 values, i.e. cuBLAS's SGEMM. Every partial sum is an integer of magnitude <= 2^24 whatever the kernel's
  order, blocking or split-K, so any SGEMM algorithm gives the same exact integers. This twin does not enable
  TF32 (CuPy uses it only when CUPY_TF32=1 is set; its inputs would be exact in TF32 too, but ref/int8_m1.py says
  why a tensor core's float32 accumulation needs a per-GPU check before it is relied on).
- the chunks' results are combined in float64 (128 * P_hi + P_lo per chunk, chunks in order, from +0 as ref):
  integers far below 2^53, so exact; quantizing a row, splitting it and rescaling are array expressions of single
  IEEE operations with no additions to fuse (abs, max, frexp, ldexp, rint, clip, trunc, two multiplies in separate
  kernels);
- RMSNorm, attention, the gated ReLU, the residual adds and softmax64 are rule 1's numba.cuda kernels
  (fast/gpu/exact_m1.py), which keep every rounding with explicitly rounded intrinsics.
The faster path ref/int8_m1.py names (int8 tensor cores with int32 accumulation, cuBLASLt IMMA) gives the same
integers; CuPy has no int8 GEMM of its own, so it waits for a measurement on a GPU that shows it pays.
Public functions take and return NumPy, like fast/cpu/int8_m1.py's; the weights' float32 chunks stay on the device
(cached per host array).
"""
import numpy as np

from equalinfo.fast.gpu import device
from equalinfo.fast.gpu import integer_m1
from equalinfo.fast.gpu.exact_m1 import rule_functions
from equalinfo.ref.int8_m1 import (EXACT_M1_VERSION, FRACTION_BITS, ROW_MAX, SPLIT, check_exact,  # noqa: F401
                                   chunks)

_WEIGHT_CACHE = {}  # id(int8 host array) -> (that array, [its float32 device chunk [k, m] per K-chunk])


def _float32_chunks(w_int):
    """The float32 device copies of a stored int8 weight matrix's K-chunks, made once."""
    cached = _WEIGHT_CACHE.get(id(w_int))
    if cached is None or cached[0] is not w_int:
        check_exact(w_int.shape[0])
        w = np.asarray(w_int, dtype=np.float32)
        cached = (w_int, [device.asarray(np.ascontiguousarray(w[chunk])) for chunk in chunks(w.shape[0])])
        _WEIGHT_CACHE[id(w_int)] = cached
    return cached[1]


def _quantize_rows_dev(x):
    """(x_int float64, e int64 [N]) as ref.int8_m1.quantize_rows, on the device: rule 2's step with 14 bits."""
    return integer_m1._quantize_rows_dev(x, FRACTION_BITS, ROW_MAX)


def _sum_over_chunks(w_chunks, n_rows, part):
    """acc float64 [N, m] = the sum, chunk after chunk, of part(start, stop, w) for each K-chunk w = W_int[start:stop]
    (a float64 array of exact integers), starting from +0 as ref does (so an all-zero sum is +0.0, never -0.0).
    Rule 3 passes its two GEMMs per chunk; rule 4 (fast/gpu/int8_rows_m1.py) its one."""
    xp = device.xp()
    acc = xp.zeros((n_rows, w_chunks[0].shape[1]))
    start = 0
    for w in w_chunks:  # chunks in order, each combined exactly in float64
        stop = start + w.shape[0]
        acc += part(start, stop, w)
        start = stop
    return acc


def _split_product_dev(x_int, w_chunks):
    """acc float64 [N, m] = x_int @ W_int from float32 GEMMs of int8-valued halves, as ref.int8_m1.split_product."""
    xp = device.xp()
    hi = xp.trunc(x_int / SPLIT)  # exact: a division by a power of two, then the fraction dropped
    lo = (x_int - SPLIT * hi).astype(np.float32)
    hi = hi.astype(np.float32)

    def part(start, stop, w):  # SGEMMs: exact integers, any order
        return SPLIT * xp.matmul(hi[:, start:stop], w).astype(np.float64) + xp.matmul(lo[:, start:stop], w).astype(
            np.float64)

    return _sum_over_chunks(w_chunks, x_int.shape[0], part)


def _int8_matmul_dev(x, qparams, name):
    """y = x @ W by rule 3 on the device.   x [N, n] -> [N, m] in x's dtype"""
    x_int, e = _quantize_rows_dev(x)
    acc = _split_product_dev(x_int, _float32_chunks(qparams[name + ".int"]))
    return integer_m1._rescale_dev(acc, qparams[name + ".scale"], e, x.dtype)


def quantize_rows(x):
    """(x_int float64 [N, n], e int64 [N]) of a NumPy x [N, n], computed on the device; as ref.int8_m1.quantize_rows."""
    x_int, e = _quantize_rows_dev(device.asarray(np.ascontiguousarray(x)))
    return np.asarray(device.host(x_int)), np.asarray(device.host(e))


def host_product(product_dev, x, qparams, name):
    """product_dev(x, qparams, name) for a NumPy x [N, n] and host qparams, run on the device, returned as NumPy
    (the public products of rules 3 and 4)."""
    stored = {name + ".int": qparams[name + ".int"], name + ".scale": device.asarray(qparams[name + ".scale"])}
    return np.asarray(device.host(product_dev(device.asarray(np.ascontiguousarray(x)), stored, name)))


def int8_matmul(x, qparams, name):
    """y = x @ W by rule 3 for a NumPy x [N, n], on the device; as ref.int8_m1.int8_matmul."""
    return host_product(_int8_matmul_dev, x, qparams, name)


_logits, _next_probs_on_device, _next_probs = rule_functions(_int8_matmul_dev, integer_m1._device_params)


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated); as ref.int8_m1.logits."""
    return _logits(qparams, cfg, inputs)


def next_probs_on_device(qparams, cfg, inputs):
    """float64 probabilities [B*T, vocab_out] left on the device (for callers that quantize there)."""
    return _next_probs_on_device(qparams, cfg, inputs)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.int8_m1.next_probs."""
    return _next_probs(qparams, cfg, inputs)
