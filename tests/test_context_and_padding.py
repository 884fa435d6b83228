"""The reproduction's M1 context rule and its controls at toy size: M1 codes within the length it was trained on
(and refuses more), the AC context control and the zero-padding statistics measure what they say, and the
paper's zero-padded windows build as a dataset of their own."""
import copy

import numpy as np
import pytest

from helpers import english_text
from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.ref import ac as ref_ac
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel
from equalinfo.train import controls, m1, methods, repro
from equalinfo.train.preset_schema import PresetError, validate
from equalinfo.train.trainer import TrainSettings

SEQ_LEN = 24
PRESET = {
    "seed": 0,
    "packing": {"group_size": 1, "example_length": 200, "validation_every": 4},
    "m1": {"size": "micro", "dtype": "float64", "seq_len": SEQ_LEN, "batch_size": 4, "eval_sequences": 4,
           "train": {"steps": 4, "eval_every": 2, "checkpoint_every": 2,
                     "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 1, "total_steps": 4}}},
    "coding": {"precision": 14},
    "datasets": {"train_examples": 2, "val_examples": 2, "seq_len": 4096,
                 "methods": [{"method": "ac", "bits_per_token": [8]},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8]},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8], "delimit": False}]},
    "m2": {"sizes": ["micro"], "dtype": "float64", "batch_size": 2, "eval_rows": 2,
           "train": {"steps": 1, "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 0,
                                               "total_steps": 1}}},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(Pipeline, Examples, TrainedM1, datasets) of a toy run whose examples are longer than M1's seq_len."""
    corpus = tmp_path_factory.mktemp("corpus")
    text = english_text(12_000)
    for i in range(10):
        (corpus / f"doc{i}.txt").write_bytes(text[i * 1200:(i + 1) * 1200])
    pipeline = repro.Pipeline(copy.deepcopy(PRESET), tmp_path_factory.mktemp("run"), "ref", str(corpus),
                              log=lambda text: None)
    examples = pipeline.examples()
    trained = pipeline.train_m1(examples)
    datasets, _ = pipeline.build_datasets(examples, trained)
    return pipeline, examples, trained, datasets


def test_check_context_refuses_longer_or_whole_inputs():
    assert m1.check_context(24, 24) == 24 and m1.check_context(8, 24) == 8
    for context in (25, None):
        with pytest.raises(ValueError, match="trained on 24-symbol sequences"):
            m1.check_context(context, 24)


def test_the_pipeline_codes_ac_with_m1_restarting_at_its_training_length(run):
    pipeline, examples, trained, datasets = run
    model = pipeline.m1_coding_model(trained)
    assert model.restart_every == SEQ_LEN and model.rule == 1
    drawn = examples.validation_rows(pipeline.preset["datasets"]["val_examples"])  # the datasets' validation rows
    row = next(r for r, e in enumerate(drawn) if len(e.symbols) > SEQ_LEN)  # a row long enough for restarts
    example = drawn[row].symbols
    restarting = TransformerModel(trained.params, trained.cfg, restart_every=SEQ_LEN)  # ref rows, built here
    expected = ref_ac.compress(example, restarting, 14)
    whole = ref_ac.compress(example, restarting.with_restarts(None), 14)
    assert not np.array_equal(expected, whole)  # the example is long enough for the restart to matter
    got = datasets["AC[v=256]"]["validation"]
    n_tokens = int(got.column("n_tokens")[row])
    assert n_tokens == -(-len(expected) // 8)
    bits = np.unpackbits(got.column("tokens")[row][:n_tokens].astype(np.uint8))[:len(expected)]
    assert np.array_equal(bits, expected)


def test_exact_rules_are_a_preset_setting(run):
    pipeline, _, trained, _ = run
    pipeline.preset["coding"]["exact_rule"] = 2
    try:
        model = pipeline.m1_coding_model(trained)
    finally:
        del pipeline.preset["coding"]["exact_rule"]
    assert model.rule == 2 and model.restart_every == SEQ_LEN
    bad = copy.deepcopy(PRESET)
    bad["coding"]["exact_rule"] = max(RULE_MODULES) + 1  # a rule this build does not know
    with pytest.raises(PresetError, match="coding.exact_rule"):
        validate(bad)


def test_ac_context_control_measures_both_models(run):
    pipeline, examples, trained, _ = run
    chosen = examples.validation_rows(2)
    result = controls.ac_context(pipeline.backend, pipeline.m1_coding_model(trained),
                                 pipeline.m1_coding_model(trained, restart_every=None), chosen)
    n_bytes = sum(len(e.symbols) for e in chosen)
    model = TransformerModel(trained.params, trained.cfg)
    for key, every in (("trained_context", SEQ_LEN), ("whole_example", None)):
        bits = sum(len(ref_ac.compress(e.symbols, model.with_restarts(every), 14)) for e in chosen)
        assert result[f"bits_per_byte_{key}"] == pytest.approx(bits / n_bytes, abs=1e-12)
    assert result["restart_every"] == SEQ_LEN and result["bytes"] == n_bytes


def test_trailing_zeros_against_a_loop():
    rng = np.random.default_rng(0)
    windows = (rng.random((200, 12)) < 0.3).astype(np.uint8)
    windows[0] = 0
    expected = []
    for window in windows:
        count = 0
        while count < len(window) and window[len(window) - 1 - count] == 0:
            count += 1
        expected.append(count)
    assert controls.trailing_zeros(windows).tolist() == expected


def test_zero_padded_windows_build_and_show_their_padding(run):
    pipeline, _, _, datasets = run
    padded = datasets["EqualInfoAC[b=16,v=256,zero-pad]"]["validation"]
    ours = datasets["EqualInfoAC[b=16,v=256]"]["validation"]
    stats = {name: controls.window_statistics(d, 16) for name, d in (("padded", padded), ("ours", ours))}
    # the paper's rule ends a window on its shortest cell and pads with zeros; ours names a delimiting cell
    assert stats["padded"]["mean_trailing_zero_bits"] > stats["ours"]["mean_trailing_zero_bits"]
    assert stats["padded"]["last_bit_zero_fraction"] > 0.5
    windows = controls.kept_window_bits(padded, 16)
    assert stats["padded"]["windows"] == len(windows)
    with pytest.raises(ValueError, match="do not decode exactly"):
        methods.EqualInfo(None, 16, 8, pipeline.backend, delimit=False).decode(np.zeros(4, np.int64), 4, 10)


def test_window_statistics_of_uniform_bits_are_near_the_random_baseline(tmp_path):
    class Windows:  # the three things window_statistics reads from a dataset
        directory = tmp_path
        meta = {"bits_per_token": 8}

        def __init__(self, tokens):
            self.tokens = tokens

        def column(self, name):
            return {"tokens": self.tokens, "weights": np.ones(self.tokens.shape, np.float32)}[name]

    tokens = np.random.default_rng(1).integers(0, 256, (64, 400))
    stats = controls.window_statistics(Windows(tokens), 16)
    assert stats["windows"] == 64 * 200
    assert stats["mean_trailing_zero_bits"] == pytest.approx(1.0, abs=0.05)  # sum over k of 2^-k
    assert stats["last_token_kl"] == pytest.approx(stats["random_kl"], abs=0.02)


def test_the_padding_rule_differs_only_at_window_ends():
    model = MarkovModel.fit(np.frombuffer(english_text(3000), np.uint8).astype(np.int64), 1)
    text = np.frombuffer(english_text(600), np.uint8).astype(np.int64)
    ours = ref_equalinfo.encode_windows(text, model, 16)
    padded = ref_equalinfo.encode_windows(text, model, 16, delimit=False)
    assert sum(w.length for w in ours) == sum(w.length for w in padded) == len(text)
    zeros = [controls.trailing_zeros(np.stack([w.bits for w in ws])).mean() for ws in (ours, padded)]
    assert zeros[1] > zeros[0]


def test_resuming_m1_with_another_sequence_length_is_refused(tmp_path):
    cfg = m1.make_config("micro", "float64")
    symbols = np.frombuffer(english_text(4000), np.uint8).astype(np.int64)
    settings = TrainSettings(steps=2, eval_every=1, checkpoint_every=1,
                             optimizer={"name": "adamw", "peak_lr": 0.01, "warmup_steps": 0, "total_steps": 2})
    backend = repro.backends.load("ref")
    m1.train_m1(symbols, symbols, tmp_path / "m1.npz", backend, cfg, settings, seq_len=16, batch_size=2,
                eval_sequences=2)
    with pytest.raises(ValueError, match="seq_len differ"):
        m1.train_m1(symbols, symbols, tmp_path / "m1.npz", backend, cfg, settings, seq_len=32, batch_size=2,
                    eval_sequences=2, resume=True)


def test_an_m1_trained_on_shorter_sequences_than_the_preset_codes_is_refused(run):
    pipeline, _, trained, _ = run
    shorter = repro.TrainedM1(trained.params, trained.cfg, seq_len=SEQ_LEN // 2)
    with pytest.raises(ValueError, match=f"trained on {SEQ_LEN // 2}-symbol sequences"):
        pipeline.m1_coding_model(shorter)
