"""Plain AC with M1 over a file's segments: one segment after another (the coder before issue #24's batch) against
all segments in lockstep (fast.cpu.ac.compress_batch/decompress_batch, fast/cpu/ac_lockstep.py), side by side in
one run, per segment size.

Usage (from the repository root):
    python bench/ac_segments.py [--text ../shared/data/tinyshakespeare.txt] [--bytes 65536]
                                [--segment-bytes 16384 4096] [--old-bytes 1024]
                                [--encode-rows 512 2048 8192]
    python bench/ac_segments.py --grower-rows 1 4 16 32 64 [--grower-threads 1 2]
                                [--grower-gemm sgemm onnxruntime auto]

The model is the shipped M1 (filetool/shipped_model.py: 3m, exact rule 3, restarting every 256 symbols) on the cpu
backend; the text is --bytes from the start of the last 100,000 bytes of the text (as bench/m1_files.py's held-out
part). First the decoder as it was before (one stream, its one-row calls on every thread: --old-bytes only, it is
slow on a busy machine); then for each segment size the encoder's and the decoder's speed both ways (KB/s = 1000
input bytes per second), the lockstep's speedup, its decode/encode time ratio (issue #24's goal: <= 1.5), and
what the segments cost in size: the payload bits at that size over the payload bits of the text as one stream,
and the file (header, segment table, payload; M1 not embedded) over the file of one segment, as
bench/segment_cost.py counts it. Every way
gives the same bits and decodes back to the text (checked).
"""
import argparse
import os
import platform
import time
from pathlib import Path

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)
from equalinfo.fast.cpu.threads import quiet_idle_blas_threads  # noqa: E402

quiet_idle_blas_threads()  # as the CLI: OpenBLAS's idle workers sleep (read when NumPy loads it)
import numba  # noqa: E402
import numpy as np  # noqa: E402

from equalinfo.fast.cpu import ac, ac_lockstep, int8_gemm  # noqa: E402
from equalinfo.fast.cpu.ac_lockstep import ONE_THREAD_ROWS  # noqa: E402
from equalinfo.fast.cpu.m1 import prefix_rows  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.filetool import codec, fileformat, shipped_model  # noqa: E402
from equalinfo.filetool.segments import segment_lengths  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.train import backends  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def grower_steps(model, rows_list, threads_list=(1, 2), gemm_paths=(None,)):
    """ms per decoder step of the shipped M1's grower, rows per call x threads x GEMM path (EQUALINFO_INT8_GEMM,
    None: as set), positions 128-191 of each slot, every combination once per round, two rounds."""
    for round_ in range(2):
        for n_rows in rows_list:
            for threads in threads_list:
                for path in gemm_paths:
                    if path is not None:
                        os.environ[int8_gemm.ENV] = path
                    set_threads(threads)
                    grower, slots = prefix_rows(model, n_rows), np.arange(n_rows)
                    for _ in range(128):
                        grower.extend(slots, np.full(n_rows, 65))
                    _, seconds = timed(lambda: [grower.extend(slots, np.full(n_rows, 66)) for _ in range(64)])
                    print(f"round {round_ + 1}: {n_rows} rows, {threads} threads"
                          f"{'' if path is None else ', ' + path}: {seconds / 64 * 1000:.3f} ms/step", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--bytes", type=int, default=65536)
    parser.add_argument("--segment-bytes", type=int, nargs="+", default=[16384, 4096])
    parser.add_argument("--encode-rows", type=int, nargs="*", default=[],
                        help="also time the lockstep encoder with these rows per model call "
                        "(ac_lockstep.ROWS_PER_CALL), alternating, two rounds, on the first --segment-bytes size")
    parser.add_argument("--grower-rows", type=int, nargs="*", default=[],
                        help="only time the M1 grower's step (ms) for these rows per call on 1 and 2 threads, twice")
    parser.add_argument("--grower-threads", type=int, nargs="+", default=[1, 2],
                        help="with --grower-rows: the thread counts to time")
    parser.add_argument("--grower-gemm", nargs="+", default=[None], choices=int8_gemm.PATHS,
                        help="with --grower-rows: time each of these GEMM paths (EQUALINFO_INT8_GEMM) side by side")
    parser.add_argument("--old-bytes", type=int, default=1024, help="bytes decoded as before issue #24's batch "
                        "(one stream, the decoder's products on the default thread count)")
    args = parser.parse_args()
    data = Path(args.text).read_bytes()[-100_000:][:args.bytes]
    symbols = bytes_to_symbols(data)
    model = codec.on_backend(shipped_model.load(), backends.load("cpu"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start; shipped M1 (rule {model.rule}, restart every {model.restart_every}), "
          f"{len(data):,} bytes of {Path(args.text).name}", flush=True)
    if args.grower_rows:
        return grower_steps(model, args.grower_rows, args.grower_threads, args.grower_gemm)
    header, _ = codec.coded_header(data, "ac", model, 0, 14, backends.load("cpu"))
    whole = ac.compress(symbols, model)
    whole_bits, whole_file = len(whole), len(fileformat.pack(header, [whole], None, len(data)))
    print(f"one stream: {whole_bits:,} bits, {whole_bits / len(data):.4f} bits/byte; as a file of one segment "
          f"{whole_file:,} bytes (M1 not embedded)", flush=True)
    kb = len(data) / 1000
    head = symbols[:args.old_bytes]
    head_bits = ac.compress(head, model)
    ac_lockstep.ONE_THREAD_ROWS = 0  # as before: the decoder's calls on every thread
    _, seconds = timed(ac.decompress, head_bits, model, len(head))
    ac_lockstep.ONE_THREAD_ROWS = ONE_THREAD_ROWS
    print(f"before (one stream, {numba.get_num_threads()} threads): decode {len(head) / 1000 / seconds:.3f} KB/s on "
          f"{len(head):,} bytes", flush=True)
    for size in args.segment_bytes:
        lengths = segment_lengths(len(data), size)
        pieces = np.split(symbols, np.cumsum(lengths)[:-1])
        loop_bits, loop_encode = timed(lambda: [ac.compress(piece, model) for piece in pieces])
        batch_bits, batch_encode = timed(ac.compress_batch, pieces, model)
        assert all(np.array_equal(a, b) for a, b in zip(loop_bits, batch_bits)), "the batch's bits differ"
        loop_out, loop_decode = timed(lambda: [ac.decompress(b, model, n) for b, n in zip(loop_bits, lengths)])
        batch_out, batch_decode = timed(ac.decompress_batch, batch_bits, model, lengths)
        for out in (loop_out, batch_out):
            assert np.array_equal(np.concatenate(out), symbols), "round trip failed"
        bits = sum(len(b) for b in batch_bits)
        file_bytes = len(fileformat.pack(header, batch_bits, None, size))
        print(f"segments of {size:,} bytes ({len(lengths)}): cost {100 * (bits / whole_bits - 1):+.3f}% of the "
              f"payload ({bits / len(data):.4f} bits/byte), {100 * (file_bytes / whole_file - 1):+.3f}% of the file "
              f"({file_bytes:,} bytes)")
        print(f"  one by one: encode {kb / loop_encode:7.2f} KB/s, decode {kb / loop_decode:7.2f} KB/s, "
              f"decode/encode {loop_decode / loop_encode:5.2f}")
        print(f"  lockstep:   encode {kb / batch_encode:7.2f} KB/s, decode {kb / batch_decode:7.2f} KB/s, "
              f"decode/encode {batch_decode / batch_encode:5.2f}; decode {loop_decode / batch_decode:.2f}x "
              f"one by one's", flush=True)
    pieces = np.split(symbols, np.cumsum(segment_lengths(len(data), args.segment_bytes[0]))[:-1])
    for round_ in range(2 if args.encode_rows else 0):
        for rows in args.encode_rows:
            ac_lockstep.ROWS_PER_CALL = rows
            _, seconds = timed(ac.compress_batch, pieces, model)
            print(f"encoder, {rows} rows per call (round {round_ + 1}): {kb / seconds:.2f} KB/s", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
