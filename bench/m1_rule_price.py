"""The price of M1's exact rules in bits/byte: rules 1, 2 (int16) and 3 (int8) rows vs the float model's own rows.

Usage (from the repository root):
    python bench/m1_rule_price.py --checkpoint out/bench/m1_3m.npz [--sequences 64] [--length 128]
    python bench/m1_rule_price.py --checkpoint out/m1files/m1.npz --heldout out/m1files/heldout.txt
    python bench/m1_rule_price.py --shipped --heldout TEXT [--sequences 128 --length 256]

M1 comes from a train-m1 checkpoint (bench/equalinfo_m1_speed.py trains and saves one; so does bench/m1_files.py's
recipe), or with --shipped is the shipped M1, whose file holds only rule 3's int8 weights: its "float" model is
then those weights dequantized (W_int * s, float32), so the table prices the rows' quantization and rule 4's
bfloat16 keys and values, not the weights' (which a trained float M1 shows: bench/README.md). The text is the held-out last 10% of tinyshakespeare (the bench's M1 trains on the first 90%), or the
whole --heldout file, cut into BOS-started sequences as Equal-Info windows see it. For each way of computing M1's
rows it prints the mean -log2 p(next byte) over the same positions:
- float: ref.transformer.forward (the float model as trained, float64 softmax);
- rule 1: ref/exact_m1.py (fixed-order float arithmetic; fast/cpu's twin, the same bits);
- rule 2: ref/integer_m1.py, int16 operands (fast/cpu/integer_m1.py, the same bits);
- rule 3: ref/int8_m1.py, int8 weights and 14-bit rows split into two int8 halves (fast/cpu/int8_m1.py, the same
  bits; checked equal to the generic computation below);
- rule 3 with split weights (not a rule of this build): 14-bit weights per channel (|W_int| <= 16383 = 128 * 127
  + 127, split like the rows: four int8-valued float32 GEMMs per product, as exact), measured to show what
  int8 weights cost against 14-bit ones;
- rule 4: ref/int8_rows_m1.py, int8 weights and 7-bit rows, one GEMM per product, keys and values in bfloat16
  (fast/cpu/int8_rows_m1.py, the same bits);
- int8 rows and weights (rule 4 without its bfloat16 keys and values, not a rule): 7-bit rows, one GEMM.
The variants are computed by `quantized_rows`: rule 1's fast elementwise code with products
(x_int @ W_int exactly in float64, then rule 2/3's rescale) at the given row and weight widths.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.fast.cpu import exact_m1 as cpu_exact  # noqa: E402
from equalinfo.fast.cpu import int8_m1 as cpu_int8  # noqa: E402
from equalinfo.fast.cpu import integer_m1 as cpu_int  # noqa: E402
from equalinfo.fast.cpu import int8_rows_m1 as cpu_rows  # noqa: E402
from equalinfo.filetool import shipped_model  # noqa: E402
from equalinfo.ref import int8_m1, integer_m1, transformer  # noqa: E402
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


def quantized_rows(params, cfg, inputs, row_max, weight_max):
    """Rows with products quantized like rules 2 and 3 at other widths: rows to integers in [-row_max, row_max]
    (row_max = 2^b - 1, the row's max scaled into [2^(b-1), 2^b)), weights per channel to [-weight_max,
    weight_max]; x_int @ W_int summed exactly in float64; rescaled (acc * s_j) * 2^e_r. Rule 1's elementwise rest."""
    fraction_bits = int(row_max).bit_length()
    weights = {}
    for name in integer_m1.product_names(cfg):
        w = params[name].astype(np.float64)
        top = np.abs(w).max(axis=0)
        scale = np.where(top > 0, top / weight_max, 1.0)
        weights[name] = np.clip(np.rint(w / scale), -weight_max, weight_max), scale

    def product(x, _, name):
        top = np.abs(x).max(axis=1).astype(np.float64)
        e = np.where(top > 0, np.frexp(top)[1].astype(np.int64) - fraction_bits, 0)
        x_int = np.clip(np.rint(np.ldexp(x.astype(np.float64), -e[:, None])), -row_max, row_max)
        w_int, scale = weights[name]
        return (((x_int @ w_int) * scale) * np.ldexp(1.0, e)[:, None]).astype(x.dtype)

    return cpu_exact.softmax64(cpu_exact.logits(params, cfg, inputs, product=product))


def dequantized_shipped_m1():
    """The shipped M1's float parameters: each product's int8 weights times their scales (float32); requantizing
    them per channel gives back the same int8 weights (a column's largest |W_int| is 127)."""
    stored = shipped_model.load(3).params
    params = {name: array for name, array in stored.items() if not name.endswith((".int", ".scale"))}
    for name in integer_m1.product_names(shipped_model.load(3).cfg):
        params[name] = (stored[name + ".int"] * stored[name + ".scale"]).astype(np.float32)
    return params


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="out/bench/m1_3m.npz")
    parser.add_argument("--shipped", action="store_true", help="the shipped M1 (its int8 weights dequantized)")
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--heldout", default=None, help="a held-out text file, used whole (instead of --text's tail)")
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()

    if args.shipped:
        params, cfg, meta = dequantized_shipped_m1(), shipped_model.load(3).cfg, {"history": [{"step": 2400}]}
        args.checkpoint = "the shipped M1 (dequantized int8 weights)"
    else:
        params, cfg, _, meta = checkpoint.load(args.checkpoint)
    data = Path(args.heldout or args.text).read_bytes()
    held_out = bytes_to_symbols(data if args.heldout else data[len(data) * 9 // 10:])
    n, T = args.sequences, args.length
    targets = held_out[:n * T].reshape(n, T).astype(np.int64)
    inputs = np.concatenate([np.full((n, 1), BOS), targets[:, :-1]], axis=1)
    rule3 = cpu_int8.next_probs(int8_m1.quantize_params(params, cfg), cfg, inputs)
    assert np.array_equal(rule3, quantized_rows(params, cfg, inputs, int8_m1.ROW_MAX, int8_m1.WEIGHT_MAX)), \
        "the generic quantized rows differ from rule 3's"
    results = {
        "float (ref.transformer.forward)": float_rows(params, cfg, inputs),
        "rule 1 (exact float order)": cpu_exact.next_probs(params, cfg, inputs),
        "rule 2 (int16 products)": cpu_int.next_probs(integer_m1.quantize_params(params, cfg), cfg, inputs),
        "rule 3 (int8 weights, 14b rows)": rule3,
        "14b weights, 14b rows (4 GEMMs)": quantized_rows(params, cfg, inputs, int8_m1.ROW_MAX, int8_m1.ROW_MAX),
        "rule 4 (int8 rows, bf16 k/v)": cpu_rows.next_probs(int8_m1.quantize_params(params, cfg), cfg, inputs),
        "int8 weights, 7b rows (1 GEMM)": quantized_rows(params, cfg, inputs, 127, 127),
    }
    history = meta.get("history", [{}])
    validated = [h for h in history if "val_bits_per_byte" in h]
    trained = f", {validated[-1]['val_bits_per_byte']:.3f} bits/byte on its validation set" if validated else ""
    print(f"M1 {args.checkpoint}: d {cfg.d_model}, {cfg.n_layers} layers, ff {cfg.d_ff}, trained "
          f"{history[-1].get('step', '?')} steps{trained}; held-out text: {n} sequences x {T} bytes of "
          f"{args.heldout or args.text}")
    base = None
    for name, probs in results.items():
        bpb = bits_per_byte(probs, targets)
        base = bpb if base is None else base
        print(f"{name:>32}: {bpb:.6f} bits/byte  ({100 * (bpb / base - 1):+.4f}% vs float)")
    assert math.isfinite(base)


if __name__ == "__main__":
    main()
