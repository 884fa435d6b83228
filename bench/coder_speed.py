"""Coder speed, measured side by side in one run: ref vs fast.cpu vs the `constriction` range coder.

    python bench/coder_speed.py [--symbols 50000] [--ref-symbols 4000] [--rounds 9] [--repeats 3]

1. A stream of 257-symbol distributions: the order-2 Markov rows (ref.models.MarkovModel.fit on tinyshakespeare) of
   the first --symbols bytes of tinyshakespeare, one float64 row per symbol. Coded by
   - ref: ref.arithmetic Encoder/Decoder, one Python call per symbol, on the first --ref-symbols symbols;
   - fast.cpu: quantize once, then encode_cdfs / decode_cdfs (CDFs validated) and the bare kernels;
     also "quantize + encode" from the floats, which is what constriction does, and the fused encode_probs /
     decode_probs, which evaluate the quantize rule only at the CDF entries the coder reads (same bits);
   - constriction: queue.RangeEncoder/RangeDecoder with model.Categorical(perfect=False) on the float rows
     (it quantizes each row internally, to its own fixed point: its bits differ from ours by design).
   The same rows as float32 (what a float32 model hands over) go to the fused path and to constriction.
   Contenders of one group run in turn, round after round (interleaved_times), and each ratio is taken per round.
2. Equal-Info compression/decompression of tinyshakespeare (b = 16, precision 14, order-2 Markov model), bytes/s of
   fast.cpu vs ref (ref on the first --ref-bytes bytes).
constriction is a bench-only dependency (pip install constriction); the package never imports it.
Run with one BLAS thread for stable numbers: OPENBLAS_NUM_THREADS=1.
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.fast.cpu import arithmetic as fast_arith  # noqa: E402
from equalinfo.fast.cpu import fused as fast_fused  # noqa: E402
from equalinfo.fast.cpu import equalinfo as fast_ei  # noqa: E402
from equalinfo.ref import arithmetic as ref_arith  # noqa: E402
from equalinfo.ref import equalinfo as ref_ei  # noqa: E402
from equalinfo.ref.models import MarkovModel  # noqa: E402
from equalinfo.ref.symbols import BOS, bytes_to_symbols  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def best_time(function, repeats):
    """Smallest wall time of `repeats` calls (after one warm-up call), and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - begin)
    return min(times), result


def interleaved_times(functions, rounds):
    """{name: [seconds] * rounds}: every function called once per round, round after round (after a warm-up call).

    On a shared machine the load changes from second to second; calling the contenders in turn exposes them to the
    same load, so the per-round ratios are steadier than ratios of separately taken times.
    """
    for function in functions.values():
        function()
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            begin = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - begin)
    return times


def ref_encode(cdfs, symbols):
    encoder = ref_arith.Encoder(14)
    for cdf, symbol in zip(cdfs, symbols):
        encoder.encode(cdf, int(symbol))
    return encoder.finish()


def ref_decode(bits, cdfs):
    decoder = ref_arith.Decoder(bits, 14)
    return [decoder.decode(cdf) for cdf in cdfs]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=50_000)
    parser.add_argument("--ref-symbols", type=int, default=4_000)
    parser.add_argument("--ref-bytes", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="Equal-Info timings: best of this many")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of the coder comparison")
    args = parser.parse_args()
    import constriction

    text = bytes_to_symbols(DATA.read_bytes())
    model = MarkovModel.fit(text, 2)
    symbols = text[:args.symbols]
    probs = model.next_probs(np.concatenate([[BOS], symbols[:-1]])[None])[0]  # [n, 257] float64
    cdfs = fast_arith.quantize(probs, 14)
    n, n_ref = len(symbols), min(args.ref_symbols, len(symbols))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, constriction {constriction.__version__ if hasattr(constriction, '__version__') else '?'}")
    print(f"stream: {n} symbols of tinyshakespeare, order-2 Markov rows (257 symbols), precision 14\n")

    rows = np.arange(n, dtype=np.int64)
    bits = fast_arith.encode_cdfs(cdfs, symbols)
    ref_bits = ref_encode(cdfs[:n_ref], symbols[:n_ref])
    assert np.array_equal(bits[:len(ref_bits) - 2], ref_bits[:-2])  # the same stream (finish() may differ)
    probs32 = probs.astype(np.float32)  # the same distributions as float32 rows (what a float32 M1 hands over)
    bits32 = fast_fused.encode_probs(probs32, symbols, 14)
    assert np.array_equal(fast_fused.encode_probs(probs, symbols, 14), bits)
    assert np.array_equal(fast_fused.decode_probs(bits, probs, 14), symbols)
    assert np.array_equal(fast_fused.decode_probs(bits32, probs32, 14), symbols)
    assert np.array_equal(bits32, fast_arith.encode_cdfs(fast_arith.quantize(probs32, 14), symbols))
    family = constriction.stream.model.Categorical(perfect=False)
    symbols32 = symbols.astype(np.int32)

    def c_encode(rows_):
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(symbols32, family, rows_)
        return encoder.get_compressed()

    def c_decode(compressed, rows_):
        return constriction.stream.queue.RangeDecoder(compressed).decode(family, rows_)

    compressed, compressed32 = c_encode(probs), c_encode(probs32)
    assert np.array_equal(c_decode(compressed, probs), symbols32)
    assert np.array_equal(c_decode(compressed32, probs32), symbols32)

    per_symbol = {"ref": {}, "fast": {}}  # seconds per symbol
    per_symbol["ref"]["encode"] = best_time(lambda: ref_encode(cdfs[:n_ref], symbols[:n_ref]), 1)[0] / n_ref
    per_symbol["ref"]["decode"] = best_time(lambda: ref_decode(ref_bits, cdfs[:n_ref]), 1)[0] / n_ref
    contenders = {  # (kind, row dtype) -> {name: call}; one interleaved measurement per group
        ("encode", "float64"): {
            "fast.cpu, coding loop on given CDFs (kernel)": lambda: fast_arith.encode_rows_unchecked(cdfs, rows, symbols, 14),
            "fast.cpu, CDF array validated first": lambda: fast_arith.encode_cdfs(cdfs, symbols),
            "fast.cpu, quantize from floats + code": lambda: fast_arith.encode_cdfs(fast_arith.quantize(probs, 14),
                                                                                    symbols),
            "fast.cpu, fused from floats (encode_probs)": lambda: fast_fused.encode_probs(probs, symbols, 14),
            "constriction": lambda: c_encode(probs)},
        ("decode", "float64"): {
            "fast.cpu, coding loop on given CDFs (kernel)": lambda: fast_arith.decode_rows_unchecked(bits, cdfs, rows, 14),
            "fast.cpu, CDF array validated first": lambda: fast_arith.decode_cdfs(bits, cdfs),
            "fast.cpu, quantize from floats + code": lambda: fast_arith.decode_cdfs(bits,
                                                                                    fast_arith.quantize(probs, 14)),
            "fast.cpu, fused from floats (decode_probs)": lambda: fast_fused.decode_probs(bits, probs, 14),
            "constriction": lambda: c_decode(compressed, probs)},
        ("encode", "float32"): {
            "fast.cpu, fused from floats (encode_probs)": lambda: fast_fused.encode_probs(probs32, symbols, 14),
            "constriction": lambda: c_encode(probs32)},
        ("decode", "float32"): {
            "fast.cpu, fused from floats (decode_probs)": lambda: fast_fused.decode_probs(bits32, probs32, 14),
            "constriction": lambda: c_decode(compressed32, probs32)},
    }
    print(f"{args.rounds} interleaved rounds per group; median Msymbols/s, and the median and range over rounds of "
          f"the time ratio constriction / this (above 1: faster than constriction)")
    print(f"{'rows':8s} {'':7s} {'coder':46s} {'Msym/s':>7s} {'vs ref':>7s} {'vs constriction (range)':>26s}")
    for (kind, dtype), functions in contenders.items():
        times = interleaved_times(functions, args.rounds)
        theirs = np.array(times["constriction"])
        if dtype == "float64":
            print(f"{dtype:8s} {kind:7s} {'ref (one Python call per symbol, CDFs given)':46s} "
                  f"{1e-6 / per_symbol['ref'][kind]:7.2f} {1:6.0f}x")
        for name, seconds in times.items():
            seconds = np.array(seconds)
            ratios = theirs / seconds
            median = float(np.median(seconds)) / n
            print(f"{dtype:8s} {kind:7s} {name:46s} {1e-6 / median:7.2f} {per_symbol['ref'][kind] / median:6.0f}x "
                  f"{np.median(ratios):10.2f}x ({ratios.min():.2f}-{ratios.max():.2f})")
    print(f"bits/symbol: ours {len(bits) / n:.4f}, constriction {32 * len(compressed) / n:.4f}\n")

    # Equal-Info on tinyshakespeare
    data = text
    ref_part = data[:args.ref_bytes]
    begin = time.perf_counter()
    ref_bits = ref_ei.compress(ref_part, model, 16)
    ref_c = (time.perf_counter() - begin) / len(ref_part)
    begin = time.perf_counter()
    ref_ei.decompress(ref_bits, model, 16, n_symbols=len(ref_part))
    ref_d = (time.perf_counter() - begin) / len(ref_part)
    fast_c, fast_bits = best_time(lambda: fast_ei.compress(data, model, 16), 1)
    fast_d, back = best_time(lambda: fast_ei.decompress(fast_bits, model, 16, n_symbols=len(data)), 1)
    assert np.array_equal(back, data) and np.array_equal(fast_bits[:len(ref_bits) - 16], ref_bits[:-16])
    fast_c, fast_d = fast_c / len(data), fast_d / len(data)
    print(f"Equal-Info b=16, precision 14, order-2 Markov, tinyshakespeare ({len(data)} bytes; "
          f"ref on {len(ref_part)}): {len(fast_bits) / len(data):.3f} bits/byte")
    print(f"{'':12s} {'ref KB/s':>10s} {'fast KB/s':>10s} {'ratio':>8s}")
    print(f"{'compress':12s} {1e-3 / ref_c:10.1f} {1e-3 / fast_c:10.1f} {ref_c / fast_c:7.0f}x")
    print(f"{'decompress':12s} {1e-3 / ref_d:10.1f} {1e-3 / fast_d:10.1f} {ref_d / fast_d:7.0f}x")


if __name__ == "__main__":
    main()
