"""M1's probabilities by exact rule 3: every large matrix product is exact on int8-valued float32 operands.

Why a third rule. Rule 2 (ref/integer_m1.py) made M1's products sums of integers, exact in any order, but its int16
operands need a float64 (or int32-from-int16) GEMM: on the dev machine OpenBLAS's dgemm runs at a third of sgemm's
speed, and GPUs' float32 tensor cores cannot be used at all. A float32 GEMM is exact in any order when every
partial sum is an integer of magnitude <= 2^24 -- which int8-valued operands guarantee over up to 1040 terms. So
rule 3 stores M1's weights as int8 values, quantizes each activation row to 14 bits, and computes each product as
two float32 GEMMs of int8-valued operands (the row split into a high and a low 7-bit half), combined exactly in
float64. Any float32 GEMM then gives the same integers: OpenBLAS's sgemm whatever its kernel, blocking and thread
count; cuBLAS, including TF32 and bf16 tensor cores with float32 accumulation (int8 values are exact in bf16 and
TF32, their products are exact in float32); int8 tensor cores and VNNI/AMX with int32 accumulation. Everything
else (RMSNorm, attention over the window prefix, the gated ReLU, the residual adds, exp and softmax) is rule 1's
elementwise code, imported from ref/exact_m1.py, in the parameters' dtype (float32 for a trained M1).

The rule, EXACT_M1_VERSION = 3. A product y = x @ W, x [N, n] in the dtype, W [n, m]:
- weights, once, when M1 is quantized (stored in M1's arrays; see `quantize_params`): per output channel j,
      W_int[:, j] = clip(rint(W[:, j] / s_j), -127, 127),  s_j = max_k |W[k, j]| / 127   (float64; a zero
  column gets s_j = 1), so W_int holds int8 values in [-127, 127] (never -128) and W ~ W_int * s. Decoders never
  recompute these: they read W_int and s from M1's arrays.
- activations, per row r (`quantize_rows`): a = max_k |x[r, k]| (exact); e_r = E - 14 where a = f * 2^E with
  f in [0.5, 1) (frexp; e_r = 0 for a zero row); then
      x_int[r, k] = clip(rint(x[r, k] * 2^-e_r), -16383, 16383)
  (rint rounds halves to even; the power-of-two scaling is exact). |x * 2^-e_r| < 2^14, so every row keeps 14 bits
  of magnitude, a relative precision of 2^-14 of the row's maximum: one bit less than rule 2, so that the row
  splits into two int8 values.
- integer product: acc[r, j] = sum_k x_int[r, k] * W_int[k, j], the exact integer.
- rescale, in this order, in float64: y[r, j] = dtype((float64(acc[r, j]) * s_j) * 2^e_r)  -- two IEEE
  multiplies (the second, by a power of two, exact), one rounding to the dtype (as rule 2).
Since acc is the exact integer, the rule does not depend on how it is computed; `split_product` below computes it
from float32 GEMMs only, which is the point of the rule:
- split each row value into two int8 values (`split_rows`), truncating toward zero:
      hi = sign(x_int) * floor(|x_int| / 128),  lo = x_int - 128 * hi,   so x_int = 128 * hi + lo,
  |hi| <= floor(16383 / 128) = 127 and |lo| <= 127 (lo has x_int's sign);
- cut k = 0 .. n-1 into chunks of at most CHUNK = 1040 consecutive indices (k // 1040 names the chunk); per
  chunk c, two float32 GEMMs P_hi[c] = hi[:, c] @ W_int[c] and P_lo[c] = lo[:, c] @ W_int[c];
- acc = sum over chunks of (128 * float64(P_hi[c]) + float64(P_lo[c])), in float64.

The exactness bound. Float32 (24-bit significand) holds every integer of magnitude <= 2^24 = 16,777,216. In a
chunk's GEMM every product is an integer of magnitude <= 127 * 127 = 16,129, exact in float32 (and in bf16/TF32
inputs, whose 8/11-bit significands hold 127), and every partial sum, in any order or blocking, is an integer of
magnitude <= K * 16,129 for K <= 1040 terms: <= 16,774,160 <= 2^24, so exact. (1041 terms could reach
16,790,289 > 2^24: 1040 is the largest chunk.) Combining: every term 128 * P_hi or P_lo and every partial sum of
the combination is an integer of magnitude <= n * 16,383 * 127 (the bound of |acc|, since |x_int| <= 16,383),
exact in float64 (53 bits) for n <= 4.3e9. Per size in ref.transformer.SIZES, the largest inner width n is d_ff
(w_down's; d_model for wq, wk, wv, wo, w_gate, w_up, unembed):
      size   d_model  d_ff   largest n  chunks  largest chunk sum      |acc| <= n * 16383 * 127   < 2^53
      micro        8    12          12       1  12 * 16129 = 1.94e5    2.50e7  (< 2^25)           yes
      tiny        32    64          64       1  64 * 16129 = 1.03e6    1.33e8  (< 2^27)           yes
      3m         256  1024        1024       1  1024 * 16129 = 1.65e7  2.13e9  (< 2^31)           yes
      25m        512  2048        2048       2  1040 * 16129 = 1.68e7  4.26e9  (< 2^32)           yes
      113m       768  3072        3072       3  1040 * 16129 = 1.68e7  6.39e9  (< 2^33)           yes
      403m      1024  4096        4096       4  1040 * 16129 = 1.68e7  8.52e9  (< 2^33)           yes
      2b        2048  8192        8192       8  1040 * 16129 = 1.68e7  1.70e10 (< 2^34)           yes
(every chunk sum <= 16,774,160 <= 2^24; tests/test_int8_m1.py checks this table against SIZES and checks the
arithmetic on worst-case operands.) With int8 tensor cores or VNNI (int32 accumulation, exact below 2^31) a
chunk of 1040 is far inside the bound; 3m's products need one chunk each, two GEMMs per product (and its |acc|
< 2^31 would even fit one int32 accumulator of int16 x int8 products).

Which GPU path. The GPU twin (fast/gpu/int8_m1.py) runs the two products per chunk as plain float32 SGEMMs (CUDA
cores, no TF32): exact by the bound below on any GPU, and untested on real hardware so far (no GPU was lent).
The target for speed is int8 tensor cores with int32 accumulation (cuBLASLt IMMA), the fastest (about twice bf16's
rate on an H100) and exact by integer arithmetic alone; CuPy has no int8 GEMM, so it waits for a measurement. bf16
or TF32 tensor cores with float32 accumulation are exact only if the hardware's accumulator keeps every integer
<= 2^24 whatever its internal alignment and truncation, which published analyses of tensor cores suggest but do not
promise: a conformance test on each GPU must show it before that path is used.

The price: int8 weights and 14-bit rows against the float model's own rows, on held-out text
(bench/m1_rule_price.py, which also measures rule 2 and the variant with int16 weights split into two int8
halves, four GEMMs per product). For a 3m M1 trained 2,700 steps (2.07 bits/byte) rule 3 cost +0.010% bits/byte
on 98,304 held-out positions, rule 2 +0.0001%, 14-bit weights +0.0000% (bench/README.md).

How the quantized M1 is obtained from a trained float M1: `quantize_params` (max-abs per output channel; no
calibration data: activation scales are dynamic per row). The result holds, instead of each product's float
matrix `name`, `name + ".int"` (int8 [n, m]) and `name + ".scale"` (float64 [m]); embed, the norms' scales and
rel_bias stay float. These arrays are what M1 stores (ref/m1.py), so its fingerprint covers them.
"""
import numpy as np

from equalinfo.ref import exact_m1, integer_m1
from equalinfo.ref.exact_m1 import softmax64
from equalinfo.ref.integer_m1 import check_quantized_params, product_names

EXACT_M1_VERSION = 3  # part of the coding model's fingerprint; bump when any rounding above changes

WEIGHT_MAX = 127  # weights are int8 values in [-WEIGHT_MAX, WEIGHT_MAX]
SPLIT = 128  # x_int = SPLIT * hi + lo
ROW_MAX = WEIGHT_MAX * SPLIT + WEIGHT_MAX  # 16383 = 2^14 - 1: the largest |x_int| whose halves are both int8
FRACTION_BITS = 14  # a row's largest |x| * 2^-e lies in [2^13, 2^14)
FLOAT32_EXACT = 2 ** 24  # every integer of magnitude <= 2^24 is a float32
FLOAT64_EXACT = 2 ** 53
CHUNK = FLOAT32_EXACT // (WEIGHT_MAX * WEIGHT_MAX)  # 1040: the most int8 x int8 terms a float32 sum holds exactly


def chunk_bound(k):
    """The largest |partial sum| of a float32 GEMM over k terms of int8-valued operands."""
    return k * WEIGHT_MAX * WEIGHT_MAX


def accumulation_bound(n):
    """The largest |acc| of a product over n terms (|x_int| <= ROW_MAX, |W_int| <= WEIGHT_MAX)."""
    return n * ROW_MAX * WEIGHT_MAX


def n_chunks(n):
    return -(-n // CHUNK)


def check_exact(n):
    """Raise ValueError if a product over n terms could leave float64's exact integers (its chunks' float32 sums
    never can: they hold at most CHUNK terms)."""
    if accumulation_bound(n) > FLOAT64_EXACT:
        raise ValueError(f"a product over {n} terms may exceed 2^53: rule 3 is exact for n <= "
                         f"{FLOAT64_EXACT // (ROW_MAX * WEIGHT_MAX)}")


def quantize_weight(w):
    """(W_int int8 [n, m], scale float64 [m]) of a float matrix w [n, m], per output channel (docstring)."""
    return integer_m1.quantize_weight(w, WEIGHT_MAX, np.int8)


def quantize_params(params, cfg):
    """Rule 3's parameters of a float M1: each product's matrix replaced by its int8 values and scales."""
    return integer_m1.quantize_params(params, cfg, quantize_weight, check_exact)


def check_params(qparams, cfg):
    """Raise ValueError naming the problem if qparams are not rule 3's parameters for cfg."""
    check_quantized_params(qparams, cfg, 3, "int8", WEIGHT_MAX, check_exact)


def row_exponents(x):
    """e_r with max_k |x[r, k]| * 2^-e_r in [2^13, 2^14) (0 for a zero row): rule 2's step with 14 bits.
    x [N, n] -> int64 [N]"""
    return integer_m1.row_exponents(x, FRACTION_BITS)


def quantize_rows(x):
    """(x_int, e): integer-valued float64 [N, n] in [-ROW_MAX, ROW_MAX] and exponents int64 [N], x ~ x_int * 2^e
    (rule 2's step with 14 bits)."""
    return integer_m1.quantize_rows(x, FRACTION_BITS, ROW_MAX)


def split_rows(x_int):
    """(hi, lo), int8-valued float32 arrays with x_int = SPLIT * hi + lo, truncating toward zero (docstring)."""
    hi = np.trunc(x_int / SPLIT)  # exact: dividing by a power of two, then dropping the fraction
    return hi.astype(np.float32), (x_int - SPLIT * hi).astype(np.float32)


def chunks(n):
    """The index ranges of the K-chunks of a product over n terms: [0, 1040), [1040, 2080), ..."""
    return [slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]


def split_product(x_int, w_int):
    """acc = x_int @ w_int, exact, from float32 GEMMs of int8-valued operands (docstring): each chunk's two GEMMs
    are exact in any summation order, their combination in float64 too, so plain `@` is correct.
    x_int [N, n] integer-valued, w_int [n, m] int8 -> acc float64 [N, m]"""
    check_exact(w_int.shape[0])
    hi, lo = split_rows(x_int)
    w = w_int.astype(np.float32)
    acc = np.zeros((x_int.shape[0], w.shape[1]))
    for chunk in chunks(w.shape[0]):
        acc += SPLIT * (hi[:, chunk] @ w[chunk]).astype(np.float64) + (lo[:, chunk] @ w[chunk]).astype(np.float64)
    return acc


def int8_matmul(x, qparams, name):
    """y = x @ W by rule 3, W stored as qparams[name + '.int'] and '.scale'.   x [N, n] -> [N, m] in x's dtype"""
    x_int, e = quantize_rows(x)
    acc = split_product(x_int, qparams[name + ".int"])  # [N, m]
    return ((acc * qparams[name + ".scale"]) * np.ldexp(1.0, e)[:, None]).astype(x.dtype)


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated): rule 1's forward pass (attention,
    RMSNorm, the gated ReLU, residual adds) with every matrix product by `int8_matmul`."""
    return exact_m1.logits(qparams, cfg, inputs, product=int8_matmul)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
    return softmax64(logits(qparams, cfg, np.asarray(inputs, dtype=np.int64)))
