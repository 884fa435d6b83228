"""Building M2 datasets: every example tokenized by one method, trimmed or padded to a fixed number of tokens.

Rows (data/shards.py): tokens int32 [n, L] (L = 512 by default), weights float32 [n, L] (1 on real tokens, 0 on
padding), n_bytes int64 [n] (the example's symbols, EOS counted as a byte as the paper counts it), n_tokens
int64 [n] (its tokens before trimming) and kept_bytes float64 [n] (the bytes its kept tokens cover: exact for
bytes, spm and equalinfo, whose tokens map to known bytes; proportional for ac, staticac and gzip, whose bits mix the
whole example) and document int64 [n] (the corpus index of the document holding the example's first symbol,
data/packing.py; -1 when unknown), which M2's evaluation clusters its standard error by. A dataset built before
the document column existed is refused by name when a build resumes it (data/shards.py: different columns) and
evaluated without the clustered SE. From the totals (`summary`):
- cr_full = bytes / tokens of the whole examples (the paper's token compression ratio);
- cr_kept = kept bytes / kept tokens, the ratio of the data actually kept, which converts M2's loss to bits/byte.
Examples are processed in a fixed order through a resumable ShardWriter, so an interrupted build continues where it
stopped and ends with the same files.
"""
import numpy as np
from tqdm import tqdm

from equalinfo.data.shards import ShardWriter, open_dataset, token_columns
from equalinfo.train.shuffled_windows import shuffle_windows


def columns(seq_len):
    return {**token_columns(seq_len), "n_tokens": ("int64", ()), "kept_bytes": ("float64", ()),
            "document": ("int64", ())}


UNKNOWN_DOCUMENT = -1  # the document column of an example made by hand (data.packing.Example.document None)


PREPARE_EXAMPLES = 256  # examples coded together by a method's `prepare` (bounds memory; one M1 batch per step)


def fit_row(tokens, seq_len):
    """(tokens [L], weights [L]) of one example's tokens: trimmed to L or padded with token 0 at weight 0."""
    row = np.zeros(seq_len, dtype=np.int32)
    weights = np.zeros(seq_len, dtype=np.float32)
    kept = min(len(tokens), seq_len)
    row[:kept], weights[:kept] = tokens[:kept], 1.0
    return row, weights


def build_dataset(examples, method, out_dir, seq_len=512, meta=None, rows_per_shard=256, desc=None):
    """Write (or finish writing) the dataset of `examples` (data.packing.Example, fixed order) tokenized by
    `method` (train/methods.py); returns the finished Dataset."""
    meta = dict(meta or {})
    meta.update({"method": method.name, "vocab_size": int(method.vocab_size), "seq_len": int(seq_len)})
    writer = ShardWriter(out_dir, columns(seq_len), rows_per_shard=rows_per_shard, meta=meta,
                         total_columns=("n_bytes", "n_tokens", "weights", "kept_bytes"))
    if not writer.complete:
        todo = list(examples)[writer.rows_done:]
        for index, example in enumerate(tqdm(todo, desc=desc or f"build {method.name}", unit="ex", disable=None)):
            if index % PREPARE_EXAMPLES == 0:  # a method may code the next examples together (train/methods.py)
                method.prepare([e.symbols for e in todo[index:index + PREPARE_EXAMPLES]])
            symbols = np.asarray(example.symbols, dtype=np.int64)
            tokens, covered = method.tokens_and_cover(symbols, seq_len)
            row, weights = fit_row(tokens, seq_len)
            document = UNKNOWN_DOCUMENT if example.document is None else example.document
            writer.add(tokens=row, weights=weights, n_bytes=len(symbols), n_tokens=len(tokens), kept_bytes=covered,
                       document=document)
        writer.finish()
    return open_dataset(out_dir)


def shuffled_copy(dataset, out_dir, tokens_per_window, seed, meta=None, rows_per_shard=256):
    """Write (or finish writing) `dataset` with each row's whole windows of `tokens_per_window` tokens in a random
    order (train/shuffled_windows.py: row r's order drawn from (seed, r)); every other column is copied, so the
    copy keeps the rows' bytes, documents and kept tokens. Returns the finished Dataset."""
    meta = {**dataset.meta, **(meta or {}), "shuffled_windows": {"tokens_per_window": int(tokens_per_window),
                                                                "seed": int(seed)}}
    columns = {name: (spec["dtype"], spec["shape"]) for name, spec in dataset.columns.items()}
    writer = ShardWriter(out_dir, columns, rows_per_shard=rows_per_shard, meta=meta,
                         total_columns=("n_bytes", "n_tokens", "weights", "kept_bytes"))
    for start in range(writer.rows_done, 0 if writer.complete else len(dataset), rows_per_shard):
        rows = dataset.take(np.arange(start, min(start + rows_per_shard, len(dataset))))
        rows["tokens"] = shuffle_windows(rows["tokens"], rows["weights"], tokens_per_window, seed, first_row=start)
        writer.add_batch(**rows)
    writer.finish()
    return open_dataset(out_dir)


def summary(dataset):
    """The figures of a built dataset: CRs over the whole and the kept data, tokens kept, and the documents its rows
    start in (None for a dataset without the document column)."""
    totals = dataset.totals
    n_bytes, n_tokens, kept, covered = (float(totals[k]) for k in ("n_bytes", "n_tokens", "weights", "kept_bytes"))
    return {
        "examples": len(dataset), "bytes": int(n_bytes), "tokens": int(n_tokens), "kept_tokens": int(kept),
        "kept_bytes": covered, "cr_full": n_bytes / n_tokens, "cr_kept": covered / kept,
        "kept_fraction": kept / n_tokens, "documents": documents_of(dataset),
    }


def row_documents(dataset, rows=None):
    """[n] int64: the document of each row (all rows, or the first `rows`); None when the dataset has no document
    column (built before it existed) or some row's document is unknown."""
    if "document" not in dataset.columns:
        return None
    documents = dataset.column("document")[:rows]
    return None if (documents == UNKNOWN_DOCUMENT).any() else np.asarray(documents, np.int64)


def documents_of(dataset):
    """How many distinct documents the rows start in (None when unknown)."""
    documents = row_documents(dataset)
    return None if documents is None else int(len(np.unique(documents)))
