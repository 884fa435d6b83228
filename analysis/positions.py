"""Which window positions an M2 learns, and when (the paper's §6.2, Fig. 10: 403m, EqualInfoAC[b=64, v=256]).

A row of an Equal-Info dataset starts at the start of a window (build trims each example's tokens from its first
window), so token k of a row covers bits [k N, (k + 1) N) and sits at position (k N mod b) / N + 1 of its window
(1-based; tokens per window = b / N when N divides b, and a token that straddles two windows when it does not is
counted at the position of its first bit). For each checkpoint of an M2 run (train-m2 --keep-every K keeps them)
we take, on the validation rows, per position:

- accuracy: how often the most probable token is the right one;
- loss: the mean cross-entropy in bits of the right token.

"Chance" per position is the accuracy of always predicting the most frequent token at that position in the
*training* rows: a position whose accuracy stays at or below it has not been learned. (The paper calls "trivial"
the best accuracy of the first 2,000 steps; with our short runs that is most of the run, so we use the
data's own majority baseline and also report the first checkpoint's accuracy; "above chance" means by more than
two binomial standard errors.) The paper finds positions learned in
order (#1, then #2, then #3) and the later ones at chance for a long time; the figure plots accuracy per position
against the training step.
"""
import math

import numpy as np

from equalinfo.analysis import common
from equalinfo.ref import transformer as ref_transformer
from equalinfo.train.m2 import rows_to_batch


def window_positions(seq_len, window_bits, bits_per_token):
    """Window position (1-based) of each of a row's tokens: int64 [seq_len]."""
    starts = np.arange(seq_len, dtype=np.int64) * bits_per_token
    return (starts % window_bits) // bits_per_token + 1


def per_position(logits, targets, weights, positions):
    """{position: (correct, nll_nats_sum, count)} of logits [B, L, V] against targets [B, L] (weight > 0 only)."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_norm = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))  # [B, L]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    nll = log_norm - picked
    correct = logits.argmax(axis=-1) == targets
    mask = weights > 0
    out = {}
    for position in np.unique(positions):
        where = mask & (positions[None, :] == position)
        out[int(position)] = (int(correct[where].sum()), float(nll[where].sum()), int(where.sum()))
    return out


def majority_accuracy(train_set, validation_set, positions):
    """{position: accuracy on validation of the training rows' most frequent token at that position}."""
    result = {}
    train_tokens, train_weights = train_set.column("tokens"), train_set.column("weights")
    val_tokens, val_weights = validation_set.column("tokens"), validation_set.column("weights")
    for position in np.unique(positions):
        columns = positions == position
        seen = train_tokens[:, columns][train_weights[:, columns] > 0]
        mode = int(np.bincount(seen).argmax()) if seen.size else 0
        targets = val_tokens[:, columns][val_weights[:, columns] > 0]
        result[int(position)] = float((targets == mode).mean()) if targets.size else float("nan")
    return result


def above_chance(accuracy, chance, count):
    """True if an accuracy over `count` tokens beats chance by more than two binomial standard errors."""
    rate = min(max(chance, 1.0 / count), 1 - 1.0 / count)
    return accuracy - chance > 2 * math.sqrt(rate * (1 - rate) / count)


def check_dataset(dataset):
    meta = dataset.meta
    if meta.get("method") != "equalinfo":
        raise common.AnalysisError(f"{dataset.directory} is a {meta.get('label', meta.get('method'))} dataset; "
                                   "window positions exist only in Equal-Info datasets (build --method equalinfo)")
    return int(meta["window_bits"]), int(meta["bits_per_token"])


def evaluate_checkpoint(transformer, params, cfg, validation_set, positions, batch_size=8, max_rows=None):
    """{position: {"accuracy", "loss_bits", "tokens"}} of one M2 on the validation rows."""
    n = len(validation_set) if max_rows is None else min(max_rows, len(validation_set))
    totals = {}
    vocab = validation_set.meta["vocab_size"]
    for start in range(0, n, batch_size):
        rows = validation_set.take(np.arange(start, min(start + batch_size, n)), ["tokens", "weights"])
        inputs, targets, weights = rows_to_batch(rows, vocab)
        logits = common.host(transformer.forward(params, cfg, inputs))  # [B, L, V]
        for position, (right, nll, count) in per_position(logits, targets, weights, positions).items():
            old = totals.get(position, (0, 0.0, 0))
            totals[position] = (old[0] + right, old[1] + nll, old[2] + count)
    return {p: {"accuracy": r / c, "loss_bits": s / c / math.log(2), "tokens": c}
            for p, (r, s, c) in sorted(totals.items()) if c}


def run(train_set, validation_set, checkpoints, backend, batch_size=8, max_rows=None):
    """checkpoints: [(path, params, cfg, step)], in any order; results sorted by step."""
    window_bits, bits_per_token = check_dataset(validation_set)
    seq_len = validation_set.columns["tokens"]["shape"][0]
    positions = window_positions(seq_len, window_bits, bits_per_token)
    chance = majority_accuracy(train_set, validation_set, positions)
    curve = []
    for path, params, cfg, step in sorted(checkpoints, key=lambda c: c[3]):
        by_position = evaluate_checkpoint(backend.transformer, params, cfg, validation_set, positions, batch_size,
                                          max_rows)
        curve.append({"checkpoint": str(path), "step": step, "positions": by_position})
    final = curve[-1]["positions"]
    learned = {p: above_chance(final[p]["accuracy"], chance[p], final[p]["tokens"]) for p in final}
    return {"dataset": validation_set.meta.get("label"), "window_bits": window_bits,
            "bits_per_token": bits_per_token, "tokens_per_window": window_bits / bits_per_token,
            "uniform_accuracy": 1 / validation_set.meta["vocab_size"], "chance_accuracy": chance,
            "checkpoints": curve, "learned_at_end": learned,
            "n_params": ref_transformer.count_params(checkpoints[0][2])["matrices"]}


def summary_table(results):
    positions = sorted(results["chance_accuracy"])
    first, last = results["checkpoints"][0], results["checkpoints"][-1]
    rows = [[p, f"{results['chance_accuracy'][p]:.3f}", f"{first['positions'][p]['accuracy']:.3f}",
             f"{last['positions'][p]['accuracy']:.3f}", f"{last['positions'][p]['loss_bits']:.3f}",
             "yes" if results["learned_at_end"][p] else "no"] for p in positions]
    return (f"{results['dataset']}: {len(results['checkpoints'])} checkpoints, steps "
            f"{first['step']}..{last['step']}\n"
            + common.table(["position", "chance acc.", f"acc. step {first['step']}", f"acc. step {last['step']}",
                            f"loss bits step {last['step']}", "above chance"], rows))


def draw(results):
    def figure(plt, path):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        steps = [c["step"] for c in results["checkpoints"]]
        colors = plt.get_cmap("viridis")
        positions = sorted(results["chance_accuracy"])
        for index, p in enumerate(positions):
            color = colors(index / max(len(positions) - 1, 1))
            left.plot(steps, [c["positions"][p]["accuracy"] for c in results["checkpoints"]], marker=".",
                      color=color, label=f"#{p}")
            left.axhline(results["chance_accuracy"][p], color=color, linestyle=":", linewidth=0.8)
            right.plot(steps, [c["positions"][p]["loss_bits"] for c in results["checkpoints"]], marker=".",
                       color=color, label=f"#{p}")
        left.set_xlabel("training step")
        left.set_ylabel("accuracy (dotted: chance at that position)")
        right.set_xlabel("training step")
        right.set_ylabel("loss (bits/token)")
        right.axhline(results["bits_per_token"], color="grey", linestyle="--", linewidth=0.8)
        left.legend(fontsize=7, title="window position")
        fig.suptitle(f"{results['dataset']}: accuracy and loss per window position (cf. the paper's Fig. 10)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return figure
