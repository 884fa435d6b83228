"""Which method compress uses with the shipped M1 by default: plain AC against Equal-Info windows of 1,024 and 16 bits.

Usage (from the repository root; the texts as bench/m1_shipped.py cuts them, its first --bytes bytes each):
    python bench/m1_default_method.py [--bytes 4000] [--texts 2]

Each text is compressed exactly as `equalinfo compress --model shipped --method M [--window-bits B]` writes it
(filetool/codec.py on the cpu backend, the model not embedded, no `stored` fallback); bits/byte counts the whole
file, header and checksums included, and the payload alone; B/s is that compression's speed, side by side in one
run. docs/decisions.md ("The file tool's defaults") reports the figures.
"""
import argparse
import time

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)
import m1_shipped

from equalinfo.filetool import codec, shipped_model  # noqa: E402
from equalinfo.train import backends  # noqa: E402

METHODS = (("ac", None), ("equalinfo", 1024), ("equalinfo", 16))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=4000)
    parser.add_argument("--texts", type=int, default=2, help="the first N of m1_shipped's texts (2: the held-out)")
    args = parser.parse_args()
    texts = m1_shipped.load_texts(str(m1_shipped.SHARED / "en-corpus.jsonl.gz"),
                                  str(m1_shipped.SHARED / "tinyshakespeare.txt"), args.bytes)
    model, cpu = shipped_model.load(), backends.load("cpu")
    print("| text | method | bytes | file bits/byte | payload bits/byte | compress B/s |")
    print("|---|---|---|---|---|---|")
    for name, data in list(texts.items())[:args.texts]:
        for method, window_bits in METHODS:
            started = time.perf_counter()
            blob, header = codec.compress_bytes(data, method, model, False, window_bits or 16, 14, cpu)
            seconds = time.perf_counter() - started
            label = method if window_bits is None else f"{method} b={window_bits}"
            print(f"| {name} | {label} | {len(data):,} | {8 * len(blob) / len(data):.3f} | "
                  f"{header.coded_bits / len(data):.3f} | {len(data) / seconds:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
