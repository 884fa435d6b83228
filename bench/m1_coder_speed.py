"""Every coder path that runs M1, under each exact rule on fast/cpu: bytes/s side by side in one run.

Usage (from the repository root):
    python bench/m1_coder_speed.py [--checkpoint out/bench/m1_3m.npz] [--examples 4] [--ac-bytes 2048]
                                   [--window-bits 16] [--threads 2]
    python bench/m1_coder_speed.py --race-rounds 9 [--threads 1]   # rule 3's grower only, landed vs now

M1 "3m" from --checkpoint (trained by bench/equalinfo_m1_speed.py's recipe if missing). The text is the held-out
10% of tinyshakespeare, cut into 10,240-byte examples (the paper's length). The paths:
- EI compress: fast.cpu.equalinfo.compress_batch over the examples (lockstep, one grower slot per stream);
- EI decompress: decompress_batch of those bits (every window alone, one slot per window, one input per step);
- AC compress: fast.cpu.ac.compress of the first --ac-bytes bytes, M1 restarting every 128 symbols as the file
  commands do (whole-prefix rows in one call per 8,192 rows: one M1 position per symbol, no cache needed);
- AC decompress: fast.cpu.ac.decompress of those bits (the grower, one slot, one position per symbol).
Variants: rule 1 (fixed-order Numba products), rule 2 (int16, dgemm), rule 3 as it landed (int8-valued sgemm, one
product per call, the grower's RMSNorm and softmax one row at a time) and rule 3 now (q/k/v and gate/up one sgemm
each, the row-vectorized RMSNorm and softmax in the grower). Both rule-3 variants must give the same bits (checked),
every path round-trips (checked). "positions/symbol" counts the rows the growers evaluate per coded symbol.
"""
import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)
from equalinfo_m1_speed import DEFAULT_TEXT, EXAMPLE_BYTES, trained_m1  # noqa: E402

from equalinfo.fast.cpu import ac as fast_ac  # noqa: E402
from equalinfo.fast.cpu import equalinfo as fast_ei  # noqa: E402
from equalinfo.fast.cpu import exact_m1 as cpu_exact  # noqa: E402
from equalinfo.fast.cpu import int8_m1 as cpu_int8  # noqa: E402
from equalinfo.fast.cpu import m1 as cpu_m1  # noqa: E402
from equalinfo.fast.cpu.threads import set_threads  # noqa: E402
from equalinfo.ref.m1 import TransformerModel  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.train import m1  # noqa: E402

RESTART = 128  # the file commands' M1 context (its training sequence length)


def landed_next_probs(qparams, cfg, inputs):
    """Rule 3's rows as they landed: every product its own quantizing pass and sgemm (the same bits)."""
    return cpu_int8.softmax64(cpu_exact.logits(qparams, cfg, np.asarray(inputs, dtype=np.int64),
                                               product=cpu_int8.int8_matmul))


class LandedPrefixRows(cpu_exact.PrefixRows):
    """Rule 3's grower as it landed: products one at a time, RMSNorm and softmax one row at a time."""

    def _product(self, x, name):
        return cpu_int8.int8_matmul(x, self.params, name)


cpu_m1.GROWERS[landed_next_probs] = LandedPrefixRows


class CountingRows:
    """Counts the rows every grower evaluates (positions), by wrapping PrefixRows.extend."""

    def __init__(self):
        self.rows, self._extend = 0, cpu_exact.PrefixRows.extend
        counter = self

        def extend(grower, slots, inputs):
            counter.rows += len(slots)
            return counter._extend(grower, slots, inputs)

        cpu_exact.PrefixRows.extend = extend


def grower_race(qparams, cfg, slots, steps, rounds, rng):
    """{variant: median seconds} of a decoder's pattern (all slots grown one input per call, `steps` calls) for rule
    3's grower as landed and now, alternating round by round so that load from other work hits both alike."""
    inputs = rng.integers(0, 256, size=(steps, slots))
    seconds = {"rule 3 landed": [], "rule 3 now": []}
    for _ in range(rounds + 1):  # the first round compiles
        for name, grower_class in (("rule 3 landed", LandedPrefixRows), ("rule 3 now", cpu_int8.PrefixRows)):
            grower = grower_class(qparams, cfg, slots, capacity=steps)
            started = time.perf_counter()
            for step in range(steps):
                grower.extend(np.arange(slots), inputs[step])
            seconds[name].append(time.perf_counter() - started)
    return {name: float(np.median(times[1:])) for name, times in seconds.items()}


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def run_paths(model, restarting, examples, ac_text, b, counter):
    """{path: (bytes/s, positions/symbol or None)} and {path: bits} of one variant, each path round-tripped."""
    n_bytes, speeds, bits = sum(len(e) for e in examples), {}, {}
    counter.rows = 0
    bits["EI"], seconds = timed(fast_ei.compress_batch, examples, model, b)
    speeds["EI compress"] = (n_bytes / seconds, counter.rows / n_bytes)
    counter.rows = 0
    decoded, seconds = timed(fast_ei.decompress_batch, bits["EI"], model, b, n_symbols=[len(e) for e in examples])
    assert all(np.array_equal(d, e) for d, e in zip(decoded, examples)), "EI round trip failed"
    speeds["EI decompress"] = (n_bytes / seconds, counter.rows / n_bytes)
    bits["AC"], seconds = timed(fast_ac.compress, ac_text, restarting)
    speeds["AC compress"] = (len(ac_text) / seconds, None)
    counter.rows = 0
    decoded, seconds = timed(fast_ac.decompress, bits["AC"], restarting, len(ac_text))
    assert np.array_equal(decoded, ac_text), "AC round trip failed"
    speeds["AC decompress"] = (len(ac_text) / seconds, counter.rows / len(ac_text))
    return speeds, bits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--size", default="3m")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--checkpoint", default="out/bench/m1_3m.npz")
    parser.add_argument("--examples", type=int, default=4, help="10,240-byte examples coded by Equal-Info")
    parser.add_argument("--ac-bytes", type=int, default=2048)
    parser.add_argument("--window-bits", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="Numba and OpenBLAS threads (fast.cpu.threads)")
    parser.add_argument("--race-rounds", type=int, default=0,
                        help="only race rule 3's grower as landed against now (decoder calls, alternating rounds)")
    args = parser.parse_args()
    set_threads(args.threads)

    data = Path(args.text).read_bytes()
    cut = len(data) * 9 // 10
    held_out = data[cut:]
    params, cfg = trained_m1(args, bytes_to_symbols(data[:cut]), bytes_to_symbols(held_out[-20_000:]))
    if args.race_rounds:
        qparams = m1.coding_model(params, cfg, "cpu", rule=3).params
        print(f"rule 3's grower, one input per slot per call, 8 calls; median of {args.race_rounds} alternating "
              f"rounds; --threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
        for slots in (1, 64, 1024):
            race = grower_race(qparams, cfg, slots, 8, args.race_rounds, np.random.default_rng(slots))
            landed, now = race["rule 3 landed"], race["rule 3 now"]
            print(f"  {slots:5d} slots: landed {8 * slots / landed:9,.0f} positions/s, now {8 * slots / now:9,.0f}"
                  f" positions/s, now/landed {landed / now:.2f}x")
        return
    examples = [bytes_to_symbols(held_out[i * EXAMPLE_BYTES:(i + 1) * EXAMPLE_BYTES]) for i in range(args.examples)]
    ac_text = bytes_to_symbols(held_out[:args.ac_bytes])
    variants = {}
    for rule in (1, 2, 3):
        model = m1.coding_model(params, cfg, "cpu", rule=rule)
        variants[f"rule {rule}" if rule < 3 else "rule 3 now"] = model
        if rule == 3:
            variants["rule 3 landed"] = TransformerModel(model.params, cfg, rows=landed_next_probs, rule=3)
    order = ["rule 1", "rule 2", "rule 3 landed", "rule 3 now"]
    counter = CountingRows()
    results, bits = {}, {}
    for name in order:
        model = variants[name]
        restarting = TransformerModel(model.params, cfg, rows=model.rows, rule=model.rule, restart_every=RESTART)
        run_paths(model, restarting, [e[:200] for e in examples[:2]], ac_text[:300], args.window_bits, counter)
        results[name], bits[name] = run_paths(model, restarting, examples, ac_text, args.window_bits, counter)
        print(f"{name}: " + ", ".join(f"{path} {speed:,.0f}" for path, (speed, _) in results[name].items()), flush=True)
    for path in ("EI", "AC"):
        assert np.array_equal(np.concatenate(bits["rule 3 landed"][path]) if path == "EI" else
                              bits["rule 3 landed"][path],
                              np.concatenate(bits["rule 3 now"][path]) if path == "EI" else bits["rule 3 now"][path])

    n_bytes = sum(len(e) for e in examples)
    print(f"M1 {args.size} ({cfg.dtype}) from {args.checkpoint}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, --threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"Equal-Info b={args.window_bits} on {n_bytes:,} bytes ({len(examples)} examples of {EXAMPLE_BYTES:,}); AC "
          f"on {len(ac_text):,} bytes, M1 restarting every {RESTART}; bytes/s (positions per symbol)")
    print(f"{'':>14}" + "".join(f"{name:>22}" for name in order) + f"{'now/rule 1':>12}{'now/landed':>12}")
    for path in results[order[0]]:
        cells = []
        for name in order:
            speed, positions = results[name][path]
            cells.append(f"{speed:12,.0f}" + (f" ({positions:.2f})" if positions is not None else " " * 7))
        now, first, landed = (results[name][path][0] for name in ("rule 3 now", "rule 1", "rule 3 landed"))
        print(f"{path:>14}" + "".join(f"{cell:>22}" for cell in cells) + f"{now / first:11.2f}x{now / landed:11.2f}x")
    for name in order:
        compress, decompress = results[name]["AC compress"][0], results[name]["AC decompress"][0]
        print(f"  {name}: AC compress / decompress {compress / decompress:.1f}x")
    print("rule 3 landed and now give the same bits on every path; every path round-trips")


if __name__ == "__main__":
    main()
