"""Forward+backward throughput of the reference Transformer, beside the same model in PyTorch (CPU, fp32) if present.

    python bench/bench_transformer_ref.py [--size 3m] [--batch 8] [--seq 256] [--repeats 5] [--threads N]

Both run the same parameters on the same batch in float32; the script checks that their losses agree before it
prints tokens/s and the ratio. PyTorch is imported here only (never by the package). With --threads both NumPy's
BLAS (if threadpoolctl is installed, else via the environment variables set before NumPy loads) and PyTorch are
limited to N threads.
"""
import argparse
import os
import platform
import sys
import time

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


ARGS = parse_args()
if ARGS.threads:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402

from equalinfo.ref import transformer as tr  # noqa: E402
from torch_reference import torch_loss_fn  # noqa: E402


def time_it(function, repeats):
    function()  # warm-up (allocations, BLAS thread pool, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def torch_model(params, cfg, torch):
    """The same architecture in PyTorch (autograd for the backward), reading our parameter dict by name."""
    weights = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    loss_fn = torch_loss_fn(weights, cfg, ARGS.seq, torch)

    def step(inputs, targets):
        for w in weights.values():
            w.grad = None
        loss = loss_fn(inputs, targets)
        loss.backward()
        return float(loss.detach())

    return step


def main():
    cfg = tr.make_config(ARGS.size, dtype="float32")
    params = tr.init_params(cfg, 0)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, cfg.vocab_in, (ARGS.batch, ARGS.seq))
    targets = rng.integers(0, cfg.vocab_out, (ARGS.batch, ARGS.seq))
    tokens = ARGS.batch * ARGS.seq
    flops = tr.flops_per_token(cfg, ARGS.seq)["training"] * tokens

    print(f"model {ARGS.size} (non-embedding {tr.count_params(cfg)['non_embedding']:,} params), batch "
          f"{ARGS.batch} x {ARGS.seq}, float32, forward+backward; {os.cpu_count()} CPUs, {platform.processor() or ''}"
          f" {platform.machine()}, numpy {np.__version__}, threads {ARGS.threads or 'default'}")
    ref_loss = tr.loss_and_grads(params, cfg, inputs, targets)[0]
    best, median = time_it(lambda: tr.loss_and_grads(params, cfg, inputs, targets), ARGS.repeats)
    ref_rate = tokens / best
    print(f"ref (NumPy):    {ref_rate:10,.0f} tokens/s  (best {best * 1e3:.1f} ms, median {median * 1e3:.1f} ms, "
          f"{flops / best / 1e9:.1f} GFLOP/s)  loss {ref_loss:.6f}")
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: no comparison (pip install torch for one)")
        return
    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    step = torch_model(params, cfg, torch)
    t_inputs, t_targets = torch.tensor(inputs), torch.tensor(targets)
    torch_loss = step(t_inputs, t_targets)
    best_t, median_t = time_it(lambda: step(t_inputs, t_targets), ARGS.repeats)
    torch_rate = tokens / best_t
    print(f"PyTorch {torch.__version__} CPU fp32: {torch_rate:10,.0f} tokens/s  (best {best_t * 1e3:.1f} ms, median "
          f"{median_t * 1e3:.1f} ms, {flops / best_t / 1e9:.1f} GFLOP/s)  loss {torch_loss:.6f}, "
          f"{torch.get_num_threads()} threads")
    if abs(torch_loss - ref_loss) > 1e-4 * abs(ref_loss):
        print(f"WARNING: the losses differ by {abs(torch_loss - ref_loss):.3g}: the two models are not the same")
    print(f"ratio ref / PyTorch: {ref_rate / torch_rate:.3f}  (PyTorch is {torch_rate / ref_rate:.2f}x faster)")


if __name__ == "__main__":
    main()
