"""How many rows the lockstep encoder (fast/cpu/lockstep.py) asks per window and model call.

A window needs the rows of its symbols plus one (the row after its last symbol, which decides where it ends), and
the encoder cannot know how many before coding them. One row per call costs a model call per symbol; many rows
per call evaluate rows past the window's end, thrown away. So by default the lookahead adapts: a little more
than the mean rows the windows so far needed, so that most windows need one call and few rows are wasted.
"""
import numpy as np


class Lookahead:
    """Rows per window and call: fixed if given, else 1.25x the mean rows that ended windows used, plus one."""

    FIRST, MOST = 8, 64

    def __init__(self, fixed):
        self.fixed = fixed
        self.rows, self.windows = 0, 0

    def record(self, greedy_counts):
        self.rows += int(np.sum(greedy_counts)) + len(greedy_counts)  # a window reads greedy + 1 rows
        self.windows += len(greedy_counts)

    def __int__(self):
        if self.fixed is not None:
            return self.fixed
        return self.FIRST if not self.windows else min(self.MOST, int(1.25 * self.rows / self.windows) + 1)
