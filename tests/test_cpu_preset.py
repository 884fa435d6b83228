"""The cpu preset and the knobs around it: --scale, M2 trained for whole epochs, the time estimate's arithmetic."""
import copy

import pytest

from equalinfo.train import estimate, repro
from equalinfo.train.preset_schema import PresetError


def test_the_cpu_preset_validates_and_keeps_m1_within_its_context():
    preset = repro.load_preset("cpu")
    assert preset["coding"]["exact_rule"] == 2
    assert preset["m2"]["seeds"] >= 3 and preset["m2"]["epochs"] == 1
    # M2 at least as large as M1: the same size name or a larger one
    order = ["micro", "tiny", "3m", "25m", "113m", "403m", "2b"]
    assert all(order.index(size) >= order.index(preset["m1"]["size"]) for size in preset["m2"]["sizes"])
    labels = [name for name, *_ in repro.dataset_specs(preset)]
    assert "EqualInfoAC[b=16,v=256,zero-pad]" in labels and "AC[v=65k]" in labels


def test_scale_multiplies_data_and_steps_only():
    preset = repro.load_preset("cpu")
    scaled = repro.scale_preset(preset, 0.5)
    assert scaled["datasets"]["train_examples"] == round(preset["datasets"]["train_examples"] * 0.5)
    assert scaled["datasets"]["val_examples"] == round(preset["datasets"]["val_examples"] * 0.5)
    for part in ("m1", "m2"):
        steps = scaled[part]["train"]["steps"]
        assert steps == round(preset[part]["train"]["steps"] * 0.5)
        assert scaled[part]["train"]["optimizer"]["total_steps"] == steps
    assert scaled["m1"]["size"] == preset["m1"]["size"] and scaled["m2"]["epochs"] == preset["m2"]["epochs"]
    assert scaled["scale"] == 0.5 and "scale" not in preset  # the original is untouched
    tiny = repro.scale_preset(preset, 1e-6)
    assert tiny["datasets"]["train_examples"] == 1 and tiny["m2"]["train"]["steps"] == 1
    for bad in (0, -1.0):
        with pytest.raises(PresetError, match="--scale"):
            repro.scale_preset(preset, bad)


def test_m2_trains_whole_epochs_when_the_preset_says_so():
    spec = copy.deepcopy(repro.load_preset("cpu")["m2"])
    settings = repro.m2_settings(spec, train_rows=803, seed=7)
    assert settings["steps"] == 803 // spec["batch_size"]  # one pass, never a row twice
    assert settings["optimizer"]["total_steps"] == settings["steps"] and settings["seed"] == 7
    spec["epochs"] = 2
    assert repro.m2_settings(spec, 803, 0)["steps"] == 2 * 803 // spec["batch_size"]
    del spec["epochs"]
    assert repro.m2_settings(spec, 803, 0)["steps"] == spec["train"]["steps"]


def test_the_estimate_adds_up_its_probes(monkeypatch):
    preset = repro.load_preset("cpu")
    monkeypatch.setattr(estimate, "_step_seconds", lambda backend, cfg, batch, seq_len: 0.5)
    monkeypatch.setattr(estimate, "_coding_bytes_per_second", lambda *args: 1000.0)
    specs = repro.dataset_specs(preset)
    figures = estimate.estimate(preset, None, specs, train_rows=800, text=list(range(1000)))
    m2 = preset["m2"]
    steps = 800 // m2["batch_size"]
    coded = {(method, b, entry.get("delimit", True), entry.get("m1_reset_every", 1))
             for _, method, b, _, entry in specs if method in ("ac", "equalinfo")}
    assert len(coded) == 8  # AC, EqualInfoAC b=16 (ours, zero-padded, reset every 2, never), b=32, 64, 128
    examples = preset["datasets"]["train_examples"] + preset["datasets"]["val_examples"]
    assert figures["m2_steps"] == steps
    assert figures["m1_s"] == pytest.approx(0.5 * preset["m1"]["train"]["steps"])
    assert figures["coding_s"] == pytest.approx(len(coded) * examples * preset["packing"]["example_length"] / 1000)
    eval_batches = -(-min(m2["eval_rows"], preset["datasets"]["val_examples"]) // m2["batch_size"])
    per_run = 0.5 * (steps + eval_batches / 3)
    assert figures["m2_s"] == pytest.approx(per_run * m2["seeds"] * len(specs) * len(m2["sizes"]))
    assert figures["total_s"] == pytest.approx(figures["m1_s"] + figures["coding_s"] + figures["m2_s"])
    assert "min" in estimate.describe(figures)
