"""Scale-out on one machine: dataset builds and the demo repro in-process, on a pool of --workers, and on Ray.

    python bench/scale_out.py [--examples 384] [--rows-per-shard 32] [--workers 2] [--no-ray]
                              [--repro-scale 0.5] [--no-repro]

1. Dataset build throughput (bytes of text coded per second): the demo preset's M1-coded datasets (AC v=256,
   EqualInfoAC[b=16] v=256 and v=65k: one coder) plus GZip, over --examples train examples of 1,024 bytes, with an
   M1 of the demo's size (randomly initialised: coding costs the same whatever the weights), on the fastest backend.
   Shards of --rows-per-shard rows (the pipeline's are 256; smaller here so a short run has several units per
   worker). Run in-process, on a process pool of --workers, and on a local Ray instance with --workers CPUs, in
   that order and then once more (best of the two rounds each), checking that all three wrote the same bytes.
   Throughput counts the coding only, from the first unit submitted to the last finished (pool and Ray start-up
   included: that is what a build pays), not M1's set-up before it.
2. The demo repro (`equalinfo repro --preset demo --scale S`) in-process (--workers 1) vs --workers 2: wall time of
   the whole command, in subprocesses one after the other. M1's training runs in one process in both.
3. Ray's overhead: its build time over the pool's on the same units.
The pipeline's units, executors and their guarantees: train/executors.py, train/build.py, docs/scaling.md.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)
from equalinfo.fast.cpu.threads import quiet_idle_blas_threads

quiet_idle_blas_threads()

from equalinfo.ref import transformer  # noqa: E402
from equalinfo.train import build, executors, m1, repro  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=384)
    parser.add_argument("--rows-per-shard", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--repro-scale", type=float, default=0.5)
    parser.add_argument("--no-repro", action="store_true")
    return parser.parse_args()


def files_of(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def build_once(preset, corpus, executor, out, backend):
    """(seconds of the units, text bytes coded) of the preset's datasets built by `executor` in `out`."""
    pipeline = repro.Pipeline(copy.deepcopy(preset), out, backend, corpus, log=lambda text: None, executor=executor)
    examples = pipeline.examples()
    cfg = m1.make_config(preset["m1"]["size"], preset["m1"].get("dtype", "float32"))
    trained = repro.TrainedM1(transformer.init_params(cfg, 0), cfg, seq_len=preset["m1"]["seq_len"])
    timed = Timed(executor)
    pipeline.executor = timed
    pipeline.build_datasets(examples, trained)
    return timed.seconds, timed.bytes, pipeline.backend.name


class Timed:
    """An executor wrapper that times its runs and sums their units' weights (bytes of text)."""

    def __init__(self, inner):
        self.inner, self.seconds, self.bytes = inner, 0.0, 0

    def run(self, function, units, context, **options):
        started = time.perf_counter()
        results = self.inner.run(function, units, context, **options)
        self.seconds += time.perf_counter() - started
        self.bytes += sum(unit.weight for unit in units)
        return results


def bench_builds(args):
    preset = repro.load_preset("demo")
    preset["datasets"].update(train_examples=args.examples, val_examples=16, methods=[
        {"method": "ac", "bits_per_token": [8]},
        {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8, 16]},
        {"method": "gzip", "bits_per_token": [8]}])
    build.ROWS_PER_SHARD = args.rows_per_shard  # this process plans the units; the workers read it from them
    names = ["in-process", f"pool x{args.workers}"] + ([] if args.no_ray else [f"ray x{args.workers}"])
    with tempfile.TemporaryDirectory() as scratch:
        warm = copy.deepcopy(preset)
        warm["datasets"].update(train_examples=4, val_examples=2)
        build_once(warm, None, executors.InProcess(), Path(scratch) / "warm", args.backend)  # JIT caches filled
        best, reference = {}, None
        for round_ in range(2):
            for name in names:
                executor = (executors.InProcess() if name == "in-process" else
                            executors.ProcessPool(args.workers) if name.startswith("pool") else ray_executor(args))
                out = Path(scratch) / f"{name}-{round_}"
                seconds, n_bytes, backend = build_once(preset, None, executor, out, args.backend)
                files = files_of(out / "datasets")
                reference = reference or files
                assert files == reference, f"{name} wrote other bytes than in-process"
                best[name] = min(best.get(name, float("inf")), seconds)
                print(f"  round {round_ + 1} {name:>12}: {seconds:7.2f} s, {n_bytes / seconds / 1e3:8.1f} KB/s",
                      flush=True)
    print(f"\nDataset build, {n_bytes:,} bytes of text (backend {backend}, shards of {args.rows_per_shard} rows, "
          f"best of 2 rounds), identical bytes from every executor:")
    for name in names:
        print(f"  {name:>12}: {best[name]:7.2f} s  {n_bytes / best[name] / 1e3:8.1f} KB/s  "
              f"x{best['in-process'] / best[name]:.2f} vs in-process")
    if not args.no_ray:
        pool, ray_ = best[names[1]], best[names[2]]
        print(f"  Ray's overhead over the pool: {100 * (ray_ / pool - 1):+.1f}%")


_RAY = None


def ray_executor(args):
    global _RAY
    if _RAY is None:
        import ray

        ray.init(num_cpus=args.workers, logging_level="WARNING", log_to_driver=False, include_dashboard=False)
        _RAY = executors.Ray("auto")
    return _RAY


def bench_repro(args):
    times = {}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, args.workers):
            command = [sys.executable, "-m", "equalinfo", "repro", "--preset", "demo", "--scale",
                       str(args.repro_scale), "--out", str(Path(scratch) / f"w{workers}"), "--workers", str(workers)]
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[workers] = time.perf_counter() - started
            print(f"  repro --workers {workers}: {times[workers]:7.1f} s", flush=True)
        same = [json.loads((Path(scratch) / f"w{w}" / "results.json").read_text())["datasets"] for w in times]
    print(f"\nDemo repro at --scale {args.repro_scale}: in-process {times[1]:.1f} s, --workers {args.workers} "
          f"{times[args.workers]:.1f} s, x{times[1] / times[args.workers]:.2f}; datasets' figures equal: "
          f"{same[0] == same[1]}")


def main():
    args = parse_args()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    bench_builds(args)
    if not args.no_repro:
        bench_repro(args)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
