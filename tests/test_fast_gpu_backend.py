"""The gpu backend as the pipeline sees it: it imports anywhere, says clearly when it cannot run, trains through
train/trainer.py with its arrays on the device and NumPy checkpoints, and its repro preset is valid."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gpu_support import MODE, needs_kernels, quick_simulator_threads  # noqa: F401

from equalinfo.train import backends, checkpoint, m1, repro

ROOT = Path(__file__).resolve().parents[1]
NO_CUPY = pytest.mark.skipif(MODE == "gpu", reason="checks the message given where CuPy or a GPU is missing")


def test_fast_gpu_imports_without_cupy():
    """A fresh interpreter with CuPy hidden imports every fast.gpu module (nothing touches CuPy at import)."""
    code = ("import sys; sys.modules['cupy'] = None\n"  # makes `import cupy` fail, as on a machine without it
            "import equalinfo.fast.gpu.transformer, equalinfo.fast.gpu.optim\n"
            "import equalinfo.fast.gpu.ac, equalinfo.fast.gpu.equalinfo\n"
            "from equalinfo.fast.gpu import device\n"
            "try:\n    device.xp()\nexcept device.GPUUnavailable as error:\n    print('unavailable:', error)\n"
            "else:\n    print('simulated' if device.SIMULATED else 'gpu')\n")
    env = {key: value for key, value in __import__("os").environ.items() if key != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "unavailable: fast.gpu needs CuPy" in result.stdout


@NO_CUPY
def test_backend_gpu_says_what_is_missing():
    with pytest.raises(backends.BackendUnavailable, match="backend 'gpu' needs CuPy"):
        backends.load("gpu")
    assert "gpu" not in backends.available()


@NO_CUPY
def test_cli_backend_gpu_fails_with_one_clear_line(tmp_path, capsys):
    from equalinfo import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["train-m1", "--out", str(tmp_path / "m1.npz"), "--backend", "gpu", "--steps", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("equalinfo: error: ") and "CuPy" in err and "Traceback" not in err


def gpu_modules():
    """The gpu backend's modules as backends.load would bundle them (load itself insists on CuPy and a GPU)."""
    from equalinfo.fast.gpu import ac, equalinfo, optim, transformer

    return SimpleNamespace(name="gpu", transformer=transformer, optim=optim, ac=ac, equalinfo=equalinfo)


@needs_kernels
def test_trainer_with_the_gpu_backend_matches_ref(tmp_path):
    """Three steps of a micro M1 in float64 through train/trainer.py: the same losses and weights as ref, NumPy in
    the checkpoint and in what train returns."""
    text = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 20, np.uint8).astype(np.int64)
    cfg = m1.make_config("micro", dtype="float64")
    settings = {"steps": 3, "eval_every": 0, "checkpoint_every": 0,
                "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 1, "total_steps": 3}}
    runs = {}
    for name, backend in (("ref", backends.load("ref")), ("gpu", gpu_modules())):
        runs[name] = m1.train_m1(text[:600], text[600:], tmp_path / f"{name}.npz", backend, cfg, settings,
                                 seq_len=12, batch_size=2, eval_sequences=2)
    (ref_params, ref_history), (params, history) = runs["ref"], runs["gpu"]
    assert all(type(value) is np.ndarray for value in params.values())
    losses = [r["train_loss"] for r in history if "train_loss" in r]
    ref_losses = [r["train_loss"] for r in ref_history if "train_loss" in r]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    assert abs(history[-1]["val_nll"] - ref_history[-1]["val_nll"]) < 1e-10
    saved, saved_cfg, state, _ = checkpoint.load(tmp_path / "gpu.npz")
    assert saved_cfg == cfg and all(np.array_equal(saved[key], params[key]) for key in params)
    for key in ref_params:
        np.testing.assert_allclose(params[key], ref_params[key], rtol=1e-9, atol=1e-12)


def test_gpu_preset_is_valid_and_small():
    preset = repro.load_preset("gpu")
    assert preset["m1"]["size"] == "3m" and "25m" in preset["m2"]["sizes"]
    assert repro.dataset_specs(preset) and preset["corpus"] == "default"  # Python's docs: nothing to download
    for part in ("m1", "m2"):
        optimizer = preset[part]["train"]["optimizer"]
        assert optimizer["total_steps"] == preset[part]["train"]["steps"]  # the schedule ends with the run
