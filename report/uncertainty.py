"""How sure is a bits/byte figure? The standard error over evaluation rows, and the spread over training seeds.

Two kinds of noise decide whether a difference between two bits/byte figures (or between M2 and a floor) means
anything:
- which text was evaluated: another sample of validation rows would give another figure. The standard error (SE)
  below estimates that from the rows themselves.
- which seed trained M2 (its initial parameters and batch order): `seed_spread` summarises figures of the same
  setting trained from several seeds.

The SE of a ratio of sums (the delta method). bits/byte is not a mean of independent numbers: it is a ratio of two
sums over the evaluation rows i = 1..n,

    R = sum_i y_i / sum_i x_i            y_i: the row's summed NLL (nats), x_i: the row's token weight
    bits/byte = R / (ln 2 * CR)          CR: the dataset's bytes per token (a constant of the dataset)

Rows are the independent units (tokens within a row are not: they share a context). Linearising R around the
true ratio (the delta method, first order) gives R - ratio ~ mean(d_i) / mean(x_i) with d_i = y_i - R * x_i, so

    Var(R) ~ s_d^2 / (n * xbar^2),   s_d^2 = sum_i d_i^2 / (n - 1),   xbar = sum_i x_i / n
    SE(R) = sqrt(n / (n - 1) * sum_i d_i^2) / sum_i x_i

and SE(bits/byte) = SE(R) / (ln 2 * CR). When every row has the same weight this is exactly the textbook SE of a
mean (std(y) / sqrt(n) / x); rows with more tokens count for more, as they do in R. It says nothing about the
training seed and takes CR as fixed (it is the same for every model on the dataset, floors included).

Rows that share a document are not independent. The validation rows are cut from a few long documents in corpus
order (data/packing.py), so neighbouring rows share topic, vocabulary and style: their residuals d_i are
correlated, and the formula above, which assumes they are not, reports too small an SE. The clustered SE treats
the document (any label that groups rows: a document id, or the packing group when rows span documents) as the
independent unit instead: sum y and x within each cluster g = 1..G and apply the same delta method to the G
cluster sums,

    SE_clustered(R) = sqrt(G / (G - 1) * sum_g D_g^2) / sum_i x_i,    D_g = sum_{i in g} d_i

With one row per cluster it is the row SE above; when rows of a cluster move together (D_g adds their residuals
with the same sign) it is larger, by up to sqrt(rows per cluster). It needs enough clusters to be itself reliable:
with G clusters it is estimated from G numbers, so with ~20 documents it is a rough figure (its relative
uncertainty is about 1 / sqrt(2 (G - 1))).
"""
import math

import numpy as np


def ratio_and_se(numerators, denominators):
    """(R, SE(R)) of R = sum(numerators) / sum(denominators) over independent rows (delta method; module docstring).

    numerators, denominators: [n] per row. SE is nan with fewer than 2 rows (no spread can be seen)."""
    y = np.asarray(numerators, dtype=np.float64).reshape(-1)
    x = np.asarray(denominators, dtype=np.float64).reshape(-1)
    if y.shape != x.shape:
        raise ValueError(f"numerators {y.shape} and denominators {x.shape} must have the same shape")
    if x.sum() <= 0:
        raise ValueError("the denominators must have a positive sum")
    n = len(y)
    ratio = y.sum() / x.sum()
    if n < 2:
        return float(ratio), math.nan
    d = y - ratio * x  # [n]: each row's residual against the overall ratio
    return float(ratio), float(math.sqrt(n / (n - 1) * (d ** 2).sum()) / x.sum())


def bits_per_byte_se(row_nll, row_weight, bytes_per_token):
    """SE of bits/byte = (sum row_nll / sum row_weight) / (ln 2 * bytes_per_token); row_nll in nats, [n] each."""
    return ratio_and_se(row_nll, row_weight)[1] / (math.log(2) * bytes_per_token)


def cluster_sums(values, clusters):
    """(labels [G], sums [G]): `values` [n] summed within each cluster label of `clusters` [n] (any labels np.unique
    can sort: ints, strings), labels in sorted order."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    clusters = np.asarray(clusters).reshape(-1)
    if clusters.shape != values.shape:
        raise ValueError(f"clusters {clusters.shape} must give one label per row {values.shape}")
    labels, which = np.unique(clusters, return_inverse=True)
    return labels, np.bincount(which.reshape(-1), weights=values, minlength=len(labels))


def clustered_ratio_and_se(numerators, denominators, clusters):
    """(R, SE(R)) of R = sum(numerators) / sum(denominators) with rows clustered by `clusters` [n] (one label per
    row): the delta method over cluster sums (module docstring). SE is nan with fewer than 2 clusters."""
    y = np.asarray(numerators, dtype=np.float64).reshape(-1)
    x = np.asarray(denominators, dtype=np.float64).reshape(-1)
    if y.shape != x.shape:
        raise ValueError(f"numerators {y.shape} and denominators {x.shape} must have the same shape")
    _, cluster_y = cluster_sums(y, clusters)
    _, cluster_x = cluster_sums(x, clusters)
    return ratio_and_se(cluster_y, cluster_x)


def clustered_bits_per_byte_se(row_nll, row_weight, bytes_per_token, clusters):
    """SE of bits/byte (as bits_per_byte_se) with the rows clustered by `clusters` [n]: documents, not rows, are
    taken as the independent units."""
    return clustered_ratio_and_se(row_nll, row_weight, clusters)[1] / (math.log(2) * bytes_per_token)


def seed_spread(values):
    """{"n", "mean", "std", "min", "max"} of one figure over seeds; std is the sample std (ddof 1), None for n = 1."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) == 0:
        raise ValueError("seed_spread needs at least one value")
    return {"n": int(len(values)), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "min": float(values.min()), "max": float(values.max())}
