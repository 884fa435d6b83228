"""M1's exact rows on fast/cpu: positions/s of rule 2 (int16, dgemm) vs rule 3 (int8-valued; sgemm, or onnxruntime's
integer GEMM where fast/cpu/int8_gemm.py picks it: EQUALINFO_INT8_GEMM), and where the time goes.

Usage (from the repository root):
    python bench/m1_rule_speed.py [--checkpoint out/m1files/m1.npz] [--batch 32] [--length 16] [--rounds 15]
                                  [--threads 1]

M1 has the "3m" shape (from the checkpoint if it exists, else freshly initialized: the speed does not depend on
the weights' values). The inputs are BOS-started slices of tinyshakespeare, `--batch` sequences of `--length`
positions per next_probs call: a coding-like shape (the lockstep Equal-Info coders evaluate a few positions of
many windows per call; b=16 windows hold ~4 symbols of trained-M1 text). The two rules' calls alternate, one
call each per round, so load from other work hits both alike; the median over rounds is reported. Then one
profiled call per rule splits its time, exclusively (a part's time excludes the parts it calls), into the GEMMs
(the float64/float32 `@`, with its Python call around it), quantizing rows, rescaling, attention, RMSNorm, the
gated ReLU, softmax64 and the rest. Before timing, fast/cpu's rule-3 rows are checked equal to ref's on a slice.
"""
import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)
from _exclusive_timer import ExclusiveTimer  # noqa: E402

from equalinfo.fast.cpu import exact_m1 as cpu_exact  # noqa: E402
from equalinfo.fast.cpu import int8_m1 as cpu_int8  # noqa: E402
from equalinfo.fast.cpu import integer_m1 as cpu_int  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.ref import int8_m1, integer_m1, transformer  # noqa: E402
from equalinfo.ref.symbols import BOS, bytes_to_symbols  # noqa: E402
from equalinfo.train import checkpoint  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def load_m1(path, size):
    if Path(path).exists():
        params, cfg, _, meta = checkpoint.load(path)
        return params, cfg, f"{path}, trained {meta.get('step', '?')} steps"
    cfg = transformer.make_config(size)
    return transformer.init_params(cfg, 0), cfg, f"{size}, untrained (no checkpoint at {path})"


RULE3_GEMMS = f"GEMMs ({os.environ.get('EQUALINFO_INT8_GEMM', 'auto')}: fast/cpu/int8_gemm.py)"
PROFILED = {  # rule -> (module, function name, label), the functions its next_probs goes through
    2: [(cpu_int, "int_matmul", "GEMMs (dgemm)"), (cpu_int, "quantize_rows", "quantize rows"),
        (cpu_int, "_rescale", "rescale"), (cpu_exact, "rms_norm", "RMSNorm"), (cpu_int, "softmax64", "softmax64")],
    3: [(cpu_int8, "int8_matmul", RULE3_GEMMS), (cpu_int8, "int8_products", RULE3_GEMMS),
        (cpu_int8, "side_by_side", RULE3_GEMMS), (cpu_int8, "attend", "attention"),
        (cpu_int8, "_gated_relu", "gated ReLU"), (cpu_int8, "quantize_split", "quantize rows"),
        (cpu_int8, "_rescale_split", "rescale"), (cpu_int8, "_rescale_split_parts", "rescale"),
        (cpu_int8, "_accumulate_split", "rescale"),
        (cpu_int8, "_rescale", "rescale"), (cpu_int8, "rms_norm", "RMSNorm"), (cpu_int8, "softmax64", "softmax64")],
}
SHARED = [(cpu_exact, "attend", "attention"), (cpu_exact, "_gated_relu", "gated ReLU")]


def profile(rule, rows, qparams, cfg, inputs, calls=3):
    """{label: fraction of the call's time} for `calls` profiled calls of rows (the module's next_probs)."""
    timer = ExclusiveTimer()
    for module, name, label in PROFILED[rule] + SHARED:
        timer.wrap(module, name, label)
    try:
        started = time.perf_counter()
        for _ in range(calls):
            getattr(rows, "next_probs")(qparams, cfg, inputs)
        total = time.perf_counter() - started
    finally:
        timer.restore()
    fractions = {label: seconds / total for label, seconds in timer.totals.items()}
    fractions["other (embedding, residual adds, Python)"] = 1 - sum(fractions.values())
    return fractions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="out/m1files/m1.npz")
    parser.add_argument("--size", default="3m")
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="Numba and OpenBLAS threads (fast.cpu.threads)")
    args = parser.parse_args()
    set_threads(args.threads)

    params, cfg, origin = load_m1(args.checkpoint, args.size)
    data = bytes_to_symbols(Path(args.text).read_bytes()[-200_000:])
    B, T = args.batch, args.length
    inputs = data[:B * T].reshape(B, T).astype(np.int64)
    inputs[:, 0] = BOS
    rules = {2: (cpu_int, integer_m1.quantize_params(params, cfg)), 3: (cpu_int8, int8_m1.quantize_params(params, cfg))}

    ref_slice = inputs[:2, :8]
    assert np.array_equal(cpu_int8.next_probs(rules[3][1], cfg, ref_slice), int8_m1.next_probs(rules[3][1], cfg,
                                                                                                ref_slice))
    for module, qparams in rules.values():
        module.next_probs(qparams, cfg, inputs)  # compile, and make the weights' float copies

    seconds = {rule: [] for rule in rules}
    for _ in range(args.rounds):
        for rule, (module, qparams) in rules.items():
            started = time.perf_counter()
            module.next_probs(qparams, cfg, inputs)
            seconds[rule].append(time.perf_counter() - started)
    speed = {rule: B * T / float(np.median(times)) for rule, times in seconds.items()}
    spread = {rule: (B * T / max(times), B * T / min(times)) for rule, times in seconds.items()}

    print(f"M1 {origin}: d {cfg.d_model}, ff {cfg.d_ff}, {cfg.n_layers} layers ({cfg.dtype}); next_probs on "
          f"[{B}, {T}] = {B * T} positions per call; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, --threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"median of {args.rounds} alternating rounds; fast/cpu rule 3 rows equal ref's on a [2, 8] slice")
    for rule in rules:
        low, high = spread[rule]
        print(f"  rule {rule}: {speed[rule]:9,.0f} positions/s  (range {low:,.0f}-{high:,.0f})")
    print(f"  rule 3 / rule 2: {speed[3] / speed[2]:.2f}x")
    for rule, (module, qparams) in rules.items():
        fractions = profile(rule, module, qparams, cfg, inputs)
        parts = ", ".join(f"{label} {100 * share:.0f}%" for label, share in
                          sorted(fractions.items(), key=lambda item: -item[1]))
        print(f"  rule {rule} time: {parts}")


if __name__ == "__main__":
    main()
