"""The `equalinfo` command line (cli.py): files in, files out, one clear error line and status 2 on failure.

main() is called in-process (fast); one test runs `python -m equalinfo` in a subprocess to check the real exit
status and stderr. Inputs are small because the reference coder is slow.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import fails_cli, run_cli
from equalinfo import cli
from equalinfo.filetool import codec, commands as file_commands, fileformat

ROOT = Path(__file__).resolve().parents[1]
TEXT = (b"To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
        b"the slings and arrows of outrageous fortune. \xe2\x80\x94 Hamlet\n") * 4
BINARY = np.random.default_rng(7).integers(0, 256, 400, dtype=np.uint8).tobytes()
NON_UTF8 = b"\xff\xfe\x00\x80 latin-1 caf\xe9 \xc3\x28 \xed\xa0\x80" * 10


run, fails = run_cli, fails_cli


@pytest.fixture
def files(tmp_path):
    """Write the test inputs into tmp_path and return a dict name -> path."""
    paths = {}
    for name, data in {"text": TEXT, "binary": BINARY, "non_utf8": NON_UTF8, "empty": b""}.items():
        paths[name] = tmp_path / f"{name}.in"
        paths[name].write_bytes(data)
    return paths


def leftovers(directory):
    """Temp files left behind by a write (there must be none)."""
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("method", ["equalinfo", "ac", "staticac", "gzip"])
@pytest.mark.parametrize("name", ["text", "binary", "non_utf8", "empty"])
def test_compress_decompress_round_trip(capsys, files, tmp_path, method, name):
    packed, unpacked = tmp_path / "out.eqi", tmp_path / "out.bin"
    fitted = ["--model", "fitted"] if method in ("equalinfo", "ac") else []  # the default M1: test_default_model
    status, out, err = run(capsys, "compress", files[name], packed, "--method", method, "--no-store", *fitted)
    assert status == 0, err
    assert out == "" and err.startswith(f"compressed {files[name]}: ")  # the summary on stderr, as gzip -v
    assert f"method {method}" in err and err.count("\n") == 1
    assert status == 0 and run(capsys, "decompress", packed, unpacked)[0] == 0
    assert unpacked.read_bytes() == files[name].read_bytes()
    assert not leftovers(tmp_path)


def test_model_fitted_is_equalinfo_with_the_cheapest_embedded_model(capsys, files, tmp_path):
    """--model fitted: markov2, markov1 or unigram, whichever makes the smaller file; on 580 bytes of text the
    small models win (an order-2 table costs more than it saves), on 60 KB markov2 or markov1 does."""
    status, _, out = run(capsys, "compress", files["text"], tmp_path / "t.eqi", "--no-store", "--model", "fitted")
    header = fileformat.unpack((tmp_path / "t.eqi").read_bytes()).header
    assert (header.method, header.window_bits, header.precision) == ("equalinfo", 16, 14)
    assert header.model_length > 0 and f"embedded {header.model_kind} model" in out and "payload" in out
    sizes = {}
    for name in [kind if order is None else f"{kind}{order}" for kind, order in codec.DEFAULT_MODEL_CHOICES]:
        assert run(capsys, "compress", files["text"], tmp_path / f"{name}.eqi", "--no-store", "--model", name)[0] == 0
        sizes[name] = os.path.getsize(tmp_path / f"{name}.eqi")
    assert os.path.getsize(tmp_path / "t.eqi") <= min(sizes.values()) * 1.05, sizes


@pytest.mark.parametrize("options", [["--model", "markov1"], ["--model", "markov3", "--window-bits", "32"],
                                     ["--model", "unigram", "--precision", "16"], ["--method", "ac", "--model",
                                                                                    "markov4"]])
def test_model_names_and_settings(capsys, files, tmp_path, options):
    assert run(capsys, "compress", files["non_utf8"], tmp_path / "n.eqi", *options, "--no-store")[0] == 0
    assert run(capsys, "decompress", tmp_path / "n.eqi", tmp_path / "n.out")[0] == 0
    assert (tmp_path / "n.out").read_bytes() == NON_UTF8


def test_fit_model_then_compress_with_it(capsys, files, tmp_path):
    model, other = tmp_path / "m.npz", tmp_path / "other.npz"
    status, _, out = run(capsys, "fit-model", files["text"], model)
    assert status == 0 and "markov order 2" in out
    loaded = fileformat.load_model_file(model)
    assert run(capsys, "fit-model", files["binary"], other, "--unigram")[0] == 0
    for method in ("equalinfo", "ac"):
        packed, out_path = tmp_path / f"{method}.eqi", tmp_path / f"{method}.out"
        status, _, out = run(capsys, "compress", files["text"], packed, "--method", method, "--model", model)
        assert status == 0 and "not embedded" in out
        assert fileformat.unpack(packed.read_bytes()).header.model_length == 0
        err = fails(capsys, "decompress", packed, out_path, says="missing model")
        assert fileformat.unpack(packed.read_bytes()).header.fingerprint in err
        err = fails(capsys, "decompress", packed, out_path, "--model", other, says="wrong model")
        assert fileformat.unpack(packed.read_bytes()).header.fingerprint in err
        assert fileformat.fingerprint(fileformat.load_model_file(other).arrays()) in err
        assert not out_path.exists()
        assert run(capsys, "decompress", packed, out_path, "--model", model)[0] == 0
        assert out_path.read_bytes() == TEXT
    assert loaded.order == 2


def test_fit_model_order(capsys, files, tmp_path):
    assert run(capsys, "fit-model", files["text"], tmp_path / "m5.npz", "--order", "5")[0] == 0
    assert fileformat.load_model_file(tmp_path / "m5.npz").order == 5
    fails(capsys, "fit-model", files["text"], tmp_path / "m9.npz", "--order", "9", says="order")
    assert not (tmp_path / "m9.npz").exists()


# ------------------------------------------------------------------------------------------------------ errors

def test_damaged_files_give_named_errors(capsys, files, tmp_path):
    packed = tmp_path / "t.eqi"
    assert run(capsys, "compress", files["text"], packed, "--method", "staticac", "--no-store")[0] == 0
    blob = packed.read_bytes()
    cases = {
        "flipped.eqi": (blob[:-8] + bytes([blob[-8] ^ 0xFF]) + blob[-7:], "corrupt file"),
        "short.eqi": (blob[:len(blob) // 2], "truncated file"),
        "future.eqi": (blob[:8] + (7).to_bytes(2, "little") + blob[10:], "unsupported format version 7"),
        "text.eqi": (TEXT, "not an equalinfo file"),
    }
    for name, (data, says) in cases.items():
        (tmp_path / name).write_bytes(data)
        fails(capsys, "decompress", tmp_path / name, tmp_path / "out", says=says)
    fails(capsys, "decompress", tmp_path / "missing.eqi", tmp_path / "out", says="cannot read")
    fails(capsys, "decompress", packed, tmp_path / "out", "--model", files["text"], says="not a model file")
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("argv, says", [
    (["--window-bits", "8"], "--window-bits 8"),
    (["--precision", "17"], "--precision 17"),
    (["--precision", "16", "--window-bits", "15"], "--window-bits 15"),
    (["--model", "markov9"], "order must be 1 to 7"),
    (["--model", "no/such/model.npz"], "no such model file"),
    (["--method", "gzip", "--window-bits", "32"], "--window-bits applies to --method equalinfo only"),
    (["--method", "ac", "--window-bits", "32"], "--window-bits applies to --method equalinfo only"),
    (["--method", "gzip", "--model", "markov2"], "--model does not apply"),
    (["--method", "staticac", "--model", "markov2"], "staticac fits its own unigram model"),
])
def test_bad_compress_arguments(capsys, files, tmp_path, argv, says):
    fails(capsys, "compress", files["text"], tmp_path / "o.eqi", *argv, says=says)
    assert not (tmp_path / "o.eqi").exists()


def test_missing_input_and_unwritable_output(capsys, files, tmp_path):
    fails(capsys, "compress", tmp_path / "nope.txt", tmp_path / "o.eqi", says="cannot read")
    fails(capsys, "compress", files["text"], tmp_path / "no_dir" / "o.eqi", "--method", "gzip", says="cannot write")
    fails(capsys, "compress", files["text"], tmp_path, "--method", "gzip", says="cannot write")


def test_usage_errors_exit_2(capsys):
    assert run(capsys, "compress")[0] == 2
    assert run(capsys, "compress", "a", "b", "--method", "zip")[0] == 2
    assert run(capsys)[0] == 2


# ----------------------------------------------------------------------------------------------- atomic output

def test_failing_decompress_keeps_an_existing_output(capsys, files, tmp_path):
    packed, target = tmp_path / "t.eqi", tmp_path / "precious.txt"
    assert run(capsys, "compress", files["text"], packed, "--method", "ac", "--model", "fitted")[0] == 0
    blob = bytearray(packed.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    packed.write_bytes(bytes(blob))
    target.write_bytes(b"keep me")
    fails(capsys, "decompress", packed, target, says="already exists; use -f/--force")
    fails(capsys, "decompress", packed, target, "--force", says="corrupt file")
    assert target.read_bytes() == b"keep me" and not leftovers(tmp_path)


def test_write_atomic_cleans_up_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.write_bytes(b"old")

    def broken_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_commands.os, "replace", broken_replace)
    with pytest.raises(file_commands.CliError, match="cannot write .*No space left"):
        file_commands.write_atomic(str(target), b"new content")
    assert target.read_bytes() == b"old" and not leftovers(tmp_path)


def test_write_atomic_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    file_commands.write_atomic(str(target), b"new")
    assert target.read_bytes() == b"new" and (os.stat(target).st_mode & 0o777) == 0o640
    fresh = tmp_path / "fresh"
    file_commands.write_atomic(str(fresh), b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(fresh).st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------------------------- real process

def test_subprocess_error_has_status_2_and_no_traceback(tmp_path):
    bogus = tmp_path / "bogus.eqi"
    bogus.write_bytes(b"\x89EQI\r\n\x1a\n\x01\x00 too short")
    result = subprocess.run([sys.executable, "-m", "equalinfo", "decompress", str(bogus), str(tmp_path / "o")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("equalinfo: error: truncated file") and "Traceback" not in result.stderr
    assert result.stdout == "" and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------------- threads

def test_threads_option_sets_both_pools_where_it_acts(capsys, files, tmp_path):
    """--threads N sets Numba's pool and NumPy's OpenBLAS to N before the command runs; out of range: a clear
    error. The pipeline commands take it; the file commands, whose coders run on one thread, refuse it."""
    import numba

    from equalinfo.fast.cpu import threads

    before = numba.get_num_threads(), threads.blas_threads()
    missing = tmp_path / "no-such-dataset"
    try:
        fails(capsys, "eval", "--data", missing, "--m2", "m.npz", "--threads", 1, says="m.npz")
        assert numba.get_num_threads() == 1 and threads.blas_threads() in (1, None)
        fails(capsys, "eval", "--data", missing, "--m2", "m.npz", "--threads", 0, says="--threads 0: must be 1 to")
        fails(capsys, "eval", "--data", missing, "--m2", "m.npz", "--threads", 10_000, says="must be 1 to")
    finally:
        threads.set_threads(before[0])
    parser = cli.build_parser()
    for argv in (["repro", "--out", "o"], ["train-m1", "--out", "o"], ["build", "--out", "o", "--method", "gzip"],
                 ["train-m2", "--data", "d", "--out", "o"], ["eval", "--data", "d", "--m2", "m"]):
        assert parser.parse_args(argv + ["--threads", "2"]).threads == 2
    for argv in (["compress", "a", "b"], ["decompress", "a", "b"], ["fit-model", "a", "b"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv + ["--threads", "2"])
    capsys.readouterr()


def test_file_commands_give_the_same_files_on_every_backend(capsys, files, tmp_path):
    """--backend picks the coder of compress/decompress; the files are identical and decode on the other."""
    made = {}
    for backend in ("ref", "cpu"):
        made[backend] = tmp_path / f"{backend}.eqi"
        assert run(capsys, "compress", files["text"], made[backend], "--backend", backend, "--model", "fitted")[0] == 0
    assert made["ref"].read_bytes() == made["cpu"].read_bytes()
    assert run(capsys, "decompress", made["ref"], tmp_path / "back", "--backend", "cpu")[0] == 0
    assert (tmp_path / "back").read_bytes() == TEXT


def test_cli_quiets_idle_blas_threads_before_numpy_loads():
    """The CLI sets OPENBLAS_THREAD_TIMEOUT before NumPy loads OpenBLAS (fast/cpu/threads.py says why)."""
    code = ("import os, sys; import equalinfo.cli; "
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), 'numpy' in sys.modules)")
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_THREAD_TIMEOUT"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.stdout.split() == ["4", "True"], result.stderr
    code = "import numpy; from equalinfo.fast.cpu import threads; print(threads.quiet_idle_blas_threads())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr  # too late once NumPy is loaded, and it says so
