"""Equal-Info compression with a Transformer M1: bytes/s of an exact rule (--rule 2, 3 or 4) vs rule 1 vs ref.

Usage (from the repository root):
    python bench/equalinfo_m1_speed.py [--size 3m] [--train-steps 300] [--checkpoint out/bench/m1_3m.npz]
                                       [--fast-bytes 163840] [--old-bytes 40960] [--ref-bytes 2048] [--window-bits 16]
                                       [--threads 1] [--rule 3] [--lookahead N]
                                       [--examples N --example-bytes 10240 --rule1-example-bytes L]
    python bench/equalinfo_m1_speed.py --shipped --text HELD_OUT_ENGLISH [--rule 4] [...]

M1 has the paper's "3m" shape; an untrained M1 puts ~8 bits on every byte (2 symbols per 16-bit window) where a
trained one puts ~2-3, so the bench first trains it briefly on the first 90% of tinyshakespeare with the fast
backend (or loads --checkpoint; a trained one is saved there for the next run). The held-out 10% is the text:
- ref: ref.equalinfo.compress / decompress, one window at a time, rows from ref/exact_m1.py (rule 1, NumPy), on
  the first --ref-bytes bytes (ref is slow: its decoder evaluates the whole window prefix for every symbol);
- rule 1 cpu: fast.cpu.equalinfo.compress_batch / decompress_batch on --old-bytes bytes cut into 10,240-byte
  examples (the paper's example length), rows from fast/cpu/exact_m1.py with its key/value cache;
- rule N cpu (--rule, default 3): the same on --fast-bytes bytes with rows from fast/cpu/integer_m1.py (rule 2,
  dgemm) or fast/cpu/int8_m1.py (rule 3, int8-valued products: onnxruntime's integer GEMM where installed, else
  sgemm; EQUALINFO_INT8_GEMM forces one) and its cache. Issue #24's goal is rule 3 >= 10x rule 1 here.
--shipped takes the shipped M1 instead of training one: its int8 weights, dequantized (W_int * s, float32), are
the float M1 that rule 1 and ref run, and rules 3 and 4 quantize them back to the same int8 weights; give it English
it did not train on as --text (the last 10% of it is coded).
--examples N sets the lockstep width instead (issue #24, round 3): both rules code the same N examples side by side
(--fast-bytes and --old-bytes are then unused), each of --example-bytes bytes, rule 1's cut to their first
--rule1-example-bytes (default: the same) because rule 1 is the slow one; a window restarts M1, so what a step costs
depends on the width, not on how far into its example a stream is.
The same text coded under the two rules gives different bits (different rows); each rule's cpu bits for ref's
slice are checked equal to ref's bits under that rule. Ratios are of bytes/s measured in this one run.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)
from equalinfo.fast.cpu.threads import quiet_idle_blas_threads  # noqa: E402

quiet_idle_blas_threads()  # before NumPy loads OpenBLAS, as the CLI does (matters for --threads 2)

import numpy as np  # noqa: E402

from equalinfo.fast.cpu import equalinfo as fast_ei  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.ref import equalinfo  # noqa: E402
from equalinfo.ref.m1 import TransformerModel  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.train import backends, checkpoint, m1  # noqa: E402
from equalinfo.train.trainer import TrainSettings  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
EXAMPLE_BYTES = 10_240


def trained_m1(args, train_symbols, val_symbols):
    path = Path(args.checkpoint)
    if path.exists():
        params, cfg, _, meta = checkpoint.load(path)
        print(f"M1 loaded from {path} ({meta.get('history', [{}])[-1].get('val_bits_per_byte', '?')} bits/byte)")
        return params, cfg
    cfg = m1.make_config(args.size)
    settings = TrainSettings(steps=args.train_steps, optimizer={
        "name": "adamw", "peak_lr": 3e-3, "warmup_steps": 30, "total_steps": args.train_steps})
    path.parent.mkdir(parents=True, exist_ok=True)
    params, history = m1.train_m1(train_symbols, val_symbols, path, backends.load("cpu"), cfg, settings,
                                  seq_len=128, batch_size=16, eval_sequences=32)
    print(f"M1 {args.size} trained {args.train_steps} steps: {history[-1]['val_bits_per_byte']:.3f} bits/byte")
    return params, cfg


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def rule_speed(model, examples, b, lookahead):
    """(compress bytes/s, decompress bytes/s, windows) of fast.cpu on examples, with a round-trip check."""
    n_bytes = sum(len(e) for e in examples)
    bits, enc = timed(fast_ei.compress_batch, examples, model, b, lookahead=lookahead)
    decoded, dec = timed(fast_ei.decompress_batch, bits, model, b, n_symbols=[len(e) for e in examples])
    assert all(np.array_equal(d, e) for d, e in zip(decoded, examples)), "fast round trip failed"
    return n_bytes / enc, n_bytes / dec, sum(len(x) // b for x in bits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--size", default="3m")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--checkpoint", default="out/bench/m1_3m.npz")
    parser.add_argument("--fast-bytes", type=int, default=16 * EXAMPLE_BYTES)
    parser.add_argument("--old-bytes", type=int, default=4 * EXAMPLE_BYTES)
    parser.add_argument("--ref-bytes", type=int, default=2048)
    parser.add_argument("--ref-decode-bytes", type=int, default=256)
    parser.add_argument("--window-bits", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="Numba and OpenBLAS threads (fast.cpu.threads)")
    parser.add_argument("--lookahead", type=int, default=None, help="fast encoder's rows per window and call")
    parser.add_argument("--rule", type=int, default=3, choices=(2, 3, 4), help="the exact rule set against rule 1")
    parser.add_argument("--shipped", action="store_true", help="the shipped M1 (its weights dequantized), no training")
    parser.add_argument("--examples", type=int, default=None, help="lockstep width: examples coded side by side "
                                                                  "by both rules (the same ones)")
    parser.add_argument("--example-bytes", type=int, default=EXAMPLE_BYTES)
    parser.add_argument("--rule1-example-bytes", type=int, default=None, help="with --examples: rule 1's examples "
                                                                            "cut to this many bytes each")
    args = parser.parse_args()
    set_threads(args.threads)

    data = Path(args.text).read_bytes()
    cut = len(data) * 9 // 10
    train_symbols, held_out = bytes_to_symbols(data[:cut]), data[cut:]
    if args.shipped:
        from m1_rule_price import dequantized_shipped_m1
        from equalinfo.filetool import shipped_model

        params, cfg = dequantized_shipped_m1(), shipped_model.load(3).cfg
    else:
        params, cfg = trained_m1(args, train_symbols, bytes_to_symbols(held_out[-20_000:]))
    b = args.window_bits
    ref_model = TransformerModel(params, cfg)
    old_model = m1.coding_model(params, cfg, "cpu", rule=1)
    new_model = m1.coding_model(params, cfg, "cpu", rule=args.rule)
    ref_new_model = m1.on_backend(new_model, "ref")

    ref_text = bytes_to_symbols(held_out[:args.ref_bytes])
    ref_bits, ref_enc = timed(equalinfo.compress, ref_text, ref_model, b)
    short = bytes_to_symbols(held_out[:args.ref_decode_bytes])
    short_bits = equalinfo.compress(short, ref_model, b)
    _, ref_dec = timed(equalinfo.decompress, short_bits, ref_model, b, n_symbols=len(short))
    ref2_bits = equalinfo.compress(short, ref_new_model, b)  # the rule in ref, for the bit check

    for model, want, text in ((old_model, ref_bits, ref_text), (new_model, ref2_bits, short)):
        fast_ei.compress_batch([text[:64]], model, b)  # compile
        same_bits = fast_ei.compress_batch([text], model, b, lookahead=args.lookahead)[0]
        assert np.array_equal(same_bits, want), "fast and ref bits differ on the same text"
        assert np.array_equal(equalinfo.decompress(same_bits, m1.on_backend(model, "ref"), b,
                                                   n_symbols=len(text)), text)

    def examples(n_bytes, size=EXAMPLE_BYTES, cut=None):
        return [bytes_to_symbols(held_out[i:i + size][:cut]) for i in range(0, min(n_bytes, len(held_out)), size)]

    if args.examples is None:
        new_examples, old_examples = examples(args.fast_bytes), examples(args.old_bytes)
    else:
        n_bytes = args.examples * args.example_bytes
        new_examples = examples(n_bytes, args.example_bytes)
        old_examples = examples(n_bytes, args.example_bytes, args.rule1_example_bytes)
        if len(new_examples) < args.examples or len(new_examples[-1]) < args.example_bytes:
            raise SystemExit(f"--examples {args.examples} x {args.example_bytes} bytes: the held-out text "
                             f"({len(held_out):,} bytes) has only {len(new_examples)}; give a longer --text")
    new_enc, new_dec, n_windows = rule_speed(new_model, new_examples, b, args.lookahead)
    old_enc, old_dec, _ = rule_speed(old_model, old_examples, b, args.lookahead)
    n_bytes = sum(len(e) for e in new_examples)

    print(f"\nEqual-Info b={b}, M1 {args.size} ({cfg.dtype}), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, --threads {args.threads}, {time.strftime('%H:%M:%S', time.gmtime())} UTC")
    rule = args.rule
    print(f"rule {rule} text: {n_bytes:,} bytes in {len(new_examples)} examples, {n_windows:,} windows, "
          f"{n_bytes / n_windows:.2f} bytes/window; rule 1 cpu on {sum(map(len, old_examples)):,} bytes in "
          f"{len(old_examples)} examples")
    print(f"{'':>12} {'ref (rule 1)':>13} {'cpu rule 1':>11} {f'cpu rule {rule}':>11} {f'rule{rule}/rule1':>12} "
          f"{f'rule{rule}/ref':>10}  (load average {os.getloadavg()[0]:.1f} at the end)")
    rows = [("compress", len(ref_text) / ref_enc, old_enc, new_enc),
            ("decompress", len(short) / ref_dec, old_dec, new_dec)]
    for name, ref_speed, old_speed, new_speed in rows:
        print(f"{name:>12} {ref_speed:13,.0f} {old_speed:11,.0f} {new_speed:11,.0f} {new_speed / old_speed:11.1f}x "
              f"{new_speed / ref_speed:9.0f}x")
    print(f"(bytes/s; ref on {len(ref_text):,} bytes to compress and {len(short):,} to decompress; each rule's "
          f"cpu bits equal ref's under that rule and decode with ref)")


if __name__ == "__main__":
    main()
