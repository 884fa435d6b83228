"""What coding a file in independent segments (format version 3, filetool/segments.py) costs in size, per segment
size, with a Markov model and with M1: the numbers behind codec.DEFAULT_SEGMENT_BYTES.

Usage (from the repository root):
    python bench/segment_cost.py [--text ../shared/data/tinyshakespeare.txt] [--m1 M1.npz] [--m1-bytes 65536]

Each segment restarts the coder and the model (a fresh Equal-Info window, or AC's flush), and its payload is padded
to a whole byte and gets a 12-byte table entry. The cost of a segment size S is the file's size with segments of S
bytes over its size as one segment (the model not embedded, so only header, table and payload count), on the same
held-out text, coded by fast.cpu (the same bytes as ref). The Markov model (order 2) is fitted on the text's first
90% and codes the last 10%; M1 (a train-m1 checkpoint, exact rule 2, restarting at its training length as the file
tool does) codes the first --m1-bytes of that held-out part. Both models print one row per method and size, then the
smallest size whose cost stays at or below 0.5% for every model and method.
"""
import argparse
import platform
import time
from pathlib import Path

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)

from equalinfo.filetool import codec  # noqa: E402
from equalinfo.ref.models import MarkovModel  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.train import backends  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
SIZES = [1 << k for k in range(10, 18)]  # 1 KiB .. 128 KiB
GOAL = 0.5  # percent


def file_bytes(data, method, model, backend, segment_bytes):
    return len(codec.compress_bytes(data, method, model, embed=False, backend=backend,
                                    segment_bytes=segment_bytes)[0])


def costs(name, data, model, backend):
    """{(method, size): cost in percent}, printing one row each."""
    found = {}
    for method in ("equalinfo", "ac"):
        started = time.perf_counter()
        whole = file_bytes(data, method, model, backend, len(data))
        print(f"{name:8s} {method:9s} one segment: {whole:,} bytes = {8 * whole / len(data):.4f} bits/byte "
              f"({time.perf_counter() - started:.1f} s)")
        for size in SIZES:
            if size >= len(data):
                continue
            size_bytes = file_bytes(data, method, model, backend, size)
            found[method, size] = 100 * (size_bytes - whole) / whole
            print(f"{name:8s} {method:9s} {size:>7,} B segments: {size_bytes:>9,} bytes  "
                  f"cost {found[method, size]:+.3f}%")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--m1", type=Path, default=None, help="a train-m1 checkpoint (omit: Markov only)")
    parser.add_argument("--m1-bytes", type=int, default=65536)
    args = parser.parse_args()
    text = args.text.read_bytes()
    split = int(0.9 * len(text))
    held_out = text[split:]
    backend = backends.load("cpu")
    print(f"{args.text.name}: {len(held_out):,} held-out bytes; {platform.processor() or platform.machine()}")
    found = [costs("markov2", held_out, MarkovModel.fit(bytes_to_symbols(text[:split]), 2), backend)]
    if args.m1 is not None:
        from equalinfo.train import m1

        found.append(costs("M1", held_out[:args.m1_bytes], m1.coding_model_from_checkpoint(args.m1, "cpu"), backend))
    fine = [size for size in SIZES if all(cost <= GOAL for table in found for (_, s), cost in table.items()
                                          if s == size) and any((m, size) in table for table in found for m in
                                                                ("equalinfo", "ac"))]
    print(f"smallest segment size costing <= {GOAL}% everywhere measured: "
          f"{min(fine):,} bytes" if fine else "none of the sizes measured")


if __name__ == "__main__":
    main()
