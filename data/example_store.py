"""The corpus's packed examples on disk, written in one streaming pass, read back by row index: a corpus of any size
in bounded memory.

Why: the in-memory path (train/repro.py Examples) holds every packed example of both sides (2 bytes per symbol,
plus the documents while packing), and the driver ships each shard's rows to the unit that codes them. For a C4-sized
corpus neither fits. Here the corpus is read once, document by document (data/sources.py reads json.gz lazily, line
by line), packed group by group (data/packing.py iter_all_examples: one group of documents in memory at a time) and
appended to two stores, WORK/examples/train and WORK/examples/validation. A store is a dataset directory of
data/shards.py, written shard by shard as the units write theirs (write_shard: atomic shard files and a completion
record each, `assemble` writing the index once at the end: linear in the shards, and an interrupted pass resumes
after its finished shards), one row per example:

    symbols  uint16 [example_length]   the example's symbols (ids 0-256), padded with 0 after its length
    position int64  [4]                its length (the last example of a group is shorter), group and index in the
                                       group (data/packing.py Example), and the corpus index of the document holding
                                       its first symbol

and, written last, store.json: its rows, shard size, symbols, meta and identity (the SHA-256 of its index), which
is all a reader opens -- a store of 50,000 shards is as cheap to open as one of 2, its shard files (named by their
number) memory-mapped a few at a time when a row needs them. A reader checks each shard file's dtype, shape and
size (a truncated file is refused by name), not its SHA-256: a unit's shuffled rows come from hundreds of shards,
and hashing each would read 20 MB per row; the index keeps the hashes for a check of the whole store.
Its meta records what it was made from: the corpus (data/corpus.py describe(): files, formats, sizes, reading
options) and the packing (group size, example length, validation_every); a store made from anything else is
rebuilt, never reused.

Order. The in-memory path shuffles the train side with `np.random.default_rng(seed).permutation(n)` (data/packing.py
shuffle) and draws validation rows with the first `count` of `default_rng([seed, 1]).permutation(n)` (draw). Both
are permutations of row indices, so the store, in corpus order, gives the very same rows in the very same order from
the same permutation of its indices: the streaming path builds byte-identical datasets, and needs no order of its
own. What the driver holds is that permutation, 8 bytes per example (not 2 x example_length): 410 MB at the paper's
51.2M examples, 160 KB for 20,000.

Units. A dataset shard's unit (train/build.py ShardUnit) carries a StoreRows: the store's directory and the row
indices of its shard (at most rows_per_shard of them, 2 KB for 256), and reads those rows itself where it runs.
A worker's peak is one shard's rows (256 x example_length x 2 bytes as uint16, x 4 more as the int64 symbols the
coder takes: 26 MB at 10,240 symbols), never the corpus.
"""
import hashlib
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equalinfo.data.atomic import write_atomically
from equalinfo.data.packing import Example, iter_all_examples
from equalinfo.data.shards import INDEX, assemble, dataset_header, finished_shards, start_dataset, write_shard
from equalinfo.data.sources import DataError

__all__ = ["build_store", "open_store", "ExampleStore", "StoreRows", "STORE_KIND", "STORE_ROWS_PER_SHARD",
           "store_columns", "SIDES"]

STORE_KIND = "equalinfo-example-store"
STORE_ROWS_PER_SHARD = 1024  # examples per store shard: 20 MB files at the paper's 10,240 symbols
SIDES = ("train", "validation")
SUMMARY = "store.json"  # what a reader opens: rows, shard size, meta, identity (written last, once complete)
OPEN_SHARDS = 8  # store shards kept memory-mapped at once by a reader (a unit's rows come from many of them)


def store_columns(example_length):
    return {"symbols": ("uint16", (int(example_length),)), "position": ("int64", (len(POSITION),))}


POSITION = ("length", "group", "index", "document")  # the `position` column's four values per row


def store_meta(corpus_description, packing, side):
    """The meta a store records: what it was made from (module docstring)."""
    return {"kind": STORE_KIND, "side": side, "corpus": corpus_description,
            "packing": {key: packing[key] for key in ("group_size", "example_length", "validation_every")}}


def _read_summary(directory):
    try:
        summary = json.loads((Path(directory) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and isinstance(summary.get("meta"), dict) else None


class _SideWriter:
    """One side's store, written shard by shard as units are (data/shards.py write_shard: the shard's files, then
    its completion record; `assemble` writes the index once at the end): linear in the shards, where a ShardWriter
    rewrites its growing index after every shard. Rows of shards already finished (an interrupted pass) are
    skipped, not rewritten."""

    def __init__(self, directory, meta, length):
        self.directory, self.length = Path(directory), length
        if self.directory.is_dir() and _read_index_meta(self.directory) not in (None, meta):
            shutil.rmtree(self.directory)  # a store of another corpus or packing: made again
        self.header = dataset_header(store_columns(length), STORE_ROWS_PER_SHARD, meta, ())
        start_dataset(self.directory, self.header)
        self.done = set(finished_shards(self.directory, self.header))
        self.rows, self.filled = 0, 0
        self.symbols = np.zeros((STORE_ROWS_PER_SHARD, length), np.uint16)  # [R, example_length]
        self.position = np.zeros((STORE_ROWS_PER_SHARD, len(POSITION)), np.int64)  # [R, 4]
        self.n_symbols = 0

    def add(self, example):
        self.n_symbols += example.n_symbols
        number, self.rows = self.rows // STORE_ROWS_PER_SHARD, self.rows + 1
        if number in self.done:
            return
        row = self.filled
        self.symbols[row] = 0
        self.symbols[row, :example.n_symbols] = example.symbols
        self.position[row] = (example.n_symbols, example.group, example.index, example.document)
        self.filled += 1
        if self.filled == STORE_ROWS_PER_SHARD:
            self._flush(number)

    def _flush(self, number):
        write_shard(self.directory, self.header, number,
                    {"symbols": self.symbols[:self.filled], "position": self.position[:self.filled]})
        self.filled = 0

    def finish(self):
        """Write the last shard, the index, then the summary readers open (its presence: the store is complete)."""
        if self.filled:
            self._flush(self.rows // STORE_ROWS_PER_SHARD)
        index = assemble(self.directory, self.header, -(-self.rows // STORE_ROWS_PER_SHARD))
        summary = {"rows": self.rows, "rows_per_shard": STORE_ROWS_PER_SHARD, "n_symbols": self.n_symbols,
                   "columns": index["columns"], "meta": index["meta"],
                   "identity": hashlib.sha256((self.directory / INDEX).read_bytes()).hexdigest()[:12]}
        write_atomically(self.directory / SUMMARY, lambda stream: stream.write(
            (json.dumps(summary, sort_keys=True) + "\n").encode("utf-8")))


def _read_index_meta(directory):
    try:
        return json.loads((Path(directory) / INDEX).read_text())["meta"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_store(directory, documents, packing, corpus_description, log=None):
    """{side: ExampleStore} of `documents` (an iterable of bytes; read once) packed by `packing` {group_size,
    example_length, validation_every}, in directory/train and directory/validation. A finished store made from the
    same corpus and packing is reused as it is; a partial one is resumed (its finished shards are skipped, not
    rewritten); one made from anything else is replaced."""
    directory = Path(directory)
    length = int(packing["example_length"])
    metas = {side: store_meta(corpus_description, packing, side) for side in SIDES}
    if all((_read_summary(directory / side) or {}).get("meta") == metas[side] for side in SIDES):
        return {side: open_store(directory / side) for side in SIDES}  # finished: not read again
    for side in SIDES:
        (directory / side / SUMMARY).unlink(missing_ok=True)  # complete again only when both are written anew
    writers = {side: _SideWriter(directory / side, metas[side], length) for side in SIDES}
    for example in iter_all_examples(documents, packing["group_size"], length, packing["validation_every"]):
        writers[example.split].add(example)
    for writer in writers.values():
        writer.finish()
    if log:
        log(f"example store: {writers['train'].rows} train / {writers['validation'].rows} validation examples in "
            f"{directory}")
    return {side: open_store(directory / side) for side in SIDES}


class ExampleStore:
    """A finished store, read by row index (module docstring). It reads its small summary, not the index (whose
    size grows with the shards); shard files, named by their number, are opened when a row needs them."""

    def __init__(self, directory):
        self.directory = Path(directory)
        summary = _read_summary(self.directory)
        if summary is None or summary["meta"].get("kind") != STORE_KIND:
            raise DataError(f"{self.directory}: not a finished example store (no readable {SUMMARY}); run the "
                            f"command again to make it")
        self.summary, self.meta, self.side = summary, summary["meta"], summary["meta"]["side"]
        self.columns, self.rows_per_shard = summary["columns"], int(summary["rows_per_shard"])
        self.example_length = int(self.meta["packing"]["example_length"])
        self._open = OrderedDict()  # shard number -> {column: memory-mapped array}, at most OPEN_SHARDS
        self.rows_read = 0  # rows this reader has handed out (tests check what a unit reads)

    def __len__(self):
        return int(self.summary["rows"])

    @property
    def identity(self):
        """12 hex digits of the SHA-256 of the store's index (which holds every shard file's SHA-256): names what
        is derived from this store's content (train/repro.py StoredExamples's symbol files)."""
        return self.summary["identity"]

    @property
    def n_symbols(self):
        """Symbols in all the store's examples."""
        return int(self.summary["n_symbols"])

    def _shard(self, number):
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number]
        rows, arrays = min(self.rows_per_shard, len(self) - number * self.rows_per_shard), {}
        for name, spec in self.columns.items():
            path = self.directory / f"shard-{number:05d}.{name}.npy"
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise DataError(f"{path}: missing, corrupt or truncated store shard ({error})") from None
            if array.dtype.str != spec["dtype"] or array.shape != tuple([rows] + spec["shape"]):
                raise DataError(f"{path}: dtype {array.dtype.str} shape {array.shape}, not what {SUMMARY} says")
            arrays[name] = array
        self._open[number] = arrays
        if len(self._open) > OPEN_SHARDS:
            self._open.popitem(last=False)
        return arrays

    def examples(self, rows):
        """[Example] of the store rows `rows` (global indices), in that order; symbols int16 as iter_examples."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for the {len(self)} rows of {self.directory}")
        out = []
        for row in rows:
            arrays = self._shard(int(row) // self.rows_per_shard)
            local = int(row) % self.rows_per_shard
            length, group, index, document = (int(value) for value in arrays["position"][local])
            out.append(Example(np.array(arrays["symbols"][local, :length], dtype=np.int16), group, index, self.side,
                               document))
        self.rows_read += len(out)
        return out

    def lengths(self, rows):
        """int64 [len(rows)]: the symbols of each of `rows` (reads only the position column)."""
        per_shard = self.rows_per_shard
        return np.array([self._shard(int(row) // per_shard)["position"][int(row) % per_shard, 0] for row in rows],
                        dtype=np.int64)

    def iter_in_order(self, chunk=STORE_ROWS_PER_SHARD):
        """Every example in corpus order, a chunk at a time."""
        for start in range(0, len(self), chunk):
            yield from self.examples(np.arange(start, min(start + chunk, len(self))))


_OPENED = {}  # (directory, store.json's mtime) -> ExampleStore: a process reads a store's summary once


def open_store(directory):
    """The ExampleStore at `directory`, shared within this process (its summary is read once per change)."""
    directory = Path(directory)
    try:
        key = (os.fspath(directory.resolve()), (directory / SUMMARY).stat().st_mtime_ns)
    except OSError:
        raise DataError(f"{directory}: not a finished example store (no {SUMMARY})") from None
    if key not in _OPENED:
        for old in [old for old in _OPENED if old[0] == key[0]] + list(_OPENED)[:-3]:
            _OPENED.pop(old, None)  # a store rewritten since, and all but the last few opened
        _OPENED[key] = ExampleStore(directory)
    return _OPENED[key]


@dataclass(frozen=True, eq=False)
class StoreRows:
    """Some rows of a store, in a given order: what a unit carries instead of the rows themselves (the store's
    directory and the row indices, int64 [n]). Behaves as a read-only sequence of Examples: len, [i], [a:b] (another
    StoreRows), iteration (reading a chunk of rows at a time). `load()` gives the unit's coder input."""
    directory: str
    indices: np.ndarray

    def store(self):
        return open_store(self.directory)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return StoreRows(self.directory, self.indices[item])
        return self.store().examples([self.indices[item]])[0]

    def __iter__(self, chunk=256):
        for start in range(0, len(self.indices), chunk):
            yield from self.store().examples(self.indices[start:start + chunk])

    def n_symbols(self):
        return int(self.store().lengths(self.indices).sum())

    def load(self):
        """(symbols [int64 arrays], documents [int]) of these rows, in order: a ShardUnit's rows."""
        examples = self.store().examples(self.indices)
        return [np.asarray(e.symbols, np.int64) for e in examples], [e.document for e in examples]
