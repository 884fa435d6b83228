"""report/uncertainty.py against a closed form (equal rows: the SE of a mean), a bootstrap, repeated experiments
and the statistics module."""
import math
import statistics

import numpy as np
import pytest

from equalinfo.report import uncertainty


def synthetic_rows(rng, n):
    """Rows of unequal length: x_i tokens, y_i their summed NLL (about 2 nats/token, per-row difficulty)."""
    x = rng.integers(10, 129, n).astype(float)
    difficulty = rng.gamma(4.0, 0.5, n)  # mean 2 nats/token, rows differ
    y = difficulty * x + rng.normal(0, 1, n) * np.sqrt(x)
    return y, x


def test_equal_rows_give_the_standard_error_of_a_mean():
    rng = np.random.default_rng(0)
    y = rng.normal(300, 40, 37)
    ratio, se = uncertainty.ratio_and_se(y, np.full(37, 128.0))
    assert ratio == pytest.approx(statistics.mean(y) / 128, rel=1e-12)
    assert se == pytest.approx(statistics.stdev(y) / math.sqrt(37) / 128, rel=1e-12)


def test_delta_method_matches_a_bootstrap_over_rows():
    """Tolerance 5%: the bootstrap SE of 4,000 resamples is itself uncertain by ~1/sqrt(2 * 4000) ~ 1.1%, and the two
    estimators differ by O(1/n) (n = 300) besides."""
    rng = np.random.default_rng(1)
    y, x = synthetic_rows(rng, 300)
    _, se = uncertainty.ratio_and_se(y, x)
    picks = rng.integers(0, 300, (4000, 300))
    boot = y[picks].sum(axis=1) / x[picks].sum(axis=1)
    assert se == pytest.approx(boot.std(ddof=1), rel=0.05)


def test_delta_method_matches_the_spread_of_repeated_experiments():
    """The SE is meant to be the std of R across fresh samples of rows: draw 2,000 samples of 100 rows; 8%
    tolerance (the std over 2,000 experiments is uncertain by ~1.6%, the delta method's bias at n = 100 is ~1%)."""
    rng = np.random.default_rng(2)
    ratios, ses = [], []
    for _ in range(2000):
        y, x = synthetic_rows(rng, 100)
        ratio, se = uncertainty.ratio_and_se(y, x)
        ratios.append(ratio)
        ses.append(se)
    assert np.mean(ses) == pytest.approx(np.std(ratios, ddof=1), rel=0.08)


def test_bits_per_byte_se_divides_by_ln2_and_the_cr():
    rng = np.random.default_rng(3)
    y, x = synthetic_rows(rng, 20)
    assert uncertainty.bits_per_byte_se(y, x, 2.5) == pytest.approx(
        uncertainty.ratio_and_se(y, x)[1] / (math.log(2) * 2.5), rel=1e-12)


def test_one_row_has_no_visible_spread():
    ratio, se = uncertainty.ratio_and_se([10.0], [4.0])
    assert ratio == 2.5 and math.isnan(se)


def test_seed_spread():
    values = [4.71, 4.69, 4.80, 4.75]
    spread = uncertainty.seed_spread(values)
    assert spread == {"n": 4, "mean": pytest.approx(statistics.mean(values)),
                      "std": pytest.approx(statistics.stdev(values)), "min": 4.69, "max": 4.80}
    assert uncertainty.seed_spread([3.0]) == {"n": 1, "mean": 3.0, "std": None, "min": 3.0, "max": 3.0}
    with pytest.raises(ValueError):
        uncertainty.seed_spread([])


def test_clustered_se_with_one_row_per_document_is_the_row_se():
    rng = np.random.default_rng(4)
    y, x = synthetic_rows(rng, 50)
    documents = rng.permutation(50) * 7 + 3  # any distinct labels, in any order
    assert uncertainty.clustered_ratio_and_se(y, x, documents) == pytest.approx(uncertainty.ratio_and_se(y, x),
                                                                                rel=1e-12)
    assert uncertainty.clustered_bits_per_byte_se(y, x, 2.5, documents) == pytest.approx(
        uncertainty.bits_per_byte_se(y, x, 2.5), rel=1e-12)


def test_clustered_se_grows_when_rows_repeat_a_document():
    """Each row twice under one document id: the pairs are not independent evidence. The row SE treats the 100 rows
    as independent and shrinks by ~sqrt(2); the clustered SE sees 50 documents and stays at the 50 rows' SE."""
    rng = np.random.default_rng(5)
    y, x = synthetic_rows(rng, 50)
    y2, x2, documents = np.repeat(y, 2), np.repeat(x, 2), np.repeat(np.arange(50), 2)
    ratio, row_se = uncertainty.ratio_and_se(y2, x2)
    clustered_ratio, clustered_se = uncertainty.clustered_ratio_and_se(y2, x2, documents)
    assert clustered_ratio == pytest.approx(ratio, rel=1e-12)
    assert clustered_se == pytest.approx(uncertainty.ratio_and_se(y, x)[1], rel=1e-12)
    assert clustered_se > 1.3 * row_se


def test_clustered_se_equals_the_delta_method_over_summed_documents():
    """Documents of unequal numbers of rows, labelled by strings: the same as summing each document by hand."""
    rng = np.random.default_rng(6)
    y, x = synthetic_rows(rng, 40)
    documents = np.array([f"doc{i}" for i in rng.integers(0, 9, 40)])
    by_hand_y = [y[documents == d].sum() for d in sorted(set(documents))]
    by_hand_x = [x[documents == d].sum() for d in sorted(set(documents))]
    assert uncertainty.clustered_ratio_and_se(y, x, documents) == pytest.approx(
        uncertainty.ratio_and_se(by_hand_y, by_hand_x), rel=1e-12)


def test_clustered_se_matches_a_bootstrap_over_documents():
    """Rows within a document share its difficulty: resampling whole documents (4,000 times) gives the clustered SE
    (10%: the delta method and the bootstrap differ by O(1/G) at G = 60, the bootstrap is uncertain by ~1%)."""
    rng = np.random.default_rng(7)
    documents = np.repeat(np.arange(60), rng.integers(1, 12, 60))
    x = rng.integers(10, 129, len(documents)).astype(float)
    difficulty = rng.gamma(4.0, 0.5, 60)[documents] + rng.normal(0, 0.1, len(documents))
    y = difficulty * x
    _, se = uncertainty.clustered_ratio_and_se(y, x, documents)
    doc_y = np.bincount(documents, weights=y)
    doc_x = np.bincount(documents, weights=x)
    picks = rng.integers(0, 60, (4000, 60))
    boot = doc_y[picks].sum(axis=1) / doc_x[picks].sum(axis=1)
    assert se == pytest.approx(boot.std(ddof=1), rel=0.10)
    assert se > 1.5 * uncertainty.ratio_and_se(y, x)[1]


def test_clustered_se_needs_one_label_per_row():
    with pytest.raises(ValueError, match="one label per row"):
        uncertainty.clustered_ratio_and_se([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0, 1])
