"""NumPy-BLAS + Numba twin of ref/int8_rows_m1.py: M1's rows by exact rule 4, bit for bit.

Read ref/int8_rows_m1.py for the rule. Rule 4 is rule 3 with 7-bit rows, one int8 GEMM per product instead of two,
and its key and value products rounded to bfloat16, so this twin is fast/cpu/int8_m1.py's code (the same compiled
kernels, the same GEMM choice: OpenBLAS's sgemm or onnxruntime's integer GEMM, fast/cpu/int8_gemm.py) run with
rule 4's `RowRule`: the quantizing pass writes each row's integers once instead of two halves, the GEMM sees N rows
instead of 2N, and the key/value products' outputs go through one more compiled pass on their float32 bits.
"""
import numpy as np

from equalinfo.fast.cpu import int8_m1
from equalinfo.fast.cpu.int8_m1 import RowRule, int8_gemm, softmax64
from equalinfo.ref.int8_rows_m1 import (BFLOAT16_PRODUCTS, EXACT_M1_VERSION, FRACTION_BITS, ROW_MAX,  # noqa: F401
                                        check_exact, chunks)

RULE = RowRule(FRACTION_BITS, ROW_MAX, halves=1, bfloat16=BFLOAT16_PRODUCTS)


def quantize_rows(x):
    """(x_int float64 [N, n] in [-127, 127], e int64 [N]): ref.int8_rows_m1.quantize_rows' integers."""
    x_int, exponents = int8_m1.quantize_split(x, int8_gemm.SGEMM, RULE)
    return x_int.astype(np.float64), exponents


def int8_rows_matmul(x, qparams, name):
    """y = x @ W by rule 4 (W as qparams[name + '.int'] and '.scale').   x [N, n] -> [N, m] in x's dtype"""
    return int8_m1.int8_matmul(x, qparams, name, RULE)


def int8_rows_products(x, qparams, names):
    """[x @ W for W of names] by rule 4, one quantizing pass and one GEMM per K-chunk (int8_m1.int8_products)."""
    return int8_m1.int8_products(x, qparams, names, RULE)


def logits(qparams, cfg, inputs):
    """Logits [B, T, vocab_out] of int inputs [B, T] (already validated), as ref.int8_rows_m1.logits."""
    return int8_m1.logits(qparams, cfg, inputs, rule=RULE)


def next_probs(qparams, cfg, inputs):
    """float64 probabilities [B, T, vocab_out] for int inputs [B, T]; the same bits as ref.int8_rows_m1.next_probs."""
    return softmax64(logits(qparams, cfg, np.asarray(inputs, dtype=np.int64)))


class PrefixRows(int8_m1.PrefixRows):
    """Rule 4's key/value-cached grower: rule 3's (fast/cpu/int8_m1.py) with rule 4's products, its keys and values
    (bfloat16 values) cached in 2 bytes each (fast.cpu.exact_m1.PrefixRows.bfloat16_cache)."""

    rule = RULE
    bfloat16_cache = True
