"""Any text as a corpus: `train-m1 --corpus book.txt` (or `--corpus -`, stdin) trains, because data/sources.py cuts a
single text file into documents of paragraphs that the train/validation split can share out; a corpus that is
truly too small says how small, what the split needs and what to do."""
import io
import json
import sys

from equalinfo.train import checkpoint
from helpers import english_text, fails_cli, run_cli

DEMO = "train/presets/demo.json"


def tiny_preset(tmp_path):
    """The demo preset with a micro M1 and small packing: a run of seconds on the ref backend."""
    from pathlib import Path

    preset = json.loads((Path(__file__).resolve().parents[1] / DEMO).read_text())
    preset["m1"].update(size="micro", seq_len=16, batch_size=2, eval_sequences=2)
    preset["packing"] = {"group_size": 4, "example_length": 256, "validation_every": 2}
    path = tmp_path / "preset.json"
    path.write_text(json.dumps(preset))
    return path


def test_a_single_text_file_trains_m1_and_its_split_is_deterministic(capsys, tmp_path):
    (tmp_path / "book.txt").write_bytes(english_text(30_000))
    logs = []
    for out in ("a.npz", "b.npz"):
        status, _, err = run_cli(capsys, "train-m1", "--out", tmp_path / out, "--corpus", tmp_path / "book.txt",
                                 "--preset", tiny_preset(tmp_path), "--steps", 2, "--backend", "ref")
        assert status == 0, err
        logs.append([line for line in err.splitlines() if line.startswith("corpus:")])
    assert logs[0] == logs[1] and "train" in logs[0][0]  # the same documents and examples on each side
    assert checkpoint.load(tmp_path / "a.npz")[3]["step"] == 2


def test_stdin_is_a_corpus(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(english_text(30_000))))
    status, _, err = run_cli(capsys, "train-m1", "--out", tmp_path / "m1.npz", "--corpus", "-",
                             "--preset", tiny_preset(tmp_path), "--steps", 1, "--backend", "ref")
    assert status == 0, err


def test_a_too_small_corpus_says_how_small_and_what_to_do(capsys, tmp_path):
    (tmp_path / "short.txt").write_bytes(english_text(5_000))  # 2 pieces: one group of 4, no training side
    err = fails_cli(capsys, "train-m1", "--out", tmp_path / "m1.npz", "--corpus", tmp_path / "short.txt",
                    "--preset", tiny_preset(tmp_path), "--backend", "ref", says="too small")
    assert "documents (5,000 bytes)" in err and "at least 5" in err and "smaller packing.group_size" in err


def test_a_non_utf8_text_file_is_refused_in_one_line(capsys, tmp_path):
    (tmp_path / "latin1.txt").write_bytes(english_text(3_000) + b"\nna\xefve\n")
    fails_cli(capsys, "train-m1", "--out", tmp_path / "m1.npz", "--corpus", tmp_path / "latin1.txt",
              "--preset", tiny_preset(tmp_path), "--backend", "ref", says="not UTF-8 text (byte 0xef")
