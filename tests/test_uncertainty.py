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
