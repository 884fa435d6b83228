"""Table 6's byte-matched rows: an Equal-Info entry with its own "seq_len". EqualInfoAC[b=16] at v=65k holds one
16-bit window per token, at v=256 two 8-bit tokens per window; rows of L/2 v=65k tokens therefore keep exactly the
windows, hence the bytes, of rows of L v=256 tokens (byte-matched), and rows of L v=65k tokens twice the windows
(token-matched). A row length that leaked from the preset into the entry, or the other way, breaks the equalities."""
import copy

import numpy as np
import pytest

from helpers import english_text
from equalinfo.train import build, memory, repro
from equalinfo.train.preset_schema import PresetError, validate

L = 32
PRESET = {
    "seed": 5,
    "packing": {"group_size": 2, "example_length": 300, "validation_every": 3},
    "m1": {"size": "micro", "dtype": "float64", "seq_len": 32, "batch_size": 4, "eval_sequences": 4,
           "train": {"steps": 2, "optimizer": {"name": "adamw", "peak_lr": 0.01, "warmup_steps": 0,
                                               "total_steps": 2}}},
    "coding": {"precision": 14},
    "datasets": {"train_examples": 6, "val_examples": 5, "seq_len": L,
                 "methods": [{"method": "equalinfo", "window_bits": [16], "bits_per_token": [8]},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [16], "seq_len": L // 2},
                             {"method": "equalinfo", "window_bits": [16], "bits_per_token": [16]}]},
    "m2": {"sizes": ["micro"], "dtype": "float64", "batch_size": 2, "seeds": 1,
           "train": {"steps": 1, "optimizer": {"name": "adamw", "peak_lr": 0.02, "warmup_steps": 0,
                                               "total_steps": 1}}},
}
V256, BYTE_MATCHED, TOKEN_MATCHED = ("EqualInfoAC[b=16,v=256]", f"EqualInfoAC[b=16,v=65k,L={L // 2}]",
                                     "EqualInfoAC[b=16,v=65k]")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    text = english_text(30_000)
    for i in range(24):
        (corpus / f"doc{i:02d}.txt").write_bytes(text[i * 1000:i * 1000 + 400 + 20 * i])
    pipeline = repro.Pipeline(copy.deepcopy(PRESET), tmp_path_factory.mktemp("run"), "ref", str(corpus),
                              log=lambda text: None)
    examples = pipeline.examples()
    built, skipped = pipeline.build_datasets(examples, pipeline.train_m1(examples))
    assert not skipped
    return built


def test_the_labels_name_the_row_length():
    assert [spec[0] for spec in repro.dataset_specs(PRESET)] == [V256, BYTE_MATCHED, TOKEN_MATCHED]


@pytest.mark.parametrize("side", ["train", "validation"])
def test_byte_matched_rows_keep_the_bytes_of_the_v256_rows(datasets, side):
    v256, matched, token = (datasets[name][side] for name in (V256, BYTE_MATCHED, TOKEN_MATCHED))
    assert v256.column("tokens").shape[1] == L and matched.column("tokens").shape[1] == L // 2
    assert token.column("tokens").shape[1] == L
    np.testing.assert_array_equal(matched.column("kept_bytes"), v256.column("kept_bytes"))
    np.testing.assert_array_equal(matched.column("weights").sum(axis=1) * 2, v256.column("weights").sum(axis=1))
    # the same windows: each v=65k token is the two v=256 tokens of its window, high byte first
    kept = v256.column("weights")[:, ::2] > 0
    pairs = v256.column("tokens")[:, ::2] * 256 + v256.column("tokens")[:, 1::2]
    np.testing.assert_array_equal(np.where(kept, pairs, 0), np.where(kept, matched.column("tokens"), 0))
    assert (token.column("kept_bytes") >= matched.column("kept_bytes")).all()
    assert token.column("kept_bytes").sum() > matched.column("kept_bytes").sum()


def test_the_memory_estimate_uses_the_longest_row():
    preset = copy.deepcopy(PRESET)
    preset["datasets"]["methods"][1]["seq_len"] = 4 * L
    words = " ".join(what for what, _ in memory.estimates(preset))
    assert f"datasets.seq_len {4 * L:,}" in words


def test_a_row_length_out_of_range_is_refused():
    preset = copy.deepcopy(PRESET)
    preset["datasets"]["methods"][1]["seq_len"] = 0
    with pytest.raises(PresetError):
        validate(preset)
