"""Can a Transformer learn to run the coder? The paper's §5.2 probe (Table 5), at a size a CPU trains in minutes.

Tasks, on short texts (the paper: 1,024 bytes and a 113m model; here `text_bytes`, default 32, and a tiny model):
- decompress: compressed tokens (v = 256) -> the text's bytes;
- compress: the text's bytes -> its compressed tokens;
for plain AC and for EqualInfoAC[b=16, v=256], each compressed by the given M1 (or an order-2 Markov stand-in).

Each task is one decoder-only Transformer (ref/transformer.py's model, any backend) over the sequence
[source ids] [SEP] [target ids], with a causal mask and the loss on the targets only (source positions have weight
0), as in the paper: source ids are 0..255, target ids are offset by 256 on the input side (so the model can tell
them apart), SEP is 512, and the output layer predicts the 256 target values. The comparison (Table 5's "byte LM on
targets only") is the same model trained on [SEP] [target bytes] alone: a decompressor that does no better than it
has learned nothing from the compressed input. We report, on held-out texts, the per-target accuracy (argmax) and
the cross-entropy in nats per target (ln 256 = 5.545 is uniform). Rows are padded to one length with weight 0.
"""
import math
import tempfile
from pathlib import Path

import numpy as np

from equalinfo.analysis import common
from equalinfo.ref import transformer as ref_transformer
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.train.trainer import TrainSettings, train

SEP = 512
VOCAB_IN = 513
VOCAB_OUT = 256
SPECS = (("AC[v=256]", "ac", None, 8), ("EqualInfoAC[b=16,v=256]", "equalinfo", 16, 8))


def text_chunks(documents, text_bytes, count, seed):
    """`count` distinct texts of `text_bytes` bytes at seeded random offsets of the documents (int64 arrays)."""
    stream = b" ".join(documents)
    if len(stream) < text_bytes * 2:
        raise common.AnalysisError(f"the corpus ({len(stream)} bytes) is too small for {text_bytes}-byte texts")
    starts = np.random.default_rng(seed).choice(len(stream) - text_bytes, size=count, replace=False)
    return [bytes_to_symbols(stream[s:s + text_bytes]) for s in starts]


def make_rows(sources, targets, length=None):
    """(inputs, targets, weights) [n, L] of [source] [SEP] [target] rows; the loss falls on the targets only."""
    needed = max(len(s) + len(t) for s, t in zip(sources, targets))
    length = needed if length is None else length
    if length < needed:
        raise ValueError(f"rows of {length} positions cannot hold {needed}")
    n = len(sources)
    inputs = np.full((n, length), SEP, dtype=np.int64)
    out = np.zeros((n, length), dtype=np.int64)
    weights = np.zeros((n, length))
    for row, (source, target) in enumerate(zip(sources, targets)):
        s, t = len(source), len(target)
        inputs[row, :s] = source
        inputs[row, s] = SEP
        inputs[row, s + 1:s + t] = np.asarray(target[:-1]) + 256
        out[row, s:s + t] = target
        weights[row, s:s + t] = 1.0
    return inputs, out, weights


def accuracy_and_ce(transformer, params, cfg, rows, batch_size=64):
    """(accuracy, cross-entropy in nats) over the weighted positions of rows (inputs, targets, weights)."""
    inputs, targets, weights = rows
    right = total = nll = 0.0
    for start in range(0, len(inputs), batch_size):
        part = slice(start, start + batch_size)
        logits = common.host(transformer.forward(params, cfg, inputs[part])).astype(np.float64)  # [B, L, V]
        top = logits.max(axis=-1, keepdims=True)
        log_norm = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))
        picked = np.take_along_axis(logits, targets[part][..., None], axis=-1)[..., 0]
        w = weights[part]
        right += float(((logits.argmax(axis=-1) == targets[part]) * w).sum())
        nll += float(((log_norm - picked) * w).sum())
        total += float(w.sum())
    return right / total, nll / total


def train_task(backend, train_rows, val_rows, size, steps, batch_size, peak_lr, seed, work_dir, name):
    """Train one model on rows and score it on held-out rows: {"accuracy", "cross_entropy", ...}."""
    cfg = ref_transformer.make_config(size, vocab_in=VOCAB_IN, vocab_out=VOCAB_OUT)
    settings = TrainSettings(steps=steps, seed=seed, optimizer={"name": "adamw", "peak_lr": peak_lr,
                                                                 "warmup_steps": max(1, steps // 20),
                                                                 "total_steps": steps})
    inputs, targets, weights = train_rows
    n = len(inputs)

    def batch_at(step):
        rows = np.random.default_rng([seed, step]).integers(0, n, batch_size)
        return inputs[rows], targets[rows], weights[rows]

    params, history = train(cfg, backend.transformer.init_params(cfg, seed), settings, backend, batch_at,
                            eval_batches=[tuple(a[:64] for a in val_rows)],
                            checkpoint_path=Path(work_dir) / f"{name}.npz", desc=f"seq2seq {name}")
    accuracy, ce = accuracy_and_ce(backend.transformer, params, cfg, val_rows)
    return {"accuracy": accuracy, "cross_entropy": ce,
            "final_train_loss": [r for r in history if "train_loss" in r][-1]["train_loss"]}


def run(tokenizers, documents, backend, text_bytes=32, n_train=1000, n_val=200, size="tiny", steps=300,
        batch_size=16, peak_lr=0.003, seed=0, models=None):
    texts = text_chunks(documents, text_bytes, n_train + n_val, seed)
    coded = {name: tokenizers.tokenize(method, b, n, texts) for name, method, b, n in SPECS}
    length = max(len(t) for t in texts) + max(len(c) for tokens in coded.values() for c in tokens)
    results = {"text_bytes": text_bytes, "train_texts": n_train, "validation_texts": n_val, "model_size": size,
               "steps": steps, "batch_size": batch_size, "peak_lr": peak_lr, "seed": seed, "row_length": length,
               "uniform_cross_entropy": math.log(256), "models": models or {}, "tokens_per_text": {}, "tasks": {}}
    split = lambda rows: (tuple(a[:n_train] for a in rows), tuple(a[n_train:] for a in rows))  # noqa: E731
    with tempfile.TemporaryDirectory() as work:
        tasks = [("byte LM (targets only)", [np.zeros(0, np.int64)] * len(texts), texts)]
        for name, tokens in coded.items():
            results["tokens_per_text"][name] = float(np.mean([len(t) for t in tokens]))
            tasks.append((f"{name} decompress", tokens, texts))
            tasks.append((f"{name} compress", texts, tokens))
        for index, (task, sources, targets) in enumerate(tasks):
            train_rows, val_rows = split(make_rows(sources, targets, length))
            results["tasks"][task] = train_task(backend, train_rows, val_rows, size, steps, batch_size, peak_lr,
                                                seed, work, f"task{index}")
    return results


PAPER = {"AC[v=256] decompress": (76.98, 0.751), "EqualInfoAC[b=16,v=256] decompress": (95.30, 0.141),
         "AC[v=256] compress": (1.7, 2.489), "byte LM (targets only)": (76.86, 0.755)}


def summary_table(results):
    rows = []
    for task, figures in results["tasks"].items():
        paper = PAPER.get(task)
        rows.append([task, f"{100 * figures['accuracy']:.2f}", f"{figures['cross_entropy']:.3f}",
                     f"{paper[0]:.2f} / {paper[1]:.3f}" if paper else ""])
    return (common.table(["task", "accuracy %", "cross-entropy (nats/target)", "paper acc. / CE (113m, 1 KB)"], rows)
            + f"\n({results['text_bytes']}-byte texts, {results['model_size']} model, {results['steps']} steps; "
              f"uniform CE {results['uniform_cross_entropy']:.3f})")


def draw(results):
    def figure(plt, path):
        names = list(results["tasks"])
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        left.barh(names, [100 * results["tasks"][n]["accuracy"] for n in names], color="tab:blue")
        left.set_xlabel("accuracy on targets (%)")
        right.barh(names, [results["tasks"][n]["cross_entropy"] for n in names], color="tab:orange")
        right.axvline(results["uniform_cross_entropy"], color="grey", linestyle="--", label="uniform")
        right.set_xlabel("cross-entropy (nats per target)")
        right.set_yticks([])
        right.legend(fontsize=7)
        fig.suptitle(f"Learning the coder as seq2seq ({results['text_bytes']}-byte texts; cf. the paper's Table 5)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return figure
