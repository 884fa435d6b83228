"""M1's probabilities by exact rule 2: every large matrix product is a product of integers.

Why a second rule. Rule 1 (ref/exact_m1.py) makes M1's rows reproducible everywhere by fixing the order of every
rounding, which forbids BLAS and tensor cores: they choose their own summation order. But a sum of integer products
needs no order: if every operand is an integer and every partial sum is exactly representable, each addition is
exact, and an exact sum is the same number whatever the order, the blocking, the number of threads, and whether
multiply-adds are fused. So this rule quantizes the operands of M1's eight matrix products (wq, wk, wv, wo, w_gate,
w_up, w_down per block, and unembed) to integers with explicit scales, lets any matrix product -- here plain `@` on
float64 arrays holding integers -- add them up, and rescales in a fixed order. Everything else (RMSNorm, attention
over the short window prefix, the gated ReLU, the residual adds, exp and softmax) is rule 1's elementwise code,
imported from ref/exact_m1.py, in the parameters' dtype (float32 for a trained M1).

The rule, EXACT_M1_VERSION = 2. A product y = x @ W, x [N, n] in the dtype, W [n, m]:
- weights, once, when M1 is quantized (stored in M1's arrays; see `quantize_params`): per output channel j,
      W_int[:, j] = rint(W[:, j] / s_j),  s_j = max_k |W[k, j]| / 32767   (float64; a zero column gets s_j = 1),
  so W_int holds int16 values in [-32767, 32767] and W ~ W_int * s. Decoders never recompute these: they read
  W_int and s from M1's arrays, so how they were computed does not matter for reproducibility.
- activations, per row r (`quantize_rows`): a = max_k |x[r, k]| (exact); e_r = E - 15 where a = f * 2^E with
  f in [0.5, 1) (frexp; e_r = 0 for a zero row); then
      x_int[r, k] = clip(rint(x[r, k] * 2^-e_r), -32767, 32767)
  Multiplying by a power of two is exact (no value here is near the float range's ends), rint rounds halves to
  even (IEEE's default, the same in NumPy, Numba and CUDA), so x_int is fully determined by x. Since
  |x * 2^-e_r| < 2^15, every row uses 15 bits of magnitude: a relative precision of 2^-15 of the row's maximum.
- integer product: acc[r, j] = sum_k x_int[r, k] * W_int[k, j], an exact integer, in any order;
- rescale, in this order, in float64: y[r, j] = dtype((float64(acc[r, j]) * s_j) * 2^e_r)  -- two IEEE
  multiplies (the second, by a power of two, exact for every value met here), one rounding to the dtype.

The exactness bound. |x_int|, |W_int| <= 32767 < 2^15, so every product is below 2^30 in magnitude and every
partial sum of n products below n * 2^30. In a float64 accumulator (53-bit significand) every integer of magnitude
<= 2^53 is exact, so the sum is exact in any order for n <= 2^23. The largest n in ref.transformer.SIZES is the
inner width of w_down, d_ff:
      size   d_model  d_ff   largest n  n * 32767^2           < 2^53 = 9.007e15
      micro        8    12          12  1.29e10  (< 2^34)     yes
      tiny        32    64          64  6.87e10  (< 2^37)     yes
      3m         256  1024        1024  1.10e12  (< 2^41)     yes
      25m        512  2048        2048  2.20e12  (< 2^42)     yes
      113m       768  3072        3072  3.30e12  (< 2^42)     yes
      403m      1024  4096        4096  4.40e12  (< 2^43)     yes
      2b        2048  8192        8192  8.80e12  (< 2^43)     yes
(tests/test_integer_m1.py checks this table against SIZES and checks the arithmetic on worst-case integers.)
Hence plain `@` here, BLAS's dgemm in fast/cpu and cuBLAS's in fast/gpu all give the same acc, bit for bit. A
float32 GEMM (24-bit significand) would need n * 32767^2 < 2^24, true for no n: with int16 operands the GEMM must
be float64 (or integer: an int8 tensor-core GEMM on the operands split into high and low bytes, with int32
accumulation, is exact too). Why 16 bits and not 8: int8 operands would let a float32 GEMM run twice as fast on
a CPU while n * 127^2 < 2^24 (n <= 1040, enough for 3m only), but per-row int8 activations cost M1 measurable
bits/byte (the gated MLP's hidden rows have a wide range); with 16 bits the rows differ from the float model's by
about 2^-15 of each row's maximum, which costs nothing measurable (bench/m1_rule_price.py measures both).

How the quantized M1 is obtained from a trained float M1: `quantize_params` (max-abs per output channel; no
calibration data is needed because activation scales are dynamic per row, computed from the row itself). The
result is a parameter dict holding, instead of each product's float matrix `name`, `name + ".int"` (int16
[n, m]) and `name + ".scale"` (float64 [m]); embed, the norms' scales and rel_bias stay float. These arrays are
what M1 stores (ref/m1.py's TransformerModel.arrays), so its fingerprint covers them and a decoder needs nothing else.
"""
import numpy as np

from equalinfo.ref import exact_m1
from equalinfo.ref.exact_m1 import softmax64

EXACT_M1_VERSION = 2  # part of the coding model's fingerprint; bump when any rounding above changes

INT_MAX = 32767  # operands are int16 values in [-INT_MAX, INT_MAX]
FRACTION_BITS = 15  # a row's largest |x| * 2^-e lies in [2^14, 2^15)
FLOAT64_EXACT = 2 ** 53  # every integer of magnitude <= 2^53 is a float64
BLOCK_PRODUCTS = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")


def product_names(cfg):
    """Names of the matrices multiplied under the rule (each block's seven, then unembed)."""
    return [f"blocks.{i}.{name}" for i in range(cfg.n_layers) for name in BLOCK_PRODUCTS] + ["unembed"]


def accumulation_bound(n):
    """The largest |partial sum| of n products of operands in [-INT_MAX, INT_MAX]."""
    return n * INT_MAX * INT_MAX


def check_exact(n):
    """Raise ValueError if a sum of n integer products could leave float64's exact integers."""
    if accumulation_bound(n) > FLOAT64_EXACT:
        raise ValueError(f"an integer product over {n} terms may exceed 2^53: rule 2 is exact for n <= "
                         f"{FLOAT64_EXACT // (INT_MAX * INT_MAX)}")


def quantize_weight(w, int_max=INT_MAX, dtype=np.int16):
    """(W_int [n, m] in dtype, scale float64 [m]) of a float matrix w [n, m], per output channel (docstring):
    W_int in [-int_max, int_max] (rule 3 passes 127 and int8)."""
    w = np.asarray(w, dtype=np.float64)
    top = np.abs(w).max(axis=0)
    scale = np.where(top > 0, top / int_max, 1.0)
    return np.clip(np.rint(w / scale), -int_max, int_max).astype(dtype), scale


def quantize_params(params, cfg, quantize_weight=quantize_weight, check_exact=check_exact):
    """Rule 2's parameters of a float M1: each product's matrix replaced by its integers and scales (rule 3
    passes its own quantize_weight and check_exact)."""
    quantized = {name: value for name, value in params.items()}
    for name in product_names(cfg):
        check_exact(params[name].shape[0])
        quantized[name + ".int"], quantized[name + ".scale"] = quantize_weight(quantized.pop(name))
    return quantized


def check_params(qparams, cfg):
    """Raise ValueError naming the problem if qparams are not rule 2's parameters for cfg."""
    check_quantized_params(qparams, cfg, 2, "int16", INT_MAX, check_exact)


def check_quantized_params(qparams, cfg, rule, int_dtype, int_max, check_exact):
    """Raise ValueError naming the problem unless qparams hold, for each product, int_dtype weights in
    [-int_max, int_max] and float64 scales (rules 2 and 3: ref/int8_m1.py passes int8 and 127), the rest as cfg."""
    from equalinfo.ref.transformer import param_shapes

    expected = {name: (shape, cfg.dtype) for name, shape in param_shapes(cfg).items()}
    for name in product_names(cfg):
        shape = expected.pop(name)[0]
        expected[name + ".int"] = (shape, int_dtype)
        expected[name + ".scale"] = (shape[1:], "float64")
    missing, extra = sorted(set(expected) - set(qparams)), sorted(set(qparams) - set(expected))
    if missing or extra:
        raise ValueError(f"rule-{rule} parameters do not match the config: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")
    for name, (shape, dtype) in expected.items():
        array = qparams[name]
        if tuple(array.shape) != shape or array.dtype != np.dtype(dtype):
            raise ValueError(f"parameter {name} is {array.dtype} {tuple(array.shape)}, rule {rule} needs {dtype} "
                             f"{shape}")
        if dtype == int_dtype:
            if array.size and array.min() < -int_max:
                raise ValueError(f"parameter {name} holds {array.min()}, outside rule {rule}'s "
                                 f"[-{int_max}, {int_max}]")
            check_exact(shape[0])


def row_exponents(x, fraction_bits=FRACTION_BITS):
    """e_r with max_k |x[r, k]| * 2^-e_r in [2^(fraction_bits-1), 2^fraction_bits) (0 for a zero row); rule 2's
    fraction_bits is 15, rule 3's 14.   x [N, n] -> int64 [N]"""
    top = np.abs(x).max(axis=1).astype(np.float64)  # exact: max and abs do not round, widening neither
    _, exponent = np.frexp(top)  # top = f * 2^E, f in [0.5, 1); frexp(0) = (0, 0)
    return np.where(top > 0, exponent.astype(np.int64) - fraction_bits, 0)


def quantize_rows(x, fraction_bits=FRACTION_BITS, int_max=INT_MAX):
    """(x_int, e): integer-valued float64 [N, n] in [-int_max, int_max] and the rows' exponents int64 [N], so that
    x ~ x_int * 2^e."""
    e = row_exponents(x, fraction_bits)
    scaled = np.ldexp(x.astype(np.float64), -e[:, None])  # exact: a power-of-two scaling
    return np.clip(np.rint(scaled), -int_max, int_max), e


def integer_product(x_int, w_int):
    """acc = x_int @ w_int of integer-valued arrays, as exact integers in float64; any summation order gives the
    same acc (module docstring), so plain `@` is correct.   x_int [N, n], w_int [n, m] -> [N, m]"""
    check_exact(w_int.shape[0])
    return x_int @ w_int.astype(np.float64)


def int_matmul(x, qparams, name):
    """y = x @ W by the rule, W stored as qparams[name + '.int'] and '.scale'.   x [N, n] -> [N, m] in x's dtype

    The product of integer-valued float64 arrays is exact (module docstring), so `@` may sum in any order.
    """
    x_int, e = quantize_rows(x)
    acc = integer_product(x_int, qparams[name + ".int"])  # [N, m]
    return ((acc * qparams[name + ".scale"]) * np.ldexp(1.0, e)[:, None]).astype(x.dtype)


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated): rule 1's forward pass (attention,
    RMSNorm, the gated ReLU, residual adds) with every matrix product by `int_matmul`."""
    return exact_m1.logits(qparams, cfg, inputs, product=int_matmul)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
    return softmax64(logits(qparams, cfg, np.asarray(inputs, dtype=np.int64)))
