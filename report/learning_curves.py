"""Learning curves: bits/byte of an M2 against training steps, beside the floors it must beat.

"Not learnable" means a flat curve, not a short one: an M2 that sits on its floor after 37 steps may still be
falling. So the report reads M2 at several points of its training. The trainer (train/trainer.py) evaluates every
`eval_every` steps and at the end, and records each evaluation in its history as {"step", "val_nll",
"val_bits_per_byte"} (M2's describe adds bits/byte) beside one {"step", "train_loss"} per step. Evaluating does
not touch the parameters, the optimizer or the batch order, so the points cost time but never change the run
(tests/test_learning_curves.py trains with and without them and compares).

Everything here is a pure function of a history: which steps the trainer evaluates at, the curve at those steps
with the mean training loss since the previous point, and how much the curve still fell over its last part.
"""
import numpy as np


def evaluation_steps(total_steps, eval_every):
    """The steps the trainer evaluates at: every multiple of eval_every below total_steps, and total_steps."""
    if total_steps < 1 or eval_every < 0:
        raise ValueError(f"need total_steps >= 1 and eval_every >= 0, got {total_steps} and {eval_every}")
    inside = range(eval_every, total_steps, eval_every) if eval_every else []
    return [*inside, total_steps]


def eval_every_for(total_steps, points):
    """The largest eval_every that gives at least `points` evaluations over total_steps (the last one included)."""
    if points < 1 or total_steps < 1:
        raise ValueError(f"need points >= 1 and total_steps >= 1, got {points} and {total_steps}")
    # with eval_every e the trainer evaluates floor((total - 1) / e) + 1 times: enough while e <= (total-1)/(points-1)
    return max(1, (total_steps - 1) // (points - 1)) if points > 1 else 0


def learning_curve(history, steps=None, floors=None, metric="val_bits_per_byte"):
    """{"steps", metric, "train_loss", "floors"} of a trainer history.

    steps: the evaluation steps to read (each must have an evaluation record; all of them by default); metric: the
    evaluation figure to read (bits/byte for M2); train_loss[i]: the mean training loss over the steps after the
    previous point up to steps[i] (None where the history holds none); floors: {name: bits/byte}, copied as flat
    lines to draw beside the curve."""
    evaluated = {record["step"]: record[metric] for record in history if metric in record}
    if steps is None:
        steps = sorted(evaluated)
    steps = [int(step) for step in steps]
    missing = [step for step in steps if step not in evaluated]
    if missing:
        raise ValueError(f"the history has no {metric} at steps {missing} (evaluated at {sorted(evaluated)}): "
                         "train with an eval_every that divides them")
    if steps != sorted(set(steps)):
        raise ValueError(f"evaluation steps must increase, got {steps}")
    losses = {record["step"]: record["train_loss"] for record in history if "train_loss" in record}
    train_loss, previous = [], 0
    for step in steps:
        since = [losses[s] for s in range(previous + 1, step + 1) if s in losses]
        train_loss.append(float(np.mean(since)) if since else None)
        previous = step
    return {"steps": steps, metric: [float(evaluated[step]) for step in steps], "train_loss": train_loss,
            "floors": dict(floors or {})}


def drop_over_last(curve, fraction=0.5, metric="val_bits_per_byte"):
    """How much the curve fell over the last `fraction` of training: the figure at the last evaluation at or
    before step (1 - fraction) * last step, minus the figure at the last step. Compare it with the noise (SE, seed
    spread): a drop within the noise is a flat curve; a larger one says the run stopped while still learning."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    steps, values = curve["steps"], curve[metric]
    cut = (1 - fraction) * steps[-1]
    earlier = [i for i, step in enumerate(steps) if step <= cut]
    if not earlier:
        raise ValueError(f"no evaluation at or before step {cut:g}: evaluate earlier in training")
    return float(values[earlier[-1]] - values[-1])
