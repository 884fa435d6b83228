"""How uniform each method's bits are (the paper's §6.3, Figs. 11, 16, 17; App. D.6).

For n dividing 16 (1, 2, 4, 8, 16) we count either the overlapping n-bit windows of the bitstream ("bit n-grams")
or its consecutive non-overlapping n-bit chunks ("n-bit tokens"), and measure KL(observed || uniform) in bits:

    plug-in:       KL = n - H(p_hat),               H(p_hat) = -sum p_hat log2 p_hat over the observed values
    Miller-Madow:  KL = n - (H(p_hat) + (m - 1) / (2 N ln 2)),   m = values seen, N = samples

Miller-Madow adds the first-order bias of the plug-in entropy (which is too low on finite samples), so its KL is
the plug-in KL minus (m - 1) / (2 N ln 2); both are shown, as in the paper's Figs. 11 and 17. KL is 0 for
perfectly uniform bits and n for a constant stream. The stream is split into `samples` disjoint consecutive parts
(the paper: 100), the KL is computed in each, and the 5/50/95% quantiles are reported. The baseline is bits from
Python's `secrets` (the OS's CSPRNG) cut into samples of the same size: on finite samples even truly random bits
give a plug-in KL above 0, and this is the level a method's bits are compared with. Streams are compared in groups
(the datasets; the two window rules) whose streams share one sample size: the plug-in KL depends on it.

Where the bits come from: a dataset's rows hold its tokens (trimmed to M2's row length; padding has weight 0); the
kept tokens of every row, turned back into bits, concatenated, are the method's stream. Bytes and SentencePiece
tokens are not bitstreams and are skipped. Equal-Info windows of ours (the b bits name a cell that delimits the
window) and of the paper (the shortest cell, padded with zeros) are compared on the same text, re-encoded here
with the given M1 (`compare_padding`): zero padding makes the window-final bits non-uniform.
"""
import math
import secrets

import numpy as np

from equalinfo.analysis import common
from equalinfo.ref.metrics import bit_values as values, kl_to_uniform  # noqa: F401 (kl_to_uniform re-exported)
from equalinfo.ref.tokens import tokens_to_bits

NS = (1, 2, 4, 8, 16)
QUANTILES = (5, 50, 95)


def kl_quantiles(bits, n, overlapping, samples, size=None):
    """KLs over `samples` disjoint consecutive parts of `size` bits (default: the whole stream cut evenly):
    {"plug_in": {...}, "miller_madow": {...}, "values_per_sample": N} with the 5/50/95% quantiles of each."""
    bits = np.asarray(bits)
    size = len(bits) // samples if size is None else size
    if size * samples > len(bits):
        raise common.AnalysisError(f"{len(bits)} bits cannot make {samples} samples of {size} bits")
    if size < n:
        raise common.AnalysisError(f"{len(bits)} bits are too few for {samples} samples of {n}-bit values")
    kls = np.array([kl_to_uniform(values(bits[s * size:(s + 1) * size], n, overlapping), n)
                    for s in range(samples)])  # [samples, 2]
    per_sample = len(values(bits[:size], n, overlapping))
    return {"plug_in": _quantiles(kls[:, 0]), "miller_madow": _quantiles(kls[:, 1]), "values_per_sample": per_sample}


def _quantiles(array):
    return {f"{q}%": float(v) for q, v in zip(QUANTILES, np.percentile(array, QUANTILES))}


def measure(bits, samples, ns=NS, size=None):
    """The full grid for one stream: {"ngrams": {n: ...}, "tokens": {n: ...}, "bits": len, "sample_bits": size}."""
    size = len(bits) // samples if size is None else size
    return {"bits": int(len(bits)), "sample_bits": int(size),
            "ngrams": {n: kl_quantiles(bits, n, True, samples, size) for n in ns},
            "tokens": {n: kl_quantiles(bits, n, False, samples, size) for n in ns}}


def dataset_bits(dataset):
    """The kept tokens of every row of a bit-method dataset, as one bitstream (uint8 0/1)."""
    meta = dataset.meta
    if meta["method"] in ("bytes", "spm"):
        raise common.AnalysisError(f"{dataset.directory}: {meta['method']} tokens are not a bitstream")
    n = int(meta.get("bits_per_token") or round(math.log2(meta["vocab_size"])))
    tokens, weights = dataset.column("tokens"), dataset.column("weights")
    kept = [row[w > 0] for row, w in zip(tokens, weights)]
    return tokens_to_bits(np.concatenate(kept).astype(np.int64), n)


def secrets_bits(n_bits):
    """n_bits uniformly random bits from the operating system's CSPRNG (Python's `secrets`)."""
    data = np.frombuffer(secrets.token_bytes(-(-n_bits // 8)), dtype=np.uint8)
    return np.unpackbits(data)[:n_bits]


def compare_padding(backend, model, symbols, window_bits, precision=14):
    """(our windows' bits, the paper's zero-padded windows' bits) of the same text, for one window size."""
    ours = backend.equalinfo.encode_windows(symbols, model, window_bits, precision)
    paper = backend.equalinfo.encode_windows(symbols, model, window_bits, precision, delimit=False)
    return np.concatenate([w.bits for w in ours]), np.concatenate([w.bits for w in paper])


def run(groups, samples, ns=NS):
    """{"streams": {name: measure(...)}} of groups {group: {name: bits}}.

    Within a group every stream is cut into samples of one size (the shortest stream's length / samples), since a
    plug-in KL depends on the sample size; each group gets its own `secrets` baseline of that size, named
    "random (secrets)" (suffixed with the group after the first)."""
    results = {"samples": samples, "ns": list(ns), "streams": {}, "groups": {}}
    for index, (group, streams) in enumerate(groups.items()):
        if not streams:
            continue
        size = min(len(bits) for bits in streams.values()) // samples
        baseline = "random (secrets)" + (f", {group}" if index else "")
        streams = {baseline: secrets_bits(size * samples), **streams}
        results["groups"][group] = {"sample_bits": size, "streams": list(streams)}
        for name, bits in streams.items():
            results["streams"][name] = measure(bits, samples, ns, size)
    return results


def summary_table(results, n_shown=(1, 8, 16)):
    headers = ["stream", "bits/sample"] + [f"{kind} n={n} (MM)" for kind in ("n-gram", "token") for n in n_shown
                                    if n in results["ns"]]
    rows = []
    for name, stream in results["streams"].items():
        row = [name, f"{stream['sample_bits']:,}"]
        for kind in ("ngrams", "tokens"):
            for n in n_shown:
                if n in results["ns"]:
                    cell = stream[kind][n]
                    row.append(f"{cell['plug_in']['50%']:.2e} ({cell['miller_madow']['50%']:.1e})")
        rows.append(row)
    return (common.table(headers, rows) + f"\n(medians over {results['samples']} disjoint samples of KL(observed ||"
            " uniform) in bits, plug-in, Miller-Madow in brackets; 5/95% quantiles in the JSON)")


def draw(results):
    def figure(plt, path):
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
        ns = results["ns"]
        for col, kind in enumerate(("ngrams", "tokens")):
            for row, estimator in enumerate(("plug_in", "miller_madow")):
                ax = axes[row, col]
                for name, stream in results["streams"].items():
                    mid = [stream[kind][n][estimator]["50%"] for n in ns]
                    low = [stream[kind][n][estimator]["5%"] for n in ns]
                    high = [stream[kind][n][estimator]["95%"] for n in ns]
                    style = "k--" if name.startswith("random") else "-"
                    ax.plot(ns, mid, style, marker="o", label=name)
                    ax.fill_between(ns, low, high, alpha=0.15)
                ax.set_xscale("log", base=2)
                ax.set_yscale("symlog", linthresh=1e-5)
                ax.set_title(f"{'bit n-grams' if kind == 'ngrams' else 'n-bit tokens'}, "
                             f"{'plug-in' if estimator == 'plug_in' else 'Miller-Madow'}", fontsize=9)
                ax.set_xlabel("n (bits)")
                ax.set_ylabel("KL(observed || uniform), bits")
        axes[0, 0].legend(fontsize=6)
        fig.suptitle("Uniformity of each method's bits, median and 5-95% over samples (cf. the paper's Figs. 11, 17)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return figure
