"""The corpus as a stream (data/example_store.py, train/repro.py StoredExamples): a json.gz corpus packed in one
pass into an on-disk store gives the in-memory path's rows in the same order, so the datasets are byte-identical;
a unit carries its rows' indices (never more than its shard) and reads them where it runs; a corrupt or truncated
json.gz shard in the stream is one error naming the file and the line.
"""
import copy
import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from helpers import english_text
from equalinfo.data import example_store, shards
from equalinfo.data.example_store import StoreRows, build_store, open_store
from equalinfo.data.sources import DataError
from equalinfo.train import build, executors, repro

from test_executors import REDUCED, ROWS, files_of, without_timings

PACKING = REDUCED["packing"]


def write_shards(directory, n_files=3, docs_per_file=7):
    """C4-style shards: c4-0000k.json.gz, one {"text", "url"} object per line, documents of varied lengths."""
    text, position = english_text(60_000).decode("utf-8"), 0
    directory.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        lines = []
        for d in range(docs_per_file):
            size = 120 + 97 * ((k * docs_per_file + d) % 9)
            lines.append(json.dumps({"text": text[position:position + size], "url": f"test:{k}.{d}"}))
            position += size
        with gzip.open(directory / f"c4-{k:05d}.json.gz", "wt", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("c4"))


def pipeline(out, corpus, stream, executor=None):
    return repro.Pipeline(copy.deepcopy(REDUCED), out, "ref", str(corpus), log=lambda text: None, executor=executor,
                          stream=stream)


def same_examples(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.group, x.index, x.split, x.document) == (y.group, y.index, y.split, y.document)
        assert x.symbols.dtype == y.symbols.dtype and np.array_equal(x.symbols, y.symbols)


def test_the_store_gives_the_in_memory_rows_in_the_same_order(shards_dir, tmp_path):
    held = pipeline(tmp_path / "memory", shards_dir, "off").examples()
    stored = pipeline(tmp_path / "stream", shards_dir, "on").examples()
    assert isinstance(held, repro.Examples) and isinstance(stored, repro.StoredExamples)
    assert len(held.train) > 10 and len(held.validation) > 3
    same_examples(held.train, stored.train)  # the shuffled train side: the same permutation
    same_examples(held.validation, stored.validation)
    same_examples(held.validation_rows(5), stored.validation_rows(5))  # the seeded draw
    same_examples(held.train[:7], stored.train[:7])
    assert np.array_equal(held.train_symbols(), stored.train_symbols())
    assert np.array_equal(held.validation_symbols(), stored.validation_symbols())
    assert np.array_equal(held.unigram_counts(), stored.unigram_counts())
    assert list(held.train_documents()) == list(stored.train_documents())


def test_streaming_build_is_byte_identical_to_the_in_memory_build(shards_dir, tmp_path, monkeypatch):
    """Every dataset of the reduced preset (Bytes, GZip, Equal-Info with M1 at v=256 and v=65k), shards of ROWS rows:
    the in-memory build in-process, the streamed one on a pool of 2 workers that read their rows from the store."""
    monkeypatch.setattr(build, "ROWS_PER_SHARD", ROWS)
    built = {}
    for stream, executor in (("off", executors.InProcess()), ("on", executors.ProcessPool(2))):
        run = pipeline(tmp_path / stream, shards_dir, stream, executor)
        examples = run.examples()
        datasets, skipped = run.build_datasets(examples, run.train_m1(examples))
        assert not skipped and datasets
        built[stream] = files_of(tmp_path / stream / "datasets")
    assert (tmp_path / "on" / "examples" / "train" / "index.json").is_file()
    assert built["on"] == built["off"]


def test_a_unit_holds_its_rows_indices_and_reads_no_more_than_its_shard(shards_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "ROWS_PER_SHARD", ROWS)
    run = pipeline(tmp_path, shards_dir, "on")
    examples = run.examples()
    rows = examples.train[:5]
    assert isinstance(rows, StoreRows)
    coder = build.make_coder(build.CoderSpec("bytes"), None)
    target = build.target_for(tmp_path / "bytes", coder, 64, {"label": "bytes"})
    units = build.shard_units("bytes", [target], rows, 64)
    assert [len(unit.rows) for unit in units] == [2, 2, 1]
    store = open_store(rows.directory)
    for unit in units:
        assert unit.symbols is None and unit.documents is None  # indices only: the rows stay in the store
        assert len(pickle.dumps(unit)) < 4096  # what travels to a worker, whatever the example length
        assert unit.weight == sum(len(e.symbols) for e in unit.rows)
        before = store.rows_read
        build.run_shard_unit({"coders": {"bytes": build.CoderSpec("bytes")}}, unit)
        assert store.rows_read - before == len(unit.rows) <= ROWS  # a unit reads its shard's rows, no more
    dataset = build.finish_dataset(target, len(rows))
    expected = [np.asarray(e.symbols) for e in examples.train[:5]]
    assert [int(n) for n in dataset.column("n_bytes")] == [len(e) for e in expected]


def test_a_partial_store_is_resumed_to_the_same_bytes(shards_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(example_store, "STORE_ROWS_PER_SHARD", 3)
    corpus = repro.open_corpus(str(shards_dir))
    build_store(tmp_path / "whole", corpus, PACKING, corpus.describe())

    def interrupted():
        for number, document in enumerate(corpus):
            if number == 15:
                raise KeyboardInterrupt
            yield document

    with pytest.raises(KeyboardInterrupt):
        build_store(tmp_path / "resumed", interrupted(), PACKING, corpus.describe())
    kept = sorted(path.name for path in (tmp_path / "resumed" / "train").glob("shard-*.done.json"))
    assert kept and not (tmp_path / "resumed" / "train" / "store.json").exists()  # finished shards, not the store
    written = {}
    monkeypatch.setattr(example_store, "write_shard", lambda directory, header, number, arrays: written.setdefault(
        (Path(directory).name, number), shards.write_shard(directory, header, number, arrays)))
    stores = build_store(tmp_path / "resumed", corpus, PACKING, corpus.describe())
    assert not {("train", int(name.split("-")[1].split(".")[0])) for name in kept} & set(written)  # not rewritten
    assert files_of(tmp_path / "resumed") == files_of(tmp_path / "whole")
    assert len(stores["train"]) == json.loads((tmp_path / "whole" / "train" / "index.json").read_text())["rows"]


def test_a_store_of_another_corpus_or_packing_is_rebuilt(shards_dir, tmp_path):
    corpus = repro.open_corpus(str(shards_dir))
    first = build_store(tmp_path, corpus, PACKING, corpus.describe())["train"]
    longer = dict(PACKING, example_length=PACKING["example_length"] * 2)
    second = build_store(tmp_path, corpus, longer, corpus.describe())["train"]
    assert second.example_length == 2 * first.example_length and len(second) < len(first)


@pytest.mark.parametrize("damage", ["truncated", "malformed"])
def test_a_bad_json_gz_shard_in_the_stream_names_its_file_and_line(shards_dir, tmp_path, damage):
    corpus = tmp_path / "c4"
    corpus.mkdir()
    for path in sorted(shards_dir.iterdir()):
        (corpus / path.name).write_bytes(path.read_bytes())
    bad = corpus / "c4-00001.json.gz"
    lines = gzip.decompress(bad.read_bytes()).split(b"\n")
    if damage == "truncated":  # the shard's gzip stream cut short: its first lines still read
        whole = gzip.compress(b"\n".join(lines * 40))
        bad.write_bytes(whole[:len(whole) // 2])
    else:
        lines[3] = b'{"text": "no end'
        bad.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(DataError) as error:
        pipeline(tmp_path / "out", corpus, "on").examples()
    message = str(error.value)
    assert str(bad) in message and "line " in message and "\n" not in message
    if damage == "truncated":
        assert "unreadable gzip file (corrupt or truncated) at line " in message
        line = int(message.split(" at line ")[1].split(":")[0])
        assert 1 < line <= len(lines) * 40
    else:
        assert ", line 4: malformed JSON" in message


def test_auto_streams_a_corpus_larger_than_the_rule(shards_dir, monkeypatch):
    corpus = repro.open_corpus(str(shards_dir))
    assert not repro.streams(corpus, "auto") and repro.streams(corpus, "on") and not repro.streams(corpus, "off")
    assert not repro.streams(repro.open_corpus(None), "auto")  # the default corpus is held
    monkeypatch.setattr(repro, "STREAM_ABOVE", 100)
    assert repro.streams(corpus, "auto")


def test_a_finished_store_is_reused_as_it_is(shards_dir, tmp_path):
    corpus = repro.open_corpus(str(shards_dir))
    build_store(tmp_path, corpus, PACKING, corpus.describe())
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    build_store(tmp_path, corpus, PACKING, corpus.describe())
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before


@pytest.mark.parametrize("method", ["staticac", "spm"])
def test_equalinfo_build_streamed_or_held_writes_the_same_dataset(shards_dir, tmp_path, method):
    """The CLI: StaticAC's counts and SentencePiece's documents come from the store, to the same bytes."""
    from equalinfo.cli import main
    from equalinfo.train.methods import sentencepiece_available

    if method == "spm" and not sentencepiece_available():
        pytest.skip("sentencepiece is not installed")
    for stream in ("off", "on"):
        assert main(["build", "--out", str(tmp_path / stream), "--method", method, "--bits-per-token", "8",
                     "--vocab-size", "300", "--corpus", str(shards_dir), "--stream", stream, "--workers", "1",
                     "--backend", "ref"]) == 0
    assert (tmp_path / "on" / "examples").is_dir() and not (tmp_path / "off" / "examples").exists()
    for side in ("train", "validation"):
        assert files_of(tmp_path / "on" / side) == files_of(tmp_path / "off" / side)


def test_a_streamed_repro_on_a_pool_equals_the_held_repro_in_process(shards_dir, tmp_path):
    """The reduced repro end to end (M1, four datasets, their M2s, the controls, the source mix): streamed on one
    pool of 2 workers kept from the datasets to the M2 runs, and held in memory in-process -- the same results."""
    runs, pool = {}, executors.ProcessPool(2)
    try:
        for stream, executor in (("off", executors.InProcess()), ("on", pool)):
            runs[stream] = without_timings(pipeline(tmp_path / stream, shards_dir, stream, executor).run())
    finally:
        pool.close()
    assert pool.pools_started == 1  # the dataset shards and the M2 runs on the same workers
    assert set(runs["on"]["m2"]) == {"Bytes", "GZip[v=256]", "EqualInfoAC[b=16,v=256]", "EqualInfoAC[b=16,v=65k]"}
    assert runs["on"]["source_mix"]["train"] and runs["on"] == runs["off"]
    assert files_of(tmp_path / "on" / "datasets") == files_of(tmp_path / "off" / "datasets")


def test_streaming_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    """Python's traced allocations (NumPy's included) while json.gz corpora of 3 MB and 9 MB are packed: streamed
    into a store (shards of 64 rows), the same peak for both (two writers' buffers and one group of documents);
    held in memory, more than the text itself."""
    import tracemalloc

    monkeypatch.setattr(example_store, "STORE_ROWS_PER_SHARD", 64)
    text = english_text(60_000)
    packing = {"group_size": 16, "example_length": 1024, "validation_every": 10}
    pipeline(tmp_path / "warm-up", write_shards(tmp_path / "small"), "on").examples()  # what a first run imports

    def peak(documents, stream):
        corpus_dir = tmp_path / f"c4-{documents}"
        if not corpus_dir.is_dir():
            corpus_dir.mkdir()
            with gzip.open(corpus_dir / "c4-00000.json.gz", "wt", encoding="utf-8") as out:
                for number in range(documents):  # documents of 2,000 bytes
                    start = (number * 7919) % (len(text) - 2000)
                    out.write(json.dumps({"text": text[start:start + 2000].decode("utf-8", "ignore")}) + "\n")
        run = repro.Pipeline({"seed": 0, "packing": packing}, tmp_path / f"{stream}-{documents}", "ref",
                             str(corpus_dir), log=lambda text: None, stream=stream)
        tracemalloc.start()
        try:
            examples = run.examples()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert len(examples.train) > documents

    small, large = peak(1500, "on"), peak(4500, "on")
    assert large < 1.2 * small < 4500 * 2000 / 5
    assert peak(4500, "off") > 4500 * 2000


def test_a_truncated_store_shard_is_named_when_a_unit_reads_it(shards_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(example_store, "STORE_ROWS_PER_SHARD", 4)
    corpus = repro.open_corpus(str(shards_dir))
    store = build_store(tmp_path, corpus, PACKING, corpus.describe())["train"]
    shard = tmp_path / "train" / "shard-00001.symbols.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    rows = StoreRows(str(store.directory), np.array([0, 5]))
    with pytest.raises(DataError, match="shard-00001.symbols.npy: missing, corrupt or truncated store shard"):
        rows.load()
    with pytest.raises(IndexError):
        StoreRows(str(store.directory), np.array([len(store)])).load()
