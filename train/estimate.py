"""How long a preset will take on this machine, said before the work starts (`equalinfo repro` prints it).

A guess from a few seconds of probing, not a promise: one timed training step of M1 and of each M2 (size, vocab)
the preset trains, and M1 coding a short text by the preset's exact rule (after a first call that compiles),
scaled by the steps, evaluation batches and bytes the preset asks for. Every M1-coded dataset is counted at the
probed rate of Equal-Info b=16 with an untrained M1 (the slowest case: its windows hold ~2 bytes; a trained M1's
hold 3-4x more, so coding usually takes less); the Table 9 ablation, coded by another path, is counted at that
rate too. It leaves out SentencePiece training, gzip, the controls and the reports (at --scale 0.01 of the cpu
preset these doubled the time; at full scale they are a small share). On a machine shared with other work the
probe and the run slow down alike.
"""
import math
import time

import numpy as np

from equalinfo.train import m1, m2

PROBE_BYTES = 600  # text coded by the probe (a few windows of every size)
EVAL_SHARE = 1 / 3  # an evaluation batch (forward only) costs about a third of a training step


def _step_seconds(backend, cfg, batch_size, seq_len, seed=0):
    """Seconds of one training step (forward, backward; the optimizer is small beside them), best of two."""
    params = backend.transformer.init_params(cfg, seed)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, cfg.vocab_in, (batch_size, seq_len))
    targets = rng.integers(0, cfg.vocab_out, (batch_size, seq_len))
    weights = np.ones((batch_size, seq_len), dtype=np.float32)
    best = math.inf
    for _ in range(2):
        started = time.perf_counter()
        backend.transformer.loss_and_grads(params, cfg, inputs, targets, weights)
        best = min(best, time.perf_counter() - started)
    return best


def _coding_bytes_per_second(backend, m1_cfg, rule, restart_every, window_bits, text):
    """Bytes/s of Equal-Info coding of `text` (a batch of copies) with an untrained M1 of the preset's size."""
    params = backend.transformer.init_params(m1_cfg, 0)
    model = m1.coding_model(params, m1_cfg, backend.name, rule, restart_every)
    copies = [np.asarray(text, np.int64)] * 8
    backend.equalinfo.encode_windows_batch([copies[0][:40]], model, window_bits)  # compiles, outside the timing
    started = time.perf_counter()
    backend.equalinfo.encode_windows_batch(copies, model, window_bits)
    return len(text) * len(copies) / (time.perf_counter() - started)


def m2_vocab(method, bits_per_token, entry):
    """M2's vocabulary on a dataset: 257 for bytes, the SentencePiece vocabulary, else 2^bits_per_token."""
    if method == "bytes":
        return 257
    if method == "spm":
        return int(entry.get("vocab_size", 32_000))
    return 1 << int(bits_per_token)


def estimate(preset, backend, specs, train_rows, text):
    """{"m1_s", "coding_s", "m2_s", "total_s", "m2_steps"}: seconds each part of the run should take.

    specs: repro.dataset_specs(preset); train_rows: the M2 training rows each dataset will have; text: a symbol
    array to probe coding with (its first PROBE_BYTES symbols)."""
    spec_m1, spec_m2 = preset["m1"], preset["m2"]
    m1_cfg = m1.make_config(spec_m1["size"], spec_m1.get("dtype", "float32"))
    m1_s = spec_m1["train"]["steps"] * _step_seconds(backend, m1_cfg, spec_m1["batch_size"], spec_m1["seq_len"])
    coded = {(method, b, entry.get("delimit", True), entry.get("m1_reset_every", 1))
             for _, method, b, _, entry in specs if method in ("ac", "equalinfo")}
    examples = preset["datasets"]["train_examples"] + preset["datasets"]["val_examples"]
    example_bytes = examples * preset["packing"]["example_length"]
    coding_s = 0.0
    if coded:
        rate = _coding_bytes_per_second(backend, m1_cfg, int(preset["coding"].get("exact_rule", 1)),
                                        spec_m1["seq_len"], 16, text[:PROBE_BYTES])
        coding_s = len(coded) * example_bytes / rate  # b=16 is the slowest window size: an upper bound
    batch = spec_m2["batch_size"]
    val_rows = preset["datasets"]["val_examples"]
    steps = m2_steps(spec_m2, train_rows)
    per_step = {}
    m2_s = 0.0
    for _, method, _, n, entry in specs:
        vocab = m2_vocab(method, n, entry)
        seq_len = int(entry.get("seq_len", preset["datasets"]["seq_len"]))  # repro.row_length
        for size in spec_m2["sizes"]:
            if (size, vocab, seq_len) not in per_step:
                cfg = m2.make_config(size, vocab, spec_m2.get("dtype", "float32"))
                per_step[size, vocab, seq_len] = _step_seconds(backend, cfg, batch, seq_len)
            eval_batches = -(-min(spec_m2.get("eval_rows") or val_rows, val_rows) // batch)
            m2_s += spec_m2.get("seeds", 1) * (steps + EVAL_SHARE * eval_batches) * per_step[size, vocab, seq_len]
    return {"m1_s": m1_s, "coding_s": coding_s, "m2_s": m2_s, "total_s": m1_s + coding_s + m2_s, "m2_steps": steps}


def m2_steps(spec_m2, train_rows):
    """M2's training steps: m2.epochs passes over the training rows when the preset gives epochs (never more rows
    than there are, per epoch), else m2.train.steps."""
    if "epochs" in spec_m2:
        return max(1, int(spec_m2["epochs"] * train_rows) // spec_m2["batch_size"])
    return int(spec_m2["train"]["steps"])


def describe(figures):
    minutes = {key: figures[key] / 60 for key in ("m1_s", "coding_s", "m2_s", "total_s")}
    return ("estimate on this machine: about {total_s:.0f} min (M1 {m1_s:.0f}, coding {coding_s:.0f}, M2 {m2_s:.0f}; "
            "probed, not promised)").format(**minutes)

