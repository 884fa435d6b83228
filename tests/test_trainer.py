"""The training loop: loss falls, an interrupted run resumes bit for bit, backends load by name."""
import math

import numpy as np
import pytest

from helpers import english_text
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.train import backends, m1
from equalinfo.train.trainer import TrainSettings, mean_nll

TEXT = bytes_to_symbols(english_text(120_000))
SETTINGS = dict(steps=12, optimizer={"name": "adamw", "peak_lr": 3e-3, "warmup_steps": 2, "total_steps": 12},
                seed=3, eval_every=4, checkpoint_every=4)


def run(tmp_path, name, resume=False, **overrides):
    cfg = m1.make_config("micro", dtype="float64")
    return m1.train_m1(TEXT[:100_000], TEXT[100_000:], tmp_path / name, backends.load("ref"), cfg,
                       {**SETTINGS, **overrides}, seq_len=32, batch_size=4, eval_sequences=8, resume=resume)


def test_m1_loss_falls_and_bits_per_byte_is_nll_over_ln2(tmp_path):
    _, history = run(tmp_path, "m1.npz", steps=40,
                     optimizer={**SETTINGS["optimizer"], "peak_lr": 3e-2, "total_steps": 40})
    evals = [r for r in history if "val_nll" in r]
    assert evals[-1]["val_nll"] < evals[0]["val_nll"] - 0.5
    assert evals[-1]["val_bits_per_byte"] == pytest.approx(evals[-1]["val_nll"] / math.log(2))


def test_resume_after_interruption_is_bit_identical(tmp_path):
    straight, straight_history = run(tmp_path, "straight.npz")

    class Interrupt(Exception):
        pass

    original = m1.stream_batch

    def stop_at_seven(symbols, seq_len, batch_size, seed, step):
        if step == 7:
            raise Interrupt
        return original(symbols, seq_len, batch_size, seed, step)

    m1.stream_batch = stop_at_seven
    try:
        with pytest.raises(Interrupt):
            run(tmp_path, "resumed.npz")
    finally:
        m1.stream_batch = original
    resumed, resumed_history = run(tmp_path, "resumed.npz", resume=True)  # continues from the step-4 checkpoint
    assert resumed_history == straight_history
    for name in straight:
        assert np.array_equal(straight[name], resumed[name]), name


def test_resume_refuses_another_run(tmp_path):
    run(tmp_path, "m1.npz")
    with pytest.raises(ValueError, match="different run"):
        run(tmp_path, "m1.npz", resume=True, seed=4)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(tmp_path, "missing.npz", resume=True)


def test_mean_nll_matches_a_direct_computation():
    cfg = m1.make_config("micro", dtype="float64")
    backend = backends.load("ref")
    params = backend.transformer.init_params(cfg, 0)
    batches = m1.validation_batches(TEXT[:200], 64, 2, 10)  # the last sequence is partial: weights 0 there
    total, weight = mean_nll(backend.transformer, params, cfg, batches)
    assert weight == 200
    expected = 0.0
    for inputs, targets, weights in batches:
        logits = backend.transformer.forward(params, cfg, inputs)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        for b, t in zip(*np.nonzero(weights)):
            expected -= math.log(probs[b, t, targets[b, t]])
    assert total == pytest.approx(expected, rel=1e-12)


def test_settings_and_backends_errors():
    with pytest.raises(ValueError, match="steps"):
        TrainSettings(steps=0, optimizer={"name": "adamw"})
    with pytest.raises(backends.BackendUnavailable, match="unknown backend"):
        backends.load("tpu")
    assert "ref" in backends.available()
