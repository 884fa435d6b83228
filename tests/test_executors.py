"""Units and executors (train/build.py units, train/executors.py): where the units run never changes a bit.

A reduced preset's datasets are built in-process, by a pool of 2 spawned workers, with a worker killed mid-shard,
and after an interruption; every build must give the same files, byte for byte, as the in-process one and as
build.build_dataset (the one-process ShardWriter path, today's format). M2 units leave completion records that a
rerun reads instead of training again. With Ray installed (the `cluster` extra; skipped otherwise), a simulated
two-node cluster (one ray.init for the module, ~45 s here) builds the same bytes and runs the reduced repro end to
end with the in-process run's results.
"""
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import english_text
from equalinfo.data import shards
from equalinfo.train import build, executors, repro

REDUCED = {
    "seed": 0,
    "packing": {"group_size": 4, "example_length": 300, "validation_every": 4},
    "m1": {"size": "micro", "dtype": "float64", "seq_len": 32, "batch_size": 4, "eval_sequences": 4,
           "train": {"steps": 4, "eval_every": 2, "checkpoint_every": 2,
                     "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 1, "total_steps": 4}}},
    "coding": {"precision": 14},
    "datasets": {"train_examples": 5, "val_examples": 3, "seq_len": 64,
                 "methods": [{"method": "bytes"}, {"method": "gzip", "bits_per_token": [8]},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8, 16]}]},
    "m2": {"sizes": ["micro"], "dtype": "float64", "batch_size": 2, "eval_rows": 2,
           "train": {"steps": 2, "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 1,
                                               "total_steps": 2}}},
}
ROWS = 2  # rows per shard here, so each dataset side is several units


def make_corpus(directory):
    text = english_text(30_000)
    for i in range(16):
        (directory / f"doc{i:02d}.txt").write_bytes(text[i * 1500:i * 1500 + 500 + 41 * i])
    return directory


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(build, "ROWS_PER_SHARD", ROWS)


def files_of(directory):
    """{relative path: bytes} of every file under directory."""
    directory = Path(directory)
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


def build_all(out, corpus_dir, executor):
    """The reduced preset's datasets built in OUT by `executor`; returns (pipeline, examples, M1, datasets)."""
    pipeline = repro.Pipeline(copy.deepcopy(REDUCED), out, "ref", str(corpus_dir), log=lambda text: None,
                              executor=executor)
    examples = pipeline.examples()
    trained_m1 = pipeline.train_m1(examples)
    datasets, skipped = pipeline.build_datasets(examples, trained_m1)
    assert not skipped
    return pipeline, examples, trained_m1, datasets


@pytest.fixture(scope="module")
def reference(corpus_dir, tmp_path_factory):
    """The in-process build ({file: bytes} of OUT/datasets) with shards of ROWS rows, and its run's parts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "ROWS_PER_SHARD", ROWS)
        out = tmp_path_factory.mktemp("in-process")
        parts = build_all(out, corpus_dir, executors.InProcess())
    return files_of(out / "datasets"), parts


class Counting(executors.InProcess):
    """In-process, counting the units it runs; raises Stop after `stop_after` units (an interruption)."""

    class Stop(Exception):
        pass

    def __init__(self, stop_after=None):
        self.ran, self.stop_after = [], stop_after

    def run(self, function, units, context, desc="units", unit="unit", gpu=False):
        def counted(context, item):
            if self.stop_after is not None and len(self.ran) == self.stop_after:
                raise Counting.Stop
            self.ran.append(getattr(item, "key", item))
            return function(context, item)

        return super().run(counted, units, context, desc, unit, gpu)


def test_units_write_the_same_bytes_as_the_one_process_writer(reference, tmp_path):
    """The in-process unit build equals build.build_dataset's ShardWriter files for the same rows and meta."""
    files, (pipeline, examples, trained_m1, datasets) = reference
    name = "EqualInfoAC[b=16,v=65k]"
    assert name in datasets
    validation = datasets[name]["validation"]
    coder = pipeline.method_for("equalinfo", 16, 16, {}, examples, trained_m1)
    meta = {key: value for key, value in validation.meta.items() if key not in ("method", "vocab_size", "seq_len")}
    rows = examples.validation_rows(REDUCED["datasets"]["val_examples"])
    build.build_dataset(rows, coder, tmp_path / "writer", 64, meta, rows_per_shard=ROWS)
    assert len(validation.index["shards"]) == 2  # 3 rows in shards of 2: two units
    assert files_of(tmp_path / "writer") == files_of(validation.directory)


def test_a_pool_of_two_workers_builds_the_same_bytes(reference, corpus_dir, tmp_path, small_shards):
    pool = executors.ProcessPool(2)
    build_all(tmp_path, corpus_dir, pool)
    assert pool.retries == 0
    assert files_of(tmp_path / "datasets") == reference[0]


def test_a_unit_whose_worker_dies_mid_write_is_retried(reference, corpus_dir, tmp_path, small_shards, monkeypatch):
    marker = tmp_path / "died"
    monkeypatch.setenv(shards.DIE_AFTER_FIRST_FILE, str(marker))  # the first shard file written kills its worker
    pool = executors.ProcessPool(2)
    build_all(tmp_path / "out", corpus_dir, pool)
    assert marker.exists() and pool.retries >= 1
    assert files_of(tmp_path / "out" / "datasets") == reference[0]


def refuse_odd(context, unit):
    """A unit function for the pool: fails on odd units, as a unit with bad input would."""
    if unit % 2:
        raise ValueError(f"unit {unit}: {context['why']}")
    return unit * 10


def test_a_units_error_reaches_the_driver_and_results_keep_their_order():
    pool = executors.ProcessPool(2)
    assert pool.run(refuse_odd, [0, 2, 4, 6], {"why": "odd"}) == [0, 20, 40, 60]
    with pytest.raises(ValueError, match="unit 1: odd"):
        pool.run(refuse_odd, [0, 1], {"why": "odd"})
    assert pool.retries == 0


def worker_and_context(context, unit):
    """A unit function for the pool: which process ran the unit, with which batch's context (after 10 ms of work:
    a unit takes longer than the round trip that brings a worker the context)."""
    time.sleep(0.01)
    return os.getpid(), context["batch"], unit


def test_one_pool_serves_every_batch_each_with_its_own_context():
    """Dataset shards, then M2 runs: the same two workers (started once), each batch's units seeing its context,
    which travels about once per worker and batch (with the batch's first units, and again to a worker that took
    none of them), not with every unit."""
    pool = executors.ProcessPool(2)
    try:
        first = pool.run(worker_and_context, list(range(40)), {"batch": "datasets"})
        second = pool.run(worker_and_context, list(range(40)), {"batch": "m2"})
        third = pool.run(worker_and_context, [7, 8], {"batch": "datasets again"})
    finally:
        pool.close()
    assert pool.pools_started == 1 and pool.retries == 0
    assert 3 * 2 <= pool.contexts_sent <= 20 < 82  # 82 units: the context did not travel with each
    assert [r[1:] for r in first] == [("datasets", u) for u in range(40)]
    assert [r[1:] for r in second] == [("m2", u) for u in range(40)]
    assert [r[1:] for r in third] == [("datasets again", 7), ("datasets again", 8)]
    assert len({r[0] for r in first + second + third} - {os.getpid()}) <= 2  # no worker started after the first


def test_a_rerun_after_an_interruption_runs_only_the_missing_units(reference, corpus_dir, tmp_path, small_shards):
    complete = Counting()
    build_all(tmp_path / "whole", corpus_dir, complete)
    interrupted = Counting(stop_after=3)
    with pytest.raises(Counting.Stop):
        build_all(tmp_path / "out", corpus_dir, interrupted)
    rerun = Counting()
    build_all(tmp_path / "out", corpus_dir, rerun)
    assert len(interrupted.ran) == 3 and len(complete.ran) > 3
    assert sorted(interrupted.ran + rerun.ran) == sorted(complete.ran)  # nothing twice, nothing left out
    assert files_of(tmp_path / "out" / "datasets") == reference[0]
    again = Counting()
    build_all(tmp_path / "out", corpus_dir, again)
    assert again.ran == []


def test_a_unit_record_of_another_build_is_not_taken(tmp_path):
    """A completion record names its dataset's header: a shard record left by other parameters is ignored."""
    header = shards.dataset_header(build.columns(8), 2, {"method": "bytes"}, build.TOTAL_COLUMNS)
    other = shards.dataset_header(build.columns(8), 2, {"method": "gzip"}, build.TOTAL_COLUMNS)
    arrays = {"tokens": np.ones((2, 8), np.int32), "weights": np.ones((2, 8), np.float32),
              "n_bytes": np.array([8, 8]), "n_tokens": np.array([8, 8]), "kept_bytes": np.array([8.0, 8.0]),
              "document": np.array([0, 1])}
    shards.write_shard(tmp_path, other, 0, arrays)
    assert shards.finished_shards(tmp_path, other) and not shards.finished_shards(tmp_path, header)


def test_m2_units_leave_records_that_a_rerun_reads(reference, tmp_path):
    _, (pipeline, examples, trained_m1, datasets) = reference
    chosen = {name: datasets[name] for name in ("Bytes", "EqualInfoAC[b=16,v=256]")}
    run = repro.Pipeline(copy.deepcopy(REDUCED), tmp_path / "out", "ref", None, log=lambda text: None,
                         executor=Counting(), work_dir=tmp_path / "work")
    first = run.train_m2(chosen, trained_m1.cfg)
    assert len(run.executor.ran) == 2
    records = sorted(p.name for p in (tmp_path / "out" / "units" / "m2").iterdir())
    assert records == ["Bytes.micro.seed0.json", "EqualInfoAC_b16_v256.micro.seed0.json"]
    assert (tmp_path / "work" / "m2" / "Bytes.micro.npz").is_file()  # checkpoints in WORK, records in OUT
    run.executor = Counting()
    second = run.train_m2(chosen, trained_m1.cfg)
    assert run.executor.ran == [] and json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    changed = copy.deepcopy(REDUCED)
    changed["m2"]["train"]["steps"] = 3  # another preset: the records are not its units'
    other = repro.Pipeline(changed, tmp_path / "out", "ref", None, log=lambda text: None, executor=Counting(),
                           work_dir=tmp_path / "work2")
    other.train_m2(chosen, trained_m1.cfg)
    assert len(other.executor.ran) == 2


# --- Ray (the `cluster` extra): one simulated two-node cluster for the module -----------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    """Two Ray nodes of one CPU each on this machine (ray.cluster_utils.Cluster), this process connected to them."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def one_thread():
    """This process's BLAS and Numba pools on one thread, as every Ray task's (M2's floats may depend on it)."""
    import numba
    from equalinfo.fast.cpu.threads import set_threads

    before = numba.get_num_threads()
    set_threads(1)
    yield
    set_threads(before)


def test_ray_builds_the_same_bytes(ray_cluster, reference, corpus_dir, tmp_path, small_shards):
    import ray

    executor = executors.Ray("auto")  # connected already: the cluster's 2 CPUs on two nodes
    assert executor.workers == 2 and len(ray.nodes()) == 2
    build_all(tmp_path, corpus_dir, executor)
    assert files_of(tmp_path / "datasets") == reference[0]


def without_timings(results):
    """results.json's figures without what measures time (the run's and each step's seconds) and the one figure
    drawn from the OS's random numbers on purpose (train/controls.py random_kl, a baseline of random tokens)."""
    results = {key: value for key, value in results.items() if key not in ("seconds", "timings")}
    for figures in results["controls"]["windows"].values():
        figures.pop("random_kl")
    return json.loads(json.dumps(results, sort_keys=True))


def test_a_reduced_repro_on_two_ray_nodes_equals_the_in_process_run(ray_cluster, corpus_dir, tmp_path, one_thread):
    runs = {}
    for name, executor in (("in-process", executors.InProcess()), ("ray", executors.Ray("auto"))):
        pipeline = repro.Pipeline(copy.deepcopy(REDUCED), tmp_path / name, "ref", str(corpus_dir),
                                  log=lambda text: None, executor=executor)
        pipeline.run()
        runs[name] = without_timings(json.loads((tmp_path / name / "results.json").read_text()))
    assert set(runs["ray"]["m2"]) == {"Bytes", "GZip[v=256]", "EqualInfoAC[b=16,v=256]", "EqualInfoAC[b=16,v=65k]"}
    assert runs["ray"] == runs["in-process"]
    assert files_of(tmp_path / "ray" / "datasets") == files_of(tmp_path / "in-process" / "datasets")


def test_a_later_session_reads_the_records_and_builds_only_what_a_missing_unit_needs(corpus_dir, tmp_path):
    """OUT (committed to git between sessions) holds the records; a fresh WORK (M1, datasets, checkpoints lost)
    rebuilds nothing when every unit is recorded, and only the Bytes dataset when Bytes's M2 record is missing."""
    def run(work, executor):
        pipeline = repro.Pipeline(copy.deepcopy(REDUCED), tmp_path / "out", "ref", str(corpus_dir),
                                  log=lambda text: None, executor=executor, work_dir=tmp_path / work)
        return without_timings(pipeline.run())

    first = run("work1", executors.InProcess())
    again = Counting()
    assert run("work2", again) == first and again.ran == []
    assert sorted(p.name for p in (tmp_path / "work2").iterdir()) == []  # no M1, no dataset, no checkpoint
    (tmp_path / "out" / "units" / "m2" / "Bytes.micro.seed0.json").unlink()
    partly = Counting()
    assert run("work3", partly) == first
    assert sorted(partly.ran) == ["Bytes.micro.seed0", "bytes.None.True.1 train shard 0",
                                  "bytes.None.True.1 validation shard 0"]
    assert sorted(p.name for p in (tmp_path / "work3").rglob("*") if p.is_dir() and p.parent.name == "datasets") \
        == ["Bytes"] and not (tmp_path / "work3" / "m1.npz").exists()
