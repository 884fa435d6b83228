"""A file's segments coded by several processes (filetool/workers.py, `--workers N`): the same bytes for any N, for
plain AC and Equal-Info with an M1, whole buffers and streams; bad counts refused; a dead worker an error, never a
hang; an interrupted coder leaves no worker behind.

The M1 is a tiny random one (d_model 32, 2 layers, exact rule 1, restarting every 16 symbols) and the segments are
small (256 bytes), so a test costs the workers' start-up (spawn, imports, Numba's cache: ~2 s) plus a moment."""
import io
import os
import signal

import numpy as np
import pytest

from helpers import fails_cli, run_cli
from equalinfo.filetool import codec, streaming, workers
from equalinfo.ref import transformer as tr
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.train import backends, checkpoint

CFG = tr.Config(vocab_in=258, vocab_out=257, d_model=32, n_heads=4, n_layers=2, d_ff=48)
SEGMENT = 256
# Seven segments (the last one short), each a different text, so that any reordering or mixing-up of the groups'
# results changes the file.
TEXT = b"".join(f"Segment {i}: {'abcdefghij'[i] * (i + 3)} the quick brown fox {i * 7919} jumps. ".encode() * 4
                for i in range(7))[:6 * SEGMENT + 100]


@pytest.fixture(scope="module")
def m1():
    return TransformerModel(tr.init_params(CFG, 0), CFG, rule=1, restart_every=16)


@pytest.fixture(scope="module")
def cpu():
    return backends.load("cpu")


def compress(m1, cpu, method, n_workers, data=TEXT):
    return codec.compress_bytes(data, method, m1, False, 16, 14, cpu, segment_bytes=SEGMENT, workers=n_workers)[0]


@pytest.mark.parametrize("method", ["ac", "equalinfo"])
def test_any_number_of_workers_writes_the_same_bytes_and_decodes(m1, cpu, method):
    one = compress(m1, cpu, method, 1)
    assert compress(m1, cpu, method, 2) == one
    assert compress(m1, cpu, method, 3) == one
    for n_workers in (1, 2):
        back, _ = codec.decompress_bytes(one, m1, backend=cpu, workers=n_workers)
        assert back == TEXT


def test_more_workers_than_segments(m1, cpu):
    data = TEXT[:2 * SEGMENT + 10]  # three segments, five workers asked for: three groups of one
    blob = compress(m1, cpu, "equalinfo", 5, data)
    assert blob == compress(m1, cpu, "equalinfo", 1, data)
    assert codec.decompress_bytes(blob, m1, backend=cpu, workers=5)[0] == data


def test_the_groups_are_contiguous_balanced_and_never_empty():
    assert workers.balanced_groups([16, 16, 16, 16, 16], 2) == [(0, 3), (3, 5)]  # a tie: the first group longer
    assert workers.balanced_groups([10] * 6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert workers.balanced_groups([100, 1, 1, 1], 2) == [(0, 1), (1, 4)]  # by bytes, not by segments
    assert workers.balanced_groups([1, 1, 1, 100], 3) == [(0, 2), (2, 3), (3, 4)]  # none empty
    assert workers.balanced_groups([5, 5], 8) == [(0, 1), (1, 2)]
    assert workers.balanced_groups([], 2) == []
    for lengths in ([16384] * 24 + [6784], [3, 9, 1, 7, 7, 2, 8]):
        for n in (1, 2, 3, 4):
            groups = workers.balanced_groups(lengths, n)
            assert [a for a, _ in groups[1:]] == [b for _, b in groups[:-1]] and groups[0][0] == 0
            assert groups[-1][1] == len(lengths) and all(a < b for a, b in groups)
    sizes = [sum(([16384] * 24 + [6784])[a:b]) for a, b in workers.balanced_groups([16384] * 24 + [6784], 2)]
    assert max(sizes) - min(sizes) <= 16384


def test_the_pool_really_uses_other_processes(m1, cpu, monkeypatch):
    """w - 1 processes besides this one, started once with the model, serving every batch; this process codes
    only the first group (the spawned workers do not see this monkeypatch)."""
    pieces = np.split(bytes_to_symbols(TEXT), [SEGMENT * k for k in range(1, 7)])
    coded_here = []

    def recorded(task, segments, *args):
        coded_here.append(len(segments))
        return run_task(task, segments, *args)

    run_task = workers.run_task
    monkeypatch.setattr(workers, "run_task", recorded)
    with workers.SegmentPool(3, codec.on_backend(m1, cpu), cpu) as pool:
        first = pool.code(pieces, ("equalinfo", 16, 14))
        second = pool.code(pieces[:4], ("equalinfo", 16, 14))
        pids = {pool.pool.submit(os.getpid).result() for _ in range(8)}
        assert pool.pool.pools_started == 1
    assert len(pids) <= 2 and os.getpid() not in pids
    firsts = [workers.balanced_groups([len(p) for p in batch], 3)[0] for batch in (pieces, pieces[:4])]
    assert coded_here == [stop for _, stop in firsts] and coded_here[0] < len(pieces)  # the rest: the workers
    assert [b.tobytes() for b in second] == [b.tobytes() for b in first[:4]]
    assert [b.tobytes() for b in first] == [b.tobytes() for b in codec.code_segments(
        pieces, codec.coded_header(TEXT, "equalinfo", m1, 16, 14, cpu)[0], codec.on_backend(m1, cpu), cpu)]


def test_streaming_with_workers_equals_the_whole_buffer(m1, cpu, monkeypatch):
    pools = []

    class CountedPool(workers.SegmentPool):
        def __init__(self, *args):
            super().__init__(*args)
            pools.append(self)

    whole = compress(m1, cpu, "ac", 1)
    monkeypatch.setattr(workers, "SegmentPool", CountedPool)
    out = io.BytesIO()
    streaming.compress_stream(io.BytesIO(TEXT), out, m1, "ac", False, 16, 14, cpu, segment_bytes=SEGMENT,
                              batch_segments=2, workers=2)  # four batches of segments, one pool
    assert out.getvalue() == whole
    assert len(pools) == 1 and pools[0].workers == 2
    back = io.BytesIO()
    streaming.decompress_stream(io.BytesIO(whole), back, m1, backend=cpu, batch_segments=3, workers=2)
    assert back.getvalue() == TEXT and len(pools) == 2


@pytest.mark.parametrize("bad", [0, -1, 65, 2.5, "two", True, None])
def test_invalid_worker_counts_are_refused(m1, cpu, bad):
    with pytest.raises(ValueError, match="workers"):
        compress(m1, cpu, "ac", bad)
    with pytest.raises(ValueError, match="workers"):
        codec.decompress_bytes(compress(m1, cpu, "ac", 1, TEXT[:100]), m1, backend=cpu, workers=bad)
    with pytest.raises(ValueError, match="workers"):
        streaming.compress_stream(io.BytesIO(TEXT), io.BytesIO(), m1, "ac", backend=cpu, workers=bad)


def test_auto_uses_other_processes_only_for_an_m1_on_cpu_and_a_large_input(m1, cpu):
    big = workers.AUTO_MIN_BYTES
    assert workers.resolve_workers("auto", m1, cpu, big) == workers.cores()
    assert workers.resolve_workers("auto", "transformer", cpu, big) == workers.cores()  # a file's header's kind
    assert workers.resolve_workers("auto", m1, cpu, big - 1) == 1
    assert workers.resolve_workers("auto", m1, backends.load("ref"), big) == 1
    assert workers.resolve_workers("auto", MarkovModel.fit(bytes_to_symbols(TEXT), 1), cpu, 10 * big) == 1
    assert workers.resolve_workers(3, MarkovModel.fit(bytes_to_symbols(TEXT), 1), cpu, 10) == 3  # asked: given


def test_a_worker_that_dies_is_an_error_not_a_hang(m1, cpu):
    pieces = np.split(bytes_to_symbols(TEXT), [SEGMENT * k for k in range(1, 7)])
    pool = workers.SegmentPool(2, codec.on_backend(m1, cpu), cpu)
    try:
        os.kill(pool.pool.submit(os.getpid).result(), signal.SIGKILL)
        with pytest.raises(workers.WorkerDied, match="died"):
            pool.code(pieces, ("ac", 0, 14))
    finally:
        pool.kill()


class ArraysThatDoNotRebuild(MarkovModel):
    """A Markov model that codes as usual here but hands the workers arrays no model can be rebuilt from."""

    def arrays(self):
        return {"not.a.markov.table": np.zeros(3)}


def test_a_worker_that_cannot_rebuild_the_model_names_the_cause(cpu):
    """A worker's failed setup is reported as what it is, not as a worker that died (killed or out of memory)."""
    model = MarkovModel.fit(bytes_to_symbols(TEXT), 1)
    model.__class__ = ArraysThatDoNotRebuild
    pieces = np.split(bytes_to_symbols(TEXT), [SEGMENT * k for k in range(1, 7)])
    with pytest.raises(ValueError, match="could not rebuild the model") as raised:
        with workers.SegmentPool(2, model, cpu) as pool:
            pool.code(pieces, ("ac", 0, 14))
    assert not isinstance(raised.value, workers.WorkerDied)


def test_an_interrupted_coder_leaves_no_worker_running(m1, cpu):
    """Ctrl-C (KeyboardInterrupt) while this process codes its own group: the workers are stopped at once."""
    pieces = np.split(bytes_to_symbols(TEXT), [SEGMENT * k for k in range(1, 7)])
    pool = workers.SegmentPool(2, codec.on_backend(m1, cpu), cpu)
    pool.pool.submit(os.getpid).result()  # the worker is up
    processes = list(pool.pool._pool._processes.values())

    def interrupt(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with pool:
            pool.code(pieces, ("ac", 0, 14), progress=interrupt)
    for process in processes:
        process.join(timeout=10)
        assert not running(process)


def running(process):
    """Whether a worker process still runs: on Linux by /proc (a zombie, ended but not yet reaped, has ended; and a
    process that another thread reaped first reads as alive to multiprocessing, whose waitpid then fails), else
    multiprocessing's is_alive."""
    try:
        with open(f"/proc/{process.pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        return process.is_alive()


def test_the_cli_option(capsys, tmp_path, m1):
    text = (TEXT * 20)[:(1 << 14) + 600]  # two segments of the CLI's 16 KiB
    source = tmp_path / "in.txt"
    source.write_bytes(text)
    model = tmp_path / "m1.npz"
    checkpoint.save(model, tr.init_params(CFG, 0), CFG, meta={"step": 0, "role": "m1", "seq_len": 16})
    files = {}
    for n in ("1", "2"):
        files[n] = tmp_path / f"{n}.eqi"
        status, _, said = run_cli(capsys, "compress", source, files[n], "--model", model, "--method", "equalinfo",
                                  "--no-store", "--backend", "cpu", "--workers", n)
        assert status == 0 and ("2 processes" in said) == (n == "2"), said
    assert files["1"].read_bytes() == files["2"].read_bytes()
    status, _, said = run_cli(capsys, "decompress", files["2"], tmp_path / "back", "--model", model, "--backend",
                              "cpu", "--workers", "auto")  # a small file: auto is one process
    assert status == 0 and (tmp_path / "back").read_bytes() == text and "processes" not in said
    for bad in ("0", "x", "65"):
        fails_cli(capsys, "compress", source, tmp_path / "o.eqi", "--workers", bad, says="--workers")
        fails_cli(capsys, "decompress", files["1"], tmp_path / "o", "--workers", bad, says="--workers")


def test_auto_segments_are_an_even_count_of_equal_segments_of_at_most_16_kib():
    most = codec.DEFAULT_SEGMENT_BYTES
    rng = np.random.default_rng(3)
    sizes = [1, most, most + 1, 2 * most, 2 * most + 1, 3 * most, 400_000, 1 << 22] + list(
        rng.integers(1, 1 << 24, 200))
    for n in sizes:
        size = codec.even_segment_bytes(int(n))
        count = -(-int(n) // size)
        fewest = -(-int(n) // most)
        assert size <= most and count in (fewest, fewest + 1), (n, size, count)
        if fewest > 1:
            assert count % 2 == 0, (n, size, count)
            last = int(n) - (count - 1) * size
            assert 0 <= size - last < count, (n, size, last)  # equal segments, the last one shorter by < count
        else:
            assert count == 1


def test_auto_segments_balance_two_workers_and_decode(cpu):
    data = bytes(range(32, 127)) * 400  # 38,000 bytes: 3 segments of 16 KiB, so 4 of 9,500 by default
    model = codec.fitted_model(data)[0]
    blob = codec.compress_bytes(data, "ac", model, embed=True, backend=cpu)[0]
    table = codec.fileformat.unpack(blob).segments
    assert (table.segment_bytes, len(table.entries)) == (9500, 4)
    assert workers.balanced_groups(table.input_lengths(len(data)), 2) == [(0, 2), (2, 4)]
    assert codec.decompress_bytes(blob, backend=cpu)[0] == data
