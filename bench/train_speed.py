"""Training-step throughput of the Transformer: fast.cpu vs ref vs the same model in PyTorch (CPU, fp32), side by side.

    python bench/train_speed.py [--sizes 3m 25m] [--batch 4] [--seq 512] [--repeats 5] [--optimizer adafactor]
                                [--no-memory] [--threads N]

A training step is forward + backward + one optimizer update (Adafactor as in T5X by default, or AdamW), in float32
on a batch x seq batch of random ids with M1's vocabularies. The three implementations start from the same weights;
the script checks that their first losses agree before timing. Timings are the best of `--repeats` steps per
implementation, interleaved (fast, PyTorch, ref, fast, ...) so that load from other processes on the machine hits
all of them alike; the median is printed beside the best. ref is slow, so it gets at most 3 repeats.

PyTorch's step uses autograd and `torch.optim.Adafactor` (PyTorch's own Adafactor, which factors every matrix and
differs from T5X's in details; it does the same kind and amount of work) or `torch.optim.AdamW`, both `foreach`.
PyTorch is a bench-only dependency (pip install torch): the package never imports it.

Peak memory of one "25m" training step (or the largest size asked for) is measured in fresh subprocesses, one per
implementation: the peak resident set (VmHWM) minus the resident set just before the step (after the model,
batch, optimizer state and compiled kernels exist), and for the NumPy implementations also tracemalloc's peak of
the arrays allocated during the step.
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["3m", "25m"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS, Numba and PyTorch to N threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-ref", action="store_true", help="skip the (slow) reference")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)  # internal: impl:size
    return parser.parse_args()


ARGS = parse_args()
if ARGS.threads:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402

from ref import optim as ro  # noqa: E402
from ref import transformer as tr  # noqa: E402


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
        torch.set_num_threads(ARGS.threads)
    weights = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    T = inputs.shape[1]
    buckets = torch.tensor(tr.bucket_table(T, cfg.num_buckets, cfg.max_distance))
    mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
    H, dh = cfg.n_heads, cfg.head_dim
    t_inputs, t_targets = torch.tensor(inputs), torch.tensor(targets)

    def norm(x, scale):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + tr.RMS_EPS) * scale

    def loss_fn():
        x = weights["embed"][t_inputs]
        B = x.shape[0]
        for i in range(cfg.n_layers):
            p = f"blocks.{i}."
            h = norm(x, weights[p + "attn_norm"])
            q, k, v = ((h @ weights[p + w]).view(B, T, H, dh).transpose(1, 2) for w in ("wq", "wk", "wv"))
            bias = weights[p + "rel_bias"][buckets].permute(2, 0, 1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias + mask
            ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * dh)
            x = x + ctx @ weights[p + "wo"]
            h = norm(x, weights[p + "mlp_norm"])
            x = x + (torch.relu(h @ weights[p + "w_gate"]) * (h @ weights[p + "w_up"])) @ weights[p + "w_down"]
        logits = norm(x, weights["final_norm"]) @ weights["unembed"]
        lse = torch.logsumexp(logits, -1)
        ce = lse - logits.gather(-1, t_targets[..., None])[..., 0]
        return (ce + cfg.z_loss * lse * lse).mean()

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
    from fast.cpu import optim as fo
    from fast.cpu import transformer as ft

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
# Timing and memory
# ----------------------------------------------------------------------------------------------------------------------


def time_size(size):
    cfg, steppers, versions = make_steppers(size, ("fast.cpu", "PyTorch") + (() if ARGS.no_ref else ("ref",)))
    tokens = ARGS.batch * ARGS.seq
    flops = tr.flops_per_token(cfg, ARGS.seq)["training"] * tokens
    first = {name: step() for name, step in steppers.items()}  # warm-up (compilation, allocations) and loss check
    reference_loss = first.get("ref", first["fast.cpu"])
    for name, loss in first.items():
        if abs(loss - reference_loss) > 1e-4 * abs(reference_loss):
            raise SystemExit(f"{name}'s loss {loss} differs from {reference_loss}: the models are not the same")
    times = {name: [] for name in steppers}
    for repeat in range(ARGS.repeats):
        for name, step in steppers.items():
            if name == "ref" and repeat >= 3:
                continue
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    print(f"\nmodel {size}: {tr.count_params(cfg)['non_embedding']:,} non-embedding params, batch {ARGS.batch} x "
          f"{ARGS.seq}, float32, forward + backward + {ARGS.optimizer}; first-step loss {reference_loss:.6f} "
          f"(all agree to 1e-4)")
    rates = {name: tokens / min(values) for name, values in times.items()}
    for name, values in times.items():
        best = min(values)
        print(f"  {name:9s} {rates[name]:9,.0f} tokens/s   best {best * 1e3:8.1f} ms  median "
              f"{float(np.median(values)) * 1e3:8.1f} ms  ({len(values)} steps, {flops / best / 1e9:6.1f} GFLOP/s, "
              f"{versions[name]})")
    ratios = "   ".join(f"fast.cpu / {name} = {rates['fast.cpu'] / rates[name]:.2f}x"
                        for name in rates if name != "fast.cpu")
    print(f"  {ratios}")
    return rates


def memory_child(spec):
    """In a fresh process: build one implementation, run a warm-up step, then measure one more step."""
    import tracemalloc

    name, size = spec.split(":")
    cfg, steppers, _ = make_steppers(size, (name,))
    step = steppers[name]
    step()  # compile, allocate the optimizer state's successors, warm caches
    rss_before = _current_rss()
    tracing = name != "PyTorch"
    if tracing:
        tracemalloc.start()
    step()
    result = {"maxrss": _peak_rss(), "rss_before": rss_before}
    if tracing:
        result["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(json.dumps(result))


def _current_rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss():
    """VmHWM, this process's peak resident set. (ru_maxrss would not do: Linux carries it over from the parent
    across fork + exec, so a child started by a big parent reports the parent's peak.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_memory(size, names):
    print(f"\npeak memory of one {size} training step (fresh process each; RSS = peak resident set, growth = peak minus "
          f"the resident set before the step; traced = NumPy arrays allocated during the step, tracemalloc):")
    for name in names:
        command = [sys.executable, os.path.abspath(__file__), "--memory-child", f"{name}:{size}",
                   "--batch", str(ARGS.batch), "--seq", str(ARGS.seq), "--optimizer", ARGS.optimizer]
        if ARGS.threads:
            command += ["--threads", str(ARGS.threads)]
        output = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if output.returncode:
            print(f"  {name}: failed: {output.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(output.stdout.strip().splitlines()[-1])
        traced = f", traced {result['traced_peak'] / 2**20:7.1f} MiB" if "traced_peak" in result else ""
        print(f"  {name:9s} peak RSS {result['maxrss'] / 2**20:7.1f} MiB, growth during the step "
              f"{(result['maxrss'] - result['rss_before']) / 2**20:7.1f} MiB{traced}")


def main():
    if ARGS.memory_child:
        memory_child(ARGS.memory_child)
        return
    import numba

    print(f"{os.cpu_count()} CPUs ({platform.machine()} {platform.processor()}), load average "
          f"{os.getloadavg()[0]:.2f}; numpy {np.__version__}, numba {numba.__version__} "
          f"({numba.config.NUMBA_NUM_THREADS} threads), threads limit {ARGS.threads or 'none'}; "
          f"best of {ARGS.repeats} interleaved steps (ref: of at most 3)")
    for size in ARGS.sizes:
        time_size(size)
    if not ARGS.no_memory:
        size = "25m" if "25m" in ARGS.sizes else ARGS.sizes[-1]
        names = ["fast.cpu", "PyTorch"] + ([] if ARGS.no_ref else ["ref"])
        measure_memory(size, names)


if __name__ == "__main__":
    main()
