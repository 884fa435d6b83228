"""The paper's figures of merit (PAPER.md §4, DESIGN.md "Metrics").

- token compression ratio = text bytes / tokens (the paper's main "CR"; bytes per M2 step);
- bit compression ratio = text bits / compressed bits = 8 * bytes / bits;
- bits/byte = (mean NLL per token in nats) / (ln 2 * bytes per token): M2's loss converted to the text's scale, so
  methods with different tokens compare on one axis;
- FLOPs/byte = 2 * N_nonembedding(M2) / CR, plus 2 * N(M1) when M1 compressed the text (one forward pass of M1 per
  byte; the paper counts 6M for its 3M-parameter M1).
"""
import math


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
