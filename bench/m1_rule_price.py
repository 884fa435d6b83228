"""The price of M1's exact rules in bits/byte: rule 1 and rule 2 (int16) rows vs the float model's own rows.

Usage (from the repository root):
    python bench/m1_rule_price.py --checkpoint out/bench/m1_3m.npz [--sequences 64] [--length 128]

M1 comes from a train-m1 checkpoint (bench/equalinfo_m1_speed.py trains and saves one). The text is the held-out
last 10% of tinyshakespeare (the bench's M1 trains on the first 90%), cut into BOS-started sequences as
Equal-Info windows see it. For each way of computing M1's rows it prints the mean -log2 p(next byte) over the
same positions:
- float: ref.transformer.forward (the float model as trained, float64 softmax);
- rule 1: ref/exact_m1.py (fixed-order float arithmetic; fast/cpu's twin, the same bits);
- rule 2: ref/integer_m1.py, int16 operands (fast/cpu/integer_m1.py, the same bits);
- int8: rule 2's arithmetic with 8-bit operands (weights rint(W / (max/127)), rows with 7 bits of magnitude), the
  variant that a float32 GEMM could multiply exactly for n <= 1040: not a rule of this build, measured to show
  what 8 bits would cost.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.fast.cpu import exact_m1 as cpu_exact  # noqa: E402
from equalinfo.fast.cpu import integer_m1 as cpu_int  # noqa: E402
from equalinfo.ref import integer_m1, transformer  # noqa: E402
from equalinfo.train import checkpoint  # noqa: E402
from equalinfo.ref.symbols import BOS, bytes_to_symbols  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def bits_per_byte(probs, targets):
    """mean -log2 p(target) over every position.   probs [B, T, V], targets [B, T]"""
    picked = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]
    return float(-np.log2(picked).mean())


def float_rows(params, cfg, inputs):
    logits = transformer.forward(params, cfg, inputs).astype(np.float64)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def int8_rows(params, cfg, inputs):
    """ref.integer_m1 with 8-bit operands (module constants swapped for the call)."""
    saved = integer_m1.INT_MAX, integer_m1.FRACTION_BITS
    integer_m1.INT_MAX, integer_m1.FRACTION_BITS = 127, 7
    try:
        return integer_m1.next_probs(integer_m1.quantize_params(params, cfg), cfg, inputs)
    finally:
        integer_m1.INT_MAX, integer_m1.FRACTION_BITS = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="out/bench/m1_3m.npz")
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()

    params, cfg, _, meta = checkpoint.load(args.checkpoint)
    data = Path(args.text).read_bytes()
    held_out = bytes_to_symbols(data[len(data) * 9 // 10:])
    n, T = args.sequences, args.length
    targets = held_out[:n * T].reshape(n, T).astype(np.int64)
    inputs = np.concatenate([np.full((n, 1), BOS), targets[:, :-1]], axis=1)
    qparams = integer_m1.quantize_params(params, cfg)
    results = {
        "float (ref.transformer.forward)": float_rows(params, cfg, inputs),
        "rule 1 (exact float order)": cpu_exact.next_probs(params, cfg, inputs),
        "rule 2 (int16 products)": cpu_int.next_probs(qparams, cfg, inputs),
        "int8 products (not a rule)": int8_rows(params, cfg, inputs),
    }
    history = meta.get("history", [{}])
    print(f"M1 {args.checkpoint}: d {cfg.d_model}, {cfg.n_layers} layers, ff {cfg.d_ff}, trained "
          f"{history[-1].get('step', '?')} steps; held-out text: {n} sequences x {T} bytes of {args.text}")
    base = None
    for name, probs in results.items():
        bpb = bits_per_byte(probs, targets)
        base = bpb if base is None else base
        print(f"{name:>32}: {bpb:.6f} bits/byte  ({100 * (bpb / base - 1):+.4f}% vs float)")
    assert math.isfinite(base)


if __name__ == "__main__":
    main()
