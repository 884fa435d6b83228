"""The corpus's packed examples on disk, written in one streaming pass, read back by row index: a corpus of any size
in bounded memory.

Why: the in-memory path (train/repro.py Examples) holds every packed example of both sides (2 bytes per symbol,
plus the documents while packing), and the driver ships each shard's rows to the unit that codes them. For a C4-sized
corpus neither fits. Here the corpus is read once, document by document (data/sources.py reads json.gz lazily, line
by line), packed group by group (data/packing.py iter_all_examples: one group of documents in memory at a time) and
appended to two stores, WORK/examples/train and WORK/examples/validation. A store is a dataset directory of
data/shards.py (atomic shard files, an index written last, resumable after an interruption), one row per example:

    symbols  uint16 [example_length]   the example's symbols (ids 0-256), padded with 0 after `length`
    length   int32  []                 its symbols (the last example of a group is shorter)
    group    int64  []                 its group and index in the group (data/packing.py Example)
    index    int64  []
    document int64  []                 the corpus index of the document holding its first symbol

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
coder takes: 26 MB at 10,240 symbols), never the corpus. A store opens its shard files lazily (memory-mapped, a few
at a time), so a store of 200,000 shards costs no more to open than one of 2.
"""
import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equalinfo.data.packing import Example, iter_all_examples
from equalinfo.data.shards import FORMAT, INDEX, ShardWriter
from equalinfo.data.sources import DataError

__all__ = ["build_store", "open_store", "ExampleStore", "StoreRows", "STORE_KIND", "STORE_ROWS_PER_SHARD",
           "store_columns", "SIDES"]

STORE_KIND = "equalinfo-example-store"
STORE_ROWS_PER_SHARD = 1024  # examples per store shard: 20 MB files at the paper's 10,240 symbols
SIDES = ("train", "validation")
OPEN_SHARDS = 8  # store shards kept memory-mapped at once by a reader (a unit's rows come from many of them)


def store_columns(example_length):
    return {"symbols": ("uint16", (int(example_length),)), "length": ("int32", ()), "group": ("int64", ()),
            "index": ("int64", ()), "document": ("int64", ())}


def store_meta(corpus_description, packing, side):
    """The meta a store records: what it was made from (module docstring)."""
    return {"kind": STORE_KIND, "side": side, "corpus": corpus_description,
            "packing": {key: packing[key] for key in ("group_size", "example_length", "validation_every")}}


def _existing_meta(directory):
    try:
        return json.loads((Path(directory) / INDEX).read_text())["meta"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _complete(directory):
    try:
        return json.loads((Path(directory) / INDEX).read_text())["complete"] is True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build_store(directory, documents, packing, corpus_description, log=None):
    """{side: ExampleStore} of `documents` (an iterable of bytes; read once) packed by `packing` {group_size,
    example_length, validation_every}, in directory/train and directory/validation. A finished store made from the
    same corpus and packing is reused; a partial one is resumed (the rows it holds are skipped, not rewritten); one
    made from anything else is replaced."""
    directory = Path(directory)
    length = int(packing["example_length"])
    columns = store_columns(length)
    if all(_existing_meta(directory / side) == store_meta(corpus_description, packing, side)
           and _complete(directory / side) for side in SIDES):
        return {side: open_store(directory / side) for side in SIDES}  # finished: not read again (no hashing)
    writers = {}
    for side in SIDES:
        meta = store_meta(corpus_description, packing, side)
        existing = _existing_meta(directory / side)
        writers[side] = ShardWriter(directory / side, columns, rows_per_shard=STORE_ROWS_PER_SHARD, meta=meta,
                                    total_columns=("length",), overwrite=existing is not None and existing != meta)
    if not all(writer.complete for writer in writers.values()):
        skip = {side: writer.rows_done for side, writer in writers.items()}
        seen = dict.fromkeys(SIDES, 0)
        for example in iter_all_examples(documents, packing["group_size"], length, packing["validation_every"]):
            side = example.split
            seen[side] += 1
            if seen[side] <= skip[side] or writers[side].complete:
                continue
            symbols = np.zeros(length, np.uint16)
            symbols[:example.n_symbols] = example.symbols
            writers[side].add(symbols=symbols, length=example.n_symbols, group=example.group, index=example.index,
                              document=example.document)
        for writer in writers.values():
            writer.finish()
        if log:
            log(f"example store: {seen['train']} train / {seen['validation']} validation examples in {directory}")
    return {side: open_store(directory / side) for side in SIDES}


class ExampleStore:
    """A finished store, read by row index (module docstring). Shard files are opened when a row needs them."""

    def __init__(self, directory):
        self.directory = Path(directory)
        try:
            index = json.loads((self.directory / INDEX).read_text())
        except OSError:
            raise DataError(f"{self.directory}: not an example store (no {INDEX})") from None
        except ValueError as error:
            raise DataError(f"{self.directory / INDEX}: unreadable index ({error})") from None
        meta = index.get("meta") if isinstance(index, dict) else None
        if index.get("format") != FORMAT or not isinstance(meta, dict) or meta.get("kind") != STORE_KIND:
            raise DataError(f"{self.directory}: not an example store")
        if not index.get("complete"):
            raise DataError(f"{self.directory}: the example store is not finished; run the command again to resume")
        self.index, self.meta, self.side = index, meta, meta["side"]
        self.example_length = int(meta["packing"]["example_length"])
        self._starts = np.cumsum([0] + [shard["rows"] for shard in index["shards"]])  # [shards + 1]
        self._open = OrderedDict()  # shard number -> {column: memory-mapped array}, at most OPEN_SHARDS
        self.rows_read = 0  # rows this reader has handed out (tests check what a unit reads)

    def __len__(self):
        return int(self.index["rows"])

    @property
    def identity(self):
        """12 hex digits of the SHA-256 of the store's index (which holds every shard file's SHA-256): names what
        is derived from this store's content (train/repro.py StoredExamples's symbol files)."""
        return hashlib.sha256((self.directory / INDEX).read_bytes()).hexdigest()[:12]

    @property
    def n_symbols(self):
        """Symbols in all the store's examples (its index's total of `length`)."""
        return int(self.index["totals"].get("length", 0))

    def _shard(self, number):
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number]
        shard, arrays = self.index["shards"][number], {}
        for name, spec in self.index["columns"].items():
            path = self.directory / shard["files"][name]
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise DataError(f"{path}: missing, corrupt or truncated store shard ({error})") from None
            if array.dtype.str != spec["dtype"] or array.shape != tuple([shard["rows"]] + spec["shape"]):
                raise DataError(f"{path}: dtype {array.dtype.str} shape {array.shape}, not what the index says")
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
        numbers = np.searchsorted(self._starts, rows, side="right") - 1
        out = []
        for row, number in zip(rows, numbers):
            arrays, local = self._shard(int(number)), int(row - self._starts[number])
            length = int(arrays["length"][local])
            out.append(Example(np.array(arrays["symbols"][local, :length], dtype=np.int16),
                               int(arrays["group"][local]), int(arrays["index"][local]), self.side,
                               int(arrays["document"][local])))
        self.rows_read += len(out)
        return out

    def lengths(self, rows):
        """int64 [len(rows)]: the symbols of each of `rows` (reads only the length column)."""
        rows = np.asarray(rows, dtype=np.int64)
        numbers = np.searchsorted(self._starts, rows, side="right") - 1
        return np.array([int(self._shard(int(n))["length"][int(r - self._starts[n])]) for r, n in zip(rows, numbers)],
                        dtype=np.int64)

    def iter_in_order(self, chunk=STORE_ROWS_PER_SHARD):
        """Every example in corpus order, a chunk at a time."""
        for start in range(0, len(self), chunk):
            yield from self.examples(np.arange(start, min(start + chunk, len(self))))


_OPENED = {}  # (directory, index mtime) -> ExampleStore: a process reads a store's index once


def open_store(directory):
    """The ExampleStore at `directory`, shared within this process (its index is read once per change)."""
    directory = Path(directory)
    try:
        key = (os.fspath(directory.resolve()), (directory / INDEX).stat().st_mtime_ns)
    except OSError:
        raise DataError(f"{directory}: not an example store (no {INDEX})") from None
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
