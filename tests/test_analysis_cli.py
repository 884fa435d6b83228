"""`equalinfo analyze ...` and `train-m2 --keep-every` end to end at toy size, each checked against a value computed
another way (brute-force Levenshtein, the eval command's bits per token, the uniform distribution)."""
import json
import math

import numpy as np
import pytest

from helpers import levenshtein, run_cli
from equalinfo import cli


def ok(capsys, *argv):
    status, out, err = run_cli(capsys, *argv)
    assert status in (0, None), err
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A micro M1 (2 steps), an EqualInfoAC[16, 256] dataset and a micro M2 whose every 2nd checkpoint is kept."""
    root = tmp_path_factory.mktemp("toy_run")
    for argv in (["train-m1", "--out", root / "m1.npz", "--size", "micro", "--steps", 2],
                 ["build", "--out", root / "ei", "--method", "equalinfo", "--m1", root / "m1.npz",
                  "--window-bits", 16, "--bits-per-token", 8],
                 ["train-m2", "--data", root / "ei", "--out", root / "m2.npz", "--size", "micro", "--steps", 4,
                  "--keep-every", 2]):
        try:
            status = cli.main([str(a) for a in argv + ["--backend", "cpu"]])
        except SystemExit as exit_:
            status = exit_.code
        assert status in (0, None), argv
    return root


def test_keep_every_keeps_the_initial_and_every_kth_checkpoint(run_dir):
    kept = sorted(p.name for p in run_dir.glob("m2.step*.npz"))
    assert kept == ["m2.step000000.npz", "m2.step000002.npz", "m2.step000004.npz"]


def test_positions_losses_average_to_the_eval_commands_bits_per_token(run_dir, capsys, tmp_path):
    """Per-position losses, weighted by their token counts, are the checkpoint's mean loss per token: the eval
    command computes that figure through its own code path (train/m2.py)."""
    checkpoints = sorted(str(p) for p in run_dir.glob("m2.step*.npz"))
    ok(capsys, "analyze", "positions", "--data", run_dir / "ei", "--m2", *checkpoints, "--out", tmp_path,
       "--backend", "cpu")
    result = json.loads((tmp_path / "positions.json").read_text())
    assert [c["step"] for c in result["checkpoints"]] == [0, 2, 4]
    last = result["checkpoints"][-1]["positions"]
    assert set(last) == {"1", "2"}  # b = 16 bits in 8-bit tokens: two positions per window
    tokens = sum(p["tokens"] for p in last.values())
    mean_bits = sum(p["loss_bits"] * p["tokens"] for p in last.values()) / tokens
    ok(capsys, "eval", "--data", run_dir / "ei", "--m2", checkpoints[-1], "--m1", run_dir / "m1.npz",
       "--json", tmp_path / "eval.json", "--backend", "cpu")
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert mean_bits == pytest.approx(figures["bits_per_token"], rel=1e-6)
    assert all(0 <= p["accuracy"] <= 1 for p in last.values())


def test_stability_bytes_distances_are_the_texts_levenshtein_distances(capsys, tmp_path):
    """For Bytes the token sequences are the texts' bytes, so every pair's distance is the byte-level edit distance
    of word + sentence, computed here by the textbook dynamic programme."""
    ok(capsys, "analyze", "stability", "--out", tmp_path, "--words", 8, "--methods", "bytes", "gzip",
       "--backend", "cpu")
    result = json.loads((tmp_path / "stability.json").read_text())
    texts = [(word + result["sentence"]).encode() for word in result["words"]]
    distances = [levenshtein(a, b) for i, a in enumerate(texts) for b in texts[i + 1:]]
    assert result["pairs"] == len(distances) == 28
    got = result["levenshtein"]["Bytes"]
    assert got["mean"] == pytest.approx(np.mean(distances))
    assert got["histogram"] == np.bincount(distances).tolist()


def test_uniformity_of_a_dataset_and_the_secrets_baseline(run_dir, capsys, tmp_path):
    """Every plug-in KL is >= 0 and Miller-Madow subtracts a positive bias term from each sample's (so each of its
    quantiles is lower), and `secrets`' bits sit near uniform at n = 1 (2 N ln2 KL ~ chi2(1), so a median KL above
    12 / (2 N ln 2) would be a 1-in-2,000 event)."""
    ok(capsys, "analyze", "uniformity", "--out", tmp_path, "--data", run_dir / "ei", "--samples", 4,
       "--backend", "cpu")
    result = json.loads((tmp_path / "uniformity.json").read_text())
    assert any("secrets" in name for name in result["streams"]) and any("EqualInfo" in n for n in result["streams"])
    checked = 0
    for name, stream in result["streams"].items():
        for n, stats in stream["ngrams"].items():
            assert stats["plug_in"]["5%"] >= -1e-12, (name, n)
            for q in ("5%", "50%", "95%"):
                assert stats["miller_madow"][q] <= stats["plug_in"][q] + 1e-12, (name, n, q)
            checked += 1
        if name.startswith("random (secrets)"):
            one_bit = stream["ngrams"]["1"]
            assert one_bit["plug_in"]["50%"] < 12 / (2 * one_bit["values_per_sample"] * math.log(2))
    assert checked >= 10


def test_seq2seq_reports_a_cross_entropy_per_task_against_the_uniform_one(capsys, tmp_path):
    ok(capsys, "analyze", "seq2seq", "--out", tmp_path, "--train-texts", 24, "--val-texts", 6, "--steps", 3,
       "--size", "micro", "--batch-size", 4, "--backend", "cpu")
    result = json.loads((tmp_path / "seq2seq.json").read_text())
    assert result["uniform_cross_entropy"] == pytest.approx(math.log(256))
    assert {"byte LM (targets only)", "AC[v=256] decompress", "AC[v=256] compress"} <= set(result["tasks"])
    for task in result["tasks"].values():
        assert 0 <= task["accuracy"] <= 1 and 0 < task["cross_entropy"] < 20


def test_generate_on_an_equalinfo_dataset_uses_the_m1_that_built_it(run_dir, capsys, tmp_path):
    """README's example: generate decodes Equal-Info windows with the M1 that built the dataset (same rule, same
    restart length, so the same fingerprint); another M1 is refused."""
    argv = ["generate", "--m2", run_dir / "m2.npz", "--data", run_dir / "ei", "--max-bytes", 8, "--backend", "cpu"]
    out = ok(capsys, *argv, "--m1", run_dir / "m1.npz", "--json", tmp_path / "g.json")
    report = next(iter(json.loads((tmp_path / "g.json").read_text())["runs"].values()))
    assert report["windows"] > 0 and report["steps"] > 0, out  # it decoded windows (a 4-step M2's are noise)
    ok(capsys, "train-m1", "--out", tmp_path / "other.npz", "--size", "micro", "--steps", 1, "--seed", 5,
       "--backend", "cpu")
    status, _, err = run_cli(capsys, *argv, "--m1", tmp_path / "other.npz")
    assert status == 2 and "is not the M1 that built" in err, err
