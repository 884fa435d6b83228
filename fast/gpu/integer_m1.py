"""GPU twin of ref/integer_m1.py: M1's rows by exact rule 2 with cuBLAS products, bit for bit with ref and fast/cpu.

Read ref/integer_m1.py for the rule and its exactness bound. On the device (fast/gpu/device.py: CuPy on a GPU,
NumPy under numba's CUDA simulator):
- the integer products are `xp.matmul` on float64 arrays holding integers, i.e. cuBLAS's DGEMM (on an H100/H200
  it may run on the FP64 tensor cores, with fused multiply-adds and any blocking): every partial sum is an integer
  below 2^53, so every algorithm gives the same exact acc. No TF32 or reduced-precision mode applies to float64.
- quantizing a row and rescaling are array expressions of single IEEE operations with no additions (abs, max,
  frexp, ldexp by a power of two, rint, clip, two multiplies in separate kernels, one rounding to the dtype), so
  no multiply-add can be fused and each result is the correctly rounded one, as in ref's NumPy;
- RMSNorm, attention, the gated ReLU, the residual adds and softmax64 are rule 1's numba.cuda kernels
  (fast/gpu/exact_m1.py), which keep every rounding with explicitly rounded intrinsics.
A faster product for a later version of this twin: split each int16 operand into a signed high byte and an
unsigned low byte and run int8 tensor-core GEMMs with int32 accumulation (each partial |sum| < n * 2^15 < 2^31),
combining the four partial products in int64 -- exact too, so the same acc.
Public functions take and return NumPy, like fast/cpu/integer_m1.py's; the weights' float64 copies stay on the
device (cached per host array).
"""
import numpy as np

from equalinfo.fast.gpu import device
from equalinfo.fast.gpu.exact_m1 import _weights, rule_functions
from equalinfo.ref.integer_m1 import EXACT_M1_VERSION, FRACTION_BITS, INT_MAX, check_exact  # noqa: F401

_WEIGHT_CACHE = {}  # id(int16 host array) -> (that array, its float64 device copy)


def _float64_weights(w_int):
    """The float64 device copy of a stored int16 weight matrix, made once."""
    cached = _WEIGHT_CACHE.get(id(w_int))
    if cached is None or cached[0] is not w_int:
        check_exact(w_int.shape[0])
        cached = (w_int, device.asarray(np.ascontiguousarray(w_int, dtype=np.float64)))
        _WEIGHT_CACHE[id(w_int)] = cached
    return cached[1]


def _quantize_rows_dev(x, fraction_bits=FRACTION_BITS, row_max=INT_MAX):
    """(x_int float64, e int64 [N]) as ref.integer_m1.quantize_rows, on the device (rule 3 passes its own
    fraction_bits and row_max: fast/gpu/int8_m1.py)."""
    xp = device.xp()
    top = xp.abs(x).max(axis=1).astype(np.float64)  # exact
    exponent = xp.frexp(top)[1].astype(np.int64)
    e = xp.where(top > 0, exponent - fraction_bits, 0)
    scaled = xp.ldexp(x.astype(np.float64), (-e)[:, None].astype(np.int32))  # exact: a power-of-two scaling
    return xp.clip(xp.rint(scaled), -row_max, row_max), e


def _int_matmul_dev(x, qparams, name):
    """y = x @ W by rule 2 on the device.   x [N, n] -> [N, m] in x's dtype"""
    xp = device.xp()
    x_int, e = _quantize_rows_dev(x)
    acc = xp.matmul(x_int, _float64_weights(qparams[name + ".int"]))  # DGEMM: exact integers, any order
    return _rescale_dev(acc, qparams[name + ".scale"], e, x.dtype)


def _rescale_dev(acc, scale, e, dtype):
    """y = dtype((acc * scale_j) * 2^e_r), as ref's rules 2 and 3 rescale an exact product acc [N, m]."""
    xp = device.xp()
    scaled = acc * scale[None, :]  # one rounded multiply (its own kernel: nothing to fuse)
    power = xp.ldexp(xp.ones(e.shape, dtype=np.float64), e.astype(np.int32))  # 2^e_r, exact
    return (scaled * power[:, None]).astype(dtype)


def quantize_rows(x):
    """(x_int float64 [N, n], e int64 [N]) of a NumPy x [N, n], computed on the device; as
    ref.integer_m1.quantize_rows (the conformance vectors check this step on its own)."""
    x_int, e = _quantize_rows_dev(device.asarray(np.ascontiguousarray(x)))
    return np.asarray(device.host(x_int)), np.asarray(device.host(e))


def int_matmul(x, qparams, name):
    """y = x @ W by rule 2 for a NumPy x [N, n], on the device; as ref.integer_m1.int_matmul."""
    stored = {name + ".int": qparams[name + ".int"], name + ".scale": device.asarray(qparams[name + ".scale"])}
    return np.asarray(device.host(_int_matmul_dev(device.asarray(np.ascontiguousarray(x)), stored, name)))


def _device_params(qparams):
    """Float arrays on the device (cached); the int16 matrices stay host keys of _float64_weights' cache."""
    floats = _weights({name: value for name, value in qparams.items() if not name.endswith(".int")})
    floats.update({name: value for name, value in qparams.items() if name.endswith(".int")})
    return floats


_logits, _next_probs_on_device, _next_probs = rule_functions(_int_matmul_dev, _device_params)


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated); as ref.integer_m1.logits."""
    return _logits(qparams, cfg, inputs)


def next_probs_on_device(qparams, cfg, inputs):
    """float64 probabilities [B*T, vocab_out] left on the device (for callers that quantize there)."""
    return _next_probs_on_device(qparams, cfg, inputs)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.integer_m1.next_probs."""
    return _next_probs(qparams, cfg, inputs)
