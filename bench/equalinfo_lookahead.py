"""The Equal-Info lockstep encoder's lookahead (fast/cpu/lookahead.py): model calls, rows evaluated and time.

Usage (from the repository root):
    python bench/equalinfo_lookahead.py --text FILE [--window-bits 16] [--segment-bytes 16384] [--threads 1]
                                        [--lookahead adaptive 1 3 ...] [--repeats 1]

The text is cut into segments as the file tool cuts it (16 KiB each, all of them one lockstep batch, as one process
of `equalinfo compress --method equalinfo` codes its group), and encoded with the shipped M1 under exact rule 3 (the
rule Equal-Info files use) on fast.cpu, once per --lookahead ("adaptive": the default; an integer: that many rows
per window and call) and repeat. For each it prints the grower's calls (one per lockstep step) and rows (M1
positions evaluated), rows per input byte and the encode's wall and CPU time (this process's; with --threads 1 it
moves less than wall time when another process takes the second core); every lookahead must give the same bits
(checked). Lookahead 1 evaluates exactly the rows a decoder does: the floor. Run it with PYTHONPATH pointing at
another checkout to time that checkout's code (bench/_checkout.py imports whatever `equalinfo` is found first).
"""
import argparse
import time

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.fast.cpu import equalinfo as fast_ei  # noqa: E402
from equalinfo.fast.cpu import lockstep  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.filetool import shipped_model  # noqa: E402
from equalinfo.train import m1  # noqa: E402


class CountingGrower:
    """A grower that counts its extend calls and rows (the lockstep encoder's model calls and positions)."""

    def __init__(self, grower, counts):
        self.grower, self.counts = grower, counts

    def reset(self, slots):
        return self.grower.reset(slots)

    def extend(self, slots, inputs):
        self.counts["calls"] += 1
        self.counts["rows"] += len(slots)
        return self.grower.extend(slots, inputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", required=True)
    parser.add_argument("--window-bits", type=int, default=16)
    parser.add_argument("--segment-bytes", type=int, default=1 << 14)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lookahead", nargs="+", default=["adaptive", "1"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    data = open(args.text, "rb").read()
    segments = [np.frombuffer(data[i:i + args.segment_bytes], np.uint8).astype(np.int64)
                for i in range(0, len(data), args.segment_bytes)]
    model = m1.on_backend(shipped_model.load(shipped_model.EQUALINFO_RULE), "cpu")
    counts = {"calls": 0, "rows": 0}
    real = lockstep.prefix_rows
    lockstep.prefix_rows = lambda m, n: CountingGrower(real(m, n), counts)
    fast_ei.compress_batch([segments[0][:300]], model, args.window_bits, use_table=False)  # compile and warm
    first = None
    print(f"{len(data):,} bytes in {len(segments)} segments, b={args.window_bits}, {args.threads} thread(s)")
    for _ in range(args.repeats):
        for ask in args.lookahead:
            counts.update(calls=0, rows=0)
            started, cpu = time.perf_counter(), time.process_time()
            bits = fast_ei.compress_batch(segments, model, args.window_bits, use_table=False,
                                          lookahead=None if ask == "adaptive" else int(ask))
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            bits = np.concatenate(bits)
            first = bits if first is None else first
            assert np.array_equal(bits, first), "a lookahead changed the bits"
            print(f"lookahead {ask:>8}: {counts['calls']:7,} calls {counts['rows']:9,} rows "
                  f"({counts['rows'] / len(data):.3f} per byte) {seconds:6.2f} s ({cpu:6.2f} s cpu) "
                  f"{len(data) / seconds / 1e3:6.2f} KB/s",
                  flush=True)


if __name__ == "__main__":
    main()
