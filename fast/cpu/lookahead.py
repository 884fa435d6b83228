"""How many rows the lockstep encoder (fast/cpu/lockstep.py) asks per window and model call.

A window needs the rows of its symbols plus one (the row after its last symbol, which decides where it ends), and
the encoder cannot know how many before coding them. One row per call costs a model call per symbol; many rows
per call evaluate rows past the window's end, thrown away. What a call and a row cost, fitted on whole encodes of
the shipped 3m M1 (rule 3, one thread, 7 streams of held-out English, b=16; bench/README.md "Round 6"): ~0.6 ms a
call whatever its rows (Python, the small compiled calls, the GEMMs' fixed part) and ~0.055 ms a row. Every live
stream rides in every call, so a call's cost is shared by the streams, and a thrown-away row is never shared.

So by default the encoder PREDICTS where each window ends, from what it knows: the text ahead (it is encoding it),
the bits the window has used so far (its coder state) and what the symbols it has coded cost. A `CostTable`
learns, from every window that ends, the mean cost (-log2 p of the model's quantized row) of symbol x after
symbol `prev` at position j of a window (positions from LAST_POSITION on share one entry): because the model
restarts at every window, a window's first symbols have short contexts, and (j, prev, x) pins the first two
symbols' costs exactly and the later ones well. Each call, a stream walks the text ahead adding predicted costs
to its used bits until they pass the window's b bits; the symbol there is predicted not to fit, and the stream asks
the rows up to and including its row (`predict_rows`). A wrong guess costs either rows thrown away or one more
call, in which the walk starts again from the coder's true state. Unseen (j, prev, x) fall back to the mean cost of
all symbols so far. With fewer than NARROW live streams a call is shared by few, and costs more than the rows one
more call would save (tens of rows on one stream: the 8 KB runs below): every ask then adds a row.

Measured (bench/equalinfo_lookahead.py: shipped M1, b=16, one thread, bench/README.md "Round 6"), old rule -> this
one, against the floor (lookahead 1: exactly the decoder's rows, one call per symbol):
- 100 KB of held-out English, 7 streams: 1.91 -> 1.39 rows per input byte (floor 1.245), 4,650 -> 4,861 calls;
  the encode 1.19-1.33x faster, old and new alternating;
- 208 KiB, 13 streams (one process's half of a 400 KB file): 1.55 -> 1.38 rows per byte, 6,055 -> 4,968 calls;
- 8 KB, 1 stream: 2.00 -> 1.65 rows per byte, 2,350 -> 2,292 calls, time unchanged within the noise.
The rule it replaces asked, per window, about the mean rows of the windows so far (1.25x the mean plus one with
fewer than 8 streams), blind to where a given window stands. Simulated on recorded costs, knowing every symbol's
true cost would save ~9% more of the encode's time and a (position, two symbols before, symbol) table ~3%: below
this machine's run-to-run noise, so the table stays this small.

Which rows are evaluated never changes a row's value (a row depends on its prefix alone), so the bits do not depend
on the lookahead (tests/test_fast_cpu_coder.py, tests/test_int8_m1.py).
"""
import numpy as np
from numba import njit

from equalinfo.ref.symbols import BOS, N_INPUTS, N_SYMBOLS

LAST_POSITION = 5  # window positions 0..4 have their own costs; 5 and later share one (see the docstring)
FIRST_COST = 4.0  # bits per symbol guessed before any window has ended (a byte-level model's English: 2-5)


class CostTable:
    """Mean cost in bits of symbol x after prev (BOS at a window's start) at window position j (module docstring)."""

    def __init__(self):
        self.sums = np.zeros((LAST_POSITION + 1, N_INPUTS, N_SYMBOLS))
        self.counts = np.zeros((LAST_POSITION + 1, N_INPUTS, N_SYMBOLS))
        self.totals = np.array([0.0, 0.0])  # all costs learnt, and their number: the fallback mean


@njit(cache=True)
def learn_costs(sums, counts, totals, hist, flat, offsets, streams, starts, greedy, precision):
    """Add the costs of each ended window's symbols (its greedy ones and the one that did not fit, if any) to a
    CostTable's arrays. Window k is stream streams[k]'s from symbol starts[k]; its rows are still in hist[s]."""
    for k in range(streams.shape[0]):
        s = streams[k]
        base, n = offsets[s] + starts[k], offsets[s + 1] - offsets[s] - starts[k]
        prev = BOS
        for j in range(min(greedy[k] + 1, n)):
            x = flat[base + j]
            cost = precision - np.log2(max(hist[s, j, x + 1] - hist[s, j, x], 1))
            q = min(j, LAST_POSITION)
            sums[q, prev, x] += cost
            counts[q, prev, x] += 1
            totals[0] += cost
            totals[1] += 1
            prev = x


@njit(cache=True)
def predict_rows(sums, counts, totals, flat, offsets, live, starts, avail, used, budget, extra, most, out):
    """out[k]: the rows stream live[k] asks: up to the row of the first symbol predicted not to fit its window,
    plus `extra`.

    Its window starts at symbol starts[k] and has avail[k] symbols coded (their rows in hand) using used[k] bits;
    the walk adds each next symbol's predicted cost until the total passes `budget` (the window's b bits). At most
    `most` rows, at least 1; rows past the stream's end are cut by the caller."""
    mean = totals[0] / totals[1] if totals[1] > 0 else FIRST_COST
    for k in range(live.shape[0]):
        s = live[k]
        base, n = offsets[s] + starts[k], offsets[s + 1] - offsets[s] - starts[k]
        j, bits = avail[k], used[k]
        prev = BOS if j == 0 else flat[base + j - 1]
        while j < n and j - avail[k] < most:
            x = flat[base + j]
            q = min(j, LAST_POSITION)
            bits += sums[q, prev, x] / counts[q, prev, x] if counts[q, prev, x] > 0 else mean
            if bits > budget:
                break  # symbol j is predicted not to fit: its row ends the window
            prev = x
            j += 1
        out[k] = min(most, max(1, j + 1 - avail[k] + extra))


class Lookahead:
    """Rows per window and call: fixed if given, else predicted per stream from a CostTable (module docstring)."""

    MOST = 64  # rows per stream and call at most (long windows: b=1,024 holds ~500 symbols)
    FIRST = 8  # rows of the encoder's first buffers (they grow as needed)
    NARROW = 4  # with fewer live streams, each ask adds a row (module docstring)

    def __init__(self, fixed, window_bits):
        self.fixed, self.window_bits = fixed, window_bits
        self.table = None if fixed is not None else CostTable()

    def rows_hint(self):
        """Rows per stream the encoder's buffers start with."""
        return self.FIRST if self.fixed is None else min(self.fixed, self.MOST)

    def record(self, hist, flat, offsets, streams, meta_start, meta_greedy, precision):
        """Learn the costs of the windows that just ended (stream streams[k]'s from meta_start[k], its rows in hist)."""
        if self.table is not None:
            t = self.table
            learn_costs(t.sums, t.counts, t.totals, hist, flat, offsets, streams, meta_start, meta_greedy,
                        int(precision))

    def per_stream(self, flat, offsets, live, starts, avail, used):
        """Rows to ask for each live stream, given its window's start, symbols coded (avail) and bits used [A]."""
        if self.fixed is not None:
            return np.full(len(live), self.fixed, dtype=np.int64)
        out = np.empty(len(live), dtype=np.int64)
        t = self.table
        predict_rows(t.sums, t.counts, t.totals, flat, offsets, live, starts, avail, used.astype(np.float64),
                     float(self.window_bits), int(len(live) < self.NARROW), self.MOST, out)
        return out
