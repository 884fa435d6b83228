"""The pipeline end to end on a tiny corpus: every method's dataset decodes back to its text, M2 trains and is
scored as the paper scores it, an interrupted build resumes identically, the CLI runs the whole thing."""
import copy
import json
import math

import numpy as np
import pytest

from helpers import english_text
from equalinfo.train import build, m2, methods, repro
from equalinfo import cli
from equalinfo.train.trainer import mean_nll

TINY = {
    "seed": 0,
    "packing": {"group_size": 4, "example_length": 300, "validation_every": 4},
    "m1": {"size": "micro", "dtype": "float64", "seq_len": 32, "batch_size": 4, "eval_sequences": 4,
           "train": {"steps": 6, "eval_every": 3, "checkpoint_every": 3,
                     "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 1, "total_steps": 6}}},
    "coding": {"precision": 14},
    "datasets": {"train_examples": 3, "val_examples": 2, "seq_len": 4096,
                 "methods": [{"method": "bytes"}, {"method": "spm", "vocab_size": 400},
                             {"method": "ac", "bits_per_token": [8]}, {"method": "staticac", "bits_per_token": [16]},
                             {"method": "equalinfo", "window_bits": [16, 24], "bits_per_token": [8, 16]},
                             {"method": "gzip", "bits_per_token": [8]}]},
    "m2": {"sizes": ["micro"], "dtype": "float64", "batch_size": 2, "eval_rows": 2,
           "train": {"steps": 3, "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 1,
                                               "total_steps": 3}}},
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Twenty small documents, one per file, one of them not UTF-8."""
    directory = tmp_path_factory.mktemp("corpus")
    text = english_text(40_000)
    for i in range(20):
        (directory / f"doc{i:02d}.txt").write_bytes(text[i * 1500:i * 1500 + 400 + 37 * i])
    (directory / "doc99.txt").write_bytes(b"caf\xe9 au lait \xff\xfe not utf-8")
    return directory


@pytest.fixture(scope="module")
def pipeline(corpus_dir, tmp_path_factory):
    """A finished run's steps: (Pipeline, its Examples, its TrainedM1, its datasets)."""
    run = repro.Pipeline(copy.deepcopy(TINY), tmp_path_factory.mktemp("run"), "ref", str(corpus_dir),
                         log=lambda text: None)
    examples = run.examples()
    trained_m1 = run.train_m1(examples)
    datasets, skipped = run.build_datasets(examples, trained_m1)
    assert not skipped
    return run, examples, trained_m1, datasets


def test_every_lossless_dataset_decodes_to_its_examples(pipeline):
    run, examples, trained_m1, datasets = pipeline
    for name, method, b, n, entry in repro.dataset_specs(run.preset):
        coder = run.method_for(method, b, n, entry, examples, trained_m1)
        dataset = datasets[name]["validation"]
        for row, example in enumerate(examples.validation_rows(len(dataset))):
            tokens, n_tokens = dataset[row]["tokens"], int(dataset[row]["n_tokens"])
            assert n_tokens <= len(tokens), "the test's rows must be long enough to keep every token"
            if method in ("ac", "staticac", "equalinfo"):
                decoded = coder.decode(tokens.astype(np.int64), n_tokens, example.n_symbols)
            else:
                decoded = coder.decode(tokens.astype(np.int64), n_tokens)
            assert np.array_equal(decoded, example.symbols), name


def test_non_utf8_bytes_reach_the_examples(pipeline):
    _, examples, _, _ = pipeline
    everything = np.concatenate([e.symbols for e in examples.train + examples.validation])
    assert 0xFF in everything and 0xE9 in everything


def test_m2_bits_per_byte_is_the_mean_loss_over_cr(pipeline, tmp_path):
    run, examples, trained_m1, _ = pipeline
    coder = run.method_for("equalinfo", 16, 8, {}, examples, trained_m1)
    sets = {side: build.build_dataset(rows, coder, tmp_path / side, 48, {"label": "EqualInfoAC[b=16,v=256]"})
            for side, rows in (("train", examples.train[:3]), ("validation", examples.validation))}
    cfg = m2.make_config("micro", 256, "float64")
    params, _ = m2.train_m2(sets["train"], sets["validation"], tmp_path / "m2.npz", run.backend, cfg,
                            TINY["m2"]["train"], batch_size=2)
    figures = m2.evaluate(params, cfg, run.backend, sets["train"], sets["validation"], batch_size=2)
    nll, weight = mean_nll(run.backend.transformer, params, cfg, m2.eval_batches(sets["validation"], 2))
    summary = build.summary(sets["validation"])
    by_hand = (nll / weight) / math.log(2) / (summary["kept_bytes"] / summary["kept_tokens"])
    assert figures["bits_per_byte"] == pytest.approx(by_hand, rel=1e-12)
    assert figures["uniform_bits_per_byte"] == pytest.approx(8 / summary["cr_kept"])
    assert figures["eval_tokens"] == summary["kept_tokens"]


def test_interrupted_build_resumes_to_identical_files(pipeline, tmp_path):
    examples = pipeline[1].train[:5]
    coder = methods.Gzip(8)
    build.build_dataset(examples, coder, tmp_path / "straight", 64, rows_per_shard=2)

    class Stop(Exception):
        pass

    calls = []

    class Interrupted(methods.Gzip):
        def tokens_and_cover(self, symbols, kept):
            if len(calls) == 3:
                raise Stop
            calls.append(1)
            return super().tokens_and_cover(symbols, kept)

    with pytest.raises(Stop):
        build.build_dataset(examples, Interrupted(8), tmp_path / "resumed", 64, rows_per_shard=2)
    build.build_dataset(examples, coder, tmp_path / "resumed", 64, rows_per_shard=2)
    straight = sorted(p.name for p in (tmp_path / "straight").iterdir())
    assert straight == sorted(p.name for p in (tmp_path / "resumed").iterdir())
    for name in straight:
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name


def test_repro_command_writes_the_tables(corpus_dir, tmp_path, capsys):
    preset = copy.deepcopy(TINY)
    preset["datasets"]["methods"] = [{"method": "bytes"}, {"method": "equalinfo", "window_bits": [16],
                                                           "bits_per_token": [8]}]
    preset["datasets"]["seq_len"] = 64
    (tmp_path / "preset.json").write_text(json.dumps(preset))
    assert cli.main(["repro", "--preset", str(tmp_path / "preset.json"), "--out", str(tmp_path / "out"),
                     "--backend", "ref", "--corpus", str(corpus_dir)]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["m2"]) == {"Bytes", "EqualInfoAC[b=16,v=256]"}
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| EqualInfoAC[b=16,v=256] |" in table and "1.47" in table  # the paper's 25m figure beside ours


@pytest.mark.parametrize("argv, message", [
    (["repro", "--preset", "no-such-preset", "--out", "x"], "no preset"),
    (["repro", "--out", "x", "--corpus", "/no/such/corpus"], "/no/such/corpus"),
    (["build", "--out", "x", "--method", "ac"], "needs --m1"),
    (["repro", "--out", "x", "--backend", "gpu"], "gpu"),
])
def test_bad_pipeline_input_gives_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    last = error.strip().splitlines()[-1]
    assert last.startswith("equalinfo: error:") and message in last and "Traceback" not in error


def test_repro_without_sentencepiece_skips_that_row_and_says_so(corpus_dir, tmp_path, monkeypatch):
    preset = copy.deepcopy(TINY)
    preset["datasets"]["methods"] = [{"method": "bytes"}, {"method": "spm", "vocab_size": 400}]
    preset["datasets"]["seq_len"] = 64
    monkeypatch.setattr(methods, "sentencepiece_available", lambda: False)
    run = repro.Pipeline(preset, tmp_path, "ref", str(corpus_dir), log=lambda text: None)
    results = run.run()
    assert set(results["m2"]) == {"Bytes"} and "sentencepiece" in results["skipped"]["SentencePiece"]
    assert "| SentencePiece | skipped:" in (tmp_path / "results.md").read_text()


def test_a_window_cap_in_a_preset_is_refused(tmp_path):
    preset = copy.deepcopy(TINY)
    preset["coding"]["max_window_symbols"] = 24
    path = tmp_path / "capped.json"
    path.write_text(json.dumps(preset))
    with pytest.raises(repro.PresetError, match="max_window_symbols is not a setting"):
        repro.load_preset(path)
    path.write_text(json.dumps(TINY))
    assert repro.load_preset(path) == TINY
