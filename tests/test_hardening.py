"""Hostile inputs end in one clear error (exit 2, one `equalinfo: error:` line naming the cause) in bounded time
and memory, or work: crafted file headers, malformed model archives, out-of-range options, bad presets, odd output
paths, checkpoints in the wrong role, and inputs that coding would expand (stored instead).

Every crafted file keeps valid CRCs (and fingerprints, for models), so it passes the container's checksums and
reaches the checks that must catch it. The CLI runs in-process under a memory and time limit (tests/limits.py).
"""
import io
import json
import os
import stat
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers import english_text, fails_cli, run_cli
from limits import bounded
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.filetool import codec, fileformat
from equalinfo.filetool import commands as file_commands

TEXT = english_text(1_300)
RANDOM = np.random.default_rng(17).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()


def run(capsys, *argv, memory_mb=400, seconds=20):
    """(status, stdout, stderr) of the command line in-process, under a memory and time limit."""
    return run_cli(capsys, *argv, within=bounded(memory_mb, seconds))


def fails(capsys, *argv, says):
    return fails_cli(capsys, *argv, says=says, within=bounded(400, 20))


def relabel(blob, **changes):
    """The file with header fields changed and both CRCs recomputed."""
    container = fileformat.unpack(blob)
    for name, value in changes.items():
        setattr(container.header, name, value)
    return fileformat.pack(container.header, container.bits, container.model_arrays)


def with_model_arrays(blob, arrays):
    """The file with its embedded model replaced by `arrays`, fingerprint and CRCs recomputed."""
    container = fileformat.unpack(blob)
    container.header.fingerprint = fingerprint(arrays)
    return fileformat.pack(container.header, container.bits, arrays)


def markov_file(data=TEXT, method="ac", **options):
    return codec.compress_bytes(data, method, MarkovModel.fit(bytes_to_symbols(data), 2), **options)[0]


# ----------------------------------------------------------------------------------------- crafted headers

@pytest.mark.parametrize("method", ["ac", "equalinfo", "staticac", "gzip"])
@pytest.mark.parametrize("length", [2 ** 31, 2 ** 40, 2 ** 64 - 1])
def test_crafted_original_length_is_refused_before_decoding(capsys, tmp_path, method, length):
    blob = markov_file(method=method) if method in ("ac", "equalinfo") else codec.compress_bytes(TEXT, method)[0]
    (tmp_path / "x.eqi").write_bytes(relabel(blob, original_length=length))
    err = fails(capsys, "decompress", tmp_path / "x.eqi", tmp_path / "out", says="corrupt file")
    assert f"{length:,}" in err or str(length) in err
    assert not (tmp_path / "out").exists()


def test_original_length_a_little_too_long_fails_fast(capsys, tmp_path):
    """Within what the payload can hold, a wrong length still fails in bounded time (the output CRC, or the
    decoder running past the payload)."""
    blob = markov_file()
    n = fileformat.unpack(blob).header.original_length
    for length in (n + 1, n + 1000, 3 * n):
        (tmp_path / "x.eqi").write_bytes(relabel(blob, original_length=length))
        fails(capsys, "decompress", tmp_path / "x.eqi", tmp_path / "out", says="corrupt file")


def test_window_bits_and_coded_bits_limits_in_headers(capsys, tmp_path):
    blob = markov_file(method="equalinfo")
    header = fileformat.unpack(blob).header
    (tmp_path / "w.eqi").write_bytes(relabel(blob, window_bits=2 ** 32 - 1))
    fails(capsys, "decompress", tmp_path / "w.eqi", tmp_path / "out", says="window bits")
    (tmp_path / "z.eqi").write_bytes(relabel(blob, original_length=0))
    fails(capsys, "decompress", tmp_path / "z.eqi", tmp_path / "out", says="corrupt file")
    assert header.coded_bits > 0


def test_gzip_bomb_is_stopped_at_the_announced_length(capsys, tmp_path):
    bomb = zlib.compress(bytes(50_000_000))  # 50 MB of zeros in ~50 KB
    header = fileformat.Header("gzip", 0, 0, "", "", 1000, 0, zlib.crc32(bytes(1000)))
    (tmp_path / "b.eqi").write_bytes(fileformat.pack(header, np.unpackbits(np.frombuffer(bomb, np.uint8))))
    fails(capsys, "decompress", tmp_path / "b.eqi", tmp_path / "out", says="corrupt file")


# --------------------------------------------------------------------------------------------- model arrays

WRONG_MARKOV = {
    "order as a vector": {"order": np.array([2, 2])},
    "order as a float": {"order": np.array(2.0)},
    "counts as floats": {"counts": None},  # filled in below
    "one-dimensional counts": {"counts": np.zeros(257, np.int64)},
    "negative counts": {"counts": None},
    "missing context ids": {"context_ids": "drop"},
    "an extra array": {"extra": np.zeros(3)},
    "a string order": {"order": np.array("2")},
    "a boolean order": {"order": np.array(True)},
    "context ids out of range": {"context_ids": None},
}


def wrong_markov_arrays(name, model):
    arrays = dict(model.arrays())
    change = WRONG_MARKOV[name]
    key, value = next(iter(change.items()))
    if name == "counts as floats":
        value = arrays["counts"].astype(np.float64)
    elif name == "negative counts":
        value = arrays["counts"].copy()
        value[0, 0] = -5
    elif name == "context ids out of range":
        value = arrays["context_ids"].copy()
        value[-1] = 258 ** 2 + 7
    if value == "drop" if isinstance(value, str) else False:
        del arrays[key]
    else:
        arrays[key] = value
    return arrays


@pytest.mark.parametrize("name", list(WRONG_MARKOV))
def test_embedded_model_arrays_of_the_wrong_shape_or_dtype(capsys, tmp_path, name):
    blob = markov_file()
    arrays = wrong_markov_arrays(name, MarkovModel.fit(bytes_to_symbols(TEXT), 2))
    (tmp_path / "m.eqi").write_bytes(with_model_arrays(blob, arrays))
    fails(capsys, "decompress", tmp_path / "m.eqi", tmp_path / "out", says="model")


@pytest.mark.parametrize("name", list(WRONG_MARKOV))
def test_model_file_arrays_of_the_wrong_shape_or_dtype(capsys, tmp_path, name):
    arrays = wrong_markov_arrays(name, MarkovModel.fit(bytes_to_symbols(TEXT), 2))
    arrays["__kind__"] = np.array("markov")
    (tmp_path / "m.npz").write_bytes(fileformat.arrays_to_npz(arrays))
    (tmp_path / "t.txt").write_bytes(TEXT)
    fails(capsys, "compress", tmp_path / "t.txt", tmp_path / "o.eqi", "--model", tmp_path / "m.npz",
          says="not a valid model file")
    assert not (tmp_path / "o.eqi").exists()


def npz_claiming(shape, dtype="<i8", payload=b""):
    """An npz whose one member announces `shape` in its .npy header but holds only `payload`."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("counts.npy", member.getvalue() + payload)
        archive.writestr("__kind__.npy", _npy(np.array("unigram")))
    return buffer.getvalue()


def _npy(array):
    stream = io.BytesIO()
    np.lib.format.write_array(stream, array, allow_pickle=False)
    return stream.getvalue()


@pytest.mark.parametrize("shape", [(2 ** 40,), (2 ** 20, 2 ** 20), (257,)])
def test_model_archives_announcing_huge_or_short_arrays(capsys, tmp_path, shape):
    (tmp_path / "m.npz").write_bytes(npz_claiming(shape, payload=bytes(64)))
    (tmp_path / "t.txt").write_bytes(TEXT)
    fails(capsys, "compress", tmp_path / "t.txt", tmp_path / "o.eqi", "--model", tmp_path / "m.npz",
          says="model file")


def test_zip_bomb_model_archive(capsys, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("counts.npy", _npy(np.zeros(64 << 20, np.int64)))  # 512 MB of zeros, ~0.5 MB packed
        archive.writestr("__kind__.npy", _npy(np.array("unigram")))
    (tmp_path / "m.npz").write_bytes(buffer.getvalue())
    (tmp_path / "t.txt").write_bytes(TEXT)
    fails(capsys, "compress", tmp_path / "t.txt", tmp_path / "o.eqi", "--model", tmp_path / "m.npz",
          says="model file")


# -------------------------------------------------------------------------------------------------- options

def test_huge_window_bits_is_refused(capsys, tmp_path):
    (tmp_path / "t.txt").write_bytes(TEXT)
    for bits in (4294967295, 2 ** 24, 1 << 40):
        fails(capsys, "compress", tmp_path / "t.txt", tmp_path / "o.eqi", "--window-bits", bits,
              says="--window-bits")
    assert not (tmp_path / "o.eqi").exists()


@pytest.mark.parametrize("argv, says", [
    (["eval", "--data", "d", "--m2", "m", "--batch-size", "-3"], "--batch-size"),
    (["eval", "--data", "d", "--m2", "m", "--batch-size", "0"], "--batch-size"),
    (["train-m1", "--out", "o/m1.npz", "--steps", "0"], "--steps"),
    (["train-m2", "--data", "d", "--out", "o.npz", "--steps", "-1"], "--steps"),
    (["build", "--out", "o", "--method", "gzip", "--bits-per-token", "0"], "--bits-per-token"),
    (["build", "--out", "o", "--method", "equalinfo", "--m1", "x", "--window-bits", "3"], "--window-bits"),
    (["build", "--out", "o", "--method", "spm", "--vocab-size", "-5"], "--vocab-size"),
    (["train-m2", "--data", "d", "--out", "o.npz", "--size", "huge"], "--size"),
    (["compress", "a", "b", "--window-bits", "abc"], "--window-bits"),
    (["compress", "a", "b", "--method", "zip"], "--method"),
])
def test_bad_options_are_one_line_errors_before_any_work(capsys, tmp_path, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    fails(capsys, *argv, says=says)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------------- presets

GOOD_PRESET = json.loads((Path(__file__).resolve().parents[1] / "train" / "presets" / "demo.json").read_text())


def preset_with(change):
    preset = json.loads(json.dumps(GOOD_PRESET))
    change(preset)
    return preset


@pytest.mark.parametrize("change, says", [
    (lambda p: p["m1"]["train"].update(checkpoint_evry=100), "m1.train.checkpoint_evry"),
    (lambda p: p["m1"]["train"].update(steps="400"), "m1.train.steps"),
    (lambda p: p.update(m1=None), "m1"),
    (lambda p: p.update(packign=p.pop("packing")), "packign"),
    (lambda p: p["m2"].update(batchsize=4), "m2.batchsize"),
    (lambda p: p["datasets"].update(train_examples=-40), "datasets.train_examples"),
    (lambda p: p["datasets"]["methods"].append({"method": "lzma"}), "datasets.methods[6].method"),
    (lambda p: p["m2"].update(sizes=["tiny", "enormous"]), "m2.sizes[1]"),
    (lambda p: p["m1"]["train"]["optimizer"].update(peak_lr=-1), "m1.train.optimizer.peak_lr"),
    (lambda p: p["coding"].update(precision=30), "coding.precision"),
])
def test_bad_presets_are_refused_naming_the_key(capsys, tmp_path, change, says):
    (tmp_path / "p.json").write_text(json.dumps(preset_with(change)))
    err = fails(capsys, "repro", "--out", tmp_path / "run", "--preset", tmp_path / "p.json", "--backend", "ref",
                says=says)
    assert not (tmp_path / "run").exists()
    if "evry" in says:
        assert "did you mean 'checkpoint_every'" in err
    if "packign" in says:
        assert "did you mean 'packing'" in err


# ---------------------------------------------------------------------------------------------- output paths

def test_output_fifo_is_written_through_or_refused_never_replaced(capsys, tmp_path):
    (tmp_path / "t.txt").write_bytes(TEXT)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fails(capsys, "compress", tmp_path / "t.txt", fifo, "--method", "gzip", says="no process is reading")
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    for _ in range(500):  # until the reader has the FIFO open
        if run(capsys, "compress", tmp_path / "t.txt", fifo, "--method", "gzip")[0] == 0:
            break
        time.sleep(0.01)
    reader.join(timeout=20)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert codec.decompress_bytes(received[0])[0] == TEXT


def test_output_symlink_keeps_the_link_and_replaces_its_target(capsys, tmp_path):
    (tmp_path / "t.txt").write_bytes(TEXT)
    target, link = tmp_path / "target.eqi", tmp_path / "link.eqi"
    target.write_bytes(b"old")
    link.symlink_to(target)
    assert run(capsys, "compress", tmp_path / "t.txt", link, "--method", "gzip", "--force")[0] == 0
    assert os.path.islink(link) and codec.decompress_bytes(target.read_bytes())[0] == TEXT
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    fails(capsys, "compress", tmp_path / "t.txt", tmp_path / "dangling", "--method", "gzip",
          says="symbolic link to a missing file")
    fails(capsys, "compress", tmp_path / "t.txt", tmp_path, "--method", "gzip", says="the output is a directory")


def test_output_device_is_written_through_not_replaced(capsys, tmp_path):
    """A private null device (never the system's /dev/null: a regression would replace it)."""
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs root")
    (tmp_path / "t.txt").write_bytes(TEXT)
    assert run(capsys, "compress", tmp_path / "t.txt", device, "--method", "gzip")[0] == 0
    assert stat.S_ISCHR(os.lstat(device).st_mode)


# -------------------------------------------------------------------------------------------- stored files

def test_random_data_expands_by_at_most_one_percent_plus_1kb(capsys, tmp_path):
    (tmp_path / "r.bin").write_bytes(RANDOM)
    for method in ("equalinfo", "ac", "staticac", "gzip"):
        status, _, out = run(capsys, "compress", tmp_path / "r.bin", tmp_path / "r.eqi", "--method", method, "-f",
                             seconds=60)
        assert status == 0, out
        assert os.path.getsize(tmp_path / "r.eqi") <= len(RANDOM) * 1.01 + 1024, (method, out)
        assert "stored" in out
        assert run(capsys, "decompress", tmp_path / "r.eqi", tmp_path / "r.out", "-f")[0] == 0
        assert (tmp_path / "r.out").read_bytes() == RANDOM


def test_empty_and_tiny_inputs_stay_small(capsys, tmp_path):
    for data in (b"", b"x", b"hello"):
        (tmp_path / "e.in").write_bytes(data)
        assert run(capsys, "compress", tmp_path / "e.in", tmp_path / "e.eqi", "-f")[0] == 0
        assert os.path.getsize(tmp_path / "e.eqi") < 200 + len(data)
        assert run(capsys, "decompress", tmp_path / "e.eqi", tmp_path / "e.out", "-f")[0] == 0
        assert (tmp_path / "e.out").read_bytes() == data


def test_text_is_still_coded_and_the_model_embedded_when_it_pays(capsys, tmp_path):
    data = english_text(60_000) + b"\xff"  # not UTF-8: text would go to the shipped M1, the fitted models to this
    (tmp_path / "t.txt").write_bytes(data)
    status, out, _ = run(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--method", "ac", seconds=120)
    header = fileformat.unpack((tmp_path / "t.eqi").read_bytes()).header
    assert status == 0 and header.method == "ac" and header.model_length > 0
    assert os.path.getsize(tmp_path / "t.eqi") < 0.6 * len(data), out  # the model chosen pays for itself


# ------------------------------------------------------------------------------------ checkpoints and folders

def micro_m1_run(path, resume=False, **settings):
    from equalinfo.train import backends, m1

    symbols = bytes_to_symbols(english_text(30_000))
    settings = {"steps": 6, "optimizer": {"name": "adamw", "peak_lr": 3e-3, "warmup_steps": 1, "total_steps": 6},
                "seed": 1, **settings}
    return m1.train_m1(symbols[:25_000], symbols[25_000:], path, backends.load("ref"),
                       m1.make_config("micro", dtype="float64"), settings, seq_len=16, batch_size=2,
                       eval_sequences=2, resume=resume)


def test_checkpoints_come_by_time_without_checkpoint_every(tmp_path, monkeypatch):
    """checkpoint_every 0 (the demo's M2): a checkpoint still comes every CHECKPOINT_SECONDS, and resuming from
    the one a kill left behind gives the straight run's result."""
    from equalinfo.train import checkpoint
    from equalinfo.train import m1, trainer

    straight, _ = micro_m1_run(tmp_path / "straight.npz")
    monkeypatch.setattr(trainer, "CHECKPOINT_SECONDS", 0.0)  # every step is "a few minutes later"
    original = m1.stream_batch

    def killed_at_four(symbols, seq_len, batch_size, seed, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(symbols, seq_len, batch_size, seed, step)

    monkeypatch.setattr(m1, "stream_batch", killed_at_four)
    with pytest.raises(KeyboardInterrupt):
        micro_m1_run(tmp_path / "killed.npz")
    assert checkpoint.load(tmp_path / "killed.npz")[3]["step"] == 4
    monkeypatch.setattr(m1, "stream_batch", original)
    resumed, _ = micro_m1_run(tmp_path / "killed.npz", resume=True)
    assert all(np.array_equal(straight[name], resumed[name]) for name in straight)


def test_checkpoints_are_refused_in_the_wrong_role(capsys, tmp_path):
    """A byte-level M2 has M1's shapes; only the role in its meta tells them apart."""
    from equalinfo.train import checkpoint
    from equalinfo.train import trainer

    micro_m1_run(tmp_path / "m1.npz")
    params, cfg, state, meta = checkpoint.load(tmp_path / "m1.npz")
    assert meta["role"] == "m1"
    checkpoint.save(tmp_path / "m2.npz", params, cfg, state, {**meta, "role": "m2"})
    with pytest.raises(checkpoint.CheckpointError, match="is an M2 .* not an M1"):
        trainer.load_checkpoint(tmp_path / "m2.npz", "m1")
    fails(capsys, "build", "--out", tmp_path / "data", "--method", "equalinfo", "--m1", tmp_path / "m2.npz",
          says="is an M2")
    assert not (tmp_path / "data").exists()
    fails(capsys, "eval", "--data", tmp_path / "data", "--m2", tmp_path / "m1.npz", says="is an M1")
    old = {key: value for key, value in meta.items() if key != "role"}  # before roles: judged by its shapes
    checkpoint.save(tmp_path / "old.npz", params, cfg, state, old)
    assert trainer.load_checkpoint(tmp_path / "old.npz", "m1")[1] == cfg


def test_a_failed_command_leaves_no_empty_folders(capsys, tmp_path):
    (tmp_path / "corpus.txt").write_bytes(b"far too small a corpus")
    out = tmp_path / "new" / "deeper" / "m1.npz"
    fails(capsys, "train-m1", "--out", out, "--corpus", tmp_path / "corpus.txt", "--backend", "ref",
          says="too small")
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    fails(capsys, "repro", "--out", tmp_path / "kept", "--corpus", tmp_path / "corpus.txt", "--backend", "ref",
          says="too small")
    assert (tmp_path / "kept").is_dir()  # it was there before: left alone


def test_steps_given_are_the_steps_trained(capsys, tmp_path):
    """--steps N trains N steps (0 is refused above, never silently replaced by the preset's)."""
    text = english_text(60_000)
    (tmp_path / "corpus").mkdir()
    for index in range(8):
        (tmp_path / "corpus" / f"{index}.txt").write_bytes(text[index * 7000:(index + 1) * 7000])
    preset = preset_with(lambda p: (p["m1"].update(size="micro", seq_len=16, batch_size=2, eval_sequences=2),
                                    p.update(packing={"group_size": 2, "example_length": 256,
                                                      "validation_every": 2})))
    (tmp_path / "p.json").write_text(json.dumps(preset))
    status, _, err = run(capsys, "train-m1", "--out", tmp_path / "m1.npz", "--corpus", tmp_path / "corpus",
                         "--preset", tmp_path / "p.json", "--steps", 2, "--backend", "ref", seconds=120)
    assert status == 0, err
    from equalinfo.train import checkpoint

    assert checkpoint.load(tmp_path / "m1.npz")[3]["step"] == 2


def test_version_1_files_still_decode_and_cannot_be_stored():
    for method in ("ac", "gzip"):
        blob = markov_file(method=method) if method == "ac" else codec.compress_bytes(TEXT, method)[0]
        old = relabel(blob, version=1)
        assert old[8:10] == b"\x01\x00" and codec.decompress_bytes(old)[0] == TEXT
    stored = relabel(codec.compress_bytes(TEXT, "stored")[0], version=1)
    with pytest.raises(fileformat.FormatError, match="needs format version 2"):
        fileformat.unpack(stored)


def test_a_checkpoint_announcing_a_huge_array_is_refused(capsys, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 44,)})
        archive.writestr("params/embed.npy", member.getvalue() + bytes(64))
    (tmp_path / "m1.npz").write_bytes(buffer.getvalue())
    fails(capsys, "build", "--out", tmp_path / "data", "--method", "equalinfo", "--m1", tmp_path / "m1.npz",
          says="m1.npz")
    assert not (tmp_path / "data").exists()


def test_inputs_above_the_limit_are_refused_without_reading_them_whole(tmp_path):
    (tmp_path / "big").write_bytes(bytes(1000))
    with pytest.raises(file_commands.CliError, match="larger than the largest input"):
        file_commands.read_input(tmp_path / "big", limit=999)
    assert file_commands.read_input(tmp_path / "big", limit=1000) == bytes(1000)
