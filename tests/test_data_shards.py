"""Checks of data/shards.py: round trips, memory-mapped reads, interruption + resume = uninterrupted, bad datasets."""
import json
import os

import numpy as np
import pytest

from equalinfo.data import shards
from equalinfo.data.shards import DataError, Dataset, ShardWriter, token_columns

LENGTH = 6
META = {"method": "bytes", "parameters": {"sequence_length": LENGTH}, "m1_fingerprint": None}


def rows(n, seed=0):
    """n deterministic rows: tokens, weights (trailing padding weight 0) and byte counts."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        kept = int(rng.integers(1, LENGTH + 1))
        tokens = np.zeros(LENGTH, np.int32)
        tokens[:kept] = rng.integers(0, 65536, kept)
        weights = (np.arange(LENGTH) < kept).astype(np.float32)
        yield {"tokens": tokens, "weights": weights, "n_bytes": 10 * kept + i}


def build(directory, n=23, rows_per_shard=5, **kwargs):
    writer = ShardWriter(directory, token_columns(LENGTH), rows_per_shard, META, ("n_bytes", "weights"), **kwargs)
    for row in list(rows(n))[writer.rows_done:]:
        writer.add(**row)
    return writer.finish()


def files(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def test_round_trip_and_memory_map(tmp_path):
    index = build(tmp_path)
    expected = list(rows(23))
    dataset = Dataset(tmp_path, verify=True)
    assert len(dataset) == 23 and dataset.complete and dataset.meta == META
    assert index["rows"] == 23 and [shard["rows"] for shard in index["shards"]] == [5, 5, 5, 5, 3]
    assert dataset.totals == {"n_bytes": sum(r["n_bytes"] for r in expected),
                              "weights": float(sum(r["weights"].sum() for r in expected))}
    for i in (0, 4, 5, 22):
        for name in ("tokens", "weights", "n_bytes"):
            np.testing.assert_array_equal(dataset[i][name], expected[i][name])
    np.testing.assert_array_equal(dataset.column("tokens"), np.stack([r["tokens"] for r in expected]))
    for shard in dataset.shard_arrays():
        assert isinstance(shard["tokens"], np.memmap) and shard["tokens"].shape[1:] == (LENGTH,)
    # every file is a plain .npy any reader can memory-map
    raw = np.load(tmp_path / "shard-00001.tokens.npy", mmap_mode="r", allow_pickle=False)
    assert raw.dtype == np.int32 and raw.shape == (5, LENGTH)
    np.testing.assert_array_equal(raw[2], expected[7]["tokens"])
    assert json.loads((tmp_path / "index.json").read_text())["meta"] == META


def test_batches_in_order_and_shuffled(tmp_path):
    build(tmp_path)
    dataset = Dataset(tmp_path)
    ordered = np.concatenate([batch["n_bytes"] for batch in dataset.iter_batches(4)])
    np.testing.assert_array_equal(ordered, [r["n_bytes"] for r in rows(23)])
    shuffled = [batch["n_bytes"] for batch in dataset.iter_batches(4, seed=3)]
    again = [batch["n_bytes"] for batch in dataset.iter_batches(4, seed=3)]
    other = np.concatenate([batch["n_bytes"] for batch in dataset.iter_batches(4, seed=4)])
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, again))
    flat = np.concatenate(shuffled)
    assert sorted(flat) == sorted(ordered) and not np.array_equal(flat, ordered) and not np.array_equal(flat, other)
    batch = next(dataset.iter_batches(4, seed=3, columns=["tokens", "n_bytes"]))
    np.testing.assert_array_equal(batch["tokens"], np.stack([dataset[i]["tokens"] for i in
                                                             np.random.default_rng([3, 0]).permutation(23)[:4]]))
    assert len(list(dataset.iter_batches(4, drop_last=True))) == 5


def test_interrupted_build_resumes_to_identical_files(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    build(reference)

    # Crash while writing: the 4th index write fails after shard 2's files are in place (so they are not listed).
    interrupted = tmp_path / "interrupted"
    real_write_index, calls = shards._write_index, []

    def crashing_write_index(directory, index):
        calls.append(index["rows"])
        if len(calls) == 4:
            raise KeyboardInterrupt("simulated crash")
        real_write_index(directory, index)

    monkeypatch.setattr(shards, "_write_index", crashing_write_index)
    with pytest.raises(KeyboardInterrupt):
        build(interrupted)
    monkeypatch.setattr(shards, "_write_index", real_write_index)
    assert shards.rows_done(interrupted) == 10 and not shards.is_complete(interrupted)
    assert (interrupted / "shard-00002.tokens.npy").exists()  # written, but not in the index
    (interrupted / ".tmp-leftover").write_bytes(b"half a file")
    with pytest.raises(DataError, match="not finished"):
        Dataset(interrupted)

    writer = ShardWriter(interrupted, token_columns(LENGTH), 5, META, ("n_bytes", "weights"))
    assert writer.rows_done == 10
    for row in list(rows(23))[writer.rows_done:]:
        writer.add(**row)
    writer.finish()
    assert files(interrupted) == files(reference)

    # Opening a writer on the finished dataset changes nothing and accepts no rows.
    writer = ShardWriter(interrupted, token_columns(LENGTH), 5, META, ("n_bytes", "weights"))
    assert writer.complete and writer.rows_done == 23
    with pytest.raises(DataError, match="already complete"):
        writer.add(**next(rows(1)))
    writer.finish()
    assert files(interrupted) == files(reference)


def test_resume_refuses_other_parameters(tmp_path):
    build(tmp_path, n=7)
    with pytest.raises(DataError, match="different meta"):
        ShardWriter(tmp_path, token_columns(LENGTH), 5, {"method": "gzip"}, ("n_bytes", "weights"))
    with pytest.raises(DataError, match="different rows_per_shard"):
        ShardWriter(tmp_path, token_columns(LENGTH), 4, META, ("n_bytes", "weights"))
    with pytest.raises(DataError, match="different columns"):
        ShardWriter(tmp_path, token_columns(LENGTH + 1), 5, META, ("n_bytes", "weights"))
    writer = ShardWriter(tmp_path, token_columns(LENGTH), 4, META, overwrite=True)
    assert writer.rows_done == 0 and not list(tmp_path.glob("shard-*"))


def test_rejects_bad_rows(tmp_path):
    writer = ShardWriter(tmp_path, token_columns(LENGTH, token_dtype="uint16"), 5)
    row = next(rows(1))
    with pytest.raises(ValueError, match="do not fit"):
        writer.add(**dict(row, tokens=np.full(LENGTH, 70000)))
    with pytest.raises(ValueError, match="rows of shape"):
        writer.add(**dict(row, weights=np.ones(LENGTH + 1)))
    with pytest.raises(ValueError, match="expected columns"):
        writer.add(tokens=row["tokens"])
    with pytest.raises(ValueError, match="JSON"):
        ShardWriter(tmp_path / "x", token_columns(LENGTH), meta={"bad": object()})


def test_empty_dataset(tmp_path):
    ShardWriter(tmp_path, token_columns(LENGTH)).finish()
    dataset = Dataset(tmp_path, verify=True)
    assert len(dataset) == 0 and list(dataset.iter_batches(3)) == []


@pytest.mark.parametrize("damage, message", [
    ("truncate", "corrupt or truncated|truncated"),
    ("extra", "extra data"),
    ("flip", "SHA-256"),
    ("delete", "shard file missing"),
    ("dtype", "dtype <i8, the index says <i4"),
    ("rows", r"shape \(4, 6\), the index says \(5, 6\)"),
    ("index_rows", "says 24 rows, its shards hold 23"),
    ("index_json", "not valid JSON"),
    ("no_index", "no index.json"),
    ("version", "format version 99"),
])
def test_damaged_dataset_detected(tmp_path, damage, message):
    build(tmp_path)
    shard = tmp_path / "shard-00001.tokens.npy"
    index_path = tmp_path / "index.json"
    index = json.loads(index_path.read_text())
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-7])
    elif damage == "extra":
        shard.write_bytes(shard.read_bytes() + b"\0" * 8)
    elif damage == "flip":
        data = bytearray(shard.read_bytes())
        data[-3] ^= 1
        shard.write_bytes(bytes(data))
    elif damage == "delete":
        shard.unlink()
    elif damage == "dtype":
        np.save(shard, np.load(shard).astype(np.int64))
    elif damage == "rows":
        np.save(shard, np.load(shard)[:4])
    elif damage == "index_rows":
        index_path.write_text(json.dumps(dict(index, rows=24)))
    elif damage == "index_json":
        index_path.write_text(index_path.read_text()[:-20])
    elif damage == "no_index":
        index_path.unlink()
    elif damage == "version":
        index_path.write_text(json.dumps(dict(index, version=99)))
    with pytest.raises(DataError, match=message):
        Dataset(tmp_path, verify=True)
    if damage == "flip":
        Dataset(tmp_path)  # structure is fine: only the hash check sees flipped bytes
        with pytest.raises(DataError, match="SHA-256"):  # and a resumed build refuses to continue on top of it
            ShardWriter(tmp_path, token_columns(LENGTH), 5, META, ("n_bytes", "weights"))


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="no such dataset directory"):
        Dataset(tmp_path / "nope")
    assert shards.rows_done(tmp_path / "nope") == 0
