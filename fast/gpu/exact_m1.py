"""numba.cuda twin of ref/exact_m1.py: M1's probabilities by the exact rule, bit for bit, for thousands of rows at once.

Read ref/exact_m1.py for the rule and why it exists (docs/design.md, "Determinism of M1's probabilities"): every
reduction in one fixed order, one rounding per multiply and per add, exp64 as a fixed polynomial. This file computes
the same roundings in the same order on a GPU, so that a window compressed with GPU rows decodes with CPU rows
(fast/cpu/exact_m1.py, ref/exact_m1.py) and back. tests/test_fast_gpu_exact_m1.py checks it bit for bit against ref.

How the GPU is kept to the rule:
- every kernel is compiled with `fastmath=False` (said explicitly). fastmath would let NVVM contract a*b+c into one
  fused multiply-add (one rounding instead of two), flush denormals to zero, and replace division and sqrt by
  approximations; each of those changes bits.
- fastmath=False is NOT enough on its own: libNVVM contracts multiply-adds by default (its `-fma=1`, which numba
  does not expose; numba issue #2834, numba-cuda issue #118), so a plain `acc += a * b` may become `fma.rn`. So
  every multiply, add, divide and sqrt that the rule rounds goes through libdevice's explicitly rounded intrinsics
  (`__nv_fmul_rn`, `__nv_fadd_rn`, `__nv_fdiv_rn`, `__nv_fsqrt_rn` and their float64 `d...` twins). They lower to
  PTX `mul.rn`, `add.rn`, `div.rn`, `sqrt.rn`, and the PTX ISA promises that instructions with an explicit rounding
  modifier are never fused by the optimizer (ptxas included). Subtraction is an add of the negation (exact).
- Under numba's CUDA simulator (CI without a GPU) the same kernel source runs in Python on NumPy scalars, whose
  float32/float64 operations round once each; the op table `_ops` swaps the libdevice calls for plain operators.

Speed comes from parallelism and tiling, never from reordering a sum:
- `matmul` is a shared-memory tiled kernel with register blocking: each thread owns RM x RN outputs; x and w tiles
  of TK columns/rows are staged in shared memory and the tile loop walks k = 0, 1, ..., n-1 in order, so every
  output still sees (((0 + x0*w0) + x1*w1) + ...) exactly as ref's loop. Staging changes where the operands are
  read from, not which operations happen.
- attention: one thread per (sequence, query, head); keys j <= i only (ref's future terms are exact zeros). The
  scores are computed twice (once for the maximum, once for the weights): the same operations give the same bits.
- RMSNorm's sums and the float64 softmax run one thread per row (a row's sum is sequential by the rule); the
  elementwise parts run one thread per element.
M1 "3m" is about 3.2M multiply-adds per position: the products dominate. The exact rule cannot use tensor cores
(they round differently) nor FMA, so the ceiling is about half the GPU's FP32 non-tensor peak (bench/gpu_equalinfo_speed.py).

Public functions (exp64, matmul, rms_norm, attention, mlp, logits, softmax64, next_probs) take and return NumPy,
as fast/cpu/exact_m1.py's do; the work inside stays on the device (CuPy arrays on a GPU, NumPy under the
simulator, fast/gpu/device.py). The weights are copied to the device once per host array and kept (`_weights`):
a coding model never changes its weights; `clear_weight_cache()` drops the copies.
Importing this module needs neither CuPy nor a GPU.
"""
import functools
import math
import operator

import numba
import numpy as np
from numba import cuda

from equalinfo.fast.gpu import device
from equalinfo.fast.gpu.device import SIMULATED, kernel_arrays
from equalinfo.ref.exact_m1 import (EXACT_M1_VERSION, EXP_COEFFS, EXP_UNDERFLOW, INV_LN2, LN2_HI, LN2_LO, RMS_EPS)  # noqa: F401
from equalinfo.ref.transformer import bucket_table

# matmul tiling: a block of (BY, BX) threads computes a (BY*RM) x (BX*RN) tile of y, staging TK columns of x and TK
# rows of w per step. The simulator (every thread a Python thread) gets tiny tiles, which also exercise the tails.
if SIMULATED:
    BY, BX, RM, RN, TK = 2, 2, 3, 4, 5
else:
    BY, BX, RM, RN, TK = 16, 16, 4, 4, 16
TM, TN = BY * RM, BX * RN
# threads per block and most blocks of the one-thread-per-row / per-element (grid-stride) kernels; the simulator
# starts a Python thread per GPU thread and launch, so it gets few (any launch shape gives the same values)
ROW_THREADS, ROW_BLOCKS = (2, 2) if SIMULATED else (device.THREADS, device.MAX_BLOCKS)
MAX_HEAD_DIM = 256  # attention keeps one query's output row in a per-thread array of this size
_N_COEFFS = len(EXP_COEFFS)


# ----------------------------------------------------------------------------------------------------------------------
# The rounded operations, per dtype: libdevice's explicitly rounded intrinsics on a GPU, NumPy scalars in the simulator
# ----------------------------------------------------------------------------------------------------------------------


def _simulated_ops(dtype):
    """Plain operators: in the simulator every operand is a NumPy scalar of the dtype (array reads and the constants
    passed in), and NumPy rounds each operation once to that dtype (NumPy 2's rules keep float32 float32 even
    against a Python float)."""
    to = np.dtype(dtype).type
    return dict(add=operator.add, mul=operator.mul, div=operator.truediv, sqrt=np.sqrt, cast=to,
                add64=operator.add, mul64=operator.mul, div64=operator.truediv, to64=np.float64,
                floor64=np.floor, ldexp64=math.ldexp, to_int=int)


def _gpu_ops(dtype):
    from numba.cuda import libdevice

    single = np.dtype(dtype) == np.float32
    return dict(
        add=libdevice.fadd_rn if single else libdevice.dadd_rn,
        mul=libdevice.fmul_rn if single else libdevice.dmul_rn,
        div=libdevice.fdiv_rn if single else libdevice.ddiv_rn,
        sqrt=libdevice.fsqrt_rn if single else libdevice.dsqrt_rn,
        cast=numba.float32 if single else numba.float64,
        add64=libdevice.dadd_rn, mul64=libdevice.dmul_rn, div64=libdevice.ddiv_rn, to64=numba.float64,
        floor64=libdevice.floor, ldexp64=libdevice.ldexp, to_int=numba.int32)


def _jit(function):
    """A kernel: fastmath off, said explicitly (module docstring)."""
    return cuda.jit(fastmath=False)(function)


def _device_jit(function):
    return cuda.jit(device=True, fastmath=False)(function)


@functools.lru_cache(maxsize=None)
def _kernels(dtype_name):
    """The kernels for one parameter dtype ('float32' or 'float64'), compiled on first use."""
    ops = _simulated_ops(dtype_name) if SIMULATED else _gpu_ops(dtype_name)
    add, mul, div, sqrt, cast = ops["add"], ops["mul"], ops["div"], ops["sqrt"], ops["cast"]
    add64, mul64, div64, to64 = ops["add64"], ops["mul64"], ops["div64"], ops["to64"]
    floor64, ldexp64, to_int = ops["floor64"], ops["ldexp64"], ops["to_int"]
    dtype = numba.from_dtype(np.dtype(dtype_name))
    coeffs = tuple(float(c) for c in EXP_COEFFS)

    @_device_jit
    def exp64(x):
        """ref.exact_m1.exp64 on one float64 (0 below EXP_UNDERFLOW)."""
        if x < EXP_UNDERFLOW:
            return to64(0.0)
        n = floor64(add64(mul64(x, INV_LN2), 0.5))
        r = add64(add64(x, -mul64(n, LN2_HI)), -mul64(n, LN2_LO))
        poly = to64(coeffs[0])
        for i in range(1, _N_COEFFS):
            poly = add64(mul64(poly, r), coeffs[i])
        return ldexp64(poly, to_int(n))  # n is an integer in [-1010, 0]: exact

    @_jit
    def exp64_kernel(x, out):
        """out = exp64(x), elementwise.   x, out [n] float64"""
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = exp64(x[i])

    @_jit
    def matmul(x, w, y):
        """y = x @ w, each y[r, c] summed over k = 0 .. n-1 in order.   x [N, n], w [n, m], y [N, m]"""
        xs = cuda.shared.array((TM, TK), dtype)
        ws = cuda.shared.array((TK, TN), dtype)
        acc = cuda.local.array((RM, RN), dtype)
        a = cuda.local.array(RM, dtype)
        b = cuda.local.array(RN, dtype)
        n_rows, n = x.shape
        m = w.shape[1]
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        tid = ty * BX + tx
        n_row_tiles, n_col_tiles = (n_rows + TM - 1) // TM, (m + TN - 1) // TN
        for tile in range(cuda.blockIdx.y * cuda.gridDim.x + cuda.blockIdx.x, n_row_tiles * n_col_tiles,
                          cuda.gridDim.x * cuda.gridDim.y):  # block-stride over the tiles of y
            row0, col0 = (tile // n_col_tiles) * TM, (tile % n_col_tiles) * TN
            for i in range(RM):
                for j in range(RN):
                    acc[i, j] = cast(0.0)
            for k0 in range(0, n, TK):
                width = min(TK, n - k0)
                for e in range(tid, TM * TK, BY * BX):  # stage x[row0:row0+TM, k0:k0+TK]
                    r, kk = e // TK, e % TK
                    xs[r, kk] = x[row0 + r, k0 + kk] if row0 + r < n_rows and kk < width else cast(0.0)
                for e in range(tid, TK * TN, BY * BX):  # stage w[k0:k0+TK, col0:col0+TN]
                    kk, c = e // TN, e % TN
                    ws[kk, c] = w[k0 + kk, col0 + c] if kk < width and col0 + c < m else cast(0.0)
                cuda.syncthreads()
                for kk in range(width):  # k = k0, k0+1, ... in order: one rounded multiply, one rounded add
                    for i in range(RM):
                        a[i] = xs[ty + BY * i, kk]
                    for j in range(RN):
                        b[j] = ws[kk, tx + BX * j]
                    for i in range(RM):
                        for j in range(RN):
                            acc[i, j] = add(acc[i, j], mul(a[i], b[j]))
                cuda.syncthreads()
            for i in range(RM):
                r = row0 + ty + BY * i
                if r < n_rows:
                    for j in range(RN):
                        c = col0 + tx + BX * j
                        if c < m:
                            y[r, c] = acc[i, j]

    @_jit
    def row_inverse_rms(x, width, inv):
        """inv[r] = 1 / sqrt(dot(x[r], x[r]) / d + eps), the dot in order.   x [N, d], inv [N]"""
        for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            total = cast(0.0)
            for i in range(x.shape[1]):
                total = add(total, mul(x[r, i], x[r, i]))
            inv[r] = div(cast(1.0), sqrt(add(div(total, width), cast(RMS_EPS))))

    @_jit
    def scale_rows(x, inv, scale, y):
        """y[r, i] = (x[r, i] * inv[r]) * scale[i].   x, y [N, d]"""
        d = x.shape[1]
        for e in range(cuda.grid(1), x.shape[0] * d, cuda.gridsize(1)):
            r, i = e // d, e % d
            y[r, i] = mul(mul(x[r, i], inv[r]), scale[i])

    @_jit
    def attend(q, k, v, rel_bias, buckets, length, n_heads, head_dim, scale, out):
        """Causal attention by the rule, one thread per (sequence, query, head).

        q, k, v, out [B*T, H*dh] (row b*T + i; head h owns columns h*dh .. h*dh+dh-1); rel_bias [32, H];
        buckets [T, T]."""
        acc = cuda.local.array(MAX_HEAD_DIM, dtype)
        n_tasks = q.shape[0] * n_heads
        for task in range(cuda.grid(1), n_tasks, cuda.gridsize(1)):
            row, h = task // n_heads, task % n_heads
            i = row % length
            first = row - i  # row of key 0 of this sequence
            col = h * head_dim
            top = -math.inf
            for j in range(i + 1):  # pass 1: the maximum score (max is exact)
                s = cast(0.0)
                for c in range(head_dim):
                    s = add(s, mul(q[row, col + c], k[first + j, col + c]))
                s = add(mul(s, scale), rel_bias[buckets[i, j], h])
                top = max(top, s)
            for c in range(head_dim):
                acc[c] = cast(0.0)
            total = cast(0.0)
            for j in range(i + 1):  # pass 2: the same scores again, their weights and the weighted sum of v
                s = cast(0.0)
                for c in range(head_dim):
                    s = add(s, mul(q[row, col + c], k[first + j, col + c]))
                s = add(mul(s, scale), rel_bias[buckets[i, j], h])
                weight = cast(exp64(add64(to64(s), -to64(top))))  # float64 exp, rounded once to the dtype
                total = add(total, weight)
                for c in range(head_dim):
                    acc[c] = add(acc[c], mul(weight, v[first + j, col + c]))
            for c in range(head_dim):
                out[row, col + c] = div(acc[c], total)

    @_jit
    def gated_relu(gate, up):
        """gate <- max(gate, 0) * up, in place.   gate, up [N, ff]"""
        ff = gate.shape[1]
        for e in range(cuda.grid(1), gate.shape[0] * ff, cuda.gridsize(1)):
            r, i = e // ff, e % ff
            g = gate[r, i]
            gate[r, i] = mul(g if g > cast(0.0) else cast(0.0), up[r, i])

    @_jit
    def add_into(x, f):
        """x <- x + f (the residual), rounded in the dtype.   x, f [N, d]"""
        d = x.shape[1]
        for e in range(cuda.grid(1), x.shape[0] * d, cuda.gridsize(1)):
            r, i = e // d, e % d
            x[r, i] = add(x[r, i], f[r, i])

    @_jit
    def softmax64(rows, out):
        """out[r] = exp64(l - max l) / sum, in float64, the sum in index order.   rows [R, V] (any dtype), out [R, V]"""
        for r in range(cuda.grid(1), rows.shape[0], cuda.gridsize(1)):
            top = -math.inf
            for i in range(rows.shape[1]):
                top = max(top, to64(rows[r, i]))
            total = to64(0.0)
            for i in range(rows.shape[1]):
                e = exp64(add64(to64(rows[r, i]), -top))
                out[r, i] = e
                total = add64(total, e)
            for i in range(rows.shape[1]):
                out[r, i] = div64(out[r, i], total)

    return dict(exp64=exp64_kernel, matmul=matmul, row_inverse_rms=row_inverse_rms, scale_rows=scale_rows,
                attend=attend, gated_relu=gated_relu, add_into=add_into, softmax64=softmax64)


# ----------------------------------------------------------------------------------------------------------------------
# Launchers on device arrays
# ----------------------------------------------------------------------------------------------------------------------


def _launch_rows(kernel, n_items, *args):
    """A grid-stride kernel over n_items (rows or elements)."""
    blocks = max(1, min(ROW_BLOCKS, -(-n_items // ROW_THREADS)))
    kernel[blocks, ROW_THREADS](*kernel_arrays(*args))


def _matmul_dev(x, w):
    """y = x @ w on the device by the rule.   x [N, n], w [n, m] -> y [N, m] (w's dtype)"""
    xp = device.xp()
    x = xp.ascontiguousarray(x, dtype=w.dtype)
    y = xp.empty((x.shape[0], w.shape[1]), dtype=w.dtype)
    if y.size == 0:
        return y
    if w.shape[0] == 0:
        y[...] = 0
        return y
    col_tiles = -(-w.shape[1] // TN)
    grid = (col_tiles, device.blocks_for(x.shape[0], TM)) if not SIMULATED else (min(col_tiles, 2), 1)
    _kernels(w.dtype.name)["matmul"][grid, (BX, BY)](*kernel_arrays(x, xp.ascontiguousarray(w), y))
    return y


def _rms_norm_dev(x, scale):
    xp = device.xp()
    kernels = _kernels(x.dtype.name)
    dtype = x.dtype.type
    inv = xp.empty(x.shape[0], dtype=x.dtype)
    _launch_rows(kernels["row_inverse_rms"], x.shape[0], x, dtype(x.shape[1]), inv)
    y = xp.empty_like(x)
    _launch_rows(kernels["scale_rows"], x.size, x, inv, scale, y)
    return y


def _rule_product(x, params, name):
    """y = x @ params[name] by rule 1 on the device: the `product` of _logits_dev unless a rule names its own."""
    return _matmul_dev(x, params[name])


def _attention_dev(h, params, prefix, cfg, batch, length, product=_rule_product):
    q, k, v = (product(h, params, prefix + name) for name in ("wq", "wk", "wv"))  # [B*T, H*dh] each
    return product(_attend_dev(q, k, v, params[prefix + "rel_bias"], cfg, batch, length), params, prefix + "wo")


def _attend_dev(q, k, v, rel_bias, cfg, batch, length):
    """The heads' softmax-weighted values by the rule, on the device.   q, k, v [B*T, H*dh] -> [B*T, H*dh]"""
    xp = device.xp()
    if cfg.head_dim > MAX_HEAD_DIM:
        raise ValueError(f"fast.gpu.exact_m1 supports head_dim up to {MAX_HEAD_DIM}, got {cfg.head_dim}")
    buckets = xp.array(bucket_table(length, cfg.num_buckets, cfg.max_distance), dtype=np.int64)  # [T, T] (a copy)
    out = xp.empty_like(q)
    dtype = q.dtype.type
    _launch_rows(_kernels(q.dtype.name)["attend"], batch * length * cfg.n_heads, q, k, v,
                 xp.ascontiguousarray(rel_bias), buckets, length, cfg.n_heads, cfg.head_dim,
                 dtype(1.0 / math.sqrt(cfg.head_dim)), out)
    return out


def _mlp_dev(h, params, prefix, product=_rule_product):
    gate = product(h, params, prefix + "w_gate")
    up = product(h, params, prefix + "w_up")
    _launch_rows(_kernels(gate.dtype.name)["gated_relu"], gate.size, gate, up)
    return product(gate, params, prefix + "w_down")


def _logits_dev(params, cfg, inputs, product=_rule_product):
    """Logits [B*T, vocab_out] on the device; params: dict of device arrays; inputs [B, T] host ints.
    `product(x, params, name)` computes each matrix product: rules 2 and 3 (fast/gpu/integer_m1.py, int8_m1.py)
    pass theirs and keep everything else of rule 1."""
    batch, length = inputs.shape
    xp = device.xp()
    add_into = _kernels(params["embed"].dtype.name)["add_into"]
    x = params["embed"][xp.asarray(inputs.reshape(-1))]  # [B*T, d] (a gather: exact)
    for layer in range(cfg.n_layers):
        prefix = f"blocks.{layer}."
        f = _attention_dev(_rms_norm_dev(x, params[prefix + "attn_norm"]), params, prefix, cfg, batch, length,
                           product)
        _launch_rows(add_into, x.size, x, f)
        f = _mlp_dev(_rms_norm_dev(x, params[prefix + "mlp_norm"]), params, prefix, product)
        _launch_rows(add_into, x.size, x, f)
    return product(_rms_norm_dev(x, params["final_norm"]), params, "unembed")


def _softmax64_dev(rows):
    """float64 probabilities of logit rows [R, V] on the device."""
    xp = device.xp()
    out = xp.empty(rows.shape, dtype=np.float64)
    if rows.size:
        _launch_rows(_kernels(rows.dtype.name if rows.dtype == np.float32 else "float64")["softmax64"], rows.shape[0],
                     xp.ascontiguousarray(rows), out)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Weights on the device, cached per host array
# ----------------------------------------------------------------------------------------------------------------------

_WEIGHT_CACHE = {}  # id(host array) -> (host array, device array); the host array is kept so that its id stays unique


def _weights(params):
    """params with every array on the device: device arrays as they are, host arrays copied once and cached."""
    if SIMULATED:
        return {name: np.ascontiguousarray(value) for name, value in params.items()}
    out = {}
    for name, value in params.items():
        if device.is_device_array(value):
            out[name] = value
            continue
        cached = _WEIGHT_CACHE.get(id(value))
        if cached is None or cached[0] is not value:
            cached = (value, device.asarray(np.ascontiguousarray(value)))
            _WEIGHT_CACHE[id(value)] = cached
        out[name] = cached[1]
    return out


def clear_weight_cache():
    """Drop the device copies of host weights (call it if you change a weight array in place)."""
    _WEIGHT_CACHE.clear()


def _on_device(array, dtype=None):
    return device.asarray(np.ascontiguousarray(array), dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Public functions: NumPy in, NumPy out (fast/cpu/exact_m1.py's interface)
# ----------------------------------------------------------------------------------------------------------------------


def exp64(x):
    """e^x for a float64 array by the exact rule (same values as ref.exact_m1.exp64)."""
    x = np.asarray(x, dtype=np.float64)
    flat = _on_device(x.reshape(-1))
    out = device.xp().empty_like(flat)
    if flat.size:
        _launch_rows(_kernels("float64")["exp64"], flat.size, flat, out)
    return np.asarray(device.host(out)).reshape(x.shape)


def matmul(x, w):
    """y = x @ w with k summed in order.   x [N, n], w [n, m] -> y [N, m]"""
    return np.asarray(device.host(_matmul_dev(_on_device(x, np.asarray(w).dtype), _on_device(w))))


def rms_norm(x, scale):
    """RMSNorm by the exact rule.   x [N, d] -> [N, d]"""
    return np.asarray(device.host(_rms_norm_dev(_on_device(x), _on_device(scale))))


def attention(h, params, prefix, cfg, batch, length):
    """Causal multi-head attention with relative bias by the exact rule.   h [B*T, d] -> [B*T, d]"""
    return np.asarray(device.host(_attention_dev(_on_device(h), _weights(params), prefix, cfg, batch, length)))


def mlp(h, params, prefix):
    """(relu(h W_gate) * (h W_up)) W_down.   h [N, d] -> [N, d]"""
    return np.asarray(device.host(_mlp_dev(_on_device(h), _weights(params), prefix)))


def softmax64(logit_rows):
    """float64 probabilities of logit rows [..., V] by the exact rule."""
    rows = np.asarray(logit_rows)
    if rows.dtype not in (np.float32, np.float64):
        rows = rows.astype(np.float64)
    out = _softmax64_dev(_on_device(rows.reshape(-1, rows.shape[-1])))
    return np.asarray(device.host(out)).reshape(rows.shape)


def rule_functions(product=_rule_product, device_params=_weights):
    """(logits, next_probs_on_device, next_probs) of a rule whose matrix products are `product(x, params, name)` on
    the device and whose everything else is rule 1's; device_params(params) puts its arrays on the device. Rule 1
    uses the defaults; rules 2 and 3 (fast/gpu/integer_m1.py, int8_m1.py) pass their products. NumPy in, NumPy
    out, as fast/cpu's functions."""

    def logits(params, cfg, inputs):
        """Logits [B, T, vocab_out] of int inputs [B, T] (already validated)."""
        inputs = np.asarray(inputs, dtype=np.int64)
        out = _logits_dev(device_params(params), cfg, inputs, product)
        return np.asarray(device.host(out)).reshape(inputs.shape + (cfg.vocab_out,))

    def next_probs_on_device(params, cfg, inputs):
        """float64 probabilities [B*T, vocab_out] left on the device (for callers that quantize there)."""
        return _softmax64_dev(_logits_dev(device_params(params), cfg, np.asarray(inputs, dtype=np.int64), product))

    def next_probs(params, cfg, inputs):
        """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref's rule."""
        inputs = np.asarray(inputs, dtype=np.int64)
        if inputs.size == 0:
            return np.zeros(inputs.shape + (cfg.vocab_out,))
        return np.asarray(device.host(next_probs_on_device(params, cfg, inputs))).reshape(
            inputs.shape + (cfg.vocab_out,))

    return logits, next_probs_on_device, next_probs


logits, next_probs_on_device, next_probs = rule_functions()
