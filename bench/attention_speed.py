"""fast.cpu's exact attention, each change against what it replaced, side by side in one run (issue #24, round 4).

Usage (from the repository root):
    python bench/attention_speed.py [--text ../shared/data/tinyshakespeare.txt] [--slots 13] [--steps 768]
                                    [--batch 8] [--length 256] [--skip-decoder] [--skip-encoder]
    python bench/attention_speed.py --step-timing [--rule 4] [--slots 13] [--steps 1500]
                                    [--save-rows FILE | --same-rows-as FILE]

--step-timing (round 7): one lockstep decoder alone, timed as a decoder runs it -- the shipped M1 by exact rule
--rule, --slots rows a step, one thread, 300 untimed steps first (compiling, and contexts of all lengths), then
--steps timed, random inputs (seeded; attention's cost depends on the lengths, not the symbols) -- printed in us per
step and per row, with `_attend_newest`'s share (wrapped by a timer). It times whatever `equalinfo` imports, so
the code before a change and after it are compared by running it twice, with PYTHONPATH pointing at each
checkout, alternating; --save-rows writes a hash of every step's rows, and --same-rows-as checks another run's.

The decoder's attention (`_attend_newest`): the key cache in blocks of 64 positions (fast/cpu/exact_m1.py's
layout) against one block per slot and head (the layout before: key row c runs over all positions). What it
runs: the shipped M1 (3m, exact rule 3, restarting every 256 symbols) on the cpu backend, as plain AC's
lockstep decoder runs it (fast/cpu/ac_lockstep.py): `--slots` segments of the text, one row per segment and step,
fed the text's next symbol (a decoder's input is the symbol it just decoded). Two growers run the same steps, one
per layout, the one that goes first alternating step by step, so both see the machine in the same state; their
rows must be identical (checked on every step). Printed per layout: the whole step and its attention calls
(fast.cpu.exact_m1._attend_newest, wrapped by a timer) in ms per step, and the ratios. Both caches live in one
process, so each step's memory traffic is twice a decoder's: the absolute figures are a busy decoder's.

The encoder's attention (`_attend`, a whole restart chunk at once, as plain AC's encoder and next_probs run it):
queries four at a time sharing each key and value load (share_loads=True) against one query at a time, on
--batch sequences of --length positions with the shipped M1's shape (4 heads of 64), random float32 q, k, v;
best of 5 rounds of each, alternating; outputs compared bit for bit.
"""
import argparse
import hashlib
import math
import os
import platform
import time
from pathlib import Path

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)
import numpy as np

from equalinfo.fast.cpu import exact_m1
from equalinfo.fast.cpu.ac_lockstep import one_thread
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.filetool import codec, shipped_model
from equalinfo.ref.symbols import BOS, bytes_to_symbols
from equalinfo.ref.transformer import bucket_table
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
    parser.add_argument("--batch", type=int, default=8, help="sequences of the encoder's attention call")
    parser.add_argument("--length", type=int, default=256, help="their positions (the shipped M1 restarts at 256)")
    parser.add_argument("--skip-decoder", action="store_true")
    parser.add_argument("--skip-encoder", action="store_true")
    parser.add_argument("--step-timing", action="store_true", help="only time a lockstep decoder's steps")
    parser.add_argument("--rule", type=int, default=4, help="--step-timing: the shipped M1's exact rule")
    parser.add_argument("--save-rows", help="--step-timing: write each step's rows' hash to this file")
    parser.add_argument("--same-rows-as", help="--step-timing: check each step's rows against this file's hashes")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, NUMBA_NUM_THREADS="
          f"{os.environ.get('NUMBA_NUM_THREADS', 'unset')}")
    if args.step_timing:
        step_timing(args)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        return
    if not args.skip_decoder:
        decoder(args)
    if not args.skip_encoder:
        encoder(args.batch, args.length)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def step_timing(args, warmup=300):
    """us per step of one lockstep decoder and its attention's share (the module docstring's --step-timing)."""
    model = codec.on_backend(shipped_model.load(args.rule), backends.load("cpu"))
    grower = prefix_rows(model, args.slots)
    attention = [0.0]
    attend = exact_m1._attend_newest

    def timed_attend(*call):
        started = time.perf_counter()
        attend(*call)
        attention[0] += time.perf_counter() - started

    exact_m1._attend_newest = timed_attend  # PrefixRows.extend looks it up on every call (a step compiled whole,
    rng = np.random.default_rng(0)  # fast/cpu/int8_step.py, calls the compiled kernel itself: no share then)
    slots, hashes = np.arange(args.slots), []
    with one_thread(args.slots):
        for step in range(warmup + args.steps):
            if step == warmup:
                attention[0], started = 0.0, time.perf_counter()
            rows = grower.extend(slots, rng.integers(0, 256, args.slots))
            hashes.append(hashlib.sha256(rows.tobytes()).hexdigest())
        elapsed = time.perf_counter() - started
    exact_m1._attend_newest = attend
    per_step, rows = elapsed / args.steps * 1e6, args.steps * args.slots
    print(f"equalinfo from {Path(exact_m1.__file__).resolve().parents[2]}; rule {args.rule}, {args.slots} slots, "
          f"{args.steps} steps timed: {per_step:.0f} us/step, {per_step / args.slots:.1f} us/row, _attend_newest "
          + (f"{attention[0] / rows * 1e6:.1f} us/row" if attention[0] else "not timed (called from compiled code)"))
    if args.save_rows:
        Path(args.save_rows).write_text("\n".join(hashes) + "\n")
    if args.same_rows_as:
        theirs = Path(args.same_rows_as).read_text().split()
        differ = [step for step, (a, b) in enumerate(zip(hashes, theirs)) if a != b]
        if differ or len(theirs) != len(hashes):
            raise SystemExit(f"rows differ from {args.same_rows_as}'s at steps {differ[:10]} (of {len(hashes)})")
        print(f"rows identical to {args.same_rows_as}'s on all {len(hashes)} steps")


def encoder(batch, length, n_heads=4, head_dim=64, rounds=5):
    """ms per `_attend` call, grouped queries against one at a time, and whether the outputs are identical."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((batch, length, n_heads, head_dim)).astype(np.float32) for _ in range(3))
    rel_bias = rng.standard_normal((32, n_heads)).astype(np.float32)
    buckets = np.ascontiguousarray(bucket_table(length, 32, 128))
    scale, zero = np.float32(1 / math.sqrt(head_dim)), np.float32(0)
    outs = {share: np.empty_like(q) for share in (True, False)}
    best = {share: float("inf") for share in outs}
    for _ in range(rounds):
        for share, out in outs.items():
            started = time.perf_counter()
            exact_m1._attend(q, k, v, rel_bias, buckets, scale, zero, out, share)
            best[share] = min(best[share], time.perf_counter() - started)
    same = np.array_equal(outs[True].view(np.int32), outs[False].view(np.int32))
    print(f"encoder, {batch} x {length} positions, {n_heads} heads of {head_dim}: four queries a load "
          f"{best[True] * 1e3:.2f} ms, one at a time {best[False] * 1e3:.2f} ms: {best[False] / best[True]:.2f}x; "
          f"outputs {'identical' if same else 'DIFFER'}")
    if not same:
        raise SystemExit("the encoder's outputs differ")


def decoder(args):
    """ms per step of a lockstep decoder, the key cache in blocks against one block."""
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
    print(f"decoder, {args.slots} slots, {timed_steps} steps timed; rows identical on every step")
    for name in names:
        print(f"{name:>20}: step {step_time[name] / timed_steps * 1e3:.3f} ms, attention "
              f"{attention[name] / timed_steps * 1e3:.3f} ms")
    before, after = names[1], names[0]
    print(f"blocks vs before: attention {attention[before] / attention[after]:.2f}x faster, whole step "
          f"{step_time[before] / step_time[after]:.2f}x")


if __name__ == "__main__":
    main()
