"""The controls of `equalinfo repro` at toy size: per-row NLL, bits/byte's standard error and the held-out unigram
floor in m2.evaluate, M2 trained from several seeds (m2.seeds) and combined, the "below unigram floor?" rule and
results.md with seeds. Datasets are built here from a few examples of English text; M2 is micro and trains a few
steps on the ref backend."""
import copy
import json
import math
import statistics

import numpy as np
import pytest

from equalinfo.data.packing import Example
from helpers import english_text
from equalinfo.ref.models import UnigramModel
from equalinfo.train import backends, build, m1, m2, methods, repro
from equalinfo.report import figure, uncertainty, unigram
from equalinfo.report.seeds import below_floor, combine_seeds
from equalinfo.report.tables import results_markdown
from equalinfo.train.checkpoint import load
from equalinfo.train.preset_schema import PresetError, validate
from equalinfo.train.trainer import mean_nll, nll_by_row

SEQ_LEN = 48
PRESET = {
    "seed": 5,
    "packing": {"group_size": 4, "example_length": 300, "validation_every": 4},
    "m1": {"size": "micro", "dtype": "float64", "seq_len": 32, "batch_size": 4,
           "train": {"steps": 1, "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 0,
                                               "total_steps": 1}}},
    "coding": {"precision": 14},
    "datasets": {"train_examples": 8, "val_examples": 5, "seq_len": SEQ_LEN,
                 "methods": [{"method": "bytes"}, {"method": "staticac", "bits_per_token": [16]}]},
    "m2": {"sizes": ["micro"], "dtype": "float64", "batch_size": 2, "eval_rows": 5, "seeds": 2,
           "train": {"steps": 4, "optimizer": {"name": "adamw", "peak_lr": 0.02, "warmup_steps": 1,
                                               "total_steps": 4}}},
}


def examples(start, count, length=200):
    text = english_text(60_000)
    return [Example(np.frombuffer(text[start + i * length:start + (i + 1) * length], dtype=np.uint8).astype(np.int16),
                    i, 0, "train") for i in range(count)]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{label: {"train", "validation"}}: Bytes (v=257) and StaticAC (v=65k, near-uniform tokens like AC's)."""
    root = tmp_path_factory.mktemp("sets")
    train, val = examples(0, 8), examples(40_000, 5)
    coders = {"Bytes": methods.Bytes(),
              "StaticAC[v=65k]": methods.ArithmeticCoded(
                  "staticac", UnigramModel.fit(np.concatenate([e.symbols for e in train]).astype(np.int64)), 16,
                  backends.load("ref"))}
    return {name: {side: build.build_dataset(rows, coder, root / repro._slug(name) / side, SEQ_LEN, {"label": name})
                   for side, rows in (("train", train), ("validation", val))}
            for name, coder in coders.items()}


@pytest.fixture(scope="module")
def seeded_run(datasets, tmp_path_factory):
    """(Pipeline, results of train_m2 with two seeds) on the toy datasets; M1 is never trained (neither needs it)."""
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "doc.txt").write_bytes(english_text(2_000))
    run = repro.Pipeline(copy.deepcopy(PRESET), tmp_path_factory.mktemp("run"), "ref", str(corpus),
                         log=lambda text: None)
    return run, run.train_m2(datasets, m1.make_config("micro"))


def test_nll_by_row_totals_are_mean_nll_and_rows_are_single_row_evaluations(datasets):
    backend = backends.load("ref")
    val = datasets["Bytes"]["validation"]
    cfg = m2.make_config("micro", 257, "float64")
    params = backend.transformer.init_params(cfg, 3)
    batches = m2.eval_batches(val, 2)
    total, weight, rows, row_weights = nll_by_row(backend.transformer, params, cfg, batches)
    assert (total, weight) == mean_nll(backend.transformer, params, cfg, batches)
    assert rows.shape == row_weights.shape == (len(val),)
    for row in range(len(val)):  # each row alone, through the untouched mean_nll
        alone = m2.rows_to_batch(val.take(np.array([row]), ["tokens", "weights"]), 257)
        nll, w = mean_nll(backend.transformer, params, cfg, [alone])
        assert rows[row] == pytest.approx(nll, rel=1e-12) and row_weights[row] == w
    assert rows.sum() == pytest.approx(total, rel=1e-12)


def test_evaluate_reports_the_se_and_both_unigram_floors(datasets):
    backend = backends.load("ref")
    sets = datasets["StaticAC[v=65k]"]
    cfg = m2.make_config("micro", 1 << 16, "float64")
    params = backend.transformer.init_params(cfg, 0)
    figures = m2.evaluate(params, cfg, backend, sets["train"], sets["validation"], batch_size=2, eval_rows=4)
    old_keys = {"nll_per_token", "bits_per_token", "bits_per_byte", "token_cr", "token_cr_full", "bit_cr",
                "uniform_bits_per_byte", "unigram_bits_per_byte", "flops_per_byte", "m2_nonembedding_params",
                "eval_tokens"}
    assert old_keys | {"bits_per_byte_se", "unigram_addone_bits_per_byte"} <= set(figures)
    cr = build.summary(sets["validation"])["cr_kept"]
    # the SE from each row scored alone
    rows = [mean_nll(backend.transformer, params, cfg,
                     [m2.rows_to_batch(sets["validation"].take(np.array([r]), ["tokens", "weights"]), 1 << 16)])
            for r in range(4)]
    nll, w = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    ratio = nll.sum() / w.sum()
    by_hand = math.sqrt(4 / 3 * ((nll - ratio * w) ** 2).sum()) / w.sum() / (math.log(2) * cr)
    assert figures["bits_per_byte_se"] == pytest.approx(by_hand, rel=1e-9)
    # the floors on the same four rows: add-one by the old formula, held-out through report/unigram.py
    val = sets["validation"].take(np.arange(4), ["tokens", "weights"])
    counts = np.ones(1 << 16)
    train_tokens, train_weights = sets["train"].column("tokens"), sets["train"].column("weights")
    np.add.at(counts, train_tokens[train_weights > 0], 1)
    addone = -(np.log2(counts / counts.sum())[val["tokens"]] * val["weights"]).sum() / val["weights"].sum()
    assert figures["unigram_addone_bits_per_byte"] == pytest.approx(addone / cr, rel=1e-12)
    floor = unigram.heldout_floor(train_tokens, train_weights, val["tokens"], val["weights"], 1 << 16)
    assert figures["unigram_bits_per_byte"] == pytest.approx(floor.bits_per_token / cr, rel=1e-12)
    # near-uniform 16-bit tokens: the held-out floor stays at the uniform floor (tests/test_unigram.py shows add-one
    # above it once N/V is not tiny; at this toy size, N/V ~ 0.006, the two differ by less than the noise)
    assert figures["unigram_bits_per_byte"] <= figures["uniform_bits_per_byte"] * (1 + 1e-3)


def test_combine_seeds_means_what_differs_and_keeps_what_is_shared():
    per_seed = [{"bits_per_byte": v, "bits_per_byte_se": se, "token_cr": 2.5, "eval_tokens": 96}
                for v, se in ((4.71, 0.01), (4.69, 0.03), (4.80, 0.02))]
    combined = combine_seeds(per_seed)
    assert combined["bits_per_byte"] == pytest.approx(statistics.mean([4.71, 4.69, 4.80]))
    assert combined["bits_per_byte_se"] == pytest.approx(0.02)
    assert combined["token_cr"] == 2.5 and combined["eval_tokens"] == 96
    assert combined["seeds"] == {"n": 3, "std": pytest.approx(statistics.stdev([4.71, 4.69, 4.80])), "min": 4.69,
                                 "max": 4.80, "values": [4.71, 4.69, 4.80]}
    per_seed[1]["bits_per_byte_se"] = None
    assert combine_seeds(per_seed)["bits_per_byte_se"] is None
    one = combine_seeds(per_seed[:1])
    assert one["bits_per_byte"] == 4.71 and one["seeds"]["n"] == 1 and one["seeds"]["std"] is None


@pytest.mark.parametrize("seeds", [1, 3, 1000, None])
def test_schema_accepts_m2_seeds(seeds):
    preset = copy.deepcopy(PRESET)
    if seeds is None:
        del preset["m2"]["seeds"]
    else:
        preset["m2"]["seeds"] = seeds
    validate(preset)


@pytest.mark.parametrize("value, message", [(0, "outside"), (-2, "outside"), (1001, "outside"),
                                            (1.5, "expected an integer"), ("2", "expected an integer"),
                                            (True, "expected an integer"), (None, "null")])
def test_schema_refuses_bad_m2_seeds(value, message):
    preset = copy.deepcopy(PRESET)
    preset["m2"]["seeds"] = value
    with pytest.raises(PresetError, match=message) as error:
        validate(preset)
    assert "m2.seeds" in str(error.value)


def test_schema_hints_a_misspelt_seeds():
    preset = copy.deepcopy(PRESET)
    preset["m2"]["sedes"] = preset["m2"].pop("seeds")
    with pytest.raises(PresetError, match="did you mean 'seeds'"):
        validate(preset)


@pytest.mark.parametrize("bits, se, std, n, floor", [
    (4.728, 0.010, None, 1, 4.737),  # the demo's claim: within 2 SE of the floor
    (4.700, 0.010, None, 1, 4.737),
    (4.700, 0.010, 0.020, 3, 4.737),
    (4.700, 0.005, 0.020, 3, 4.737),
    (4.700, 0.005, 0.040, 3, 4.737),
    (3.100, 0.100, 0.500, 2, 4.737),
    (3.100, 0.100, 0.500, 1, 3.400),  # one seed: a std (if any) is not used
])
def test_below_floor_needs_two_se_and_the_seed_std(bits, se, std, n, floor):
    figures = {"bits_per_byte": bits, "bits_per_byte_se": se, "unigram_bits_per_byte": floor,
               "seeds": {"n": n, "std": std, "min": bits, "max": bits, "values": [bits] * n}}
    upper = bits + 2 * se + (std if n > 1 else 0.0)
    assert below_floor(figures) is (upper < floor)


def test_below_floor_is_unknown_without_an_se():
    assert below_floor({"bits_per_byte": 1.0, "bits_per_byte_se": None, "unigram_bits_per_byte": 8.0}) is None


def test_seeds_train_separate_checkpoints_and_combine(seeded_run, datasets):
    run, results = seeded_run
    backend = backends.load("ref")
    for name, sets in datasets.items():
        figures = results[name]["micro"]
        assert repro.m2_path(run.out, name, "micro", 0).name == f"{repro._slug(name)}.micro.npz"
        values = []
        for s in range(2):
            path = repro.m2_path(run.out, name, "micro", s)
            assert path.exists() and (s == 0) == (".seed" not in path.name)
            params, cfg, _, meta = load(path)
            assert meta["settings"]["seed"] == PRESET["seed"] + s
            values.append(m2.evaluate(params, cfg, backend, sets["train"], sets["validation"], 2,
                                      eval_rows=5)["bits_per_byte"])
        assert values[0] != values[1]  # the seeds trained different models
        assert figures["seeds"]["values"] == pytest.approx(values, rel=1e-12)
        assert figures["bits_per_byte"] == pytest.approx(statistics.mean(values), rel=1e-12)
        assert figures["seeds"]["std"] == pytest.approx(statistics.stdev(values), rel=1e-9)


def test_seeded_training_resumes_without_retraining(seeded_run, datasets, monkeypatch):
    run, results = seeded_run

    def no_training(*args, **kwargs):
        raise AssertionError("a finished M2 was trained again")

    monkeypatch.setattr(run.backend.transformer, "loss_and_grads", no_training)
    again = run.train_m2(datasets, m1.make_config("micro"))
    assert json.dumps(again, sort_keys=True) == json.dumps(results, sort_keys=True)


def test_results_md_with_seeds(seeded_run, datasets, tmp_path):
    run, m2_results = seeded_run
    results = {"preset": run.preset, "backend": "ref", "seconds": 1.0, "versions": {"python": "3"},
               "m1": {"config": {"d_model": 8, "n_layers": 1}, "val_bits_per_byte": 7.0},
               "datasets": {name: {side: build.summary(d) for side, d in sets.items()}
                            for name, sets in datasets.items()},
               "m2": m2_results, "skipped": {}}
    table = results_markdown(results)
    for name, by_size in m2_results.items():
        figures = by_size["micro"]
        line = next(row for row in table.splitlines() if row.startswith(f"| {name} |"))
        assert f"{figures['bits_per_byte']:.3f} ± {figures['bits_per_byte_se']:.3f}" in line
        assert f"seed std {statistics.stdev(figures['seeds']['values']):.3f} (n=2)" in line
        for floor in ("uniform_bits_per_byte", "unigram_bits_per_byte", "unigram_addone_bits_per_byte"):
            assert f"| {figures[floor]:.3f} |" in line
        upper = figures["bits_per_byte"] + 2 * figures["bits_per_byte_se"] + figures["seeds"]["std"]
        assert ("| yes |" if upper < figures["unigram_bits_per_byte"] else "| no |") in line
    assert "below unigram floor? (micro)" in table
    pytest.importorskip("matplotlib")
    assert figure.draw(results, tmp_path / "figure.png") and (tmp_path / "figure.png").stat().st_size > 0


def test_evaluate_clusters_the_se_by_document(datasets, tmp_path):
    """Rows that carry their document get the SE over documents (report/uncertainty.py) beside the plain one;
    rows built without documents say why they have none."""
    backend = backends.load("ref")
    train = examples(0, 8)
    val = [Example(e.symbols, e.group, e.index, e.split, document=i // 2) for i, e in enumerate(examples(40_000, 6))]
    coder = methods.Bytes()
    sets = {side: build.build_dataset(rows, coder, tmp_path / side, SEQ_LEN) for side, rows in
            (("train", train), ("validation", val))}
    assert build.summary(sets["validation"])["documents"] == 3
    cfg = m2.make_config("micro", coder.vocab_size, "float64")
    params = backend.transformer.init_params(cfg, 0)
    figures = m2.evaluate(params, cfg, backend, sets["train"], sets["validation"], batch_size=2)
    _, _, row_nll, row_weight = nll_by_row(backend.transformer, params, cfg, m2.eval_batches(sets["validation"], 2))
    cr = build.summary(sets["validation"])["cr_kept"]
    by_document = uncertainty.clustered_bits_per_byte_se(row_nll, row_weight, cr, [0, 0, 1, 1, 2, 2])
    assert figures["bits_per_byte_se_clustered"] == pytest.approx(by_document, rel=1e-12)
    assert figures["clustered_documents"] == 3
    assert figures["bits_per_byte_se_clustered"] != pytest.approx(figures["bits_per_byte_se"], rel=1e-6)
    unknown = m2.evaluate(params, cfg, backend, datasets["Bytes"]["train"], datasets["Bytes"]["validation"], 2)
    assert unknown["bits_per_byte_se_clustered"] is None and "no document" in unknown["bits_per_byte_se_clustered_null"]
