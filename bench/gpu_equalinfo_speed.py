"""Equal-Info compression with M1's exact rows on the GPU and the coder on the CPU: MB/s of text, and where time goes.

Usage (from the repository root, on a machine where CuPy sees a GPU):
    python bench/gpu_equalinfo_speed.py [--rule 1|2|3|4] [--checkpoint M1.npz] [--size 3m] [--streams 2048]
                                        [--stream-bytes 10240] [--lookahead 8] [--window-bits 16] [--cpu-streams 8]
                                        [--cpu-bytes 1024] [--text tinyshakespeare.txt] [--peak-tflops 67]
                                        [--peak-fp64-tflops 67] [--peak-int8-tops 1979] [--out results.json]
Without a GPU it prints every rule's ceiling (below) and stops. Under numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) the whole measured path runs on tiny sizes as a smoke test, e.g. `--size micro --streams 4
--stream-bytes 64 --cpu-streams 2 --cpu-bytes 32 --probe 2` (30-90 s per rule here); its timings mean nothing.

--rule picks M1's exact rule (ref/exact_rules.py; default 2) and so the twins that compute its rows: the GPU twin
fast.gpu.<module> and the CPU twin fast.cpu.<module>, <module> being RULE_MODULES[rule] (train.backends.exact_rule).
Rules 2-4 read integer weights, made from the float M1 once: rule 2 by ref.integer_m1.quantize_params (int16),
rules 3 and 4 by ref.int8_m1.quantize_params (int8; rule 4 reads rule 3's arrays).
- 1 (ref/exact_m1.py): fast.gpu.exact_m1, fixed-order float sums in numba.cuda kernels: no FMA (one rounding per
  multiply and per add: two instructions per multiply-add) and no tensor cores, so at most half the FP32 non-tensor
  peak (--peak-tflops, counted with FMA).
- 2 (ref/integer_m1.py): fast.gpu.integer_m1, cuBLAS DGEMM on int16-valued operands (rule 1's kernels for the rest);
  integer sums are exact in any order, so FMA and FP64 tensor cores are allowed: the FP64 DGEMM peak
  (--peak-fp64-tflops).
- 3 (ref/int8_m1.py): fast.gpu.int8_m1, TWO float32 SGEMMs per product (the 14-bit rows' high and low int8 halves
  against the int8 weights), exact in any order (every partial sum an integer <= 2^24), on CUDA cores (TF32 off): the
  FP32 peak with FMA (--peak-tflops). Its speed target, int8 tensor cores with int32 accumulation (cuBLASLt IMMA),
  gives the same integers but no twin runs it yet (CuPy has no int8 GEMM): --peak-int8-tops, reported as a second
  ceiling only.
- 4 (ref/int8_rows_m1.py): fast.gpu.int8_rows_m1, ONE float32 SGEMM per product (7-bit int8 rows; keys and values
  rounded to bfloat16): the same two peaks as rule 3 with half its GEMM work.

What it measures, in one run (with a GPU, or the simulator):
- GPU rows + CPU coder: fast.cpu.equalinfo.compress_batch / decompress_batch (lockstep: one model call per step for
  every active window) with the GPU twin's rows, on --streams examples of --stream-bytes bytes (10,240: the paper's
  example length) coded at once. Time is split into M1 rows (the forward pass on the GPU, synchronised), host
  transfer (the float64 rows copied to the host) and the coder (everything else: quantizing the rows and advancing
  every stream's integer coder on the CPU, plus the Python of the lockstep loop). The decoded text is checked
  against the input.
- CPU rows side by side: the same coder with the CPU twin's rows on a small slice (--cpu-streams x --cpu-bytes; the
  CPU is slow), and the GPU path on the same slice: their bits must be identical. GPU and CPU rows are also compared
  bit for bit on one batch of real prefixes. Any difference stops the script with an error.
- The FLOP ceiling: positions evaluated per byte (counted) x operations per position (2 per multiply-add: the
  matrix products x GEMMs per product, plus attention's over the mean window prefix; 6.4 M for "3m" under rules 1, 2
  and 4, 12.8 M under rule 3) against the peak of the path the twin runs (above); for rules 3 and 4 also against the
  int8 tensor-core peak, a path not run. Each byte needs at least one position, so this bounds MB/s honestly.

The estimate without a GPU: for every rule and each peak above, MB/s = peak / (operations per position of the
matrix products x GEMMs per product x --positions-per-byte (1.3, what the CPU bench measures at b=16)), for M1
--size. It counts the products only (attention over ~4 keys adds 0.2% of 3m's multiply-adds; elementwise work,
transfers and the coder are ignored) and takes the peaks from the flags, whose defaults are NVIDIA's H100 SXM
datasheet numbers (H200 SXM: the same): ceilings, not measurements. Rule 1's line is half the FP32 peak; rule 3's
SGEMM line equals it (twice the work at the full FP32 rate); rule 4's lines are exactly twice rule 3's.

Text: the held-out last 10% of tinyshakespeare (--text; the file lives outside the repository, in shared/data),
else the repository's embedded default corpus (data/default_corpus.py: text that ships with Python). The held-out
part is far shorter than thousands of 10 KB examples, so example k starts at k x STRIDE bytes into it, read
cyclically: every stream is real text with its own window boundaries (M1 restarts at every window, so repeats cannot
help it). M1: --checkpoint, or a random "3m" (seed 0): an untrained M1 puts ~8 bits on a byte (2 symbols per
16-bit window), a trained one ~2-3, which changes windows per byte and so positions per byte; say which one ran.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.data.atomic import write_atomically  # noqa: E402
from equalinfo.fast.cpu import equalinfo as cpu_ei  # noqa: E402
from equalinfo.fast.gpu import device  # noqa: E402
from equalinfo.ref import int8_m1, integer_m1  # noqa: E402
from equalinfo.ref.exact_rules import RULE_MODULES  # noqa: E402
from equalinfo.ref import transformer as tr  # noqa: E402
from equalinfo.ref.m1 import TransformerModel  # noqa: E402
from equalinfo.ref.symbols import BOS, bytes_to_symbols  # noqa: E402
from equalinfo.train import backends, checkpoint, m1  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
EXAMPLE_BYTES = 10_240
STRIDE = 997  # bytes between the starts of consecutive examples in the (cyclic) held-out text
RULES = {v: (backends.exact_rule(v, "gpu"), backends.exact_rule(v, "cpu")) for v in RULE_MODULES}  # (GPU, CPU twin)
TWINS = list(RULES[1])  # the twins in use (main() sets them from --rule)
QUANTIZE = {1: None, 2: integer_m1.quantize_params,  # rule -> what makes its arrays from float M1 parameters
            3: int8_m1.quantize_params, 4: int8_m1.quantize_params}  # rule 4 reads rule 3's arrays
GEMMS_PER_PRODUCT = {1: 1, 2: 1, 3: 2, 4: 1}  # rule 3: the row's high and low int8 halves, one GEMM each


def held_out_text(path):
    """(bytes, description): the last 10% of the text file, else of the embedded default corpus."""
    if path and Path(path).exists():
        data = Path(path).read_bytes()
        return data[len(data) * 9 // 10:], f"{Path(path).name}, last 10%"
    from equalinfo.data import default_corpus

    data = b"\n".join(default_corpus.documents())
    return data[len(data) * 9 // 10:], "embedded default corpus (Python's own text), last 10%"


def examples_from(text, n, length):
    """n examples of `length` bytes, example k starting k * STRIDE bytes into the text, read cyclically."""
    reps = -(-(n * STRIDE + length) // len(text)) + 1
    cyclic = np.frombuffer(text * reps, dtype=np.uint8)
    return [bytes_to_symbols(cyclic[k * STRIDE:k * STRIDE + length].tobytes()) for k in range(n)]


def synchronize():
    if not device.SIMULATED:
        device.xp().cuda.Device().synchronize()


class TimedRows:
    """next_probs by fast.gpu.exact_m1, timing the forward pass and the copy to the host, counting positions."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.rows_s = self.transfer_s = 0.0
        self.positions = self.calls = 0

    def __call__(self, params, cfg, inputs):
        inputs = np.asarray(inputs, dtype=np.int64)
        started = time.perf_counter()
        probs = TWINS[0].next_probs_on_device(params, cfg, inputs)  # [B*T, V] on the device
        synchronize()
        computed = time.perf_counter()
        host = np.asarray(device.host(probs))
        self.rows_s += computed - started
        self.transfer_s += time.perf_counter() - computed
        self.positions += inputs.size
        self.calls += 1
        return host.reshape(inputs.shape + (cfg.vocab_out,))


class CountedRows:
    """fast.cpu.exact_m1's next_probs with the same accounting (no transfer)."""

    def __init__(self):
        self.rows_s, self.positions = 0.0, 0

    def __call__(self, params, cfg, inputs):
        started = time.perf_counter()
        out = TWINS[1].next_probs(params, cfg, inputs)
        self.rows_s += time.perf_counter() - started
        self.positions += np.asarray(inputs).size
        return out


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def product_macs(cfg):
    """Multiply-adds of one position's matrix products (q, k, v, o, gate, up, down; the unembedding), once each."""
    d, ff, width = cfg.d_model, cfg.d_ff, cfg.n_heads * cfg.head_dim
    return cfg.n_layers * (4 * d * width + 3 * d * ff) + d * cfg.vocab_out


def attention_macs(cfg, mean_length):
    """Multiply-adds of one position's attention: q.k and weights.v over ~mean_length keys, every layer."""
    return cfg.n_layers * 2 * cfg.n_heads * cfg.head_dim * mean_length


def macs_per_position(cfg, mean_length):
    """Multiply-adds of one position: the products, plus attention's q.k and weights.v over ~mean_length keys."""
    return product_macs(cfg) + attention_macs(cfg, mean_length)


def rule_peaks(args, rule):
    """[(name, operations per second)]: the datasheet peaks (flags) that bound `rule`'s matrix products on the GPU
    the flags describe; the first is the path its GPU twin runs today."""
    fp32 = args.peak_tflops * 1e12
    if rule == 1:  # fixed-order float sums: no FMA (two instructions per multiply-add), no tensor cores
        return [(f"FP32 non-tensor {args.peak_tflops:g} TFLOP/s / 2, no FMA", fp32 / 2)]
    if rule == 2:  # integer sums in float64: cuBLAS DGEMM, FMA and FP64 tensor cores allowed
        return [(f"FP64 DGEMM {args.peak_fp64_tflops:g} TFLOP/s", args.peak_fp64_tflops * 1e12)]
    return [(f"FP32 SGEMM {args.peak_tflops:g} TFLOP/s, CUDA cores (the twin today)", fp32),  # exact integer sums
            (f"INT8 tensor {args.peak_int8_tops:g} TOPS, int32 accumulation (target)", args.peak_int8_tops * 1e12)]


def product_ops_per_position(cfg, rule):
    """Operations (2 per multiply-add) of one position's matrix products under `rule`: each product is
    GEMMS_PER_PRODUCT[rule] GEMMs (rule 3 two, one per int8 half of the 14-bit rows)."""
    return 2 * GEMMS_PER_PRODUCT[rule] * product_macs(cfg)


def estimate(args, cfg):
    """{rule: [(peak name, MB/s)]}: every rule's ceiling from its products' operations alone = peak / (operations
    per position x positions per byte). Ceilings, not measurements: attention and elementwise work are ignored."""
    return {rule: [(name, peak / (product_ops_per_position(cfg, rule) * args.positions_per_byte) / 1e6)
                   for name, peak in rule_peaks(args, rule)] for rule in sorted(RULE_MODULES)}


def print_estimate(args, reason):
    """Every rule's FLOP ceilings on the GPU the flags describe, for when no GPU is here to measure."""
    cfg = m1.make_config(args.size)
    macs = product_macs(cfg)
    print(f"no GPU here ({reason}): nothing measured.")
    print(f"Ceilings only, for M1 {args.size} on the GPU the --peak-* flags describe (datasheet peaks, not "
          f"measurements): MB/s = peak / (operations per GEMM pass x GEMMs per product x positions per byte), with "
          f"{2 * macs / 1e6:.2f} M operations (2 per multiply-add) per position in one pass of its matrix products "
          f"and {args.positions_per_byte:g} positions per byte assumed. Attention "
          f"(+{attention_macs(cfg, 4) / macs:.1%} multiply-adds at 4 keys) and elementwise work are ignored: each line "
          f"is an upper bound.")
    print(f"  {'rule':>4} {'GEMMs/product':>13}  {'products on (peak)':<62} {'MB/s':>7}")
    for rule, lines in estimate(args, cfg).items():
        for name, mb_per_s in lines:
            mark = "  <- --rule" if rule == args.rule else ""
            print(f"  {rule:>4} {GEMMS_PER_PRODUCT[rule]:>13}  {name:<62} {mb_per_s:7.1f}{mark}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="M1 checkpoint (.npz); default: random init, seed 0")
    parser.add_argument("--size", default="3m", help="M1 size when no checkpoint is given")
    parser.add_argument("--text", default=str(DEFAULT_TEXT))
    parser.add_argument("--streams", type=int, default=2048, help="examples coded at once on the GPU path")
    parser.add_argument("--stream-bytes", type=int, default=EXAMPLE_BYTES)
    parser.add_argument("--lookahead", type=int, default=8, help="encoder rows per window and model call")
    parser.add_argument("--window-bits", type=int, default=16)
    parser.add_argument("--cpu-streams", type=int, default=8)
    parser.add_argument("--cpu-bytes", type=int, default=1024)
    parser.add_argument("--rule", type=int, choices=sorted(RULE_MODULES), default=2,
                        help="M1's exact rule (ref/exact_rules.py) whose GPU and CPU twins run")
    parser.add_argument("--peak-tflops", type=float, default=67.0,
                        help="FP32 non-tensor (CUDA-core) peak counted with FMA, TFLOP/s: NVIDIA's H100 datasheet "
                             "gives 67 for SXM (H200 SXM: the same), 51 for PCIe. Rule 1's ceiling is half of it "
                             "(no FMA); rules 3 and 4's GPU twins run their GEMMs as float32 SGEMMs at up to all of "
                             "it. A datasheet peak, not a measurement")
    parser.add_argument("--peak-fp64-tflops", type=float, default=67.0,
                        help="FP64 tensor-core (DGEMM) peak, TFLOP/s: H100/H200 SXM datasheet 67, PCIe 51; rule 2's "
                             "ceiling. A datasheet peak, not a measurement")
    parser.add_argument("--peak-int8-tops", type=float, default=1979.0,
                        help="INT8 tensor-core peak, dense (without sparsity), TOPS: H100/H200 SXM datasheet 1,979 "
                             "(it prints 3,958 with sparsity), PCIe 1,513; the speed target of rules 3 and 4 (int32 "
                             "accumulation, ref/int8_m1.py), which no twin runs yet. A datasheet peak, not a "
                             "measurement")
    parser.add_argument("--positions-per-byte", type=float, default=1.3,
                        help="for the estimate without a GPU (the CPU bench measures about 1.3 at b=16)")
    parser.add_argument("--probe", type=int, default=64, help="sequences (of 64 inputs) in the rows comparison")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def main():
    args = parse_args()
    if device.SIMULATED:  # a smoke test of the script (NUMBA_ENABLE_CUDASIM=1, tiny sizes): see tests/gpu_support.py
        sys.setswitchinterval(1e-4)

    try:
        device.xp()
    except device.GPUUnavailable as error:
        print_estimate(args, error)
        return
    TWINS[:] = RULES[args.rule]
    if args.checkpoint:
        params, cfg, _, _ = checkpoint.load(args.checkpoint)
        model_name = f"{args.checkpoint} ({cfg.d_model}d x {cfg.n_layers})"
    else:
        cfg = m1.make_config(args.size)
        params = tr.init_params(cfg, 0)
        model_name = f"random {args.size} (seed 0)"
    if QUANTIZE[args.rule] is not None:  # rules 2-4 read integer weights made from the float ones
        params = QUANTIZE[args.rule](params, cfg)
    b = args.window_bits
    text, text_name = held_out_text(args.text)
    gpu_rows, cpu_rows = TimedRows(), CountedRows()
    gpu_model = TransformerModel(params, cfg, rows=gpu_rows, rule=args.rule)
    cpu_model = TransformerModel(params, cfg, rows=cpu_rows, rule=args.rule)
    gpu_device = "CUDA simulator" if device.SIMULATED else device.xp().cuda.runtime.getDeviceProperties(0)[
        "name"].decode()

    # 1. GPU and CPU rows bit for bit on a batch of real prefixes
    probe = np.stack(examples_from(text, args.probe, 63))  # [P, 63]
    probe = np.concatenate([np.full((args.probe, 1), BOS), probe], axis=1)  # [P, 64]
    rows_equal = bool(np.array_equal(TWINS[0].next_probs(params, cfg, probe), TWINS[1].next_probs(params, cfg, probe)))

    # 2. the small slice: CPU rows vs GPU rows, same coder; bits must be identical
    small = examples_from(text, args.cpu_streams, args.cpu_bytes)
    small_bytes = sum(len(s) for s in small)
    cpu_ei.compress_batch([small[0][:32]], cpu_model, b, lookahead=args.lookahead)  # compile the coder
    cpu_rows.__init__()
    cpu_bits, cpu_enc = timed(cpu_ei.compress_batch, small, cpu_model, b, lookahead=args.lookahead)
    cpu_enc_rows, cpu_enc_positions = cpu_rows.rows_s, cpu_rows.positions
    cpu_rows.__init__()
    cpu_back, cpu_dec = timed(cpu_ei.decompress_batch, cpu_bits, cpu_model, b, n_symbols=[len(s) for s in small])
    cpu_dec_rows = cpu_rows.rows_s
    gpu_rows.reset()
    gpu_small_bits, gpu_small_enc = timed(cpu_ei.compress_batch, small, gpu_model, b, lookahead=args.lookahead)
    bits_equal = all(np.array_equal(g, c) for g, c in zip(gpu_small_bits, cpu_bits))
    small_ok = all(np.array_equal(d, s) for d, s in zip(cpu_back, small))

    # 3. the GPU path on thousands of streams
    streams = examples_from(text, args.streams, args.stream_bytes)
    n_bytes = sum(len(s) for s in streams)
    results = {}
    gpu_rows.reset()
    bits, total = timed(cpu_ei.compress_batch, streams, gpu_model, b, lookahead=args.lookahead)
    results["compress"] = dict(seconds=total, rows_s=gpu_rows.rows_s, transfer_s=gpu_rows.transfer_s,
                               positions=gpu_rows.positions, calls=gpu_rows.calls)
    gpu_rows.reset()
    back, total = timed(cpu_ei.decompress_batch, bits, gpu_model, b, n_symbols=[len(s) for s in streams])
    results["decompress"] = dict(seconds=total, rows_s=gpu_rows.rows_s, transfer_s=gpu_rows.transfer_s,
                                 positions=gpu_rows.positions, calls=gpu_rows.calls)
    round_trip = all(np.array_equal(d, s) for d, s in zip(back, streams))
    n_windows = sum(len(x) // b for x in bits)

    mean_window = n_bytes / max(n_windows, 1)
    # operations per position: the products' GEMMs (two per product under rule 3) plus attention, once
    flops = product_ops_per_position(cfg, args.rule) + 2 * attention_macs(cfg, mean_window / 2 + 1)
    peak_name, peak_exact = rule_peaks(args, args.rule)[0]  # the path the twin runs
    for name, r in results.items():
        r["mb_per_s"] = n_bytes / r["seconds"] / 1e6
        r["coder_s"] = r["seconds"] - r["rows_s"] - r["transfer_s"]
        r["positions_per_byte"] = r["positions"] / n_bytes
        r["ceiling_mb_per_s"] = peak_exact / (flops * r["positions_per_byte"]) / 1e6
        r["target_ceilings_mb_per_s"] = {other: peak / (flops * r["positions_per_byte"]) / 1e6  # rules 3, 4: the
                                         for other, peak in rule_peaks(args, args.rule)[1:]}  # int8 target, not run
        r["achieved_tflops"] = flops * r["positions"] / max(r["rows_s"], 1e-12) / 1e12

    print(f"\nEqual-Info b={b}, M1 {model_name}, {cfg.dtype}, exact rule {args.rule}; GPU: {gpu_device}; CPU: "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"text: {text_name}; {args.streams:,} streams x {args.stream_bytes:,} bytes = {n_bytes / 1e6:.2f} MB, "
          f"{n_windows:,} windows ({mean_window:.2f} bytes/window), lookahead {args.lookahead}")
    print(f"rows GPU == CPU on a [{args.probe}, 64] batch of prefixes: {rows_equal}; slice bits GPU rows == CPU rows: "
          f"{bits_equal}; round trips: slice {small_ok}, GPU path {round_trip}")
    print(f"operations per position {flops / 1e6:.2f} M (2 per multiply-add; {GEMMS_PER_PRODUCT[args.rule]} GEMM(s) "
          f"per product, plus attention); exact-rule ceiling = {peak_name} / (operations per position x positions "
          f"per byte), a datasheet peak: an upper bound, not a measurement")
    print(f"\n{'':>11} {'MB/s':>8} {'rows s':>8} {'xfer s':>8} {'coder s':>8} {'pos/byte':>9} {'TFLOP/s':>8} "
          f"{'ceiling MB/s':>13}")
    for name, r in results.items():
        print(f"{name:>11} {r['mb_per_s']:8.4f} {r['rows_s']:8.2f} {r['transfer_s']:8.2f} {r['coder_s']:8.2f} "
              f"{r['positions_per_byte']:9.2f} {r['achieved_tflops']:8.2f} {r['ceiling_mb_per_s']:13.2f}")
    for other_name, _ in rule_peaks(args, args.rule)[1:]:
        print(f"{'':>11} ceiling on {other_name}, a path not run here: " + ", ".join(
            f"{name} {r['target_ceilings_mb_per_s'][other_name]:.2f}" for name, r in results.items()) + " MB/s")
    side = dict(cpu_compress_mb_per_s=small_bytes / cpu_enc / 1e6, cpu_decompress_mb_per_s=small_bytes / cpu_dec / 1e6,
                gpu_compress_small_mb_per_s=small_bytes / gpu_small_enc / 1e6,
                cpu_compress_rows_share=cpu_enc_rows / cpu_enc, cpu_decompress_rows_share=cpu_dec_rows / cpu_dec,
                cpu_positions_per_byte=cpu_enc_positions / small_bytes)
    print(f"{'CPU rows':>11} compress {side['cpu_compress_mb_per_s']:.4f} MB/s ({side['cpu_compress_rows_share']:.0%} "
          f"in rows), decompress {side['cpu_decompress_mb_per_s']:.4f} MB/s, on {small_bytes:,} bytes; GPU rows on "
          f"that slice: compress {side['gpu_compress_small_mb_per_s']:.4f} MB/s")
    print(f"GPU vs CPU rows, compress: {results['compress']['mb_per_s'] / side['cpu_compress_mb_per_s']:.1f}x "
          f"(GPU on {args.streams:,} streams, CPU on {args.cpu_streams}); goal >= 20 MB/s")
    if args.out:
        record = dict(args=vars(args), model=model_name, dtype=cfg.dtype, gpu=gpu_device, text=text_name,
                      n_bytes=n_bytes, n_windows=n_windows, flops_per_position=flops, rows_equal=rows_equal,
                      bits_equal=bits_equal, round_trip=round_trip and small_ok, results=results, cpu_side=side,
                      python=platform.python_version(), numpy=np.__version__)
        write_atomically(args.out, lambda stream: stream.write(json.dumps(record, indent=1).encode()))
    if not (rows_equal and bits_equal and round_trip and small_ok):
        raise SystemExit("GPU rows differ from CPU rows or a round trip failed: the timings above are not valid")


if __name__ == "__main__":
    main()
