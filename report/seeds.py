"""Several seeds of one M2 combined into one row of results, and the margin a row must clear to count as below a
floor (`equalinfo repro` with m2.seeds > 1; a single seed is the same with n = 1).

A bits/byte figure within noise of a floor does not show that M2 learnt anything beyond that floor. The noise has
two parts: the standard error over the evaluated validation rows (report/uncertainty.py) and, with several seeds,
how much the seeds themselves disagree. below_floor says yes only beyond both; beats_control says the same of a
row against its shuffled-window control (train/shuffled_windows.py), which is itself an M2 with an SE and seeds.
"""
import math

import numpy as np

from equalinfo.report import uncertainty


def combine_seeds(per_seed):
    """One row's figures from the figures of each seed ([dict], seed 0 first).

    A figure the seeds share (the CR, the floors, FLOPs) is kept as it is; one that differs (bits/byte, its SE, the
    losses) becomes the mean over seeds (None if some seed has none). `seeds` adds the spread of bits/byte:
    {"n", "std" (sample std, None for one seed), "min", "max", "values" (seed 0 first)}."""
    combined = {}
    for key in per_seed[0]:
        values = [figures.get(key) for figures in per_seed]
        if all(value == values[0] for value in values):
            combined[key] = values[0]
        elif all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
            combined[key] = float(np.mean(values))
        else:
            combined[key] = None
    values = [figures["bits_per_byte"] for figures in per_seed]
    spread = uncertainty.seed_spread(values)
    combined["seeds"] = {"n": spread["n"], "std": spread["std"], "min": spread["min"], "max": spread["max"],
                         "values": values}
    return combined


def floor_margin(figures):
    """How far below a floor bits/byte must lie to count: 2 SE (clustered by document where the row has it:
    row_se), plus the seed std when there are several seeds; None when the SE is unknown (fewer than two rows)."""
    se = row_se(figures)
    if se is None:
        return None
    seeds = figures.get("seeds") or {}
    return 2 * se + (seeds["std"] if seeds.get("n", 1) > 1 and seeds.get("std") is not None else 0.0)


def below_floor(figures, floor_key="unigram_bits_per_byte"):
    """True when bits/byte + floor_margin is below the floor (held-out unigram by default): "learnable" in the
    project's sense; False otherwise; None when the margin is unknown."""
    margin = floor_margin(figures)
    if margin is None or figures.get(floor_key) is None:
        return None
    return figures["bits_per_byte"] + margin < figures[floor_key]


def row_se(figures):
    """The SE a comparison uses: clustered by document where the row has it (rows of a document are not
    independent), else the SE over rows; None when neither is known."""
    clustered = figures.get("bits_per_byte_se_clustered")
    return clustered if clustered is not None else figures.get("bits_per_byte_se")


def beats_control(figures, control):
    """{"difference", "margin", "learns_across_windows"}: control's bits/byte minus the row's, and whether it
    exceeds the noise of both M2s: 2 * sqrt(SE^2 + SE_control^2) (row_se of each, taken as independent, which
    overstates the noise of a difference on the same rows) plus sqrt(std^2 + std_control^2) of the seeds with
    several seeds. learns_across_windows is None when an SE is unknown."""
    difference = control["bits_per_byte"] - figures["bits_per_byte"]
    ses = [row_se(figures), row_se(control)]
    if None in ses:
        return {"difference": difference, "margin": None, "learns_across_windows": None}
    stds = [(f.get("seeds") or {}).get("std") or 0.0 for f in (figures, control)]
    margin = 2 * math.hypot(*ses) + math.hypot(*stds)
    return {"difference": difference, "margin": margin, "learns_across_windows": difference > margin}
