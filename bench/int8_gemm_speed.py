"""Rule 3's GEMM paths side by side: one product (quantize, GEMM, rescale) per row count, sgemm vs onnxruntime vs
the compiled VNNI kernel (fast/cpu/vnni_gemm.py).

Usage (from the repository root):
    python bench/int8_gemm_speed.py [--size 3m] [--rows 1,2,4,6,8,12,16,32,64,256] [--threads 1] [--seconds 0.05]

For each of M1's product shapes at --size (q/k/v side by side, wo, gate/up side by side, w_down, unembed) and each
number of rows N, fast.cpu.int8_m1.int8_products runs with EQUALINFO_INT8_GEMM=sgemm, =onnxruntime and =vnni in turn
(so load from other work hits all alike; a path this machine cannot run is left out), the median over rounds of
--seconds each is printed, with the ratios. The GEMMs see 2N rows (both halves). Every path's results are checked bit-identical first. A second table runs the paths
in context: a decoder's PrefixRows.extend on N slots, where each product's weights come from memory rather than from
a warm cache. fast.cpu.int8_gemm.THRESHOLD_MACS is where auto switches (2N * n * m multiply-adds). Each cell is the
best of --rounds medians. onnxruntime needs the extra: pip install 'equalinfo[int8]'; the vnni
path needs a CPU with AVX-512 VNNI.
"""
import argparse
import os
import platform
import time

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.fast.cpu import int8_gemm  # noqa: E402
from equalinfo.fast.cpu import int8_m1 as cpu_int8  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.ref import int8_m1, transformer  # noqa: E402


def products(cfg):
    """{label: (n, [m, ...])} of M1's products (those that share rows side by side, as int8_m1 runs them)."""
    d, ff = cfg.d_model, cfg.d_ff
    return {"q,k,v": (d, [d, d, d]), "wo": (d, [d]), "gate,up": (d, [ff, ff]), "w_down": (ff, [d]),
            "unembed": (d, [cfg.vocab_out])}


def timed(function, seconds):
    """Median seconds per call over rounds of about `seconds`."""
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 5:
        t = time.perf_counter()
        function()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def with_path(path, function):
    os.environ[int8_gemm.ENV] = path
    try:
        return function()
    finally:
        del os.environ[int8_gemm.ENV]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="3m")
    parser.add_argument("--rows", default="1,2,4,6,8,12,16,32,64,256")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_threads(args.threads)
    cfg = transformer.make_config(args.size)
    rng = np.random.default_rng(0)
    paths = [path for path, ok in (("sgemm", True), ("onnxruntime", int8_gemm.usable(int8_m1.CHUNK)),
                                   ("vnni", int8_gemm.vnni_usable(cfg.d_model))) if ok]
    print(f"{args.size}: d {cfg.d_model}, ff {cfg.d_ff}; int8_products per call (quantize, GEMM, rescale), median "
          f"us; GEMM rows = 2N; paths {', '.join(paths)}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, --threads {args.threads}, load average {os.getloadavg()[0]:.1f} at start")
    rows = [int(r) for r in args.rows.split(",")]
    print(f"{'product':>8} {'n x m':>12} " + " ".join(f"{'N=' + str(r):>27}" for r in rows))
    for label, (n, widths) in products(cfg).items():
        qparams, names = {}, []
        for i, m in enumerate(widths):
            qparams[f"p{i}.int"], qparams[f"p{i}.scale"] = int8_m1.quantize_weight(rng.standard_t(3, (n, m)))
            names.append(f"p{i}")
        cells = []
        for r in rows:
            x = rng.normal(size=(r, n)).astype(np.float32)
            call = lambda: cpu_int8.int8_products(x, qparams, names)  # noqa: E731
            results = [with_path(path, call) for path in paths]
            assert all(np.array_equal(u, v) for other in results[1:] for u, v in zip(results[0], other)), \
                "the paths differ"
            best = {path: np.inf for path in paths}
            for _ in range(args.rounds):
                for path in paths:
                    best[path] = min(best[path], with_path(path, lambda: timed(call, args.seconds)))
            auto = with_path("auto", lambda: int8_gemm.choose(2 * r, n, sum(widths))).name[0]  # s, o or v
            cells.append("/".join(f"{best[path] * 1e6:.0f}" for path in paths) + ratio(best) + f" {auto}")
        print(f"{label:>8} {n:>5} x {sum(widths):<5}" + " ".join(f"{c:>27}" for c in cells))
    print(f"cells: us per call for {' / '.join(paths)}, x = the fastest other path's time / vnni's (> 1: vnni "
          f"faster), then auto's pick (s: sgemm, o: onnxruntime, v: vnni); load average {os.getloadavg()[0]:.1f} "
          f"at the end")
    grower_table(cfg, rows, args, rng, paths)


def ratio(best):
    """' x{other / vnni}' for the fastest path other than vnni, or '' without vnni."""
    if "vnni" not in best:
        return ""
    return f" x{min(t for path, t in best.items() if path != 'vnni') / best['vnni']:4.2f}"


def grower_table(cfg, rows, args, rng, paths):
    """The same paths in context: PrefixRows.extend on N slots, one input each (a decoder's call: every product of
    a forward pass in turn, so each product's weights come from memory, not from the cache a loop keeps warm)."""
    qparams = int8_m1.quantize_params(transformer.init_params(cfg, 0), cfg)
    paths = tuple(paths) + ("auto",)
    print(f"in context: PrefixRows.extend, N slots grown one input per call, 8 calls from empty; us per call "
          f"(best of --rounds medians), load average {os.getloadavg()[0]:.1f}")
    print(f"{'N':>6}" + "".join(f"{path:>13}" for path in paths) + f"{'best other/vnni':>17}")
    for r in rows:
        inputs = rng.integers(0, 256, size=(8, r))

        def grow():
            grower = cpu_int8.PrefixRows(qparams, cfg, r, capacity=8)
            for step in range(8):
                grower.extend(np.arange(r), inputs[step])

        best = {path: np.inf for path in paths}
        for _ in range(args.rounds):
            for path in paths:
                best[path] = min(best[path], with_path(path, lambda: timed(grow, args.seconds)) / 8)
        print(f"{r:>6}" + "".join(f"{best[path] * 1e6:13,.0f}" for path in paths) +
              f"{ratio({p: t for p, t in best.items() if p != 'auto'}):>17}")


if __name__ == "__main__":
    main()
