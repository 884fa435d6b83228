"""Datasets on disk: fixed-length rows in .npy shards, read back memory-mapped, with a small JSON index.

Layout of a dataset directory:
    index.json                 the index (below), always written last
    shard-00000.tokens.npy     one .npy file per shard and column: column `tokens` of shard 0, [rows, *shape]
    shard-00000.weights.npy
    shard-00000.n_bytes.npy    a per-row scalar column is [rows]
    shard-00001.tokens.npy ...
Columns are declared once, as name -> (dtype, per-row shape), e.g. `token_columns(512)`:
    tokens  int32 [n, 512]    M2 tokens, trimmed or padded
    weights float32 [n, 512]  loss weights (0 on padding)
    n_bytes int64 [n]         bytes of text the row covers
Every shard holds `rows_per_shard` rows except the last. Files are plain .npy (np.save with allow_pickle=False), so
`np.load(path, mmap_mode="r", allow_pickle=False)` reads any of them; nothing is pickled.

index.json (keys sorted, deterministic): {"format": "equalinfo-dataset", "version": 1, "complete": bool,
"columns": {name: {"dtype": "<i4", "shape": [512]}}, "rows_per_shard": R, "meta": <caller's JSON: method,
parameters, M1 fingerprint, source, ...>, "total_columns": [names summed], "rows": total rows,
"totals": {name: sum over all rows}, "shards": [{"rows": n, "files": {name: file}, "sha256": {name: hex},
"totals": {name: sum}}]}. Totals are summed per shard and then over shards in order, so they do not depend on
where a build was interrupted; e.g. totals of n_bytes and weights give "bytes covered" and "tokens kept".

Writing is atomic and resumable. Each shard file is written to a temporary file in the directory, flushed, fsynced
and moved into place with os.replace; the index, rewritten after every shard, goes the same way and last, so it only
ever lists shards that are complete on disk. A `ShardWriter` opened on a directory that holds a partial build with
the same columns, rows_per_shard, total_columns and meta continues after its last complete shard: the caller asks
`writer.rows_done` and feeds only the rows after those (the rows must come in a deterministic order). The finished
dataset (shards and index) is byte-identical to an uninterrupted build; stray temporary or unlisted shard files left
by a crash are removed when the build finishes. A directory built with other parameters is refused (DataError)
unless `overwrite=True`.

Shards may also be written one by one, by independent units in any order (train/build.py, train/executors.py):
`start_dataset` writes (or checks) the empty index, `write_shard` writes shard k's files and then its completion
record shard-0000k.done.json, and `assemble` turns the records into the very index a ShardWriter writes for the same
rows and removes them; the finished directory is the same, byte for byte.

Reading (`Dataset`) checks, cheaply, everything but the content: the index's format and version, that the build is
complete, every file's presence, .npy header, dtype, shape, row count and exact file size (truncation). `verify()`
(or `Dataset(..., verify=True)`) also checks every file's SHA-256 (flipped bytes). `open_dataset`, which every
command reads datasets through, verifies by default: a flipped byte must refuse to train rather than train silently
on other data (hashing reads each shard once, a small share of what training reads). All failures
raise DataError.
"""
import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from equalinfo.data.atomic import write_atomically
from equalinfo.data.sources import DataError

__all__ = ["ShardWriter", "Dataset", "open_dataset", "rows_done", "is_complete", "token_columns", "FORMAT",
           "VERSION", "INDEX", "dataset_header", "write_shard", "finished_shards", "start_dataset",
           "assemble"]

FORMAT = "equalinfo-dataset"
VERSION = 1
INDEX = "index.json"
ROWS_PER_SHARD = 1024
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_OURS = re.compile(r"^(shard-\d{5,}\.[A-Za-z0-9_]+\.npy|shard-\d{5,}\.done\.json|\.tmp-.*)$")
DIE_AFTER_FIRST_FILE = "EQUALINFO_TEST_DIE_MID_SHARD"  # a test hook: see write_shard


def token_columns(sequence_length, token_dtype="int32", weight_dtype="float32"):
    """The usual M2 dataset layout: tokens [n, L], loss weights [n, L] and bytes covered [n]."""
    return {"tokens": (token_dtype, (sequence_length,)), "weights": (weight_dtype, (sequence_length,)),
            "n_bytes": ("int64", ())}


def _normalise_columns(columns):
    if not columns:
        raise ValueError("a dataset needs at least one column")
    result = {}
    for name, spec in columns.items():
        if not _NAME.match(name):
            raise ValueError(f"column name {name!r} must be letters, digits and underscores")
        dtype, shape = spec
        dtype = np.dtype(dtype)
        if dtype.kind not in "biuf":
            raise ValueError(f"column {name!r}: dtype {dtype} is not a boolean, integer or float type")
        shape = [int(size) for size in shape]
        if any(size < 1 for size in shape):
            raise ValueError(f"column {name!r}: every dimension of a row must be at least 1, got {shape}")
        result[name] = {"dtype": dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str, "shape": shape}
    return result


def _json_roundtrip(value, what):
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON-serialisable (no NaN): {error}") from None


def _index_bytes(index):
    return (json.dumps(index, sort_keys=True, indent=1, allow_nan=False) + "\n").encode("utf-8")


def _atomic_write(path, data):
    """Write bytes to `path` so that it holds its old content or all of `data`, never a part."""
    write_atomically(path, lambda stream: stream.write(data))


def _write_index(directory, index):
    """Write index.json atomically (a separate function so tests can simulate a crash before it)."""
    _atomic_write(Path(directory) / INDEX, _index_bytes(index))


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _total(array):
    """Sum of a column as a JSON number: exact int for integers and booleans, float64 sum for floats."""
    if array.dtype.kind == "f":
        return float(np.sum(array, dtype=np.float64))
    return int(np.sum(array, dtype=np.int64 if array.dtype.kind in "bi" else np.uint64))


def _read_index(directory):
    """The parsed index of `directory`, or None when there is none; DataError when it is unreadable or foreign."""
    path = Path(directory) / INDEX
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: corrupt dataset index (not valid JSON: {error})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{path}: not an equalinfo dataset index (format {index.get('format')!r})"
                        if isinstance(index, dict) else f"{path}: corrupt dataset index (not a JSON object)")
    if index.get("version") != VERSION:
        raise DataError(f"{path}: dataset format version {index.get('version')!r}; this code reads version {VERSION}")
    required = ("complete", "columns", "rows_per_shard", "meta", "total_columns", "rows", "totals", "shards")
    missing = [key for key in required if key not in index]
    if missing:
        raise DataError(f"{path}: corrupt dataset index (missing {', '.join(missing)})")
    return index


def rows_done(directory):
    """Rows already on disk in complete shards of a (partial or finished) dataset; 0 when there is none yet."""
    index = _read_index(directory) if Path(directory).is_dir() else None
    return 0 if index is None else int(index["rows"])


def is_complete(directory):
    """Whether `directory` holds a finished dataset (its index says complete)."""
    index = _read_index(directory) if Path(directory).is_dir() else None
    return bool(index and index["complete"])


class ShardWriter:
    """Builds (or resumes building) a dataset directory; see the module docstring.

    writer = ShardWriter(out, token_columns(512), meta={...}, total_columns=("n_bytes", "weights"))
    for example in itertools.islice(examples, writer.rows_done, None):   # skip what a previous run wrote
        writer.add(tokens=..., weights=..., n_bytes=...)
    writer.finish()
    """

    def __init__(self, directory, columns, rows_per_shard=ROWS_PER_SHARD, meta=None, total_columns=(),
                 overwrite=False, verify=True):
        if not isinstance(rows_per_shard, int) or rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be a positive integer, got {rows_per_shard!r}")
        self.directory = Path(directory)
        self.columns = _normalise_columns(columns)
        unknown = [name for name in total_columns if name not in self.columns]
        if unknown:
            raise ValueError(f"total_columns names unknown columns: {unknown}")
        fresh = {"format": FORMAT, "version": VERSION, "complete": False, "columns": self.columns,
                 "rows_per_shard": rows_per_shard, "meta": _json_roundtrip(meta or {}, "meta"),
                 "total_columns": sorted(total_columns), "rows": 0, "totals": {}, "shards": []}
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = _read_index(self.directory)
        if existing is not None and overwrite:
            existing = None
            self._remove_ours(keep=())
        if existing is None:
            self.index = fresh
            _write_index(self.directory, self.index)
        else:
            for key in ("columns", "rows_per_shard", "meta", "total_columns"):
                if existing[key] != fresh[key]:
                    raise DataError(f"{self.directory}: a dataset built with a different {key} is already there "
                                    f"({existing[key]!r}, asked for {fresh[key]!r}); use another directory or "
                                    f"overwrite=True")
            self.index = existing
            if verify:
                Dataset(self.directory, verify=True, allow_incomplete=True)
        self.rows_per_shard = rows_per_shard
        self._buffer = {name: np.zeros([rows_per_shard] + spec["shape"], dtype=spec["dtype"])
                        for name, spec in self.columns.items()}
        self._filled = 0

    @property
    def rows_done(self):
        """Rows that were already on disk when this writer opened, plus the shards it has written since."""
        return int(self.index["rows"])

    @property
    def rows(self):
        """Rows accepted so far: on disk plus buffered."""
        return self.rows_done + self._filled

    @property
    def complete(self):
        return bool(self.index["complete"])

    def add(self, **row):
        """Append one row: one value per column, of the column's row shape (a scalar for shape ())."""
        self.add_batch(**{name: np.asarray(value)[None] for name, value in row.items()})

    def add_batch(self, **arrays):
        """Append rows: one array per column, [k, *row shape], the same k for all."""
        if self.complete:
            raise DataError(f"{self.directory}: the dataset is already complete ({self.rows_done} rows)")
        if set(arrays) != set(self.columns):
            raise ValueError(f"expected columns {sorted(self.columns)}, got {sorted(arrays)}")
        arrays = {name: np.asarray(value) for name, value in arrays.items()}
        counts = {len(value) if value.ndim else -1 for value in arrays.values()}
        if len(counts) != 1 or -1 in counts:
            raise ValueError(f"every column needs the same leading number of rows, got "
                             f"{ {name: value.shape for name, value in arrays.items()} }")
        for name, value in arrays.items():
            spec = self.columns[name]
            if list(value.shape[1:]) != spec["shape"]:
                raise ValueError(f"column {name!r}: rows of shape {spec['shape']}, got {list(value.shape[1:])}")
            _check_values(name, value, np.dtype(spec["dtype"]))
        count, start = counts.pop(), 0
        while start < count:
            take = min(count - start, self.rows_per_shard - self._filled)
            for name, value in arrays.items():
                self._buffer[name][self._filled:self._filled + take] = value[start:start + take]
            self._filled += take
            start += take
            if self._filled == self.rows_per_shard:
                self._flush()

    def _flush(self):
        """Write the buffered rows as the next shard (column files first, then the index that lists them)."""
        number = len(self.index["shards"])
        arrays = {name: self._buffer[name][:self._filled] for name in self.columns}
        shard = _write_shard_files(self.directory, number, arrays, self.index["total_columns"])
        index = dict(self.index, shards=self.index["shards"] + [shard], rows=self.index["rows"] + self._filled)
        index["totals"] = _sum_totals(index)
        _write_index(self.directory, index)
        self.index = index
        self._filled = 0

    def finish(self):
        """Write the last (partial) shard, mark the index complete, remove stray files; returns the index."""
        if not self.complete:
            if self._filled:
                self._flush()
            index = dict(self.index, complete=True)
            _write_index(self.directory, index)
            self.index = index
        self._remove_ours(keep={file for shard in self.index["shards"] for file in shard["files"].values()})
        return self.index

    def _remove_ours(self, keep):
        for path in self.directory.iterdir():
            if path.name == INDEX or path.name in keep or not _OURS.match(path.name):
                continue
            path.unlink()


def _write_shard_files(directory, number, arrays, total_columns):
    """Write one shard's column files atomically (sorted by name); returns its index entry."""
    shard = {"rows": None, "files": {}, "sha256": {}, "totals": {}}
    for name in sorted(arrays):
        array = arrays[name]
        shard["rows"] = int(len(array))
        data = _npy_bytes(array)
        file = f"shard-{number:05d}.{name}.npy"
        _atomic_write(Path(directory) / file, data)
        _maybe_die_for_a_test(directory)
        shard["files"][name] = file
        shard["sha256"][name] = hashlib.sha256(data).hexdigest()
        if name in total_columns:
            shard["totals"][name] = _total(array)
    return shard


def _maybe_die_for_a_test(directory):
    """Test hook (tests/test_executors.py): with DIE_AFTER_FIRST_FILE set to a marker path, the first process to
    create the marker exits at once, mid-shard, as a worker killed by the system would; every later one goes on."""
    marker = os.environ.get(DIE_AFTER_FIRST_FILE)
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(70)


# Shards written one by one, by independent units (train/build.py, train/executors.py). The dataset's header (columns,
# rows_per_shard, meta, total_columns) is fixed before any unit runs; a unit writes shard k's files and then, last and
# atomically, its completion record shard-0000k.done.json ({"unit": header's id, "number": k, "shard": entry});
# `assemble` turns the records into the same index a ShardWriter writes and removes them. Units never touch the index,
# so any number of them may run at once, in any order, on any machine that sees the directory.

def dataset_header(columns, rows_per_shard, meta, total_columns):
    """The part of the index fixed before any row exists (what ShardWriter compares on resume)."""
    return {"columns": _normalise_columns(columns), "rows_per_shard": int(rows_per_shard),
            "meta": _json_roundtrip(meta or {}, "meta"), "total_columns": sorted(total_columns)}


def header_id(header):
    """A short hash of a header: a completion record written for another build is never taken for this one."""
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _record_path(directory, number):
    return Path(directory) / f"shard-{number:05d}.done.json"


def write_shard(directory, header, number, arrays):
    """Write shard `number` (arrays {column: [rows, ...]}) and then its completion record; returns the entry."""
    shard = _write_shard_files(directory, number, arrays, header["total_columns"])
    record = {"unit": header_id(header), "number": int(number), "shard": shard}
    _atomic_write(_record_path(directory, number), (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
    return shard


def finished_shards(directory, header):
    """{number: index entry} of the shards already on disk: those a (partial) index lists and those with a valid
    completion record of this header."""
    directory = Path(directory)
    index = _read_index(directory) if directory.is_dir() else None
    done = dict(enumerate(index["shards"])) if index is not None else {}
    for path in directory.glob("shard-*.done.json") if directory.is_dir() else ():
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # unreadable: the unit runs again
        if isinstance(record, dict) and record.get("unit") == header_id(header):
            done[int(record["number"])] = record["shard"]
    return done


def start_dataset(directory, header):
    """Make `directory` ready for units: a fresh, empty index, or check the one there (same header, or DataError).
    Returns True when the dataset is already complete."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    existing = _read_index(directory)
    if existing is None:
        _write_index(directory, {"format": FORMAT, "version": VERSION, "complete": False, **header, "rows": 0,
                                 "totals": {}, "shards": []})
        return False
    for key, value in header.items():
        if existing[key] != value:
            raise DataError(f"{directory}: a dataset built with a different {key} is already there "
                            f"({existing[key]!r}, asked for {value!r}); use another directory")
    return bool(existing["complete"])


def assemble(directory, header, n_shards):
    """Write the complete index of shards 0..n_shards-1 from their records (or a partial index's entries), exactly
    what a ShardWriter writes for the same rows, then remove the records and stray files."""
    done = finished_shards(directory, header)
    missing = [number for number in range(n_shards) if number not in done]
    if missing:
        raise DataError(f"{directory}: shards {missing} are not finished; run the build again to make them")
    shards = [done[number] for number in range(n_shards)]
    index = {"format": FORMAT, "version": VERSION, "complete": True, **header, "shards": shards,
             "rows": sum(shard["rows"] for shard in shards)}
    index["totals"] = _sum_totals(index)
    _write_index(directory, index)
    keep = {file for shard in shards for file in shard["files"].values()}
    for path in Path(directory).iterdir():
        if path.name != INDEX and path.name not in keep and _OURS.match(path.name):
            path.unlink()
    return index


def _sum_totals(index):
    totals = {}
    for name in index["total_columns"]:
        values = [shard["totals"][name] for shard in index["shards"]]
        totals[name] = sum(values) if values else 0
    return totals


def _check_values(name, value, dtype):
    """Refuse values the column's dtype would silently change (overflowing integers, fractional floats to ints)."""
    if value.size == 0 or value.dtype == dtype:
        return
    if value.dtype.kind == "f" and dtype.kind in "iub":
        if not np.all(np.isfinite(value)) or not np.all(value == np.round(value)):
            raise ValueError(f"column {name!r}: non-integral values for dtype {dtype}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if value.min() < info.min or value.max() > info.max:
            raise ValueError(f"column {name!r}: values {value.min()}..{value.max()} do not fit {dtype}")


class Dataset:
    """A finished dataset directory, memory-mapped. Checks structure on open; `verify` also checks content hashes.

    len(dataset) rows; dataset.meta (the caller's metadata), dataset.totals, dataset.columns;
    dataset[i] -> {column: row}; dataset.column(name) -> all rows (copied into memory);
    dataset.iter_batches(batch_size, seed=...) -> {column: [b, ...]} in order or in a seeded random order.
    """

    def __init__(self, directory, verify=False, allow_incomplete=False):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DataError(f"{self.directory}: no such dataset directory")
        index = _read_index(self.directory)
        if index is None:
            raise DataError(f"{self.directory}: not a dataset (no {INDEX})")
        if not index["complete"] and not allow_incomplete:
            raise DataError(f"{self.directory}: the dataset build is not finished ({index['rows']} rows so far); "
                            f"run the build again to resume it")
        self.index = index
        self.columns = index["columns"]
        self._shards = [self._open_shard(number, shard) for number, shard in enumerate(index["shards"])]
        counted = sum(shard["rows"] for shard in index["shards"])
        if counted != index["rows"]:
            raise DataError(f"{self.directory / INDEX}: inconsistent index: says {index['rows']} rows, its shards "
                            f"hold {counted}")
        self._starts = np.cumsum([0] + [shard["rows"] for shard in index["shards"]])
        if verify:
            self.verify()

    def _open_shard(self, number, shard):
        arrays = {}
        for name, spec in self.columns.items():
            file = shard["files"].get(name) if isinstance(shard.get("files"), dict) else None
            if file is None:
                raise DataError(f"{self.directory / INDEX}: shard {number} lists no file for column {name!r}")
            path = self.directory / file
            if not path.is_file():
                raise DataError(f"{path}: shard file missing")
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise DataError(f"{path}: corrupt or truncated shard ({error})") from None
            if array.dtype.str != spec["dtype"]:
                raise DataError(f"{path}: dtype {array.dtype.str}, the index says {spec['dtype']}")
            expected = tuple([shard["rows"]] + spec["shape"])
            if array.shape != expected:
                raise DataError(f"{path}: shape {array.shape}, the index says {expected} "
                                f"({shard['rows']} rows of {spec['shape']})")
            size = path.stat().st_size
            if isinstance(array, np.memmap) and size != array.offset + array.nbytes:
                raise DataError(f"{path}: file is {size} bytes, expected {array.offset + array.nbytes} "
                                f"(truncated or extra data)")
            arrays[name] = array
        return arrays

    def verify(self):
        """Check every shard file's SHA-256 against the index (reads all data); DataError on a mismatch."""
        for shard in self.index["shards"]:
            for name, file in shard["files"].items():
                expected = shard.get("sha256", {}).get(name) if isinstance(shard.get("sha256"), dict) else None
                if expected is None:
                    raise DataError(f"{self.directory / INDEX}: no SHA-256 for {file}")
                digest = hashlib.sha256()
                with open(self.directory / file, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                if digest.hexdigest() != expected:
                    raise DataError(f"{self.directory / file}: corrupt shard (SHA-256 differs from the index)")
        return True

    def __len__(self):
        return int(self.index["rows"])

    @property
    def meta(self):
        return self.index["meta"]

    @property
    def totals(self):
        return self.index["totals"]

    @property
    def complete(self):
        return bool(self.index["complete"])

    def shard_arrays(self):
        """[{column: memory-mapped array [rows, ...]}] per shard, in order."""
        return list(self._shards)

    def __getitem__(self, row):
        row = int(row)
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range for {len(self)} rows")
        number = int(np.searchsorted(self._starts, row, side="right")) - 1
        local = row - int(self._starts[number])
        return {name: np.array(array[local]) for name, array in self._shards[number].items()}

    def take(self, rows, columns=None):
        """{column: array [len(rows), ...]} of the given global row indices, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} rows")
        columns = list(self.columns) if columns is None else list(columns)
        numbers = np.searchsorted(self._starts, rows, side="right") - 1
        out = {name: np.empty([len(rows)] + self.columns[name]["shape"], dtype=self.columns[name]["dtype"])
               for name in columns}
        for number in np.unique(numbers):
            mask = numbers == number
            local = rows[mask] - self._starts[number]
            for name in columns:
                out[name][mask] = self._shards[number][name][local]
        return out

    def column(self, name):
        """All rows of one column, concatenated into memory [n, ...]."""
        return self.take(np.arange(len(self)), [name])[name]

    def iter_batches(self, batch_size, seed=None, epoch=0, columns=None, drop_last=False):
        """Batches {column: [b, ...]}: rows in order, or shuffled by a permutation drawn from (seed, epoch)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        order = np.arange(len(self)) if seed is None else np.random.default_rng([seed, epoch]).permutation(len(self))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            if drop_last and len(rows) < batch_size:
                return
            yield self.take(rows, columns)


def open_dataset(directory, verify=True):
    """A finished dataset (see Dataset), its shards checked against their SHA-256 unless verify=False."""
    return Dataset(directory, verify=verify)
