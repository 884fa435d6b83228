"""gzip's conventions in the file commands (filetool/commands.py) and the pipeline's checkpoints: `-` is stdin or
stdout, the summary goes to stderr, OUT that is IN (also through a link) is refused even with --force, an existing
OUT is refused without --force, and train-m1/train-m2 never replace a trained checkpoint without --resume."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import fails_cli, run_cli

ROOT = Path(__file__).resolve().parents[1]
TEXT = b"It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 30


def test_dash_is_stdin_and_stdout_and_the_summary_goes_to_stderr(tmp_path):
    def equalinfo(*argv, data):
        return subprocess.run([sys.executable, "-m", "equalinfo", *argv], input=data, capture_output=True,
                              cwd=ROOT, timeout=120)

    packed = equalinfo("compress", "-", "-", "--method", "ac", "--no-store", "--model", "fitted", data=TEXT)
    assert packed.returncode == 0, packed.stderr
    assert packed.stdout.startswith(b"\x89EQI") and packed.stderr.startswith(b"compressed -: ")
    back = equalinfo("decompress", "-", "-", data=packed.stdout)
    assert back.returncode == 0 and back.stdout == TEXT, back.stderr
    assert b"decompressed -:" in back.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("how", ["same path", "hard link", "symbolic link"])
def test_output_that_is_the_input_is_refused_even_with_force(capsys, tmp_path, how):
    source = tmp_path / "t.txt"
    source.write_bytes(TEXT)
    out = {"same path": source, "hard link": tmp_path / "hard", "symbolic link": tmp_path / "soft"}[how]
    if how == "hard link":
        os.link(source, out)
    elif how == "symbolic link":
        out.symlink_to(source)
    for command in ("compress", "decompress", "fit-model"):
        fails_cli(capsys, command, source, out, "--force", says="is the input")
    assert source.read_bytes() == TEXT


def test_existing_output_needs_force(capsys, tmp_path):
    (tmp_path / "t.txt").write_bytes(TEXT)
    out = tmp_path / "t.eqi"
    out.write_bytes(b"keep me")
    fails_cli(capsys, "compress", tmp_path / "t.txt", out, says="already exists; use -f/--force")
    assert out.read_bytes() == b"keep me"
    assert run_cli(capsys, "compress", tmp_path / "t.txt", out, "-f", "--model", "fitted")[0] == 0
    assert run_cli(capsys, "decompress", out, tmp_path / "back")[0] == 0
    assert (tmp_path / "back").read_bytes() == TEXT
    fails_cli(capsys, "decompress", out, tmp_path / "back", says="already exists")
    fails_cli(capsys, "fit-model", tmp_path / "t.txt", out, says="already exists")


@pytest.mark.parametrize("command", [["train-m1"], ["train-m2", "--data", "nowhere"]])
def test_a_trained_checkpoint_is_not_replaced_without_resume(capsys, tmp_path, command):
    checkpoint = tmp_path / "model.npz"
    checkpoint.write_bytes(b"a trained model")
    fails_cli(capsys, *command, "--out", checkpoint, says="already exists: --resume continues")
    assert checkpoint.read_bytes() == b"a trained model"


# ------------------------------------------------------------------------------------- datasets and build checks

def test_a_flipped_byte_in_a_shard_refuses_to_train(capsys, tmp_path):
    data = tmp_path / "bytes"
    assert run_cli(capsys, "build", "--out", data, "--method", "bytes", "--backend", "ref")[0] == 0
    shard = sorted((data / "train").glob("shard-*.tokens.npy"))[0]
    blob = bytearray(shard.read_bytes())
    blob[-5] ^= 0x01
    shard.write_bytes(bytes(blob))
    err = fails_cli(capsys, "train-m2", "--data", data, "--out", tmp_path / "m2.npz", "--size", "micro",
                    "--steps", 1, "--backend", "ref", says="SHA-256")
    assert shard.name in err and not (tmp_path / "m2.npz").exists()
    fails_cli(capsys, "eval", "--data", data, "--m2", tmp_path / "m2.npz", says="")  # no model: still one line


def test_window_below_the_precision_is_refused_before_any_work(capsys, tmp_path):
    fails_cli(capsys, "build", "--out", tmp_path / "ei", "--method", "equalinfo", "--m1", tmp_path / "none.npz",
              "--window-bits", 10, says="--window-bits 10: below the preset's coding.precision 14")
    assert not (tmp_path / "ei").exists()
    from equalinfo.train import repro

    preset = repro.load_preset("demo")
    entry = next(e for e in preset["datasets"]["methods"] if e["method"] == "equalinfo")
    entry["window_bits"] = [16, 10]
    (tmp_path / "p.json").write_text(__import__("json").dumps(preset))
    fails_cli(capsys, "repro", "--out", tmp_path / "o", "--preset", tmp_path / "p.json", says="window_bits: 10")
    assert not (tmp_path / "o").exists()


def test_a_missing_folder_names_the_output_not_the_temporary_file(tmp_path):
    from equalinfo.data.atomic import write_atomically

    out = tmp_path / "no-such-folder" / "results.json"
    with pytest.raises(OSError) as caught:
        write_atomically(out, lambda stream: stream.write(b"{}"))
    assert str(out) in str(caught.value) and ".tmp-" not in str(caught.value)
