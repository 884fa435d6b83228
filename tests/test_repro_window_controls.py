"""`equalinfo repro` end to end at toy size with the controls of #26: dataset rows carry their document, M2's
bits/byte comes with the SE clustered by document, Equal-Info rows get the whole-window and bigram floors and the
shuffled-window control trained with the same steps and seeds, every M2 has a learning curve, and results.md shows
them. A results.json from before these fields (results/cpu) still renders."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import english_text
from equalinfo.report import tables, window_floors
from equalinfo.report.learning_curves import evaluation_steps
from equalinfo.train import build, repro
from equalinfo.train.preset_schema import PresetError

STEPS, EVAL_EVERY, SEQ_LEN = 4, 2, 64
PRESET = {
    "seed": 3,
    "packing": {"group_size": 2, "example_length": 200, "validation_every": 3},
    "m1": {"size": "micro", "dtype": "float64", "seq_len": 32, "batch_size": 4, "eval_sequences": 4,
           "train": {"steps": 2, "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 0,
                                               "total_steps": 2}}},
    "coding": {"precision": 14},
    "datasets": {"train_examples": 6, "val_examples": 5, "seq_len": SEQ_LEN,
                 "methods": [{"method": "bytes"},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8]},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8],
                              "shuffle_windows": True}]},
    "m2": {"sizes": ["micro"], "dtype": "float64", "batch_size": 2, "seeds": 2,
           "train": {"steps": STEPS, "eval_every": EVAL_EVERY,
                     "optimizer": {"name": "adamw", "peak_lr": 0.02, "warmup_steps": 1, "total_steps": STEPS}}},
}
REAL, SHUFFLED = "EqualInfoAC[b=16,v=256]", "EqualInfoAC[b=16,v=256,windows shuffled]"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    text = english_text(30_000)
    for i in range(24):
        (corpus / f"doc{i:02d}.txt").write_bytes(text[i * 1000:i * 1000 + 250 + 20 * i])
    out = tmp_path_factory.mktemp("run")
    pipeline = repro.Pipeline(copy.deepcopy(PRESET), out, "ref", str(corpus), log=lambda text: None)
    return pipeline, pipeline.run(), out


def test_rows_carry_their_documents_and_the_se_is_clustered_by_them(run):
    _, results, out = run
    validation = build.open_dataset(out / "datasets" / repro._slug(REAL) / "validation")
    documents = validation.column("document")
    assert (documents >= 0).all() and results["datasets"][REAL]["validation"]["documents"] == len(set(documents))
    figures = results["m2"][REAL]["micro"]
    assert figures["clustered_documents"] == len(set(documents))
    assert figures["bits_per_byte_se_clustered"] is not None and figures["bits_per_byte_se_clustered"] > 0


def test_the_shuffled_control_has_the_same_windows_steps_and_seeds(run):
    _, results, out = run
    sets = {name: build.open_dataset(out / "datasets" / repro._slug(name) / "validation") for name in (REAL, SHUFFLED)}
    real, shuffled = (sets[name].take(np.arange(len(sets[name]))) for name in (REAL, SHUFFLED))
    assert np.array_equal(real["weights"], shuffled["weights"]) and not np.array_equal(real["tokens"],
                                                                                         shuffled["tokens"])
    for row, weights in enumerate(real["weights"]):
        kept = int(weights.sum()) // 2 * 2  # whole 2-token windows
        windows = {name: sorted(map(tuple, rows["tokens"][row][:kept].reshape(-1, 2)))
                   for name, rows in (("real", real), ("shuffled", shuffled))}
        assert windows["real"] == windows["shuffled"]
    control = results["m2"][SHUFFLED]["micro"]
    assert control["seeds"]["n"] == results["m2"][REAL]["micro"]["seeds"]["n"] == 2
    assert [c["steps"] for c in control["learning_curves"]] == [c["steps"] for c in
                                                                results["m2"][REAL]["micro"]["learning_curves"]]
    verdict = results["m2"][REAL]["micro"]["shuffled_control"]
    assert verdict["label"] == SHUFFLED and verdict["difference"] == pytest.approx(
        control["bits_per_byte"] - results["m2"][REAL]["micro"]["bits_per_byte"])
    assert verdict["learns_across_windows"] == (verdict["difference"] > verdict["margin"])


def test_window_floors_are_the_report_modules_on_the_evaluated_rows(run):
    _, results, out = run
    sets = {side: build.open_dataset(out / "datasets" / repro._slug(REAL) / side) for side in ("train", "validation")}
    rows = {side: d.take(np.arange(len(d)), ["tokens", "weights"]) for side, d in sets.items()}
    cr = build.summary(sets["validation"])["cr_kept"]
    figures = results["m2"][REAL]["micro"]
    for name, floor in (("whole_window", window_floors.whole_window_floor), ("bigram", window_floors.bigram_floor)):
        bits = floor(rows["train"]["tokens"], rows["train"]["weights"], rows["validation"]["tokens"],
                     rows["validation"]["weights"], 16, 8).bits_per_token
        assert figures[f"{name}_bits_per_byte"] == pytest.approx(bits / cr, rel=1e-12)
    assert "whole_window_bits_per_byte" not in results["m2"]["Bytes"]["micro"]


def test_every_m2_has_a_learning_curve_with_its_floors(run):
    _, results, _ = run
    for by_size in results["m2"].values():
        curves = by_size["micro"]["learning_curves"]
        assert len(curves) == 2 and all(c["steps"] == evaluation_steps(STEPS, EVAL_EVERY) for c in curves)
        assert curves[0]["val_bits_per_byte"][-1] == pytest.approx(by_size["micro"]["seeds"]["values"][0], rel=1e-9)
        assert curves[0]["floors"]["unigram_bits_per_byte"] == by_size["micro"]["unigram_bits_per_byte"]
    assert "whole_window_bits_per_byte" in results["m2"][REAL]["micro"]["learning_curves"][0]["floors"]


def test_results_md_shows_the_controls(run):
    _, results, out = run
    table = (out / "results.md").read_text()
    assert "## Controls of Equal-Info rows" in table and "## Training and validation rows" in table
    line = next(line for line in table.splitlines() if line.startswith(f"| {REAL} | micro |"))
    verdict = results["m2"][REAL]["micro"]["shuffled_control"]["learns_across_windows"]
    assert ("learns across windows" if verdict else "not shown") in line
    assert "by document ±" in table


def test_a_null_floor_is_said_with_its_reason():
    figures = {"bits_per_byte": 3.0, "whole_window_bits_per_byte": None,
               "whole_window_bits_per_byte_null": "no whole window", "bigram_bits_per_byte": 2.5}
    results = {"m2": {REAL: {"micro": figures}}}
    lines = tables.window_controls_markdown(results["m2"], ["micro"])
    assert any("null (no whole window)" in line and "2.500" in line and "no control" in line for line in lines)


def test_results_from_before_the_controls_still_render():
    old = json.loads((Path(repro.__file__).resolve().parents[1] / "results" / "cpu" / "results.json").read_text())
    table = tables.results_markdown(old)
    assert "EqualInfoAC[b=16,v=256]" in table and "## Controls of Equal-Info rows" not in table


def test_a_shuffled_control_needs_windows_of_whole_tokens():
    """Refused when the preset is read (dataset_specs runs before M1 trains), naming the key."""
    preset = copy.deepcopy(PRESET)
    preset["datasets"]["methods"] = [{"method": "equalinfo", "window_bits": [24], "bits_per_token": [16],
                                      "shuffle_windows": True}]
    with pytest.raises(PresetError, match="shuffle_windows: a 24-bit window is not a whole number"):
        repro.dataset_specs(preset)


def test_the_source_mix_of_each_side_is_reported(run):
    """The toy corpus is one file per document, so each document is its own source: the shares are the documents'
    shares of the rows' bytes."""
    pipeline, results, out = run
    for side in ("train", "validation"):
        mix = results["source_mix"][side]
        assert sum(mix.values()) == pytest.approx(1.0) and all(name.endswith(".txt") for name in mix)
    assert len(results["source_mix"]["validation"]) > 1  # the draw reads more than the side's first document
    assert "## Training and validation rows" in (out / "results.md").read_text()


def test_document_sources_read_the_url_prefix_of_json_lines(tmp_path):
    from equalinfo.data.corpus import document_sources, open_corpus

    lines = [{"text": "a", "url": "kjv:Genesis"}, {"text": "b", "url": "pydoc:os.rst"}, {"text": "c"}]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    corpus = open_corpus(str(tmp_path / "c.jsonl"))
    assert document_sources(corpus) == ["kjv", "pydoc", "c.jsonl"] and len(list(corpus)) == 3


def test_cpu_long_trains_m2_ten_times_the_cpu_preset_with_the_deciding_rows():
    from equalinfo.train.estimate import m2_steps

    cpu, long = repro.load_preset("cpu"), repro.load_preset("cpu-long")
    steps = {name: m2_steps(p["m2"], p["datasets"]["train_examples"]) for name, p in (("cpu", cpu), ("long", long))}
    assert steps["long"] >= 10 * steps["cpu"] and long["m2"]["seeds"] == 3
    assert steps["long"] % long["m2"]["train"]["eval_every"] == 0  # the curve's last point is a regular one
    names = {spec[0] for spec in repro.dataset_specs(long)}
    for b in (16, 32, 64):
        assert {f"EqualInfoAC[b={b},v=256]", f"EqualInfoAC[b={b},v=256,windows shuffled]"} <= names
    assert {"Bytes", "SentencePiece", "GZip[v=256]", "AC[v=256]", "EqualInfoAC[b=16,v=256,M1 reset every 2]",
            "EqualInfoAC[b=16,v=256,M1 never reset]", "EqualInfoAC[b=24,v=256]", "EqualInfoAC[b=16,v=2]"} <= names


def test_the_controls_table_lists_each_row_once_beside_its_control(run):
    _, _, out = run
    table = (out / "results.md").read_text()
    section = table[table.index("## Controls of Equal-Info rows"):]
    assert f"| {REAL} | micro |" in section and f"| {SHUFFLED} | micro |" not in section.split("\n\n")[1]


def test_learning_curves_are_drawn_where_there_are_curves(run, tmp_path):
    pytest.importorskip("matplotlib")
    from equalinfo.report import figure

    _, results, _ = run
    assert figure.draw_learning_curves(results, tmp_path / "curves.png") and (tmp_path / "curves.png").stat().st_size
    old = json.loads((Path(repro.__file__).resolve().parents[1] / "results" / "cpu" / "results.json").read_text())
    assert not figure.draw_learning_curves(old, tmp_path / "none.png")  # made before curves were recorded


def test_so_far_reports_the_finished_seeds_and_leaves_out_rows_with_none(run, tmp_path):
    """--so-far reads the records only: a row missing one seed is the mean of the others (n says how many), a row
    with no finished seed is left out, the finished run's own results are untouched, nothing is trained."""
    pipeline, results, out = run
    partial = tmp_path / "out"
    (partial / "units").mkdir(parents=True)
    import shutil
    shutil.copytree(out / "units", partial / "units", dirs_exist_ok=True)
    records = partial / "units" / "m2"
    (records / f"{repro._slug(REAL)}.micro.seed1.json").unlink()  # REAL keeps seed 0 only
    for seed in range(2):
        (records / f"{repro._slug(SHUFFLED)}.micro.seed{seed}.json").unlink()  # the control: none
    so_far = repro.Pipeline(copy.deepcopy(PRESET), partial, "ref", pipeline.corpus.source, log=lambda text: None)
    so_far.so_far = True
    got = so_far.run()
    assert got["so_far"] == {"runs": 6, "finished": 3, "pending": sorted(
        [f"{repro._slug(REAL)}.micro.seed1"] + [f"{repro._slug(SHUFFLED)}.micro.seed{s}" for s in range(2)])}
    assert set(got["m2"]) == {"Bytes", REAL}
    real = got["m2"][REAL]["micro"]
    assert real["seeds"]["n"] == 1
    assert real["bits_per_byte"] == results["m2"][REAL]["micro"]["seeds"]["values"][0]
    assert got["m2"]["Bytes"]["micro"]["bits_per_byte"] == results["m2"]["Bytes"]["micro"]["bits_per_byte"]
    assert "shuffled_control" not in real
    assert not (partial / "results.json").exists() and (partial / "so-far" / "results.json").exists()
    assert "3 of 6 M2 runs finished" in (partial / "so-far" / "results.md").read_text()
    assert not (partial / "m2").exists() and not (partial / "datasets").exists()  # nothing trained or built


def test_so_far_without_the_dataset_records_says_to_run_first(run, tmp_path):
    pipeline, _, _ = run
    so_far = repro.Pipeline(copy.deepcopy(PRESET), tmp_path / "empty", "ref", pipeline.corpus.source,
                            log=lambda text: None)
    so_far.so_far = True
    with pytest.raises(ValueError, match="run the command without --so-far first"):
        so_far.run()


def test_controls_run_right_after_their_rows():
    def units(*names):
        return [repro.M2Unit(name, "micro", s, "", "") for name in names for s in range(2)]

    got = repro.beside_their_rows(units("Bytes", REAL, "EqualInfoAC[b=32,v=256]", SHUFFLED,
                                        "EqualInfoAC[b=32,v=256,windows shuffled]",
                                        "EqualInfoAC[b=64,v=256,windows shuffled]"))  # b=64's row: finished
    assert [(u.name, u.seed_index) for u in got] == [
        ("Bytes", 0), ("Bytes", 1), (REAL, 0), (REAL, 1), (SHUFFLED, 0), (SHUFFLED, 1),
        ("EqualInfoAC[b=32,v=256]", 0), ("EqualInfoAC[b=32,v=256]", 1),
        ("EqualInfoAC[b=32,v=256,windows shuffled]", 0), ("EqualInfoAC[b=32,v=256,windows shuffled]", 1),
        ("EqualInfoAC[b=64,v=256,windows shuffled]", 0), ("EqualInfoAC[b=64,v=256,windows shuffled]", 1)]
