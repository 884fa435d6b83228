"""Training-step throughput of the Transformer: fast.cpu vs ref vs the same model in PyTorch (CPU, fp32), side by side.

    python bench/train_speed.py [--sizes 3m 25m] [--batch 4] [--seq 512] [--repeats 5] [--optimizer adafactor]
                                [--no-memory] [--threads N [N ...]] [--openblas-spin]

A training step is forward + backward + one optimizer update (Adafactor as in T5X by default, or AdamW), in float32
on a batch x seq batch of random ids with M1's vocabularies. The three implementations start from the same weights;
the script checks that their first losses agree before timing. Each implementation runs in a worker process of its
own (PyTorch's OpenMP runtime and MKL must not share a process with NumPy's OpenBLAS and Numba's pool: together they
oversubscribe the cores); the parent interleaves their steps (fast, PyTorch, ref, fast, ...) so that load from
other processes on the machine hits all of them alike. Timings are the best of `--repeats` steps, the median beside
it. ref is slow, so it gets at most 3 repeats. `--threads 1 2` runs every implementation at 1 and at 2 threads,
all interleaved in one run (each worker gets its own BLAS, Numba and PyTorch thread limit). Thread pools that
spin-wait suffer most from other processes on a loaded machine; single-threaded figures are the stable ones.
Like the `equalinfo` CLI, the workers make OpenBLAS's idle threads sleep at once (fast/cpu/threads.py);
`--openblas-spin` keeps OpenBLAS's default spin-wait, to see what that costs.

PyTorch's step uses autograd and `torch.optim.Adafactor` (PyTorch's own Adafactor, which factors every matrix and
differs from T5X's in details; it does the same kind and amount of work) or `torch.optim.AdamW`, both `foreach`.
PyTorch is a bench-only dependency (pip install torch): the package never imports it.

Peak memory of one "25m" training step (or the largest size asked for) is measured in each worker after the timed
steps: the process's peak resident set during one more step (VmHWM, reset just before it), that peak minus the
resident set before the step (parameters, optimizer state, compiled kernels and the fast backend's kept work buffers
are already there), and for the NumPy implementations tracemalloc's peak of the arrays allocated during the step.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["3m", "25m"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="limit BLAS, Numba and PyTorch to N threads; several N: side by side in one run")
    parser.add_argument("--openblas-spin", action="store_true",
                        help="keep OpenBLAS's default spin-wait of idle threads (2^28 cycles)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-ref", action="store_true", help="skip the (slow) reference")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: impl:size
    return parser.parse_args()


ARGS = parse_args()
if ARGS.worker and ARGS.threads:  # a worker gets one thread count (the parent may have several)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads[0])
if not ARGS.openblas_spin:
    from equalinfo.fast.cpu.threads import quiet_idle_blas_threads  # before NumPy loads OpenBLAS

    quiet_idle_blas_threads()

import numpy as np  # noqa: E402

from equalinfo.ref import optim as ro  # noqa: E402
from equalinfo.ref import transformer as tr  # noqa: E402
from torch_reference import torch_loss_fn  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------------
# The three training steps
# ----------------------------------------------------------------------------------------------------------------------


def make_problem(size):
    cfg = tr.make_config(size, dtype="float32")
    params = tr.init_params(cfg, 0)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, cfg.vocab_in, (ARGS.batch, ARGS.seq))
    targets = rng.integers(0, cfg.vocab_out, (ARGS.batch, ARGS.seq))
    return cfg, params, inputs, targets


def numpy_stepper(model, optim_module, cfg, params, inputs, targets):
    """A step function of ref or fast.cpu: loss_and_grads then the optimizer update. Returns the loss."""
    opt = (optim_module.Adafactor() if ARGS.optimizer == "adafactor"
           else optim_module.AdamW(peak_lr=1e-3, warmup_steps=10, total_steps=1000))
    holder = {"params": params, "state": opt.init(params), "step": 0}

    def step():
        loss, grads = model.loss_and_grads(holder["params"], cfg, inputs, targets)
        holder["params"], holder["state"] = opt.update(holder["params"], grads, holder["state"], holder["step"])
        holder["step"] += 1
        return loss

    return step


def torch_stepper(cfg, params, inputs, targets):
    """The same model in PyTorch (autograd backward), reading our parameter dict by name, plus its optimizer."""
    import torch

    if ARGS.threads:
        torch.set_num_threads(ARGS.threads[0])
    weights = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    t_inputs, t_targets = torch.tensor(inputs), torch.tensor(targets)
    model_loss = torch_loss_fn(weights, cfg, inputs.shape[1], torch)

    def loss_fn():
        return model_loss(t_inputs, t_targets)

    if ARGS.optimizer == "adafactor":
        opt = torch.optim.Adafactor(weights.values(), lr=0.01, foreach=True)
    else:
        opt = torch.optim.AdamW(weights.values(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, torch.__version__


def make_steppers(size, names=("fast.cpu", "PyTorch", "ref")):
    """{name: step function} for the implementations asked for and available, each on its own copy of the weights."""
    from equalinfo.fast.cpu import optim as fo
    from equalinfo.fast.cpu import transformer as ft

    cfg, params, inputs, targets = make_problem(size)
    steppers, versions = {}, {}
    if "fast.cpu" in names:
        steppers["fast.cpu"] = numpy_stepper(ft, fo, cfg, dict(params), inputs, targets)
        versions["fast.cpu"] = "numba"
    try:
        if "PyTorch" in names:
            steppers["PyTorch"], versions["PyTorch"] = torch_stepper(cfg, params, inputs, targets)
    except ImportError:
        print("PyTorch is not installed: no comparison (pip install torch==2.13.0)")
    if "ref" in names:
        steppers["ref"] = numpy_stepper(tr, ro, cfg, dict(params), inputs, targets)
        versions["ref"] = "numpy " + np.__version__
    return cfg, steppers, versions


# ----------------------------------------------------------------------------------------------------------------------
# Workers: one process per implementation
# ----------------------------------------------------------------------------------------------------------------------
# Each implementation runs in a process of its own, so that thread pools do not meet in one process (PyTorch brings
# its own OpenMP runtime and MKL; NumPy's OpenBLAS and Numba's OpenMP pool are the fast backend's) and each process's
# peak memory is its own. The parent interleaves their steps over pipes: an idle worker blocks on its pipe.


def worker(spec):
    """Serve steps over stdin/stdout: prints the first step's loss, then for each "step" line the step's seconds;
    "memory" measures the peak resident set of one more step (VmHWM reset first) and the arrays it allocated."""
    import tracemalloc

    name, size = spec.split(":")
    _, steppers, versions = make_steppers(size, (name,))
    step = steppers[name]
    print(json.dumps({"loss": step(), "version": versions[name]}), flush=True)  # warm-up: compile, allocate
    for line in sys.stdin:
        command = line.strip()
        if command == "step":
            start = time.perf_counter()
            step()
            print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
        elif command == "memory":
            rss_before = _current_rss()
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # reset VmHWM to the current resident set
            tracing = name != "PyTorch"  # tracemalloc sees NumPy's allocations, not PyTorch's
            if tracing:
                tracemalloc.start()
            step()
            result = {"peak": _peak_rss(), "before": rss_before}
            if tracing:
                result["traced"] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            print(json.dumps(result), flush=True)
        else:
            break


class Worker:
    def __init__(self, name, size, threads=None):
        command = [sys.executable, os.path.abspath(__file__), "--worker", f"{name}:{size}", "--batch",
                   str(ARGS.batch), "--seq", str(ARGS.seq), "--optimizer", ARGS.optimizer]
        if threads:
            command += ["--threads", str(threads)]
        if ARGS.openblas_spin:
            command += ["--openblas-spin"]
        self.impl, self.threads = name, threads
        name = f"{name} {threads}T" if threads else name
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.first = self._read()

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker failed (see its error above)")
        return json.loads(line)

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self):
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        self.process.wait()


def _current_rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss():
    """VmHWM, this process's peak resident set since the last reset (ru_maxrss cannot be reset)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# ----------------------------------------------------------------------------------------------------------------------
# Timing and memory
# ----------------------------------------------------------------------------------------------------------------------


def available(names):
    """The implementations that can run here (PyTorch is optional)."""
    try:
        import importlib.util
        has_torch = importlib.util.find_spec("torch") is not None
    except ImportError:
        has_torch = False
    if not has_torch:
        print("PyTorch is not installed: no comparison (pip install torch==2.13.0)")
    return [name for name in names if name != "PyTorch" or has_torch]


def run_size(size, names, memory):
    cfg = tr.make_config(size, dtype="float32")
    workers = [Worker(name, size, threads) for threads in (ARGS.threads or [None]) for name in names]
    try:
        tokens = ARGS.batch * ARGS.seq
        flops = tr.flops_per_token(cfg, ARGS.seq)["training"] * tokens
        losses = {w.name: w.first["loss"] for w in workers}
        reference_loss = [w.first["loss"] for w in workers if w.impl in ("ref", "fast.cpu")][-1]
        for name, loss in losses.items():
            if abs(loss - reference_loss) > 1e-4 * abs(reference_loss):
                raise SystemExit(f"{name}'s loss {loss} differs from {reference_loss}: the models are not the same")
        times = {w.name: [] for w in workers}
        for repeat in range(ARGS.repeats):
            for w in workers:
                if w.impl == "ref" and repeat >= 3:
                    continue
                times[w.name].append(w.ask("step")["seconds"])
        print(f"\nmodel {size}: {tr.count_params(cfg)['non_embedding']:,} non-embedding params, batch {ARGS.batch} x "
              f"{ARGS.seq}, float32, forward + backward + {ARGS.optimizer}; first-step loss {reference_loss:.6f} "
              f"(all agree to 1e-4); load average now {os.getloadavg()[0]:.2f}")
        rates = {name: tokens / min(values) for name, values in times.items()}
        for w in workers:
            values = times[w.name]
            best = min(values)
            print(f"  {w.name:12s} {rates[w.name]:9,.0f} tokens/s   best {best * 1e3:8.1f} ms  median "
                  f"{float(np.median(values)) * 1e3:8.1f} ms  ({len(values)} steps, {flops / best / 1e9:6.1f} "
                  f"GFLOP/s, {w.first['version']})")
        for threads in ARGS.threads or [None]:
            same = {w.impl: w.name for w in workers if w.threads == threads}
            print("  " + (f"{threads} thread(s): " if threads else "") + "   ".join(
                f"fast.cpu / {impl} = {rates[same['fast.cpu']] / rates[name]:.2f}x"
                for impl, name in same.items() if impl != "fast.cpu"))
        if memory:
            print(f"  peak memory of one {size} training step (resident set; 'step' = peak during the step minus the "
                  f"resident set before it; 'arrays' = tracemalloc's peak of NumPy arrays allocated in the step):")
            for w in workers:
                result = w.ask("memory")
                traced = f", arrays {result['traced'] / 2**20:7.1f} MiB" if "traced" in result else ""
                print(f"    {w.name:12s} process peak {result['peak'] / 2**20:7.1f} MiB, step "
                      f"{(result['peak'] - result['before']) / 2**20:7.1f} MiB{traced}")
    finally:
        for w in workers:
            w.close()


def main():
    if ARGS.worker:
        worker(ARGS.worker)
        return
    import numba

    print(f"{os.cpu_count()} CPUs ({platform.machine()} {platform.processor()}), load average "
          f"{os.getloadavg()[0]:.2f}; numpy {np.__version__}, numba {numba.__version__}; threads limit "
          f"{ARGS.threads or 'none'}; OpenBLAS idle threads "
          f"{'spin (its default)' if ARGS.openblas_spin else 'sleep'}; one process per implementation, best of {ARGS.repeats} interleaved steps "
          f"(ref: of at most 3)")
    names = available(["fast.cpu", "PyTorch"] + ([] if ARGS.no_ref else ["ref"]))
    memory_size = None if ARGS.no_memory else ("25m" if "25m" in ARGS.sizes else ARGS.sizes[-1])
    for size in ARGS.sizes:
        run_size(size, names, memory=(size == memory_size))


if __name__ == "__main__":
    main()
