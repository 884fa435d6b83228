"""The file tool's M1 coders under rule 3's GEMM paths side by side: bytes/s with sgemm, onnxruntime and auto, and
where the time goes.

Usage (from the repository root):
    python bench/int8_gemm_coders.py [--ei-bytes 8192] [--ac-bytes 2048] [--rounds 1] [--threads 1]
                                     [--paths sgemm,onnxruntime,auto] [--no-profile] [--examples N]

M1 is the shipped one (filetool/shipped_model.py: 3m, rule 3, trained). The text is the last bytes of
tinyshakespeare (Shakespeare is in the shipped M1's training data, so it codes a little better than held-out
text would: this is a speed bench). The paths are equalinfo.compress / decompress (api.py, the file commands'
code: segments coded in lockstep) with Equal-Info b=16 on --ei-bytes and plain AC on --ac-bytes, on the cpu
backend. Each round runs every GEMM path on every coder one after the other (EQUALINFO_INT8_GEMM), checks the bytes
are the same for every path and round-trip, and keeps each one's best time. Then, unless --no-profile, one
profiled run per GEMM path splits each coder's time exclusively (a part excludes the parts it calls) into: the
GEMM kernels (sgemm's `@` or onnxruntime's run), the products' Python glue (int8_products: slicing, choosing,
the weight cache), quantizing rows, rescaling, attention, RMSNorm, softmax64, the gated ReLU, and the rest
(the coder, the lockstep, embedding, residual adds, Python). The wrapper costs ~1 us per wrapped call, which
the profiled run's total includes.
--examples N: Equal-Info runs as the dataset builder runs it instead (fast.cpu.equalinfo.compress_batch /
decompress_batch, N examples of --ei-bytes bytes each in lockstep, the model's rows on fast.cpu), on
N * --ei-bytes bytes; AC stays the file commands'.
"""
import argparse
import os
import platform
import time
from pathlib import Path

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)
from _exclusive_timer import ExclusiveTimer  # noqa: E402

import numpy as np  # noqa: E402

import equalinfo  # noqa: E402
from equalinfo.fast.cpu import equalinfo as fast_ei  # noqa: E402
from equalinfo.fast.cpu import exact_m1 as cpu_exact  # noqa: E402
from equalinfo.fast.cpu import int8_gemm  # noqa: E402
from equalinfo.fast.cpu import int8_m1 as cpu_int8  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.filetool import shipped_model  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.train import m1 as train_m1  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

PARTS = [  # (owner, attribute, label, is a staticmethod of a class)
    (int8_gemm.Sgemm, "products", "GEMM kernels", True), (int8_gemm.OnnxRuntime, "products", "GEMM kernels", True),
    (cpu_int8, "int8_products", "products' Python glue", False), (cpu_int8, "int8_matmul", "products' Python glue",
                                                                   False),
    (cpu_int8, "side_by_side", "products' Python glue", False), (cpu_int8, "quantize_split", "quantize rows", False),
    (cpu_int8, "_rescale_split_parts", "rescale", False), (cpu_int8, "_accumulate_split", "rescale", False),
    (cpu_int8, "_rescale_parts", "rescale", False), (cpu_int8, "rms_norm", "RMSNorm", False),
    (cpu_int8.PrefixRows, "rms_norm", "RMSNorm", True), (cpu_int8, "softmax64", "softmax64", False),
    (cpu_int8.PrefixRows, "softmax64", "softmax64", True), (cpu_int8, "attend", "attention", False),
    (cpu_exact, "_attend_newest", "attention", False), (cpu_int8, "_gated_relu", "gated ReLU", False),
    (cpu_exact, "_gated_relu", "gated ReLU", False),
]


LOCKSTEP = {"examples": 0}  # --examples


def compress(text, model, method):
    """The file commands' compress, or (Equal-Info with --examples) the dataset builder's lockstep: bytes."""
    if method == "equalinfo" and LOCKSTEP["examples"]:
        n = LOCKSTEP["examples"]
        size = -(-len(text) // n)
        examples = [bytes_to_symbols(text[i:i + size]) for i in range(0, len(text), size)]
        bits = fast_ei.compress_batch(examples, train_m1.on_backend(model, "cpu"), 16)
        return (np.array([len(e) for e in examples] + [len(b) for b in bits], dtype=np.int64).tobytes() +
                np.packbits(np.concatenate(bits)).tobytes())
    options = {"window_bits": 16} if method == "equalinfo" else {}
    return equalinfo.compress(text, model, method, store=False, backend="cpu", **options)


def decompress(blob, model, method):
    if method == "equalinfo" and LOCKSTEP["examples"]:
        n = LOCKSTEP["examples"]
        counts = np.frombuffer(blob[:16 * n], dtype=np.int64)
        flat = np.unpackbits(np.frombuffer(blob[16 * n:], dtype=np.uint8))
        bounds = np.concatenate([[0], np.cumsum(counts[n:])])
        bits = [flat[bounds[i]:bounds[i + 1]] for i in range(n)]
        symbols = fast_ei.decompress_batch(bits, train_m1.on_backend(model, "cpu"), 16, n_symbols=list(counts[:n]))
        return b"".join(np.asarray(s, dtype=np.uint8).tobytes() for s in symbols)
    return equalinfo.decompress(blob, model, backend="cpu")


def run_all(model, ei_text, ac_text):
    """{coder: seconds} and the compressed blobs of one pass over the four coders (round trips checked)."""
    seconds, blobs = {}, {}
    for kind, text in (("EI b=16", ei_text), ("AC", ac_text)):
        method = "equalinfo" if kind.startswith("EI") else "ac"
        started = time.perf_counter()
        blobs[kind] = compress(text, model, method)
        seconds[f"{kind} compress"] = time.perf_counter() - started
        started = time.perf_counter()
        back = decompress(blobs[kind], model, method)
        seconds[f"{kind} decompress"] = time.perf_counter() - started
        assert back == text, f"{kind} round trip failed"
    return seconds, blobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--ei-bytes", type=int, default=8192)
    parser.add_argument("--ac-bytes", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="Numba, OpenBLAS and onnxruntime threads")
    parser.add_argument("--paths", default="sgemm,onnxruntime,auto")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--examples", type=int, default=0, help="Equal-Info as the dataset builder runs it: this "
                        "many examples of --ei-bytes each in lockstep")
    args = parser.parse_args()
    LOCKSTEP["examples"] = args.examples
    set_threads(args.threads)
    paths = args.paths.split(",")
    model = shipped_model.load()
    data = Path(args.text).read_bytes()
    ei_text, ac_text = data[-args.ei_bytes * max(1, args.examples):], data[-args.ac_bytes:]
    loads = [os.getloadavg()[0]]

    os.environ[int8_gemm.ENV] = "sgemm"
    run_all(model, ei_text[:512], ac_text[:256])  # compile
    best, blobs = {}, {}
    for _ in range(args.rounds):
        for path in paths:
            os.environ[int8_gemm.ENV] = path
            seconds, blobs[path] = run_all(model, ei_text, ac_text)
            best[path] = {coder: min(s, best.get(path, {}).get(coder, float("inf"))) for coder, s in seconds.items()}
            loads.append(os.getloadavg()[0])
    assert all(blobs[path] == blobs[paths[0]] for path in paths), "the GEMM paths gave different files"

    print(f"shipped M1 (3m, rule 3); {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, --threads "
          f"{args.threads}; load average {min(loads):.1f}-{max(loads):.1f} during the runs; best of {args.rounds} "
          f"round(s); EI b=16 on {len(ei_text):,} bytes ({len(blobs[paths[0]]['EI b=16']):,} coded), AC on "
          f"{len(ac_text):,} bytes ({len(blobs[paths[0]]['AC']):,} coded); the same bytes on every path")
    print(f"{'bytes/s':>20}" + "".join(f"{path:>13}" for path in paths) +
          "".join(f"{path + '/sgemm':>18}" for path in paths if path != "sgemm"))
    for coder in best[paths[0]]:
        n = len(ei_text) if coder.startswith("EI") else len(ac_text)
        speeds = {path: n / best[path][coder] for path in paths}
        print(f"{coder:>20}" + "".join(f"{speeds[path]:13,.0f}" for path in paths) +
              "".join(f"{speeds[path] / speeds['sgemm']:17.2f}x" for path in paths if path != "sgemm" and
                      "sgemm" in speeds))
    if args.no_profile:
        return
    for path in paths:
        os.environ[int8_gemm.ENV] = path
        timer = ExclusiveTimer()
        for part in PARTS:
            timer.wrap(*part)
        try:
            totals = {}
            for kind, text in (("EI b=16", ei_text), ("AC", ac_text)):
                method = "equalinfo" if kind.startswith("EI") else "ac"
                for step in ("compress", "decompress"):
                    timer.totals = {}
                    started = time.perf_counter()
                    if step == "compress":
                        blob = compress(text, model, method)
                    else:
                        decompress(blob, model, method)
                    total = time.perf_counter() - started
                    shares = {label: seconds / total for label, seconds in timer.totals.items()}
                    shares["rest (coder, lockstep, Python)"] = 1 - sum(shares.values())
                    totals[f"{kind} {step}"] = shares
        finally:
            timer.restore()
        print(f"where the time goes with {path} (load average {os.getloadavg()[0]:.1f}):")
        for coder, shares in totals.items():
            print(f"  {coder:>20}: " + ", ".join(f"{label} {100 * share:.0f}%" for label, share in
                                                 sorted(shares.items(), key=lambda item: -item[1])))


if __name__ == "__main__":
    main()
