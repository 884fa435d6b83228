"""M1 as a file compressor: `equalinfo compress --model M1.npz` beside gzip, bzip2, xz and the Markov models.

Usage (from the repository root; the M1 takes ~45 min to train on 2 cores):
    python bench/m1_files.py prepare --out out/m1files        # text -> train documents, held-out text, preset
    equalinfo train-m1 --preset out/m1files/preset.json --corpus out/m1files/train --out out/m1files/m1.npz
    python bench/m1_files.py run --out out/m1files [--results results/m1-files] [--decode-bytes 20000]

`prepare` cuts the text (default: tinyshakespeare) as bench/equalinfo_m1_speed.py does: M1 trains on the first
90%, written as 8 KB documents (the pipeline's corpus reader keeps every 8th one for validation), and the held-out
text is the last 100,000 bytes, which lie beyond that 90%. The preset is the demo's with M1 "3m" (the paper's M1
shape) trained 2,700 steps on 128-symbol sequences.

`run` compresses the held-out text exactly as the CLI does (filetool/codec.py, the file's bytes counted whole: header,
checksums, embedded model): M1 by plain AC and by Equal-Info windows of 16, 64 and 128 bits under exact rule 2,
on the cpu backend; the default Markov model (embedded); and zlib -9, bz2 -9, xz -9 (Python's modules, the same
libraries as the gzip/bzip2/xz tools). The M1 AC file is decoded back (on its first --decode-bytes bytes, AC's
decoder is sequential) and checked byte for byte. It writes results.json and results.md.
"""
import argparse
import bz2
import json
import lzma
import os
import platform
import sys
import time
import zlib
from pathlib import Path

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.train import backends, m1  # noqa: E402
from equalinfo.filetool import codec  # noqa: E402
from equalinfo.filetool.codec import DEFAULT_MODEL_CHOICES, cheapest_model  # noqa: E402
from equalinfo.filetool.commands import describe_model  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
HELD_OUT_BYTES = 100_000
DOCUMENT_BYTES = 8192
DEMO_PRESET = Path(__file__).resolve().parents[1] / "train" / "presets" / "demo.json"


def prepare(args):
    data = Path(args.text).read_bytes()
    cut = len(data) * 9 // 10
    out = Path(args.out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, cut, DOCUMENT_BYTES)):
        (out / "train" / f"part{index:04d}.txt").write_bytes(data[start:min(start + DOCUMENT_BYTES, cut)])
    (out / "heldout.txt").write_bytes(data[-HELD_OUT_BYTES:])
    preset = json.loads(DEMO_PRESET.read_text())
    preset["description"] = "M1 3m on the first 90% of a text, for bench/m1_files.py"
    preset["packing"]["group_size"] = 1
    preset["m1"].update(size="3m", seq_len=128, batch_size=16, eval_sequences=64)
    preset["m1"]["train"].update(steps=2700, eval_every=300, checkpoint_every=100)
    preset["m1"]["train"]["optimizer"].update(peak_lr=0.003, warmup_steps=100, total_steps=2700)
    (out / "preset.json").write_text(json.dumps(preset, indent=1))
    print(f"wrote {out}/train ({cut:,} bytes in {index + 1} documents), {out}/heldout.txt "
          f"({HELD_OUT_BYTES:,} bytes), {out}/preset.json")


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def run(args):
    out = Path(args.out)
    data = (out / "heldout.txt").read_bytes()
    backend = backends.load("cpu")
    model = m1.coding_model_from_checkpoint(out / "m1.npz", "cpu", rule=2)
    _, _, _, meta = m1.checkpoint.load(out / "m1.npz")
    trained = [h for h in meta["history"] if "val_bits_per_byte" in h][-1]
    rows = []

    def add(name, n_bytes, seconds=None, decode=None):
        rows.append({"method": name, "bytes": n_bytes, "bits_per_byte": 8 * n_bytes / len(data),
                     "compress_bytes_per_s": None if seconds is None else len(data) / seconds,
                     "decompress_bytes_per_s": decode})
        speed = "" if seconds is None else f", {len(data) / seconds:,.0f} B/s"
        print(f"{name:>28}: {n_bytes:>8,} bytes, {8 * n_bytes / len(data):.3f} bits/byte{speed}", flush=True)

    (blob, _), seconds = timed(codec.compress_bytes, data, "ac", model, False, 16, 14, backend)
    head = data[:args.decode_bytes]
    (head_blob, _) = codec.compress_bytes(head, "ac", model, False, 16, 14, backend)
    (decoded, _), decode_seconds = timed(codec.decompress_bytes, head_blob, model, backend=backend)
    assert decoded == head, "M1 AC round trip failed"
    add("M1 AC", len(blob), seconds, len(head) / decode_seconds)
    for b in (16, 64, 128):
        (blob, _), seconds = timed(codec.compress_bytes, data, "equalinfo", model, False, b, 14, backend)
        (decoded, _), decode_seconds = timed(codec.decompress_bytes, blob, model, backend=backend)
        assert decoded == data, f"M1 Equal-Info b={b} round trip failed"
        add(f"M1 Equal-Info b={b}", len(blob), seconds, len(data) / decode_seconds)
    symbols = bytes_to_symbols(data)
    markov = cheapest_model(DEFAULT_MODEL_CHOICES, symbols)  # compress's default
    for method in ("ac", "equalinfo"):
        (blob, _), seconds = timed(codec.compress_bytes, data, method, markov, True, 16, 14, backend)
        add(f"{describe_model(markov)} (embedded), {method}", len(blob), seconds)
    for name, compress in (("gzip -9", lambda d: zlib.compress(d, 9)), ("bzip2 -9", lambda d: bz2.compress(d, 9)),
                           ("xz -9", lambda d: lzma.compress(d, preset=9))):
        blob, seconds = timed(compress, data)
        add(name, len(blob), seconds)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    result = {"text": f"last {len(data):,} bytes of {Path(args.text).name}", "machine": machine,
              "m1": {"checkpoint_step": meta["step"], "val_bits_per_byte": trained["val_bits_per_byte"],
                     "seq_len": meta.get("seq_len"), "rule": 2, "backend": "cpu"},
              "decode_bytes": len(head), "rows": rows}
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps(result, indent=1))
    lines = [f"# M1 as a file compressor ({result['text']}, {machine})", "",
             f"M1 3m, {meta['step']} steps, {trained['val_bits_per_byte']:.3f} bits/byte on its validation "
             f"documents; exact rule 2 on the cpu backend, restarting every {meta.get('seq_len')} symbols. "
             f"Sizes are whole files (header, checksums; M1 not embedded, the Markov model embedded). M1 AC "
             f"decompression timed on the first {len(head):,} bytes.", "",
             "| method | bytes | bits/byte | compress B/s | decompress B/s |", "|---|---|---|---|---|"]
    for row in rows:
        speeds = [f"{row[k]:,.0f}" if row[k] else "" for k in ("compress_bytes_per_s", "decompress_bytes_per_s")]
        lines.append(f"| {row['method']} | {row['bytes']:,} | {row['bits_per_byte']:.3f} | {' | '.join(speeds)} |")
    (results / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {results}/results.json and results.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["prepare", "run"])
    parser.add_argument("--out", default="out/m1files")
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--results", default="results/m1-files")
    parser.add_argument("--decode-bytes", type=int, default=20_000)
    args = parser.parse_args()
    prepare(args) if args.step == "prepare" else run(args)


if __name__ == "__main__":
    main()
