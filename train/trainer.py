"""One training loop for M1 and M2: deterministic batches, periodic validation, checkpoints, exact resume.

Why it resumes bit for bit: the batch of step k is a pure function of (seed, k) (the caller's `batch_at`), the
optimizer's state is saved whole in the checkpoint, and the arrays are stored exactly (.npz). So a run stopped after
step k and resumed from its checkpoint performs the same floating-point operations on the same inputs as a run that
never stopped; the tests compare the two.

Checkpoints come every `checkpoint_every` steps and, whatever the settings, whenever CHECKPOINT_SECONDS of wall
time have passed since the last one, so a killed run resumes with at most a few minutes lost (the resumed result is
the same whenever the checkpoints were taken). Each checkpoint records its role ("m1" or "m2") in its meta, and
`load_checkpoint(path, role)` refuses one given in the other role (an M2 passed as --m1).

Where arrays live: the gpu backend's transformer module has `to_device`/`to_host` (fast/gpu/device.py), and the
loop keeps the parameters and the optimizer state on the GPU from the first step to the last; checkpoints and the
returned parameters are NumPy whatever the backend. ref and cpu have no such functions: their arrays are NumPy.
"""
import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from equalinfo.data.atomic import write_atomically
from equalinfo.train import checkpoint


CHECKPOINT_SECONDS = 120.0
ROLES = {"m1": "M1 (the byte model that drives the coder, from train-m1)",
         "m2": "M2 (the model trained over compressed tokens, from train-m2)"}


def load_checkpoint(path, role):
    """(params, cfg, opt_state, meta) of a checkpoint that must be an `role` ("m1" or "m2") checkpoint.

    Checkpoints from before roles were recorded carry none; they are accepted when their config can be that role
    (M1 reads 258 ids and predicts 257)."""
    params, cfg, opt_state, meta = checkpoint.load(path)
    saved = meta.get("role") if isinstance(meta, dict) else None
    if saved is None:
        saved = role if role == "m2" or (cfg.vocab_in, cfg.vocab_out) == (258, 257) else "m2"
    if saved != role:
        raise checkpoint.CheckpointError(f"{path} is an {ROLES.get(saved, saved)} checkpoint, not an {ROLES[role]}")
    return params, cfg, opt_state, meta


@dataclass
class TrainSettings:
    """How long and how to train; stored in the checkpoint so a resumed run can check it continues the same run."""
    steps: int
    optimizer: dict  # an optimizer's config() dict: {"name": "adafactor", ...}
    seed: int = 0
    eval_every: int = 0  # 0: only at the end
    checkpoint_every: int = 0  # 0: only at the end

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.eval_every < 0 or self.checkpoint_every < 0:
            raise ValueError("eval_every and checkpoint_every must be >= 0")


def versions():
    """What produced a result: Python, platform, NumPy/Numba versions and the git commit if there is one."""
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__}
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        pass
    if "cupy" in sys.modules:  # the gpu backend was used
        info["cupy"] = sys.modules["cupy"].__version__
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _placement(transformer):
    """(to_device, to_host) of a backend's transformer module: identities unless it keeps arrays on a device."""
    def identity(arrays):
        return arrays

    return getattr(transformer, "to_device", identity), getattr(transformer, "to_host", identity)


def _array_module(array):
    """numpy, or cupy for a CuPy array (the gpu backend's logits stay on the GPU)."""
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(array, cupy.ndarray) else np


def _weighted_nll(transformer, params, cfg, batches):
    """Per batch: (NLL in nats times weight [B, T], weights [B, T]), on the backend's array module; no z-loss."""
    params = _placement(transformer)[0](params)
    for inputs, targets, weights in batches:
        logits = transformer.forward(params, cfg, inputs)  # [B, T, V]
        xp = _array_module(logits)
        logits = logits.astype(xp.float64)
        targets, weights = xp.asarray(np.maximum(targets, 0)), xp.asarray(weights)
        top = logits.max(axis=-1, keepdims=True)
        log_norm = top[..., 0] + xp.log(xp.exp(logits - top).sum(axis=-1))  # [B, T]
        picked = xp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        yield (log_norm - picked) * weights, weights


def mean_nll(transformer, params, cfg, batches):
    """(sum of weighted NLL in nats, sum of weights) over batches of (inputs, targets, weights); no z-loss."""
    total, weight = 0.0, 0.0
    for nll, weights in _weighted_nll(transformer, params, cfg, batches):
        total += float(nll.sum())
        weight += float(weights.sum())
    return total, weight


def _host(array):
    """A NumPy copy of a NumPy or CuPy array."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def nll_by_row(transformer, params, cfg, batches):
    """(total, weight, row_nll [R], row_weight [R]): mean_nll's two sums, computed exactly as mean_nll computes them,
    plus each row's own sums (R = all rows of all batches, in order), which the standard error of bits/byte needs
    (report/uncertainty.py). One forward pass per batch serves both."""
    total, weight, rows, row_weights = 0.0, 0.0, [], []
    for nll, weights in _weighted_nll(transformer, params, cfg, batches):
        total += float(nll.sum())
        weight += float(weights.sum())
        rows.append(_host(nll.sum(axis=-1)))  # [B]
        row_weights.append(_host(weights.sum(axis=-1)))  # [B]
    if not rows:
        return total, weight, np.zeros(0), np.zeros(0)
    return total, weight, np.concatenate(rows).astype(np.float64), np.concatenate(row_weights).astype(np.float64)


def train(cfg, params, settings, backend, batch_at, eval_batches, checkpoint_path, resume=False,
          describe=lambda loss: {}, desc="train", role=None, keep_checkpoints=False, extra_meta=None):
    """Train `params` in place of a fresh copy; returns (params, history).

    batch_at(step) -> (inputs, targets, weights) for step = 0, 1, ...; eval_batches: a list of such triples;
    describe(mean validation NLL) -> extra figures to log (e.g. bits/byte). The checkpoint at `checkpoint_path`
    holds params, optimizer state and meta {"step", "settings", "history", "role"}; with resume=True training
    continues from it (and must be the same run: same role, settings and model config). keep_checkpoints=True also
    keeps a copy of every checkpoint (the initial parameters included) as <stem>.stepNNNNNN.npz beside it, for
    analyses of training over time (equalinfo analyze positions). extra_meta: more JSON-able facts to record in
    every checkpoint's meta (M1 records the sequence length it was trained on, which bounds the context it codes).
    """
    transformer, optim = backend.transformer, backend.optim
    to_device, to_host = _placement(transformer)
    optimizer = optim.from_config(settings.optimizer)
    state, start, history = optimizer.init(params), 0, []
    checkpoint_path = Path(checkpoint_path)
    if resume and checkpoint_path.exists():
        params, saved_cfg, state, meta = (load_checkpoint(checkpoint_path, role) if role
                                          else checkpoint.load(checkpoint_path))
        changed = [key for key, value in (extra_meta or {}).items() if key in meta and meta[key] != value]
        if saved_cfg != cfg or meta.get("settings") != asdict(settings) or changed:
            raise ValueError(f"{checkpoint_path} belongs to a different run (its model config or training "
                             f"settings{' or ' + ', '.join(changed) if changed else ''} differ); start a new output "
                             "directory or drop --resume")
        start, history = int(meta["step"]), list(meta["history"])
    elif resume:
        raise FileNotFoundError(f"--resume given but there is no checkpoint at {checkpoint_path}")
    params, state = to_device(params), to_device(state)

    def evaluate(step):
        nll, weight = mean_nll(transformer, params, cfg, eval_batches)
        record = {"step": step, "val_nll": nll / weight, **describe(nll / weight)}
        history.append(record)
        return record

    last_save = time.monotonic()

    def save(step):
        nonlocal last_save
        meta = {**(extra_meta or {}), "step": step, "settings": asdict(settings), "history": history,
                "versions": versions()}
        if role:
            meta["role"] = role
        checkpoint.save(checkpoint_path, to_host(params), cfg, opt_state=to_host(state), meta=meta)
        if keep_checkpoints:
            kept = checkpoint_path.with_name(f"{checkpoint_path.stem}.step{step:06d}{checkpoint_path.suffix}")
            checkpoint.save(kept, to_host(params), cfg, meta=meta)
        last_save = time.monotonic()

    if keep_checkpoints and start == 0:
        save(0)
    bar = tqdm(range(start, settings.steps), desc=desc, initial=start, total=settings.steps, unit="step",
               disable=None)
    for step in bar:
        inputs, targets, weights = batch_at(step)
        loss, grads = transformer.loss_and_grads(params, cfg, inputs, targets, weights)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss} at step {step}")
        params, state = optimizer.update(params, grads, state, step)
        done = step + 1
        postfix = {"loss": f"{loss:.4f}"}
        if settings.eval_every and done % settings.eval_every == 0 and done < settings.steps:
            postfix.update({k: f"{v:.4f}" for k, v in evaluate(done).items() if k != "step"})
        history.append({"step": done, "train_loss": float(loss)})
        bar.set_postfix(postfix)
        due = settings.checkpoint_every and done % settings.checkpoint_every == 0
        if done < settings.steps and (due or time.monotonic() - last_save >= CHECKPOINT_SECONDS):
            save(done)
    if start < settings.steps or not history or "val_nll" not in history[-1]:
        evaluate(settings.steps)
    save(settings.steps)
    return to_host(params), history


def write_json(path, data):
    """Write JSON atomically (data/atomic.py) so an interrupted run never leaves half a results file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    write_atomically(path, lambda stream: stream.write(text.encode("utf-8")))


def timed(function, *args, **kwargs):
    """(result, seconds) of a call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started
