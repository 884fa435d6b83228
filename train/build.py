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

Units (`shard_units`, `run_shard_unit`): the same datasets cut into shards of ROWS_PER_SHARD examples, each shard a
pure function of its rows and a CoderSpec (plain data: the method's settings, M1's weights and rule, StaticAC's
counts, SentencePiece's model bytes), so any worker on any machine rebuilds the coder and writes the same bytes.
A unit codes one shard for every dataset that shares its coder (v=256 and v=65k of one Equal-Info window size:
one compression), writes each shard's files atomically and then its completion record (data/shards.py
write_shard); `finish_dataset` assembles the index from the records. The shard size is fixed by the dataset (not
by the worker count), and M1's exact rule makes rows independent of how examples are batched, so 1 worker, N
workers or a Ray cluster write byte-identical datasets, the same bytes as build_dataset (tests/test_executors.py).
"""
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from equalinfo.data.shards import (ShardWriter, assemble, dataset_header, finished_shards, open_dataset,
                                   start_dataset, token_columns, write_shard)
from equalinfo.train.shuffled_windows import shuffle_windows


def columns(seq_len):
    return {**token_columns(seq_len), "n_tokens": ("int64", ()), "kept_bytes": ("float64", ()),
            "document": ("int64", ())}


UNKNOWN_DOCUMENT = -1  # the document column of an example made by hand (data.packing.Example.document None)


PREPARE_EXAMPLES = 256  # examples coded together by a method's `prepare` (bounds memory; one M1 batch per step)
ROWS_PER_SHARD = 256  # rows per shard, and so per unit of work: part of the dataset's index (its bytes)
TOTAL_COLUMNS = ("n_bytes", "n_tokens", "weights", "kept_bytes")


def fit_row(tokens, seq_len):
    """(tokens [L], weights [L]) of one example's tokens: trimmed to L or padded with token 0 at weight 0."""
    row = np.zeros(seq_len, dtype=np.int32)
    weights = np.zeros(seq_len, dtype=np.float32)
    kept = min(len(tokens), seq_len)
    row[:kept], weights[:kept] = tokens[:kept], 1.0
    return row, weights


def dataset_meta(method, seq_len, meta=None):
    """The meta a dataset's index records: the caller's, plus the method's name, vocabulary and row length."""
    return {**(meta or {}), "method": method.name, "vocab_size": int(method.vocab_size), "seq_len": int(seq_len)}


def build_dataset(examples, method, out_dir, seq_len=512, meta=None, rows_per_shard=ROWS_PER_SHARD, desc=None):
    """Write (or finish writing) the dataset of `examples` (data.packing.Example, fixed order) tokenized by
    `method` (train/methods.py); returns the finished Dataset."""
    writer = ShardWriter(out_dir, columns(seq_len), rows_per_shard=rows_per_shard,
                         meta=dataset_meta(method, seq_len, meta), total_columns=TOTAL_COLUMNS)
    if not writer.complete:
        todo = list(examples)[writer.rows_done:]
        for index, example in enumerate(tqdm(todo, desc=desc or f"build {method.name}", unit="ex", disable=None)):
            if index % PREPARE_EXAMPLES == 0:  # a method may code the next examples together (train/methods.py)
                method.prepare([e.symbols for e in todo[index:index + PREPARE_EXAMPLES]])
            writer.add(**example_row(method, example.symbols, example.document, seq_len))
        writer.finish()
    return open_dataset(out_dir)


def example_row(method, symbols, document, seq_len):
    """{column: value} of one example's row (see the module docstring)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    tokens, covered = method.tokens_and_cover(symbols, seq_len)
    row, weights = fit_row(tokens, seq_len)
    return {"tokens": row, "weights": weights, "n_bytes": len(symbols), "n_tokens": len(tokens),
            "kept_bytes": covered, "document": UNKNOWN_DOCUMENT if document is None else document}


# --- units ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoderSpec:
    """Everything a worker needs to rebuild a method (train/methods.py), as plain data: `method` and its settings,
    the backend's name, M1 (`m1_params` {name: array}, `m1_config` a transformer.Config dict, exact `rule`,
    `restart_every`), StaticAC's unigram `counts`, SentencePiece's `spm_model` bytes."""
    method: str
    backend: str = "ref"
    window_bits: int = None
    precision: int = 14
    delimit: bool = True
    reset_every: int = 1
    m1_params: dict = None
    m1_config: dict = None
    rule: int = 1
    restart_every: int = None
    counts: np.ndarray = None
    spm_model: bytes = None

    @property
    def uses_m1(self):
        return self.method in ("ac", "equalinfo")


def make_coder(spec, bits_per_token, cache=None):
    """The method of `spec` cutting its bits into `bits_per_token`-bit tokens; coders given one `cache` dict share
    their compressed bits (methods.BitMethod)."""
    from equalinfo.ref.models import UnigramModel
    from equalinfo.ref.transformer import Config
    from equalinfo.train import backends, m1, methods

    if spec.method == "bytes":
        return methods.Bytes()
    if spec.method == "spm":
        import sentencepiece

        return methods.SentencePiece(sentencepiece.SentencePieceProcessor(model_proto=spec.spm_model))
    if spec.method == "gzip":
        return methods.Gzip(bits_per_token, cache)
    backend = backends.load_or_fastest(spec.backend)
    if spec.method == "staticac":
        return methods.ArithmeticCoded("staticac", UnigramModel(spec.counts), bits_per_token, backend,
                                       spec.precision, cache)
    if spec.uses_m1:
        model = m1.coding_model(spec.m1_params, Config.from_dict(spec.m1_config), backend.name, spec.rule,
                                spec.restart_every)
        if spec.method == "ac":
            return methods.ArithmeticCoded("ac", model, bits_per_token, backend, spec.precision, cache)
        return methods.EqualInfo(model, spec.window_bits, bits_per_token, backend, spec.precision, cache,
                                 spec.delimit, spec.reset_every)
    raise ValueError(f"unknown method {spec.method!r}")


@dataclass(frozen=True)
class Target:
    """One dataset directory a unit writes a shard of: its index header (data/shards.py) and token width."""
    directory: str
    header: dict
    bits_per_token: int = None


@dataclass
class ShardUnit:
    """Shard `number` of every target, coded by the executor context's coder `coder`: rows are `symbols`
    [int64 arrays] and their `documents`, in the dataset's order -- or, from a corpus streamed into an example store
    (data/example_store.py), `rows`, a StoreRows (the store's directory and the shard's row indices) that the unit
    reads where it runs, and `symbols`/`documents` are None. `weight`: bytes of text, for the progress bar."""
    coder: str
    number: int
    targets: tuple
    symbols: list
    documents: list
    seq_len: int
    key: str = field(default="")
    rows: object = None
    text_bytes: int = None

    @property
    def weight(self):
        if self.rows is not None:
            return self.text_bytes
        return sum(len(symbols) for symbols in self.symbols)

    def load(self):
        """(symbols [int64 arrays], documents) of the unit's rows: carried, or read from the store."""
        return self.rows.load() if self.rows is not None else (self.symbols, self.documents)


def shard_units(coder, targets, examples, seq_len, label=""):
    """The units still to run for `targets` (datasets of the same rows `examples` by one coder): each target's
    directory is started (or checked, data/shards.py start_dataset); a shard is left out for a target that has it
    already, and a unit with no target left is not made. `examples`: a list of Examples (the unit carries its rows)
    or a StoreRows (the unit carries its rows' indices in the store)."""
    pending, rows_per_shard = {}, targets[0].header["rows_per_shard"] if targets else ROWS_PER_SHARD
    for target in targets:
        if start_dataset(target.directory, target.header):
            continue
        done = finished_shards(target.directory, target.header)
        for number in range(n_shards(len(examples), rows_per_shard)):
            if number not in done:
                pending.setdefault(number, []).append(target)
    units = []
    for number, chosen in sorted(pending.items()):
        rows = examples[number * rows_per_shard:(number + 1) * rows_per_shard]
        key = f"{label} shard {number}"
        if hasattr(rows, "load"):  # a StoreRows: indices only, the unit reads its rows where it runs
            units.append(ShardUnit(coder, number, tuple(chosen), None, None, seq_len, key, rows, rows.n_symbols()))
        else:
            units.append(ShardUnit(coder, number, tuple(chosen), [np.asarray(e.symbols, np.int64) for e in rows],
                                   [e.document for e in rows], seq_len, key))
    return units


def n_shards(rows, rows_per_shard):
    return -(-rows // rows_per_shard)


def run_shard_unit(context, unit):
    """Code one shard for each of its targets and write it (files, then completion record). context["coders"]:
    {name: CoderSpec}. Returns {"bytes": text bytes coded}. Runs anywhere: in-process, in a pool, on Ray."""
    spec, cache = context["coders"][unit.coder], {}
    coders = {target.bits_per_token: make_coder(spec, target.bits_per_token, cache) for target in unit.targets}
    first = next(iter(coders.values()))
    all_symbols, documents = unit.load()  # the shard's rows, and no more: at most rows_per_shard examples
    for start in range(0, len(all_symbols), PREPARE_EXAMPLES):  # one compression shared by every target
        first.prepare(all_symbols[start:start + PREPARE_EXAMPLES])
    for target in unit.targets:
        coder = coders[target.bits_per_token]
        rows = [example_row(coder, symbols, document, unit.seq_len)
                for symbols, document in zip(all_symbols, documents)]
        specs = target.header["columns"]
        arrays = {name: np.array([row[name] for row in rows], dtype=specs[name]["dtype"]).reshape(
            [len(rows)] + specs[name]["shape"]) for name in specs}
        write_shard(target.directory, target.header, unit.number, arrays)
    return {"bytes": int(sum(len(symbols) for symbols in all_symbols))}


def target_for(directory, method, seq_len, meta, bits_per_token=None):
    """The Target of one dataset: `method` (a coder made from the spec, for its name and vocabulary)."""
    header = dataset_header(columns(seq_len), ROWS_PER_SHARD, dataset_meta(method, seq_len, meta), TOTAL_COLUMNS)
    return Target(str(directory), header, bits_per_token)


def finish_dataset(target, rows):
    """Assemble a target's index from its shards' records (if not complete already) and open it."""
    if not start_dataset(target.directory, target.header):
        assemble(target.directory, target.header, n_shards(rows, target.header["rows_per_shard"]))
    return open_dataset(target.directory)


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
