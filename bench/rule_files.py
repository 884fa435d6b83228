"""Exact rules 3 and 4 on the shipped M1's weights, whole files side by side: what rule 4 costs and what it gains.

Usage (from the repository root):
    python bench/rule_files.py --text FILE [--bytes 400000] [--workers 2] [--methods ac,equalinfo16,equalinfo1024]

Rule 4 (ref/int8_rows_m1.py) reads rule 3's int8 weights, so the shipped M1 runs under either (shipped_model.load(3)
and load(4)). For each method, the file of --text's first --bytes is compressed and decompressed under each rule
(the rules alternating, rule 3 first), exactly as `equalinfo compress` codes it (filetool/codec.py on the cpu
backend, segments of 16 KiB, --workers processes, the model not embedded); every file is checked to round trip.
Printed per method: both files' sizes and rule 4's price (its file against rule 3's), and bytes of text per second
of each coding call (worker start-up included, the CLI's start and loading the model not) with the speed ratio.
The per-segment size ratio's spread (the sizes of the file's 16 KiB segments, rule 4 over rule 3) says how far
the price stands above the noise: its standard error across segments is printed too.
"""
import argparse
import math
import os
import platform
import time
from pathlib import Path

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

import numpy as np  # noqa: E402

from equalinfo.filetool import codec, fileformat, shipped_model  # noqa: E402
from equalinfo.train import backends  # noqa: E402

METHODS = {"ac": ("ac", 0), "equalinfo16": ("equalinfo", 16), "equalinfo1024": ("equalinfo", 1024)}


def code(data, method, window_bits, rule, backend, workers):
    """(file bytes, compress seconds, decompress seconds) of data under the shipped M1 by `rule`."""
    model = shipped_model.load(rule)
    started = time.perf_counter()
    blob, _ = codec.compress_bytes(data, method, model, False, window_bits or 16, 14, backend, workers=workers)
    middle = time.perf_counter()
    back, _ = codec.decompress_bytes(blob, model, backend=backend, workers=workers)
    done = time.perf_counter()
    if bytes(back) != data:
        raise SystemExit(f"{method} under rule {rule} did not round trip")
    return blob, middle - started, done - middle


def segment_bits(blob):
    return np.array([n_bits for n_bits, _ in fileformat.unpack(blob).segments.entries], dtype=np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", required=True)
    parser.add_argument("--bytes", type=int, default=400_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    data = Path(args.text).read_bytes()[:args.bytes]
    backend = backends.load("cpu")
    print(f"{len(data):,} bytes of {args.text}; shipped M1 under rules 3 and 4, cpu backend, {args.workers} "
          f"process(es); {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}")
    print("| method | rule 3 bytes | rule 4 bytes | price (SE by segment) | compress KB/s 3 / 4 (x) | "
          "decompress KB/s 3 / 4 (x) |")
    print("|---|---|---|---|---|---|")
    for name in args.methods.split(","):
        method, window_bits = METHODS[name]
        runs = {rule: code(data, method, window_bits, rule, backend, args.workers) for rule in (3, 4)}
        (blob3, c3, d3), (blob4, c4, d4) = runs[3], runs[4]
        ratios = segment_bits(blob4) / segment_bits(blob3)
        spread = ratios.std(ddof=1) / math.sqrt(len(ratios)) if len(ratios) > 1 else float("nan")
        kb = len(data) / 1000
        print(f"| {name} | {len(blob3):,} | {len(blob4):,} | {100 * (len(blob4) / len(blob3) - 1):+.3f}% "
              f"({100 * spread:.3f}%) | {kb / c3:.1f} / {kb / c4:.1f} ({c3 / c4:.2f}x) | {kb / d3:.1f} / "
              f"{kb / d4:.1f} ({d3 / d4:.2f}x) |", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at the end; every file round tripped")


if __name__ == "__main__":
    main()
