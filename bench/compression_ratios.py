"""Token compression ratios of every method on real text, and what the decoding guarantee costs.

Usage (from the repository root):
    python bench/compression_ratios.py [--text ../shared/data/tinyshakespeare.txt] [--order 2] [--limit-bytes N]

The paper's setup, scaled down: the model (an order-k Markov count model standing in for M1, and a unigram model
for StaticAC) is fitted on the first 90% of the text; the last 10% is cut into 10,240-byte examples, each
compressed on its own by every method, and each compressed example is cut into tokens (the last token of an
example zero-padded). CR = text bytes / tokens, summed over examples. The M2 side (trimming to 512 tokens) is not
involved here.

The second table compares our Equal-Info rule (greedy, then a delimiting cell or one symbol fewer) with the paper's
plain rule (greedy, shortest cell padded with zeros) on the same text: the CR of each, how many of our windows
ended early, and two counts for the paper's windows: "ambiguous" = the window's text plus one more symbol encodes
to the same bits under the paper's rule, so the paper's look-ahead decoder reads a wrong extra symbol (the paper
reports 0.6% of its sequences undecodable for this reason); "cell not delimiting" = the zero-padded cell lies
inside one child, so a decoder that looks only at the bits (like ours) would read on.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from equalinfo.ref import ac, baselines, equalinfo  # noqa: E402
from equalinfo.ref.arithmetic import Encoder  # noqa: E402
from equalinfo.ref.cursor import CdfCursor  # noqa: E402
from equalinfo.ref.models import MarkovModel, UnigramModel  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.ref.tokens import bits_to_tokens  # noqa: E402

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
WINDOW_SIZES = (16, 32, 64, 128)


def n_tokens(bits, bits_per_token):
    return len(bits_to_tokens(bits, bits_per_token))


def paper_window_is_ambiguous(symbols, window, cursor, window_bits, precision=14):
    """True if the window's text plus one more symbol encodes, under the paper's rule, to the same bits.

    The paper's decoder then cannot know whether that symbol belongs to the window (its look-ahead takes it).
    Only the child of the window's interval that holds the zero-padded point can give the same bits.
    """
    cursor.reset()
    encoder = Encoder(precision)
    for symbol in symbols[window.start:window.start + window.length]:
        encoder.encode(cursor.cdf(), symbol)
        cursor.push(symbol)
    point = equalinfo.shortest_cell(encoder, window_bits)
    next_cdf = cursor.cdf()
    bounds = (np.int64(encoder.range) * next_cdf) >> precision  # child offsets inside the interval
    child = int(np.searchsorted(bounds, point - encoder.low, side="right")) - 1
    longer = encoder.copy()
    longer.encode(next_cdf, child)
    if not equalinfo.fits(longer, window_bits):
        return False
    return np.array_equal(longer.point_bits(equalinfo.shortest_cell(longer, window_bits), window_bits), window.bits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--order", type=int, default=2, help="order of the Markov model standing in for M1")
    parser.add_argument("--example-bytes", type=int, default=10_240)
    parser.add_argument("--limit-bytes", type=int, default=None, help="use only this many held-out bytes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(f"text file not found: {args.text}")

    data = args.text.read_bytes()
    split = int(len(data) * 0.9)
    train, held_out = data[:split], data[split:][:args.limit_bytes]
    train_symbols = bytes_to_symbols(train)
    markov = MarkovModel.fit(train_symbols, args.order)
    unigram = UnigramModel.fit(train_symbols)
    examples = [held_out[i:i + args.example_bytes] for i in range(0, len(held_out), args.example_bytes)]
    print(f"text: {args.text.name}, fitted on {len(train):,} bytes, measured on {len(held_out):,} held-out bytes "
          f"in {len(examples)} examples of <= {args.example_bytes:,} bytes; M1 stand-in: order-{args.order} Markov")

    tokens = {}  # method -> total tokens over the examples
    cost = {b: {"ours_bits": 0, "paper_bits": 0, "early": 0, "windows": 0, "paper_windows": 0, "misread": 0,
                "ambiguous": 0}
            for b in WINDOW_SIZES}
    started = time.time()
    for example in tqdm(examples, desc="examples", unit="ex"):
        symbols = bytes_to_symbols(example)
        streams = {
            "Bytes": baselines.bytes_to_bits(example),
            "GZip": baselines.gzip_compress(example),
            "StaticAC": ac.compress(symbols, unigram),
            "AC": ac.compress(symbols, markov),
        }
        for b in WINDOW_SIZES:
            ours = equalinfo.encode_windows(symbols, markov, b)
            streams[f"EqualInfoAC[b={b}]"] = np.concatenate([w.bits for w in ours])
            paper = equalinfo.encode_windows(symbols, markov, b, delimit=False)
            cursor = CdfCursor(markov)
            stats = cost[b]
            stats["ours_bits"] += b * len(ours)
            stats["paper_bits"] += b * len(paper)
            stats["windows"] += len(ours)
            stats["early"] += sum(w.length < w.greedy_length for w in ours)
            stats["paper_windows"] += len(paper) - 1
            stats["misread"] += sum(
                equalinfo.decode_window(w.bits, cursor) != list(symbols[w.start:w.start + w.length])
                for w in paper[:-1])
            stats["ambiguous"] += sum(paper_window_is_ambiguous(symbols, w, cursor, b) for w in paper[:-1])
        for method, bits in streams.items():
            for v_bits in (8, 16):
                key = (method, v_bits)
                tokens[key] = tokens.get(key, 0) + n_tokens(bits, v_bits)
    elapsed = time.time() - started

    n_bytes = len(held_out)
    print(f"\nToken compression ratio (bytes/token), {n_bytes:,} held-out bytes "
          f"({platform.processor() or platform.machine()}, {elapsed:.0f} s):\n")
    print("| Method | v=256 | v=65k |")
    print("|---|---|---|")
    results = {"text": str(args.text.name), "held_out_bytes": n_bytes, "order": args.order, "cr": {}, "cost": {}}
    for method in dict.fromkeys(m for m, _ in tokens):
        crs = [n_bytes / tokens[method, v] for v in (8, 16)]
        results["cr"][method] = crs
        print(f"| {method} | {crs[0]:.3f} | {crs[1]:.3f} |")

    print("\nCost of the 100%-decodability rule (bit compression ratio = 8 * bytes / bits):\n")
    print("| b | ours | paper's rule | CR cost | our windows ended early | paper's windows: ambiguous "
          "| paper's windows: cell not delimiting |")
    print("|---|---|---|---|---|---|---|")
    for b, s in cost.items():
        ours, paper = 8 * n_bytes / s["ours_bits"], 8 * n_bytes / s["paper_bits"]
        results["cost"][b] = dict(s, ours_cr=ours, paper_cr=paper)
        print(f"| {b} | {ours:.4f} | {paper:.4f} | {100 * (paper - ours) / paper:.3f}% | "
              f"{s['early']}/{s['windows']} ({100 * s['early'] / s['windows']:.2f}%) | "
              f"{s['ambiguous']}/{s['paper_windows']} ({100 * s['ambiguous'] / max(s['paper_windows'], 1):.2f}%) | "
              f"{s['misread']}/{s['paper_windows']} ({100 * s['misread'] / max(s['paper_windows'], 1):.2f}%) |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
