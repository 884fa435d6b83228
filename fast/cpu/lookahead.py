"""How many rows the lockstep encoder (fast/cpu/lockstep.py) asks per window and model call.

A window needs the rows of its symbols plus one (the row after its last symbol, which decides where it ends), and
the encoder cannot know how many before coding them. One row per call costs a model call per symbol; many rows
per call evaluate rows past the window's end, thrown away. So by default the lookahead adapts, and differs by
where a stream's window stands:
- a window that starts asks about the mean rows the windows so far needed (rounded down, at least 1): most
  windows are near the mean, and asking the mean and topping up costs fewer rows than asking past it;
- a window that already has rows and needs more is near its end: it asks a small top-up, half the mean rounded
  up, so that a long window still takes few calls.
The lockstep runs every stream in every call, so a stream that tops up rides along with the others' calls: the
number of calls grows little, the rows thrown away shrink. That holds only when many streams share a call: a
call's fixed cost (13 products' Python, quantizing and GEMM calls: ~1 ms for a 3m M1) is worth ~30 rows, so with
fewer than WIDE live streams every window asks 1.25x the mean plus one, as before: the file tool's Equal-Info
encoder of an 8 KB file (one segment) ran at 2.9 KB/s with the per-stream rule against 3.5 before (bench/
int8_gemm_coders.py, bench/README.md). Measured on the shipped 3m M1 (16 streams of 2,048
bytes of Shakespeare, b=16, 3.7 symbols per window, dev machine): rows per coded symbol 1.83 with the earlier rule
(1.25x the mean plus one for every call), against 1.27 for a perfect oracle (docs: bench/README.md, issue #24).
Which rows are evaluated never changes a row's value (a row depends on its prefix alone), so the bits do not depend
on the lookahead (tests/test_fast_cpu_coder.py).
"""
import numpy as np


class Lookahead:
    """Rows per window and call: fixed if given, else adaptive (module docstring)."""

    FIRST, MOST = 4, 64
    WIDE = 8  # live streams from which the per-stream rule is used (module docstring)

    def __init__(self, fixed):
        self.fixed = fixed
        self.rows, self.windows = 0, 0

    def record(self, greedy_counts):
        self.rows += int(np.sum(greedy_counts)) + len(greedy_counts)  # a window reads greedy + 1 rows
        self.windows += len(greedy_counts)

    def _mean(self):
        return self.rows / self.windows if self.windows else self.FIRST

    def __int__(self):
        """Rows per window and call for a narrow lockstep (fewer than WIDE streams), and the encoder's buffers."""
        if self.fixed is not None:
            return self.fixed
        return 8 if not self.windows else min(self.MOST, int(1.25 * self._mean()) + 1)

    def per_stream(self, avail):
        """Rows to ask for each stream, given the rows its current window already has (avail [A])."""
        if self.fixed is not None or len(avail) < self.WIDE:
            return np.full(len(avail), int(self), dtype=np.int64)
        mean = self._mean()
        first = min(self.MOST, max(1, int(mean)))
        more = min(self.MOST, max(1, int(np.ceil(mean / 2))))
        return np.where(avail == 0, first, more).astype(np.int64)
