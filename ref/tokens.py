"""Cutting a bitstream into N-bit tokens (v = 2^N) and back.

Token k is bits [k*N, (k+1)*N) read big-endian (the first bit is the most significant), so with N = 8 the tokens of
a byte-aligned bitstream are its bytes. A bitstream whose length is not a multiple of N is padded with zero bits to
fill the last token; tokens_to_bits(..., n_bits) drops that padding again.
"""
import numpy as np

MAX_BITS_PER_TOKEN = 16


def _check_bits_per_token(bits_per_token):
    if not isinstance(bits_per_token, (int, np.integer)) or not 1 <= bits_per_token <= MAX_BITS_PER_TOKEN:
        raise ValueError(f"bits_per_token must be an integer from 1 to {MAX_BITS_PER_TOKEN}, got {bits_per_token!r}")


def bits_to_tokens(bits, bits_per_token):
    """int64 tokens [ceil(len(bits) / N)] of a 0/1 bitstream."""
    _check_bits_per_token(bits_per_token)
    bits = np.asarray(bits)
    if bits.ndim != 1 or (bits.size and (bits.min() < 0 or bits.max() > 1)):
        raise ValueError("bits must be a 1-D array of 0/1 values")
    n_tokens = -(-len(bits) // bits_per_token)
    padded = np.zeros(n_tokens * bits_per_token, dtype=np.int64)
    padded[:len(bits)] = bits
    weights = 1 << np.arange(bits_per_token - 1, -1, -1, dtype=np.int64)  # [N] MSB first
    return padded.reshape(n_tokens, bits_per_token) @ weights


def tokens_to_bits(tokens, bits_per_token, n_bits=None):
    """uint8 bits of N-bit tokens; n_bits (if given) drops the zero padding of the last token."""
    _check_bits_per_token(bits_per_token)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError("tokens must be a 1-D integer array")
    tokens = tokens.astype(np.int64)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= (1 << bits_per_token)):
        raise ValueError(f"tokens must lie in 0..{(1 << bits_per_token) - 1} for {bits_per_token} bits per token")
    shifts = np.arange(bits_per_token - 1, -1, -1, dtype=np.int64)
    bits = ((tokens[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
    if n_bits is not None:
        if not len(bits) - bits_per_token < n_bits <= len(bits) and not (n_bits == 0 == len(bits)):
            raise ValueError(f"n_bits={n_bits} does not match {len(tokens)} tokens of {bits_per_token} bits")
        if np.any(bits[n_bits:]):
            raise ValueError("the padding bits of the last token are not zero")
        bits = bits[:n_bits]
    return bits
