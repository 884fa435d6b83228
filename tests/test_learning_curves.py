"""report/learning_curves.py: evaluation points do not change an M2's training, the curve at a step is the model
of that step, and the curve's pure helpers against the trainer's own rule."""
import math

import numpy as np
import pytest

from equalinfo.data.packing import Example
from equalinfo.ref import metrics
from equalinfo.report import learning_curves
from equalinfo.train import backends, build, m2, methods
from equalinfo.train.checkpoint import load
from equalinfo.train.trainer import mean_nll
from helpers import english_text

STEPS = 6
SETTINGS = {"steps": STEPS, "seed": 2, "checkpoint_every": 0,
            "optimizer": {"name": "adamw", "peak_lr": 0.02, "warmup_steps": 1, "total_steps": STEPS}}


@pytest.fixture(scope="module")
def bytes_sets(tmp_path_factory):
    """Bytes datasets of 10 training and 4 validation rows of 32 tokens, from English text."""
    root = tmp_path_factory.mktemp("sets")
    text = english_text(20_000)

    def examples(start, count, length=40):
        return [Example(np.frombuffer(text[start + i * length:start + (i + 1) * length], np.uint8).astype(np.int16),
                        i, 0, "train") for i in range(count)]

    return {side: build.build_dataset(rows, methods.Bytes(), root / side, 32, {"label": "Bytes"})
            for side, rows in (("train", examples(0, 10)), ("validation", examples(10_000, 4)))}


def train(sets, path, keep_checkpoints=False, **settings):
    cfg = m2.make_config("micro", sets["train"].meta["vocab_size"], "float64")
    params, history = m2.train_m2(sets["train"], sets["validation"], path, backends.load("ref"), cfg,
                                  {**SETTINGS, **settings}, batch_size=2, keep_checkpoints=keep_checkpoints)
    return cfg, params, history


def test_evaluation_points_do_not_change_the_training_trajectory(bytes_sets, tmp_path):
    _, plain, plain_history = train(bytes_sets, tmp_path / "plain.npz", eval_every=0)
    cfg, curved, curved_history = train(bytes_sets, tmp_path / "curved.npz", eval_every=2, checkpoint_every=2,
                                        keep_checkpoints=True)  # checkpoints at 2 and 4: written, never read back
    for name in plain:
        assert np.array_equal(plain[name], curved[name]), name
    losses = [[r["train_loss"] for r in h if "train_loss" in r] for h in (plain_history, curved_history)]
    assert losses[0] == losses[1] and len(losses[0]) == STEPS

    curve = learning_curves.learning_curve(curved_history, floors={"uniform": 8.0})
    assert curve["steps"] == learning_curves.evaluation_steps(STEPS, 2) == [2, 4, 6]
    assert curve["floors"] == {"uniform": 8.0}
    assert curve["train_loss"][1] == pytest.approx(np.mean(losses[0][2:4]), rel=1e-12)
    # the point at step 4 is the model after 4 updates: evaluate its kept checkpoint independently
    params, _, _, _ = load(tmp_path / "curved.step000004.npz")
    val = bytes_sets["validation"]
    nll, weight = mean_nll(backends.load("ref").transformer, params, cfg, m2.eval_batches(val, 2))
    cr = build.summary(val)["cr_kept"]
    assert curve["val_bits_per_byte"][1] == pytest.approx(metrics.bits_per_byte(nll / weight, cr), rel=1e-12)
    # the last point is the one a run without evaluation points reports
    assert curve["val_bits_per_byte"][-1] == pytest.approx(plain_history[-1]["val_bits_per_byte"], rel=1e-12)


def history_of(values, every):
    """A trainer-shaped history: train_loss 10 + step at each step, an evaluation every `every` steps and at the end."""
    total = max(values)
    history = []
    for step in range(1, total + 1):
        if step in values and step < total:
            history.append({"step": step, "val_nll": math.log(2) * values[step], "val_bits_per_byte": values[step]})
        history.append({"step": step, "train_loss": 10.0 + step})
    history.append({"step": total, "val_nll": math.log(2) * values[total], "val_bits_per_byte": values[total]})
    return history


def test_learning_curve_reads_the_requested_points_and_refuses_missing_ones():
    values = {3: 5.0, 6: 4.0, 9: 3.5, 12: 3.4, 13: 3.39}
    history = history_of(values, 3)
    curve = learning_curves.learning_curve(history, steps=[6, 12, 13])
    assert curve["val_bits_per_byte"] == [4.0, 3.4, 3.39]
    assert curve["train_loss"] == [np.mean([11, 12, 13, 14, 15, 16]), np.mean(range(17, 23)), 23.0]
    with pytest.raises(ValueError, match=r"no val_bits_per_byte at steps \[5\]"):
        learning_curves.learning_curve(history, steps=[5, 6])
    with pytest.raises(ValueError, match="increase"):
        learning_curves.learning_curve(history, steps=[6, 3])


def test_drop_over_last_separates_a_flat_curve_from_a_falling_one():
    falling = learning_curves.learning_curve(history_of({3: 5.0, 6: 4.0, 9: 3.5, 12: 3.0}, 3))
    flat = learning_curves.learning_curve(history_of({3: 5.0, 6: 4.0, 9: 4.001, 12: 3.999}, 3))
    assert learning_curves.drop_over_last(falling) == pytest.approx(1.0)  # step 6 (half of 12) to step 12
    assert learning_curves.drop_over_last(flat) == pytest.approx(0.001)
    assert learning_curves.drop_over_last(falling, fraction=0.25) == pytest.approx(0.5)  # step 9 to 12
    with pytest.raises(ValueError, match="evaluate earlier"):
        learning_curves.drop_over_last(learning_curves.learning_curve(history_of({12: 3.0}, 12)))


@pytest.mark.parametrize("total,points", [(37, 5), (370, 10), (5, 8), (100, 1)])
def test_eval_every_for_gives_enough_points(total, points):
    every = learning_curves.eval_every_for(total, points)
    steps = learning_curves.evaluation_steps(total, every)
    assert len(steps) >= min(points, total) and steps[-1] == total
    if every > 1:  # the largest such interval: one more step between points gives too few
        assert len(learning_curves.evaluation_steps(total, every + 1)) < points
