"""Checks of train/checkpoint.py: round trips, bit-identical resumption of training, and clear errors for bad files."""
import json
import os
import zipfile

import numpy as np
import pytest

from equalinfo.ref import fingerprint as fp
from equalinfo.ref import optim
from equalinfo.ref import transformer as tr
from equalinfo.train import checkpoint as ck

CFG = tr.Config(vocab_in=12, vocab_out=10, d_model=16, n_heads=2, n_layers=2, d_ff=24, dtype="float32")
MICRO = tr.Config(vocab_in=5, vocab_out=4, d_model=4, n_heads=2, n_layers=1, d_ff=4, dtype="float64")


def fixed_batch():
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, CFG.vocab_in, (3, 20))
    return inputs, (inputs * 3 + 1) % CFG.vocab_out


def test_round_trip(tmp_path):
    for cfg in (CFG, MICRO):
        params = tr.init_params(cfg, 7)
        opt = optim.Adafactor(min_dim_size_to_factor=8)
        state = opt.init(params)
        meta = {"step": 12, "optimizer": opt.config(), "note": "é ünïcode", "nested": {"a": [1, 2.5, None]}}
        path = tmp_path / f"{cfg.dtype}.npz"
        ck.save(path, params, cfg, state, meta)
        params2, cfg2, state2, meta2 = ck.load(path)
        assert cfg2 == cfg and meta2 == meta
        assert set(params2) == set(params) and set(state2) == set(state)
        for name in params:
            assert params2[name].dtype == params[name].dtype and np.array_equal(params2[name], params[name])
        for key in state:
            assert state2[key].dtype == state[key].dtype and np.array_equal(state2[key], state[key])
        assert ck.fingerprint(params2) == ck.fingerprint(params)
    ck.save(tmp_path / "bare.npz", params, MICRO)
    params3, cfg3, state3, meta3 = ck.load(tmp_path / "bare.npz")
    assert state3 is None and meta3 is None and cfg3 == MICRO
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []  # no temporary files left


def test_fingerprint_is_the_shared_one():
    params = tr.init_params(MICRO, 1)
    assert ck.fingerprint is fp.fingerprint
    changed = dict(params, embed=params["embed"].copy())
    changed["embed"][0, 0] = np.nextafter(changed["embed"][0, 0], 1)
    assert ck.fingerprint(changed) != ck.fingerprint(params)


@pytest.mark.parametrize("opt", [optim.Adafactor(base_lr=0.1, warmup_steps=5, min_dim_size_to_factor=8),
                                 optim.AdamW(peak_lr=1e-2, warmup_steps=3, total_steps=10)],
                         ids=["adafactor", "adamw"])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, opt):
    inputs, targets = fixed_batch()

    def run(opt, params, state, steps):
        losses = []
        for step in steps:
            loss, grads = tr.loss_and_grads(params, CFG, inputs, targets)
            losses.append(loss)
            params, state = opt.update(params, grads, state, step)
        return losses, params, state

    params = tr.init_params(CFG, 3)
    straight, final, _ = run(opt, params, opt.init(params), range(8))
    first, mid_params, mid_state = run(opt, params, opt.init(params), range(4))
    ck.save(tmp_path / "mid.npz", mid_params, CFG, mid_state, {"step": 4, "optimizer": opt.config()})
    loaded_params, cfg, loaded_state, meta = ck.load(tmp_path / "mid.npz")
    second, resumed_final, _ = run(optim.from_config(meta["optimizer"]), loaded_params, loaded_state,
                                   range(meta["step"], 8))
    assert first + second == straight  # exactly the same floats
    assert straight[-1] < straight[0]
    assert all(np.array_equal(resumed_final[n], final[n]) for n in final)


def write_micro(path):
    params = tr.init_params(MICRO, 2)
    ck.save(path, params, MICRO, {"v/embed": np.arange(20.0).reshape(5, 4)}, {"step": 1})
    return params


def test_truncated_files_raise(tmp_path):
    path = tmp_path / "ok.npz"
    write_micro(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    for length in list(range(0, 64)) + list(range(64, len(data), 97)) + [len(data) - 1]:
        bad.write_bytes(data[:length])
        with pytest.raises(ck.CheckpointError, match="truncated|corrupt|empty|not a checkpoint"):
            ck.load(bad)


def test_corrupt_files_raise_or_load_unchanged(tmp_path):
    """Flip every 3rd byte in turn: each load either raises CheckpointError or (for zip fields that carry no data,
    such as timestamps) returns exactly the saved arrays; never another exception, never silently changed data."""
    path = tmp_path / "ok.npz"
    params = write_micro(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    raised = 0
    for position in range(0, len(data), 3):
        corrupt = bytearray(data)
        corrupt[position] ^= 0x5A
        bad.write_bytes(bytes(corrupt))
        try:
            loaded, _, state, _ = ck.load(bad)
        except ck.CheckpointError:
            raised += 1
            continue
        assert all(np.array_equal(loaded[n], params[n]) for n in params), position
        assert np.array_equal(state["v/embed"], np.arange(20.0).reshape(5, 4)), position
    assert raised > len(data) // 3 // 2
    # a flipped byte in the middle of an array's data is always caught
    offset = data.find(params["embed"].tobytes())
    assert offset > 0
    corrupt = bytearray(data)
    corrupt[offset + 13] ^= 1
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(ck.CheckpointError, match="corrupt"):
        ck.load(bad)


def test_foreign_files_raise(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ck.CheckpointError, match="not an equalinfo checkpoint"):
        ck.load(foreign)
    text = tmp_path / "text.npz"
    text.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(ck.CheckpointError, match="not an .npz"):
        ck.load(text)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(3))
    with pytest.raises(ck.CheckpointError, match="single .npy"):
        ck.load(single)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __header__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ck.CheckpointError, match="pickled"):
        ck.load(pickled)
    with pytest.raises(FileNotFoundError):
        ck.load(tmp_path / "missing.npz")


def rewrite_header(src, dst, change):
    """Copy a checkpoint, editing its JSON header (the arrays stay as they are)."""
    with np.load(src, allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    header = json.loads(members["__header__"].tobytes())
    change(header)
    members["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(dst, **members)


def test_inconsistent_headers_raise(tmp_path):
    path = tmp_path / "ok.npz"
    write_micro(path)
    bad = tmp_path / "bad.npz"
    cases = [
        (lambda h: h.update(version=99), "version 99"),
        (lambda h: h.update(format="something-else"), "not an equalinfo checkpoint"),
        (lambda h: h["config"].update(d_model=8), "do not match"),
        (lambda h: h["config"].update(n_heads=3), "config is invalid"),
        (lambda h: h["config"].update(colour="red"), "config is invalid"),
        (lambda h: h.update(param_fingerprint="0" * 64), "fingerprint"),
        (lambda h: h.update(opt_fingerprint="0" * 64), "fingerprint"),
    ]
    for change, message in cases:
        rewrite_header(path, bad, change)
        with pytest.raises(ck.CheckpointError, match=message):
            ck.load(bad)


def test_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.npz"
    params = write_micro(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="JSON"):
        ck.save(path, params, MICRO, meta={"bad": object()})
    with pytest.raises(ValueError, match="shape"):
        ck.save(path, dict(params, embed=np.zeros((3, 3))), MICRO)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    with zipfile.ZipFile(path) as archive:  # the layout the module docstring promises
        assert "__header__.npy" in archive.namelist() and "params/blocks.0.wq.npy" in archive.namelist()
    assert os.stat(path).st_mode & 0o044  # readable by others as usual, not mkstemp's 0600
