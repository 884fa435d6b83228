"""Coder speed, measured side by side in one run: ref vs fast.cpu vs the `constriction` range coder.

    python bench/coder_speed.py [--symbols 50000] [--ref-symbols 4000] [--repeats 3]

1. A stream of 257-symbol distributions: the order-2 Markov rows (ref.models.MarkovModel.fit on tinyshakespeare) of
   the first --symbols bytes of tinyshakespeare, one float64 row per symbol. Coded by
   - ref: ref.arithmetic Encoder/Decoder, one Python call per symbol, on the first --ref-symbols symbols;
   - fast.cpu: quantize once, then encode_cdfs / decode_cdfs (CDFs validated) and the bare kernels;
     also "quantize + encode" from the floats, which is what constriction does, and the fused encode_probs /
     decode_probs, which evaluate the quantize rule only at the CDF entries the coder reads (same bits);
   - constriction: queue.RangeEncoder/RangeDecoder with model.Categorical(perfect=False) on the float rows
     (it quantizes each row internally, to its own fixed point: its bits differ from ours by design).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fast.cpu import arithmetic as fast_arith  # noqa: E402
from fast.cpu import equalinfo as fast_ei  # noqa: E402
from ref import arithmetic as ref_arith  # noqa: E402
from ref import equalinfo as ref_ei  # noqa: E402
from ref.models import MarkovModel  # noqa: E402
from ref.symbols import BOS, bytes_to_symbols  # noqa: E402

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
    parser.add_argument("--repeats", type=int, default=3)
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
    assert np.array_equal(bits, ref_encode(cdfs[:n], symbols)) if n <= 20_000 else True
    timings = {}
    timings["ref encode"] = best_time(lambda: ref_encode(cdfs[:n_ref], symbols[:n_ref]), 1)[0] / n_ref
    ref_bits = ref_encode(cdfs[:n_ref], symbols[:n_ref])
    timings["ref decode"] = best_time(lambda: ref_decode(ref_bits, cdfs[:n_ref]), 1)[0] / n_ref
    timings["fast encode (CDFs, validated)"] = best_time(lambda: fast_arith.encode_cdfs(cdfs, symbols),
                                                        args.repeats)[0] / n
    timings["fast encode (kernel only)"] = best_time(lambda: fast_arith._encode_rows(cdfs, rows, symbols, 14),
                                                     args.repeats)[0] / n
    timings["fast quantize + encode"] = best_time(
        lambda: fast_arith.encode_cdfs(fast_arith.quantize(probs, 14), symbols), args.repeats)[0] / n
    timings["fast.cpu fused quantize+code from floats encode"] = best_time(
        lambda: fast_arith.encode_probs(probs, symbols, 14), args.repeats)[0] / n
    assert np.array_equal(fast_arith.encode_probs(probs, symbols, 14), bits)
    timings["fast decode (CDFs, validated)"] = best_time(lambda: fast_arith.decode_cdfs(bits, cdfs),
                                                        args.repeats)[0] / n
    timings["fast decode (kernel only)"] = best_time(lambda: fast_arith._decode_rows(bits, cdfs, rows, 14),
                                                     args.repeats)[0] / n
    timings["fast quantize + decode"] = best_time(
        lambda: fast_arith.decode_cdfs(bits, fast_arith.quantize(probs, 14)), args.repeats)[0] / n
    timings["fast.cpu fused quantize+code from floats decode"] = best_time(
        lambda: fast_arith.decode_probs(bits, probs, 14), args.repeats)[0] / n
    assert np.array_equal(fast_arith.decode_cdfs(bits, cdfs), symbols)
    assert np.array_equal(fast_arith.decode_probs(bits, probs, 14), symbols)

    family = constriction.stream.model.Categorical(perfect=False)
    symbols32 = symbols.astype(np.int32)

    def c_encode():
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(symbols32, family, probs)
        return encoder.get_compressed()

    def c_decode(compressed):
        return constriction.stream.queue.RangeDecoder(compressed).decode(family, probs)

    timings["constriction encode (floats)"], compressed = best_time(c_encode, args.repeats)
    timings["constriction encode (floats)"] /= n
    timings["constriction decode (floats)"] = best_time(lambda: c_decode(compressed), args.repeats)[0] / n
    assert np.array_equal(c_decode(compressed), symbols32)

    print(f"{'coder':48s} {'Msymbols/s':>11s} {'vs ref':>8s} {'vs constriction':>16s}")
    for kind in ("encode", "decode"):
        c = timings[f"constriction {kind} (floats)"]
        for name, seconds in timings.items():
            if kind in name:
                print(f"{name:48s} {1e-6 / seconds:11.2f} {timings['ref ' + kind] / seconds:7.0f}x "
                      f"{c / seconds:15.2f}x")
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
