"""Training-step throughput on one GPU: fast.gpu vs the same model in PyTorch eager, side by side in one run.

    python bench/gpu_train_speed.py [--sizes 25m 113m] [--batch 32] [--seq 512] [--precision bf16|tf32|float32]
                                    [--optimizer adafactor|adamw] [--vocab 256] [--steps 10] [--rounds 3]
                                    [--out results.json]

A training step is forward + backward + one optimizer update on a batch x seq batch of random tokens (M2's
vocabulary: --vocab ids out, one more in for BOS), float32 parameters and state. Both implementations start from
the same weights and the script checks that their first losses agree before timing. Matrix products:
- fast.gpu: cuBLAS through fast/gpu/blas.py with the chosen compute type (float32 in/out; "tf32"/"bf16" round the
  products' inputs inside cuBLAS);
- PyTorch: the same model (bench/torch_reference.py) in eager mode with autograd, torch.set_float32_matmul_precision
  "highest"/"high"/"medium" for float32/tf32/bf16 (the same cuBLAS compute types), and torch.optim.Adafactor
  (foreach; PyTorch's own Adafactor, which differs from T5X's in details but does the same kind of work) or
  torch.optim.AdamW (fused).
Both read the loss back to the host every step (the training loop checks it is finite), so both synchronise once
per step. Timing: warm-up steps first (compilation, allocation), then `--rounds` rounds of `--steps` steps for each
implementation in turn, each round between two device synchronisations; the best round's mean step time counts.

MFU = achieved FLOP/s / the H100 SXM dense peak of the precision used: bf16 989 TFLOP/s, TF32 495, FP32 67
(printed with the result; on another GPU pass --peak). FLOPs per token are ref.transformer.flops_per_token's
"training" figure (3 x forward, attention counted over the full context).
PyTorch and CuPy are bench-only dependencies here (pip install torch cupy-cuda12x or cupy-cuda13x).
"""
import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

import numpy as np  # noqa: E402

from equalinfo.ref import optim as ro  # noqa: E402
from equalinfo.ref import transformer as tr  # noqa: E402

PEAKS = {"bf16": 989e12, "tf32": 495e12, "float32": 67e12}  # H100 SXM dense, FLOP/s
TORCH_PRECISION = {"float32": "highest", "tf32": "high", "bf16": "medium"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["25m", "113m"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=256, help="M2's token vocabulary (256 or 65536)")
    parser.add_argument("--precision", choices=list(PEAKS), default="bf16")
    parser.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak", type=float, default=None, help="peak FLOP/s for MFU (default: H100 SXM's)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    return parser.parse_args()


def make_problem(size, args):
    cfg = tr.make_config(size, vocab_in=args.vocab + 1, vocab_out=args.vocab, dtype="float32")
    params = tr.init_params(cfg, 0)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, cfg.vocab_in, (args.batch, args.seq))
    targets = rng.integers(0, cfg.vocab_out, (args.batch, args.seq))
    return cfg, params, inputs, targets


def ours(cfg, params, inputs, targets, args):
    """(step function returning the loss, synchronise) for fast.gpu, its arrays on the GPU throughout."""
    import cupy

    from equalinfo.fast.gpu import optim as go
    from equalinfo.fast.gpu import transformer as gt

    gt.set_matmul_precision(args.precision)
    opt = (go.Adafactor() if args.optimizer == "adafactor"
           else go.AdamW(peak_lr=1e-3, warmup_steps=10, total_steps=1000))
    holder = {"params": gt.to_device(params), "step": 0}
    holder["state"] = opt.init(holder["params"])

    def step():
        loss, grads = gt.loss_and_grads(holder["params"], cfg, inputs, targets)
        holder["params"], holder["state"] = opt.update(holder["params"], grads, holder["state"], holder["step"])
        holder["step"] += 1
        return loss

    return step, cupy.cuda.Device().synchronize, f"cupy {cupy.__version__}"


def pytorch(cfg, params, inputs, targets, args):
    import torch

    from torch_reference import torch_loss_fn

    torch.set_float32_matmul_precision(TORCH_PRECISION[args.precision])
    device = torch.device("cuda")
    weights = {name: torch.tensor(value, device=device, requires_grad=True) for name, value in params.items()}
    t_inputs, t_targets = torch.tensor(inputs, device=device), torch.tensor(targets, device=device)
    loss_fn = torch_loss_fn(weights, cfg, inputs.shape[1], torch, device=device)
    if args.optimizer == "adafactor":
        opt = torch.optim.Adafactor(weights.values(), lr=0.01, foreach=True)
    else:
        opt = torch.optim.AdamW(weights.values(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(t_inputs, t_targets)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, torch.cuda.synchronize, f"torch {torch.__version__} eager"


def time_rounds(steppers, args):
    """{name: [seconds per step of each round]}, the implementations taking turns round by round."""
    times = {name: [] for name in steppers}
    for _ in range(args.rounds):
        for name, (step, synchronize, _) in steppers.items():
            synchronize()
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            synchronize()
            times[name].append((time.perf_counter() - started) / args.steps)
    return times


def run_size(size, args, peak):
    cfg, params, inputs, targets = make_problem(size, args)
    steppers = {"fast.gpu": ours(cfg, params, inputs, targets, args)}
    if not args.no_torch:
        steppers["PyTorch"] = pytorch(cfg, params, inputs, targets, args)
    first = {name: step() for name, (step, _, _) in steppers.items()}
    for name, (step, synchronize, _) in steppers.items():
        for _ in range(args.warmup - 1):
            step()
        synchronize()
    spread = max(first.values()) - min(first.values())
    if spread > 1e-2 * abs(first["fast.gpu"]):
        raise SystemExit(f"first-step losses differ: {first}: the models are not the same")
    times = time_rounds(steppers, args)
    tokens = args.batch * args.seq
    flops = tr.flops_per_token(cfg, args.seq)["training"] * tokens
    rows = {}
    for name, values in times.items():
        best = min(values)
        rows[name] = {"tokens_per_s": tokens / best, "step_ms": best * 1e3, "median_ms": float(np.median(values)) * 1e3,
                      "tflops": flops / best / 1e12, "mfu": flops / best / peak, "first_loss": first[name],
                      "version": steppers[name][2]}
    print(f"\nmodel {size}: {tr.count_params(cfg)['matrices']:,} matrix params, vocab {args.vocab}, batch "
          f"{args.batch} x {args.seq}, {args.optimizer}, matmuls {args.precision}; first-step losses "
          + ", ".join(f"{n} {v:.5f}" for n, v in first.items()))
    for name, row in rows.items():
        print(f"  {name:9s} {row['tokens_per_s']:11,.0f} tokens/s  best {row['step_ms']:8.2f} ms/step  median "
              f"{row['median_ms']:8.2f}  {row['tflops']:7.1f} TFLOP/s  MFU {100 * row['mfu']:5.1f}%  ({row['version']})")
    return {"size": size, "flops_per_step": flops, "tokens_per_step": tokens, "rows": rows}


def main():
    args = parse_args()
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    peak = args.peak or PEAKS[args.precision]
    print(f"{gpu}; python {platform.python_version()}, numpy {np.__version__}, cupy {cupy.__version__}; MFU against "
          f"{peak / 1e12:.0f} TFLOP/s ({'given' if args.peak else 'H100 SXM dense ' + args.precision}); "
          f"{args.warmup} warm-up steps, best of {args.rounds} rounds of {args.steps} steps, implementations taking "
          f"turns")
    results = [run_size(size, args, peak) for size in args.sizes]
    print("\n| model | batch | precision | implementation | tokens/s | ms/step | MFU |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        for name, row in result["rows"].items():
            print(f"| {result['size']} | {args.batch} x {args.seq} | {args.precision} | {name} | "
                  f"{row['tokens_per_s']:,.0f} | {row['step_ms']:.1f} | {100 * row['mfu']:.1f}% |")
        if "PyTorch" in result["rows"]:
            ratio = result["rows"]["fast.gpu"]["tokens_per_s"] / result["rows"]["PyTorch"]["tokens_per_s"]
            print(f"| {result['size']} | | | fast.gpu / PyTorch | {ratio:.2f}x | | |")
    if args.out:
        with open(args.out, "w") as stream:
            json.dump({"gpu": gpu, "args": vars(args), "peak_flops": peak, "results": results,
                       "optimizer_config": (ro.Adafactor() if args.optimizer == "adafactor" else ro.AdamW()).config()},
                      stream, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
