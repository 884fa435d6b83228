"""A decoder's attention with the key cache in blocks of 64 positions (fast/cpu/exact_m1.py's layout) against one
block per slot and head (the layout before: key row c runs over all positions), side by side in one run.

Usage (from the repository root):
    python bench/attention_layout.py [--text ../shared/data/tinyshakespeare.txt] [--slots 13] [--steps 768]

What it runs: the shipped M1 (3m, exact rule 3, restarting every 256 symbols) on the cpu backend, as plain AC's
lockstep decoder runs it (fast/cpu/ac_lockstep.py): `--slots` segments of the text, one row per segment and step,
fed the text's next symbol (a decoder's input is the symbol it just decoded). Two growers run the same steps, one
per layout, the one that goes first alternating step by step, so both see the machine in the same state; their
rows must be identical (checked on every step). Printed per layout: the whole step and its attention calls
(fast.cpu.exact_m1._attend_newest, wrapped by a timer) in ms per step, and the ratios. Both caches live in one
process, so each step's memory traffic is twice a decoder's: the absolute figures are a busy decoder's.
"""
import argparse
import os
import platform
import time
from pathlib import Path

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)
import numpy as np

from equalinfo.fast.cpu import exact_m1
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.filetool import codec, shipped_model
from equalinfo.ref.symbols import BOS, bytes_to_symbols
from equalinfo.train import backends

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
LAYOUTS = {"blocks of 64": exact_m1.KEY_BLOCK, "one block (before)": None}


def segments_of(text, n_slots, n_steps):
    """symbols [n_slots, n_steps]: the starts of n_slots equal segments of the text."""
    symbols = bytes_to_symbols(text)
    length = len(symbols) // n_slots
    if length < n_steps:
        raise SystemExit(f"the text has {len(symbols)} bytes: too short for {n_slots} segments of {n_steps}")
    return np.stack([symbols[s * length:s * length + n_steps] for s in range(n_slots)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--slots", type=int, default=13, help="segments decoded in lockstep (13: 200 KB of text)")
    parser.add_argument("--steps", type=int, default=768, help="decoder steps (3 restarts of the shipped M1)")
    args = parser.parse_args()
    symbols = segments_of(Path(args.text).read_bytes(), args.slots, args.steps)
    model = codec.on_backend(shipped_model.load(), backends.load("cpu"))
    growers = {}
    for name, block in LAYOUTS.items():
        growers[name] = prefix_rows(model, args.slots)
        growers[name].grower.key_block = block  # before the caches first grow: every growth keeps this layout
    attention = {name: 0.0 for name in LAYOUTS}
    step_time = dict(attention)
    current = [None]
    attend = exact_m1._attend_newest

    def timed_attend(*call):
        started = time.perf_counter()
        attend(*call)
        attention[current[0]] += time.perf_counter() - started

    exact_m1._attend_newest = timed_attend  # PrefixRows.extend looks it up on every call
    slots, inputs = np.arange(args.slots), np.full(args.slots, BOS)
    names = list(LAYOUTS)
    for step in range(args.steps):
        if step == 2:  # the first steps compile
            attention, step_time = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
        rows = {}
        for name in (names if step % 2 else names[::-1]):
            current[0] = name
            started = time.perf_counter()
            rows[name] = growers[name].extend(slots, inputs)
            step_time[name] += time.perf_counter() - started
        if not np.array_equal(*rows.values()):
            raise SystemExit(f"step {step}: the layouts' rows differ")
        inputs = symbols[:, step]
    timed_steps = args.steps - 2
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, NUMBA_NUM_THREADS="
          f"{os.environ.get('NUMBA_NUM_THREADS', 'unset')}; {args.slots} slots, {timed_steps} steps timed; rows "
          f"identical on every step")
    for name in names:
        print(f"{name:>20}: step {step_time[name] / timed_steps * 1e3:.3f} ms, attention "
              f"{attention[name] / timed_steps * 1e3:.3f} ms")
    before, after = names[1], names[0]
    print(f"blocks vs before: attention {attention[before] / attention[after]:.2f}x faster, whole step "
          f"{step_time[before] / step_time[after]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
