"""M1 drives the file commands: `compress --model M1.npz` with a train-m1 checkpoint, decoded by every backend,
restarting at the length M1 was trained on, and every way of giving the wrong M1 refused with one clear line."""
import numpy as np
import pytest

from helpers import fails_cli, run_cli
from equalinfo.ref import transformer as tr
from equalinfo.train import checkpoint

TEXT = (b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        b"foolishness; \xe2\x80\x94 Dickens\n") * 3
CFG = tr.Config(vocab_in=258, vocab_out=257, d_model=32, n_heads=4, n_layers=2, d_ff=48)
SEQ_LEN = 16


def save_m1(path, seq_len=SEQ_LEN, role="m1", seed=0):
    """A random M1 checkpoint as train-m1 writes it (role and training sequence length in its meta)."""
    cfg = CFG if role == "m1" else tr.Config(**{**CFG.to_dict(), "vocab_in": 300, "vocab_out": 300})
    meta = {"step": 0, "role": role}
    if seq_len is not None:
        meta["seq_len"] = seq_len
    checkpoint.save(path, tr.init_params(cfg, seed), cfg, meta=meta)
    return path


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "in.txt").write_bytes(TEXT)
    return {"in": tmp_path / "in.txt", "m1": save_m1(tmp_path / "m1.npz"), "dir": tmp_path}


@pytest.mark.parametrize("method", ["ac", "equalinfo"])
@pytest.mark.parametrize("rule", ["1", "2"])
def test_a_file_made_on_cpu_decodes_on_ref_and_cpu(capsys, paths, method, rule):
    out = paths["dir"] / "x.eqi"
    status, _, said = run_cli(capsys, "compress", paths["in"], out, "--method", method, "--model", paths["m1"],
                              "--m1-rule", rule, "--backend", "cpu", "--no-store", "--force")
    assert status == 0 and "transformer model" in said and "B/s on cpu" in said, said
    for backend in ("ref", "cpu"):
        back = paths["dir"] / f"back.{backend}"
        status, _, said = run_cli(capsys, "decompress", out, back, "--model", paths["m1"], "--m1-rule", rule,
                                  "--backend", backend, "--force")
        assert status == 0, said
        assert back.read_bytes() == TEXT and f"on {backend}" in said


def test_the_restart_length_is_part_of_the_file(capsys, paths):
    out = paths["dir"] / "x.eqi"
    assert run_cli(capsys, "compress", paths["in"], out, "--method", "ac", "--model", paths["m1"],
                   "--no-store", "--force")[0] == 0
    fails_cli(capsys, "decompress", out, paths["dir"] / "y", "--model", paths["m1"], "--m1-context", "8",
              says="wrong model")
    fails_cli(capsys, "decompress", out, paths["dir"] / "y", "--model", paths["m1"], "--m1-rule", "1",
              says="wrong model")
    shorter = paths["dir"] / "short.eqi"
    assert run_cli(capsys, "compress", paths["in"], shorter, "--method", "ac", "--model", paths["m1"],
                   "--m1-context", "8", "--no-store")[0] == 0
    assert shorter.read_bytes() != out.read_bytes()
    assert run_cli(capsys, "decompress", shorter, paths["dir"] / "z", "--model", paths["m1"],
                   "--m1-context", "8")[0] == 0
    assert (paths["dir"] / "z").read_bytes() == TEXT


def test_wrong_m1_options_and_checkpoints_are_refused(capsys, paths):
    d = paths["dir"]
    fails_cli(capsys, "compress", paths["in"], d / "o", "--model", paths["m1"], "--m1-context", str(SEQ_LEN + 1),
              says="trained on 16-symbol sequences")
    fails_cli(capsys, "compress", paths["in"], d / "o", "--model", save_m1(d / "old.npz", seq_len=None),
              says="--m1-context N")
    fails_cli(capsys, "compress", paths["in"], d / "o", "--model", save_m1(d / "m2.npz", role="m2"),
              says="not an M1")
    fails_cli(capsys, "compress", paths["in"], d / "o", "--model", "markov2", "--m1-rule", "1",
              says="apply to an M1 checkpoint")
    fails_cli(capsys, "compress", paths["in"], d / "o", "--method", "gzip", "--m1-context", "4",
              says="apply to an M1 checkpoint")
    assert not (d / "o").exists()
