"""Training and evaluating M2 on a built dataset (train/build.py), and the paper's figures of an M2.

M2 reads [BOS, t_0, ..., t_{L-2}] and predicts [t_0, ..., t_{L-1}]: its vocabulary is the method's v tokens plus
one BOS id (= v) for the input, so vocab_in = v + 1 and vocab_out = v. Padding positions have weight 0.
Batches: rows in a permutation drawn from (seed, epoch), so step s reads rows s*B .. (s+1)*B-1 of the endless
sequence of epochs: a pure function of (seed, step), which makes resume exact (train/trainer.py).
bits/byte (docs/paper.md §4) = mean NLL per token (nats) / (ln 2 * bytes per token), bytes per token being the
validation set's compression ratio over the data actually kept (cr_kept, train/build.py).
Beside it `evaluate` reports how sure that figure is (its standard error over the evaluated rows,
report/uncertainty.py), the same SE clustered by document (the rows of one document are not independent: the SE
that treats documents as the units; None, with the reason, for a dataset without documents) and the floors it must beat: uniform (log2 v bits/token) and unigram (report/unigram.py: the
held-out floor with leave-one-out smoothing, and the old add-one floor for comparison), the floors measured on the
same validation rows as M2.
"""
import math

import numpy as np

from equalinfo.ref import metrics, transformer
from equalinfo.report import uncertainty, unigram, window_floors
from equalinfo.train.build import row_documents, summary
from equalinfo.train.trainer import TrainSettings, nll_by_row, train


def make_config(size, vocab_size, dtype="float32", **overrides):
    return transformer.make_config(size, vocab_in=vocab_size + 1, vocab_out=vocab_size, dtype=dtype, **overrides)


def rows_to_batch(rows, vocab_size):
    """(inputs, targets, weights) [B, L] of dataset rows {"tokens", "weights"}."""
    targets = np.asarray(rows["tokens"], dtype=np.int64)
    inputs = np.concatenate([np.full((len(targets), 1), vocab_size), targets[:, :-1]], axis=1)
    return inputs, targets, np.asarray(rows["weights"], dtype=np.float64)


def batch_at(dataset, batch_size, seed, step, vocab_size):
    n = len(dataset)
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    rows = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(positions // n):
        chosen = positions // n == epoch
        rows[chosen] = np.random.default_rng([seed, int(epoch)]).permutation(n)[positions[chosen] % n]
    return rows_to_batch(dataset.take(rows, ["tokens", "weights"]), vocab_size)


def eval_batches(dataset, batch_size, max_rows=None):
    n = len(dataset) if max_rows is None else min(max_rows, len(dataset))
    return [rows_to_batch(dataset.take(np.arange(start, min(start + batch_size, n)), ["tokens", "weights"]),
                          dataset.meta["vocab_size"]) for start in range(0, n, batch_size)]


def train_m2(train_set, val_set, out_path, backend, cfg, settings, batch_size=8, eval_rows=None, resume=False,
             keep_checkpoints=False):
    """Train M2 on a dataset; returns (params, history) and writes the checkpoint to out_path."""
    if not isinstance(settings, TrainSettings):
        settings = TrainSettings(**settings)
    vocab = train_set.meta["vocab_size"]
    if cfg.vocab_out != vocab or val_set.meta["vocab_size"] != vocab:
        raise ValueError(f"M2's vocabulary ({cfg.vocab_out}) must match the datasets' ({vocab}, "
                         f"{val_set.meta['vocab_size']})")
    cr = summary(val_set)["cr_kept"]
    params = backend.transformer.init_params(cfg, settings.seed)
    return train(
        cfg, params, settings, backend,
        batch_at=lambda step: batch_at(train_set, batch_size, settings.seed, step, vocab),
        eval_batches=eval_batches(val_set, batch_size, eval_rows), checkpoint_path=out_path, resume=resume,
        describe=lambda nll: {"val_bits_per_byte": metrics.bits_per_byte(nll, cr)}, desc="train M2", role="m2",
        keep_checkpoints=keep_checkpoints)


def unigram_bits_per_token(train_set, val_set):
    """Cross-entropy (bits/token) of the validation tokens under the training tokens' unigram distribution,
    add-one smoothed: the "unigram" floor of docs/paper.md §3.2 before dividing by the CR, as first reported. For a large
    vocabulary and few tokens it is unsound (report/unigram.py says why); `unigram_floor` is the floor to use."""
    return unigram_floor(train_set, val_set).addone_bits_per_token


def unigram_floor(train_set, val_set, eval_rows=None):
    """report/unigram.py's UnigramFloor of the first `eval_rows` validation rows (all by default) under the training
    tokens' frequencies."""
    n = len(val_set) if eval_rows is None else min(eval_rows, len(val_set))
    val = val_set.take(np.arange(n), ["tokens", "weights"])
    return unigram.heldout_floor(train_set.column("tokens"), train_set.column("weights"), val["tokens"],
                                 val["weights"], train_set.meta["vocab_size"])


def evaluate(params, cfg, backend, train_set, val_set, batch_size=8, m1_params=0, eval_rows=None):
    """The paper's figures of one M2 on one dataset (docs/paper.md §3-4), with bits/byte's standard error over the
    evaluated rows and the uniform and unigram floors (bits/byte) on the same rows."""
    stats = summary(val_set)
    nll, weight, row_nll, row_weight = nll_by_row(backend.transformer, params, cfg,
                                                  eval_batches(val_set, batch_size, eval_rows))
    nll_per_token = nll / weight
    cr = stats["cr_kept"]
    vocab = val_set.meta["vocab_size"]
    bits_per_token_of_data = math.log2(vocab)
    n_nonembedding = transformer.count_params(cfg)["matrices"]
    floor = unigram_floor(train_set, val_set, eval_rows)
    se = uncertainty.bits_per_byte_se(row_nll, row_weight, cr)
    clustered = clustered_se(row_nll, row_weight, cr, row_documents(val_set, len(row_nll)))
    return {
        "nll_per_token": nll_per_token,
        "bits_per_token": nll_per_token / math.log(2),
        "bits_per_byte": metrics.bits_per_byte(nll_per_token, cr),
        "bits_per_byte_se": se if math.isfinite(se) else None,  # None: one row shows no spread
        **clustered,
        "token_cr": cr, "token_cr_full": stats["cr_full"],
        "bit_cr": 8 * cr / bits_per_token_of_data,
        "uniform_bits_per_byte": bits_per_token_of_data / cr,
        "unigram_bits_per_byte": floor.bits_per_token / cr,
        "unigram_addone_bits_per_byte": floor.addone_bits_per_token / cr,
        "unigram_alpha": floor.alpha,
        "flops_per_byte": metrics.flops_per_byte(n_nonembedding, cr, m1_params),
        "m2_nonembedding_params": int(n_nonembedding), "eval_tokens": int(weight), "eval_rows": int(len(row_nll)),
    }


def clustered_se(row_nll, row_weight, bytes_per_token, documents):
    """{"bits_per_byte_se_clustered", "clustered_documents", and "bits_per_byte_se_clustered_null" (why) where the
    SE is None}: bits/byte's SE with the rows [n] clustered by their document [n] (report/uncertainty.py)."""
    if documents is None:
        return {"bits_per_byte_se_clustered": None, "clustered_documents": None,
                "bits_per_byte_se_clustered_null": "the dataset's rows carry no document (built before the column)"}
    count = int(len(np.unique(documents)))
    se = uncertainty.clustered_bits_per_byte_se(row_nll, row_weight, bytes_per_token, documents)
    if not math.isfinite(se):
        return {"bits_per_byte_se_clustered": None, "clustered_documents": count,
                "bits_per_byte_se_clustered_null": f"{count} document(s): no spread between documents to see"}
    return {"bits_per_byte_se_clustered": se, "clustered_documents": count}


def window_floors_of(train_set, val_set, eval_rows=None):
    """{"whole_window_bits_per_byte", "bigram_bits_per_byte"} of an Equal-Info dataset (report/window_floors.py:
    the floors of a model that sees one window and nothing past it), on the same validation rows as M2; a floor
    that cannot be computed or is not finite is None, with its reason under "<name>_null". {} for other methods."""
    meta = val_set.meta
    if meta.get("method") != "equalinfo":
        return {}
    n = len(val_set) if eval_rows is None else min(eval_rows, len(val_set))
    val = val_set.take(np.arange(n), ["tokens", "weights"])
    train = train_set.take(np.arange(len(train_set)), ["tokens", "weights"])
    cr = summary(val_set)["cr_kept"]
    out = {}
    for name, floor in (("whole_window", window_floors.whole_window_floor), ("bigram", window_floors.bigram_floor)):
        try:
            bits = floor(train["tokens"], train["weights"], val["tokens"], val["weights"], int(meta["window_bits"]),
                         int(meta["bits_per_token"])).bits_per_token
        except ValueError as error:
            out[f"{name}_bits_per_byte"], out[f"{name}_bits_per_byte_null"] = None, str(error)
            continue
        if math.isfinite(bits):
            out[f"{name}_bits_per_byte"] = bits / cr
        else:
            out[f"{name}_bits_per_byte"] = None
            out[f"{name}_bits_per_byte_null"] = f"the floor is {bits} bits/token (a validation window or pair the "\
                                               "smoothed training counts give no mass)"
    return out
