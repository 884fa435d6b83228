"""What M1's fixed-shape evaluation (ref.models.TransformerModel) costs, measured side by side in one run.

    python bench/bench_m1_model.py [--size 3m] [--cap 64] [--bytes 400]

1. Time of one next_probs row-set for prefix lengths T, evaluated at the fixed shape [1, cap + 1] (what the model
   does, bit-reproducible) and at the natural shape [1, T] (cheaper, not reproducible across shapes).
2. Whether the natural-shape rows actually differ bit for bit from the fixed-shape ones on this machine.
3. Equal-Info compression (b = 16) of some English text with both, end to end.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from ref import equalinfo  # noqa: E402
from ref import transformer as tr  # noqa: E402
from ref.models import TransformerModel  # noqa: E402
from ref.symbols import BOS, documents_to_symbols  # noqa: E402


class NaturalShapeModel(TransformerModel):
    """The same model evaluated at [1, T] (for comparison only: its rows depend on T in the last bits)."""

    def next_probs(self, inputs):
        logits = tr.forward(self.params, self.cfg, np.asarray(inputs, dtype=np.int64)).astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=-1, keepdims=True)


def best_time(function, repeats=20):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3m")
    parser.add_argument("--cap", type=int, default=64)
    parser.add_argument("--bytes", type=int, default=400)
    args = parser.parse_args()
    cfg = tr.make_config(args.size, dtype="float32")
    params = tr.init_params(cfg, 0)
    fixed = TransformerModel(params, cfg, max_window_symbols=args.cap)
    natural = NaturalShapeModel(params, cfg, max_window_symbols=args.cap)
    rng = np.random.default_rng(0)
    inputs = np.concatenate([[BOS], rng.integers(0, 256, args.cap)])[None]
    print(f"M1 {args.size} float32, fixed shape [1, {fixed.sequence_length}]; {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}")
    print(f"{'T':>4} {'fixed ms':>9} {'natural ms':>11} {'ratio':>6}")
    for length in (1, 2, 4, 8, 16, 32, fixed.sequence_length):
        a = best_time(lambda: fixed.next_probs(inputs[:, :length]))
        b = best_time(lambda: natural.next_probs(inputs[:, :length]))
        print(f"{length:>4} {a * 1e3:9.3f} {b * 1e3:11.3f} {a / b:6.2f}")
    full = fixed.next_probs(inputs)
    differ = sum(not np.array_equal(natural.next_probs(inputs[:, :t]), full[:, :t])
                 for t in range(1, fixed.sequence_length + 1))
    print(f"natural-shape rows differing bit for bit from the fixed-shape rows: {differ} of "
          f"{fixed.sequence_length} prefix lengths")

    text = open(os.path.join(os.path.dirname(os.__file__), "this.py"), "rb").read()
    text = (text * (args.bytes // len(text) + 1))[:args.bytes]
    symbols = documents_to_symbols([text])
    for name, model in (("fixed", fixed), ("natural", natural)):
        start = time.perf_counter()
        windows = equalinfo.encode_windows(symbols, model, window_bits=16)
        elapsed = time.perf_counter() - start
        print(f"Equal-Info b=16 encode, {len(symbols)} symbols, {len(windows)} windows, {name} shape: "
              f"{elapsed:.2f} s ({len(symbols) / elapsed:.0f} symbols/s)")


if __name__ == "__main__":
    main()
