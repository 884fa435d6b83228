"""Rule 3's GEMMs alone against this CPU's peak: how far GEMM-bound coding can go at each lockstep width.

Usage (from the repository root):
    python bench/int8_roofline.py [--size 3m] [--rows 1,4,16,24,64,256] [--threads 1] [--seconds 0.2] [--peak]

Why: the coders' speed at a lockstep width of N streams is bounded by the products of N rows, and those products
are what fast/cpu/int8_m1.py hands a GEMM: for each K-chunk of each product, ONE GEMM of 2N rows (the high and low
int8 halves of N quantized rows, side by side) by the weights [n, m]. This bench times exactly those GEMMs and
nothing else (no quantizing, rescaling or Python glue of ours), so it says what the GEMM kernels can deliver at
each width, and how far that is from the machine's peak:
- onnxruntime: the MatMulInteger session fast/cpu/int8_gemm.py runs (u8 rows x s8 weights -> int32, the weights
  the session's initializer, packed once), called the way the coders call it (the compiled session's `run`);
- sgemm: the same integers as float32, NumPy's `@` (OpenBLAS), the fallback path.
Two tables: each product alone in a loop (its weights warm in the cache), and a whole forward pass's 13 products
in turn, each layer with its own weights (as in a coder step: the weights come from L2/L3), from which the
GEMM-only ceiling on M1 rows/s follows. G MACs/s counts the 2N GEMM rows' multiply-adds: 2N * n * m.
--peak compiles and runs bench/vnni_peak.c (gcc, one thread): the measured int8 VNNI and float32 FMA peaks.
Needs the extra: pip install 'equalinfo[int8]'. Every figure is a median over rounds of about --seconds.
"""
import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)
from equalinfo.fast.cpu.threads import quiet_idle_blas_threads  # noqa: E402

quiet_idle_blas_threads()  # before NumPy loads OpenBLAS, as the CLI does: idle BLAS workers sleep, not spin

import numpy as np  # noqa: E402

from equalinfo.fast.cpu import int8_gemm  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.ref import transformer  # noqa: E402
from equalinfo.ref.int8_m1 import CHUNK  # noqa: E402
from int8_gemm_speed import timed as median_seconds  # noqa: E402 (median seconds per call)


def products(cfg):
    """[(label, n, m)] of one layer's GEMMs as int8_m1 runs them (q, k, v side by side; gate, up side by side)."""
    d, ff = cfg.d_model, cfg.d_ff
    assert ff <= CHUNK, "a product over more than one chunk: time each chunk (not needed for 3m)"
    return [("q,k,v", d, 3 * d), ("wo", d, d), ("gate,up", d, 2 * ff), ("w_down", ff, d)]


def peak():
    """(int8 VNNI, float32 FMA) G multiply-adds/s of one thread, from bench/vnni_peak.c, or None without gcc."""
    source = Path(__file__).with_name("vnni_peak.c")
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "vnni_peak"
        try:
            subprocess.run(["gcc", "-O3", "-funroll-loops", "-mavx512f", "-mavx512vnni", str(source), "-o",
                            str(binary)], check=True, capture_output=True)
            out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"--peak: could not build or run {source.name}: {error}")
            return None
    values = dict(line.split() for line in out.splitlines() if line.startswith(("vnni", "fma")))
    return float(values["vnni"]), float(values["fma"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="3m")
    parser.add_argument("--rows", default="1,4,16,24,64,256", help="M1 rows N (the GEMMs see 2N)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--peak", action="store_true", help="also measure the peaks with bench/vnni_peak.c")
    args = parser.parse_args()
    set_threads(args.threads)
    cfg = transformer.make_config(args.size)
    if not int8_gemm.usable(min(cfg.d_ff, CHUNK)):
        raise SystemExit(f"onnxruntime path unusable: {int8_gemm._why_not()}")
    run = int8_gemm._STATE["runner"]
    rng = np.random.default_rng(0)
    rows = [int(r) for r in args.rows.split(",")]
    shapes = products(cfg)
    # every layer its own weights (a forward pass reads 3m's 3.2 MB of int8 weights, 13 MB as float32)
    layers = [[rng.integers(-127, 128, size=(n, m), dtype=np.int8) for _, n, m in shapes]
              for _ in range(cfg.n_layers)]
    unembed = rng.integers(-127, 128, size=(cfg.d_model, cfg.vocab_out), dtype=np.int8)
    layers_f32 = [[w.astype(np.float32) for w in layer] for layer in layers]
    unembed_f32 = unembed.astype(np.float32)
    mhz = [float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz")]
    print(f"{args.size}: d {cfg.d_model}, ff {cfg.d_ff}, {cfg.n_layers} layers; {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} CPUs ({mhz[0]:.0f} MHz in /proc/cpuinfo), --threads {args.threads}, load average "
          f"{os.getloadavg()[0]:.2f} at start")

    print("\nEach product alone in a loop (weights warm): us per GEMM call / G MACs/s (2N * n * m / time)")
    print(f"{'product':>8} {'n x m':>11}  {'path':>5} " + " ".join(f"{'N=' + str(r):>14}" for r in rows))
    for (label, n, m), weights, weights_f32 in zip(shapes + [("unembed", cfg.d_model, cfg.vocab_out)],
                                                   layers[0] + [unembed], layers_f32[0] + [unembed_f32]):
        cells = {"onnx": [], "sgemm": []}
        for r in rows:
            u8 = rng.integers(1, 256, size=(2 * r, n), dtype=np.uint8)
            f32 = u8.astype(np.float32) - 128
            assert np.array_equal(run(u8, weights), (f32 @ weights_f32).astype(np.int32)), "paths differ"
            for path, call in (("onnx", lambda: run(u8, weights)), ("sgemm", lambda: f32 @ weights_f32)):
                t = median_seconds(call, args.seconds / 4)
                cells[path].append(f"{t * 1e6:6.1f}/{2 * r * n * m / t / 1e9:6.1f}")
        for path in ("onnx", "sgemm"):
            print(f"{label:>8} {n:>4} x {m:<4}  {path:>5} " + " ".join(f"{c:>14}" for c in cells[path]))

    per_row = 2 * (cfg.n_layers * sum(n * m for _, n, m in shapes) + cfg.d_model * cfg.vocab_out)
    print(f"\nA forward pass's {cfg.n_layers * len(shapes) + 1} GEMMs in turn, each layer its own weights "
          f"({per_row / 1e6:.2f} M multiply-adds per M1 row, both halves): ms per pass / G MACs/s / M1 rows/s "
          f"(the GEMM-only ceiling)")
    print(f"{'path':>6} " + " ".join(f"{'N=' + str(r):>20}" for r in rows))
    lines = {"onnx": [], "sgemm": []}
    for r in rows:
        inputs = {n: rng.integers(1, 256, size=(2 * r, n), dtype=np.uint8) for _, n, _ in shapes}
        inputs_f32 = {n: a.astype(np.float32) - 128 for n, a in inputs.items()}

        def onnx_pass():
            for layer in layers:
                for (_, n, _), w in zip(shapes, layer):
                    run(inputs[n], w)
            run(inputs[cfg.d_model], unembed)

        def sgemm_pass():
            for layer in layers_f32:
                for (_, n, _), w in zip(shapes, layer):
                    inputs_f32[n] @ w
            inputs_f32[cfg.d_model] @ unembed_f32

        for path, call in (("onnx", onnx_pass), ("sgemm", sgemm_pass)):
            t = median_seconds(call, args.seconds)
            lines[path].append(f"{t * 1e3:6.3f}/{r * per_row / t / 1e9:5.1f}/{r / t:6,.0f}")
    for path in ("onnx", "sgemm"):
        print(f"{path:>6} " + " ".join(f"{c:>20}" for c in lines[path]))
    print(f"(load average {os.getloadavg()[0]:.2f} at the end)")
    if args.peak:
        measured = peak()
        if measured:
            vnni, fma = measured
            print(f"\npeak, one thread (bench/vnni_peak.c): int8 VNNI {vnni:.1f} G MACs/s ({vnni / 64:.2f} G "
                  f"vpdpbusd zmm/s = 64 MACs each), float32 FMA {fma:.1f} G MACs/s ({fma / 16:.2f} G vfmadd zmm/s); "
                  f"x {args.threads} thread(s): {vnni * args.threads:.0f} / {fma * args.threads:.0f}")


if __name__ == "__main__":
    main()
