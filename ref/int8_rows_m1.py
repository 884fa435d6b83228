"""M1's probabilities by exact rule 4: int8 weights AND int8 rows, one GEMM per product; keys and values in bfloat16.

Why a fourth rule. Rule 3 (ref/int8_m1.py) made every product exact in any float32 or int8 GEMM, but it keeps 14
bits of each activation row, split into two int8 halves: every product is two GEMMs. On the dev machine (2 cores,
AMD Zen 4, VNNI, no AMX) those GEMMs are a third of a coder's time, and the decoders' attention reads every cached
key and value once per step, in float32, from beyond L2: another quarter to a third (bench/README.md, issue #24,
rounds 4 and 5). Rule 4 keeps 7 bits of each row (an int8 value, like the weights), so each product is ONE
int8 x int8 GEMM, and rounds the key and value products' outputs to bfloat16, so a cache may hold them in 2 bytes
instead of 4 with the same float32 values. The price, measured on the shipped M1 against its own float rows
(dequantized weights, float products) on 32,768 held-out positions (`python bench/m1_rule_price.py --shipped`):
rule 3 +0.0000%, rule 4 +0.0051% bits/byte, and on whole files of 400 KB of held-out English (bench/rule_files.py)
+0.018% for plain AC -- but +0.43% to +0.78% for Equal-Info (b=1,024; b=16), whose windows pay for the coarser
rows more than the rows' own bits/byte show; so the shipped M1 codes Equal-Info under rule 3 (bench/README.md,
issue #24 round 5).

The rule, EXACT_M1_VERSION = 4. Everything is rule 3's except the row width, the single GEMM and the last step:
- weights: rule 3's int8 values W_int in [-127, 127] and float64 scales s_j per output channel, the same arrays
  (`quantize_params` is rule 3's): an M1 quantized for rule 3 runs under rule 4 unchanged, and the reverse.
- activations, per row r (`quantize_rows`): a = max_k |x[r, k]| (exact); e_r = E - 7 where a = f * 2^E with
  f in [0.5, 1) (frexp; e_r = 0 for a zero row); then
      x_int[r, k] = clip(rint(x[r, k] * 2^-e_r), -127, 127)
  (rint rounds halves to even; the power-of-two scaling is exact), so x_int holds int8 values and the row keeps a
  relative precision of 2^-7 of its largest entry.
- integer product: acc[r, j] = sum_k x_int[r, k] * W_int[k, j], the exact integer, computed as one float32 GEMM
  per K-chunk of at most CHUNK = 1040 consecutive indices, the chunks' results summed in order in float64.
- rescale, in this order, in float64: y[r, j] = dtype((float64(acc[r, j]) * s_j) * 2^e_r) (rule 3's).
- keys and values only (the products named `wk` and `wv`): y is then rounded to the nearest bfloat16, ties to even
  (`to_bfloat16`): with b the 32 bits of float32(y), b' = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000, and the
  value is the float32 whose bits are b', held in the dtype. (float32(y) is y itself for a float32 M1; for a
  float64 one it is one more rounding to nearest.) Queries, attention outputs and every other product keep their
  dtype's values. Attention then reads those keys and values as rule 1 does: a cache holding their upper 16 bits
  gives exactly the same floats.
Everything else (RMSNorm, attention over the window prefix, the gated ReLU, the residual adds, exp and softmax) is
rule 1's elementwise code, imported from ref/exact_m1.py.

The exactness bound. Every term x_int * W_int is an integer of magnitude <= 127 * 127 = 16,129; a float32 GEMM over
K <= 1040 terms, in any order and blocking, has partial sums of magnitude <= 1040 * 16,129 = 16,774,160 <= 2^24,
so every one is exact (rule 3's bound, for one GEMM instead of two). int8 tensor cores and VNNI/AMX accumulate in
int32, exact far beyond that; onnxruntime's MatMulInteger reads the rows as uint8 x_int + 128 in [1, 255] with zero
point 128, exact as well. The chunks' combination: |acc| <= n * 16,129, exact in float64. Per size in
ref.transformer.SIZES, the largest inner width n is d_ff (w_down's):
      size   d_model  d_ff   largest n  chunks  largest chunk sum      |acc| <= n * 127 * 127
      micro        8    12          12       1  12 * 16129 = 1.94e5    1.94e5  (< 2^18)
      tiny        32    64          64       1  64 * 16129 = 1.03e6    1.03e6  (< 2^20)
      3m         256  1024        1024       1  1024 * 16129 = 1.65e7  1.65e7  (< 2^24)
      25m        512  2048        2048       2  1040 * 16129 = 1.68e7  3.30e7  (< 2^25)
      113m       768  3072        3072       3  1040 * 16129 = 1.68e7  4.95e7  (< 2^26)
      403m      1024  4096        4096       4  1040 * 16129 = 1.68e7  6.61e7  (< 2^26)
      2b        2048  8192        8192       8  1040 * 16129 = 1.68e7  1.32e8  (< 2^27)
(tests/test_int8_rows_m1.py checks this table against SIZES and the arithmetic on worst-case operands.) So a 3m
product is one int8 GEMM whose every |acc| fits even a float32 accumulator over the whole width.

Which GPU path. As rule 3's (ref/int8_m1.py): the twin (fast/gpu/int8_rows_m1.py) runs plain float32 SGEMMs, exact
on any GPU; int8 tensor cores with int32 accumulation are the speed target and give the same integers.
"""
import numpy as np

from equalinfo.ref import exact_m1, integer_m1
from equalinfo.ref.exact_m1 import softmax64
from equalinfo.ref.int8_m1 import CHUNK, WEIGHT_MAX, check_exact, chunks, quantize_params  # noqa: F401
from equalinfo.ref.integer_m1 import check_quantized_params

EXACT_M1_VERSION = 4  # part of the coding model's fingerprint; bump when any rounding above changes

ROW_MAX = WEIGHT_MAX  # 127: rows are int8 values like the weights
FRACTION_BITS = 7  # a row's largest |x| * 2^-e lies in [2^6, 2^7)
BFLOAT16_PRODUCTS = ("wk", "wv")  # the products whose outputs are rounded to bfloat16 (what attention caches)


def check_params(qparams, cfg):
    """Raise ValueError naming the problem if qparams are not rule 4's parameters (rule 3's arrays) for cfg."""
    check_quantized_params(qparams, cfg, 4, "int8", WEIGHT_MAX, check_exact)


def quantize_rows(x):
    """(x_int, e): integer-valued float64 [N, n] in [-127, 127] and exponents int64 [N], x ~ x_int * 2^e
    (rule 2's step with 7 bits)."""
    return integer_m1.quantize_rows(x, FRACTION_BITS, ROW_MAX)


def chunked_product(x_int, w_int):
    """acc = x_int @ w_int, exact: one float32 GEMM of int8-valued operands per K-chunk, summed in float64.
    x_int [N, n] integer-valued in [-127, 127], w_int [n, m] int8 -> acc float64 [N, m]"""
    check_exact(w_int.shape[0])
    x = x_int.astype(np.float32)
    w = w_int.astype(np.float32)
    acc = np.zeros((x_int.shape[0], w.shape[1]))
    for chunk in chunks(w.shape[0]):
        acc += (x[:, chunk] @ w[chunk]).astype(np.float64)
    return acc


def to_bfloat16(y):
    """y rounded to the nearest bfloat16 (ties to even), through float32, in y's dtype (the docstring's b')."""
    bits = np.asarray(y, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return rounded.view(np.float32).astype(np.asarray(y).dtype)


def rounds_to_bfloat16(name):
    """Whether rule 4 rounds the product `name` (e.g. 'blocks.0.wk') to bfloat16."""
    return name.rsplit(".", 1)[-1] in BFLOAT16_PRODUCTS


def int8_rows_matmul(x, qparams, name):
    """y = x @ W by rule 4, W stored as qparams[name + '.int'] and '.scale'.   x [N, n] -> [N, m] in x's dtype"""
    x_int, e = quantize_rows(x)
    acc = chunked_product(x_int, qparams[name + ".int"])  # [N, m]
    y = ((acc * qparams[name + ".scale"]) * np.ldexp(1.0, e)[:, None]).astype(x.dtype)
    return to_bfloat16(y) if rounds_to_bfloat16(name) else y


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated): rule 1's forward pass (attention,
    RMSNorm, the gated ReLU, residual adds) with every matrix product by `int8_rows_matmul`."""
    return exact_m1.logits(qparams, cfg, inputs, product=int8_rows_matmul)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
    return softmax64(logits(qparams, cfg, np.asarray(inputs, dtype=np.int64)))

