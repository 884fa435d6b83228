"""Equal-Info compression with a Transformer M1: bytes/s of fast.cpu (Numba rows, lockstep batches) vs ref.

Usage (from the repository root):
    python bench/equalinfo_m1_speed.py [--size 3m] [--train-steps 300] [--checkpoint out/bench/m1_3m.npz]
                                       [--fast-bytes 81920] [--ref-bytes 2048] [--window-bits 16] [--threads 2]

M1 has the paper's "3m" shape; an untrained M1 puts ~8 bits on every byte (2 symbols per 16-bit window) where a
trained one puts ~2-3, so the bench first trains it briefly on the first 90% of tinyshakespeare with the fast
backend (or loads --checkpoint; a trained one is saved there for the next run). The held-out 10% is the text:
- ref: ref.equalinfo.compress / decompress, one window at a time, rows from ref/exact_m1.py (NumPy), on the first
  --ref-bytes bytes (ref is slow: its decoder evaluates the whole window prefix for every symbol);
- fast: fast.cpu.equalinfo.compress_batch / decompress_batch on --fast-bytes bytes cut into 10,240-byte examples
  (the paper's example length), rows from fast/cpu/exact_m1.py, every active window in one call per step (the
  decoder grows each window's prefix with cached keys/values: fast/cpu/exact_m1.PrefixRows).
Both sides use the same exact rule, so the bench also checks that fast's bits for ref's slice equal ref's bits and
that each decodes the other's. Ratios are of bytes/s measured in this one run.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast.cpu import equalinfo as fast_ei  # noqa: E402
from fast.cpu import exact_m1 as fast_exact  # noqa: E402
from ref import equalinfo  # noqa: E402
from ref.m1 import TransformerModel  # noqa: E402
from ref.symbols import bytes_to_symbols  # noqa: E402
from train import backends, checkpoint, m1  # noqa: E402
from train.trainer import TrainSettings  # noqa: E402

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--size", default="3m")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--checkpoint", default="out/bench/m1_3m.npz")
    parser.add_argument("--fast-bytes", type=int, default=8 * EXAMPLE_BYTES)
    parser.add_argument("--ref-bytes", type=int, default=2048)
    parser.add_argument("--ref-decode-bytes", type=int, default=256)
    parser.add_argument("--window-bits", type=int, default=16)
    parser.add_argument("--lookahead", type=int, default=None, help="fast encoder's rows per window and call")
    args = parser.parse_args()

    data = Path(args.text).read_bytes()
    cut = len(data) * 9 // 10
    train_symbols, held_out = bytes_to_symbols(data[:cut]), data[cut:]
    params, cfg = trained_m1(args, train_symbols, bytes_to_symbols(held_out[-20_000:]))
    b = args.window_bits
    ref_model = TransformerModel(params, cfg)
    fast_model = TransformerModel(params, cfg, rows=fast_exact.next_probs, prefix_rows=fast_exact.PrefixRows)

    ref_text = bytes_to_symbols(held_out[:args.ref_bytes])
    ref_bits, ref_enc = timed(equalinfo.compress, ref_text, ref_model, b)
    short = bytes_to_symbols(held_out[:args.ref_decode_bytes])
    short_bits = equalinfo.compress(short, ref_model, b)
    _, ref_dec = timed(equalinfo.decompress, short_bits, ref_model, b, n_symbols=len(short))

    fast_ei.compress_batch([ref_text[:64]], fast_model, b)  # compile
    same_bits = fast_ei.compress_batch([ref_text], fast_model, b, lookahead=args.lookahead)[0]
    assert np.array_equal(same_bits, ref_bits), "fast and ref bits differ on the same text"
    assert np.array_equal(fast_ei.decompress(ref_bits, fast_model, b, n_symbols=len(ref_text)), ref_text)

    examples = [bytes_to_symbols(held_out[i:i + EXAMPLE_BYTES])
                for i in range(0, min(args.fast_bytes, len(held_out)), EXAMPLE_BYTES)]
    n_bytes = sum(len(e) for e in examples)
    fast_bits, fast_enc = timed(fast_ei.compress_batch, examples, fast_model, b, lookahead=args.lookahead)
    decoded, fast_dec = timed(fast_ei.decompress_batch, fast_bits, fast_model, b,
                              n_symbols=[len(e) for e in examples])
    assert all(np.array_equal(d, e) for d, e in zip(decoded, examples)), "fast round trip failed"
    n_windows = sum(len(bits) // b for bits in fast_bits)

    print(f"\nEqual-Info b={b}, M1 {args.size} ({cfg.dtype}, exact rows), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    print(f"fast text: {n_bytes:,} bytes in {len(examples)} examples, {n_windows:,} windows, "
          f"{n_bytes / n_windows:.2f} bytes/window, token CR at v=2^{b}: {n_bytes / n_windows:.2f}")
    print(f"{'':>12} {'ref bytes/s':>12} {'fast bytes/s':>13} {'fast/ref':>9}")
    rows = [("compress", len(ref_text) / ref_enc, n_bytes / fast_enc),
            ("decompress", len(short) / ref_dec, n_bytes / fast_dec)]
    for name, ref_speed, fast_speed in rows:
        print(f"{name:>12} {ref_speed:12,.0f} {fast_speed:13,.0f} {fast_speed / ref_speed:8.1f}x")
    print(f"(ref on {len(ref_text):,} bytes to compress and {len(short):,} to decompress; fast's bits for ref's "
          f"text are identical to ref's and each decodes the other's)")


if __name__ == "__main__":
    main()
