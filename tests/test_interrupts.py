"""Ctrl-C (SIGINT) and SIGTERM end a command with one line saying what was kept, status 130 or 143, no traceback
and no partial output. Real signals, sent by the process to itself from inside the command's work (a patched step),
so the handler cli.py installs is what turns them into the line."""
import signal
import time

import pytest

from equalinfo.filetool import codec
from equalinfo.train import repro

from helpers import run_cli

TEXT = b"Sing, O goddess, the anger of Achilles son of Peleus. " * 40


@pytest.fixture(autouse=True)
def python_handles_sigint():
    """Ctrl-C as an interactive shell leaves it: Python's KeyboardInterrupt. A shell starts a background job
    (`cmd &`) with SIGINT ignored, and Python then keeps it ignored, so these tests failed when the suite itself ran
    in the background (a session's `.ci/run ... &`); the CLI's behaviour under an ignored SIGINT is not in question."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def signal_self(number):
    """The signal, sent to this thread (raise_signal: its handler runs before the sleep ends)."""
    signal.raise_signal(number)
    time.sleep(10)  # the handler raises here at the latest; reaching the end would fail the test


@pytest.mark.parametrize("number,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_compress_interrupted_writes_nothing(capsys, tmp_path, monkeypatch, number, status):
    (tmp_path / "t.txt").write_bytes(TEXT)
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(codec, "compress_or_store", lambda *a, **k: signal_self(number))
    code, out, err = run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi")
    assert code == status and err == "equalinfo: interrupted; no output written\n", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handler is gone again


@pytest.mark.parametrize("number,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_repro_interrupted_says_what_it_kept_and_how_to_resume(capsys, tmp_path, monkeypatch, number, status):
    def run_until_m1(pipeline):
        pipeline.out.mkdir(parents=True, exist_ok=True)
        (pipeline.out / "m1.npz").write_bytes(b"a finished step")
        signal_self(number)

    monkeypatch.setattr(repro.Pipeline, "run", run_until_m1)
    code, _, err = run_cli(capsys, "repro", "--out", tmp_path / "o")
    assert code == status and err.count("\n") == 1 and "Traceback" not in err, err
    assert "kept what was finished in" in err and "m1.npz" in err and "rerun the same command to resume" in err


def test_train_m1_interrupted_before_a_checkpoint(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(repro.Pipeline, "train_m1", lambda *a, **k: signal_self(signal.SIGTERM))
    code, _, err = run_cli(capsys, "train-m1", "--out", tmp_path / "m" / "m1.npz")
    assert code == 143 and "no checkpoint written yet" in err and not (tmp_path / "m").exists(), err
