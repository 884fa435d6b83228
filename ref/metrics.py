"""The paper's figures of merit (docs/paper.md §4, docs/design.md "Metrics").

- token compression ratio = text bytes / tokens (the paper's main "CR"; bytes per M2 step);
- bit compression ratio = text bits / compressed bits = 8 * bytes / bits;
- bits/byte = (mean NLL per token in nats) / (ln 2 * bytes per token): M2's loss converted to the text's scale, so
  methods with different tokens compare on one axis;
- FLOPs/byte = 2 * N_nonembedding(M2) / CR, plus 2 * N(M1) when M1 compressed the text (one forward pass of M1 per
  byte; the paper counts 6M for its 3M-parameter M1).
"""
import math

import numpy as np


def token_compression_ratio(n_bytes, n_tokens):
    if n_tokens <= 0:
        raise ValueError("n_tokens must be positive")
    return n_bytes / n_tokens


def bit_compression_ratio(n_bytes, n_bits):
    if n_bits <= 0:
        raise ValueError("n_bits must be positive")
    return 8.0 * n_bytes / n_bits


def bits_per_byte(mean_nll_nats, bytes_per_token):
    """bits/byte of a model whose mean per-token loss is mean_nll_nats on tokens holding bytes_per_token bytes."""
    if bytes_per_token <= 0:
        raise ValueError("bytes_per_token must be positive")
    return mean_nll_nats / (math.log(2.0) * bytes_per_token)


def flops_per_byte(m2_nonembedding_params, compression_ratio, m1_params=0):
    """Inference FLOPs per text byte: 2 N(M2) / CR + 2 N(M1) (the M1 term only when M1 did the compressing)."""
    if compression_ratio <= 0:
        raise ValueError("compression_ratio must be positive")
    return 2.0 * m2_nonembedding_params / compression_ratio + 2.0 * m1_params


def bit_values(bits, n, overlapping):
    """Integer values of the bit n-grams (overlapping) or n-bit tokens (consecutive) of a 0/1 stream, MSB first."""
    bits = np.asarray(bits, dtype=np.int64)
    if overlapping:
        count = len(bits) - n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        out = np.zeros(count, dtype=np.int64)
        for k in range(n):
            out = (out << 1) | bits[k:k + count]
        return out
    count = len(bits) // n
    weights = 1 << np.arange(n - 1, -1, -1, dtype=np.int64)
    return bits[:count * n].reshape(count, n) @ weights


def kl_to_uniform(observed, n):
    """(plug-in KL, Miller-Madow KL) in bits of the empirical distribution of `observed` against uniform on 2^n.

    How far a method's bits are from random (docs/paper.md §3.7; analysis/uniformity.py, train/controls.py)."""
    observed = np.asarray(observed)
    total = len(observed)
    if total == 0:
        raise ValueError("no values to measure")
    counts = np.bincount(observed, minlength=1 << n)
    seen = counts[counts > 0].astype(np.float64)
    p = seen / total
    entropy = float(-(p * np.log2(p)).sum())
    plug_in = n - entropy
    return plug_in, plug_in - (len(seen) - 1) / (2 * total * math.log(2))
