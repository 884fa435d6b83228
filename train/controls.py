"""Controls of `equalinfo repro`: measurements that say whether a difference in the results means what it seems to.

- M1's context (`ac_context`): AC over an example with M1 restarting every seq_len symbols (the length it was
  trained on, what the pipeline codes with) against M1 reading the whole example (extrapolating past its training
  length: its relative-position buckets saturate and it never learned such contexts). The gap is what a
  reproduction that ignores the training length pays in AC's compression ratio.
- Window statistics (`window_statistics`): what zero padding does to Equal-Info tokens. The paper pads a window's
  shortest cell with zeros; ours names a delimiting cell with the b bits. Per window: trailing zero bits, and the
  KL from uniform of the window's last N-bit token (the token that holds the padding), beside the same KL of all
  tokens and of as many uniformly random tokens (a finite sample of a 65,536-word vocabulary is far from uniform
  even when the source is uniform; the random baseline is the level to compare with).
"""
import math
import secrets

import numpy as np

from equalinfo.ref.metrics import bit_values, kl_to_uniform
from equalinfo.ref.tokens import tokens_to_bits


def ac_context(backend, trained_model, whole_model, examples, precision=14):
    """{"restart_every", "bytes", "examples", "bits_per_byte_trained_context", "bits_per_byte_whole_example"}:
    AC's bits/byte over `examples` (Example objects) with M1 restarting at its training length and with M1 over
    the whole example. Bits/byte here is the coder's own (bitstream length / bytes), EOS counted as a byte."""
    n_bytes = sum(len(e.symbols) for e in examples)
    if n_bytes == 0:
        raise ValueError("no examples to measure AC's context control on")
    bits = {}
    for name, model in (("trained_context", trained_model), ("whole_example", whole_model)):
        bits[name] = sum(len(backend.ac.compress(np.asarray(e.symbols, np.int64), model, precision))
                         for e in examples)
    return {"restart_every": trained_model.restart_every, "examples": len(examples), "bytes": int(n_bytes),
            **{f"bits_per_byte_{name}": total / n_bytes for name, total in bits.items()}}


def kept_window_bits(dataset, window_bits):
    """[W, b] uint8: every whole window inside the kept tokens of each row (rows start at a window boundary)."""
    n = int(dataset.meta["bits_per_token"])
    tokens, weights = dataset.column("tokens"), dataset.column("weights")
    windows = []
    for row, weight in zip(tokens, weights):
        bits = tokens_to_bits(row[weight > 0].astype(np.int64), n)
        whole = len(bits) // window_bits
        windows.append(bits[:whole * window_bits].reshape(whole, window_bits))
    return np.concatenate(windows) if windows else np.zeros((0, window_bits), np.uint8)


def trailing_zeros(windows):
    """[W] int: the number of zero bits at the end of each window (b for an all-zero window)."""
    windows = np.asarray(windows)
    ones = windows[:, ::-1] == 1
    return np.where(ones.any(axis=1), ones.argmax(axis=1), windows.shape[1])


def window_statistics(dataset, window_bits):
    """Zero padding's trace in an Equal-Info dataset's kept tokens (module docstring). KLs are plug-in, in bits,
    against uniform on 2^N tokens; `random_kl` is the same estimate on as many tokens from the OS's CSPRNG."""
    n = int(dataset.meta["bits_per_token"])
    windows = kept_window_bits(dataset, window_bits)  # [W, b]
    if len(windows) == 0:
        raise ValueError(f"{dataset.directory}: no whole window in the kept tokens")
    last_tokens = bit_values(windows[:, -n:].reshape(-1), n, overlapping=False)  # the N bits that end each window
    all_tokens = bit_values(windows.reshape(-1), n, overlapping=False)
    random = np.frombuffer(secrets.token_bytes(len(last_tokens) * math.ceil(n / 8)), np.uint8)
    random_tokens = bit_values(np.unpackbits(random)[:len(last_tokens) * n], n, overlapping=False)
    zeros = trailing_zeros(windows)
    return {"windows": int(len(windows)), "mean_trailing_zero_bits": float(zeros.mean()),
            "last_bit_zero_fraction": float((windows[:, -1] == 0).mean()),
            "last_token_kl": kl_to_uniform(last_tokens, n)[0], "all_tokens_kl": kl_to_uniform(all_tokens, n)[0],
            "random_kl": kl_to_uniform(random_tokens, n)[0], "last_tokens": int(len(last_tokens))}
