"""The shipped M1's recipe is deterministic: docs/shipped-m1.md's two commands,

    equalinfo train-m1 --preset shipped-m1 --corpus en-corpus.jsonl.gz --out m1.npz --backend cpu --threads 1
    python -m equalinfo.filetool.shipped_model m1.npz OUT

run twice give byte-identical checkpoints and model files, so the 42-minute training reproduces the shipped file
bit for bit. Scaled down: 2 steps (--steps; the second step reads the first's AdamW moments) of the preset's 3m M1
and 16 x 256 batches, on a 60 KB JSONL.gz corpus of 30 documents in en-corpus's format. The two runs are separate
processes (as two users' runs would be), started side by side: ~17 s of CPU each on the 2-core dev machine.
"""
import gzip
import json
import subprocess
import sys

import numpy as np

from helpers import english_text
from equalinfo.filetool import shipped_model
from equalinfo.train import m1

DOCUMENT_BYTES = 2_000


def write_corpus(path):
    """30 documents of ~2 KB of English (Python's help topics), one JSON object per line, gzipped."""
    text = english_text(30 * DOCUMENT_BYTES).decode("utf-8", errors="ignore")
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for index, start in enumerate(range(0, len(text), DOCUMENT_BYTES)):
            out.write(json.dumps({"url": f"test:{index}", "text": text[start:start + DOCUMENT_BYTES]}) + "\n")


def test_two_runs_of_the_recipe_give_identical_checkpoints_and_model_files(tmp_path):
    corpus = tmp_path / "corpus.jsonl.gz"
    write_corpus(corpus)
    runs = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        command = [sys.executable, "-m", "equalinfo", "train-m1", "--preset", "shipped-m1", "--corpus", str(corpus),
                   "--out", "m1.npz", "--backend", "cpu", "--threads", "1", "--steps", "2"]
        runs[name] = subprocess.Popen(command, cwd=tmp_path / name, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
    said = {}
    for name, process in runs.items():
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err
        said[name] = [line for line in (out + err).splitlines() if "validation" in line]
    assert said["a"] == said["b"] and len(said["a"]) >= 1, said  # the same validation bits/byte, printed
    checkpoints = [(tmp_path / name / "m1.npz").read_bytes() for name in runs]
    assert checkpoints[0] == checkpoints[1]
    assert m1.is_checkpoint(tmp_path / "a" / "m1.npz") and len(checkpoints[0]) > 1_000_000  # a real 3m M1
    files = [shipped_model.model_file_from_checkpoint(tmp_path / name / "m1.npz") for name in runs]
    assert files[0] == files[1]
    assert files[0][1] != shipped_model.FINGERPRINT  # 2 steps are not the shipped model's 2,400
    params = np.load(tmp_path / "a" / "m1.npz", allow_pickle=False)
    assert any(np.any(params[key] != 0) for key in params.files if params[key].dtype.kind == "f")
