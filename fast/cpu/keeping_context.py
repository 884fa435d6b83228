"""The Table 9 ablation (M1's context reset every k windows, not at every one) on fast.cpu: ref's rule, rows batched.

ref/equalinfo.py's model_reset_every = k keeps the model's context across the windows of a group of k (None: one
group, the whole sequence), so a window's rows depend on earlier windows. fast.cpu's lockstep encoder restarts a
stream's model at every window, and an ablation does not justify a second lockstep that carries context across
windows: here ref's encode_window codes every window, and only the model calls are batched, one per group of
windows for many streams at once, handed to each stream's cursor with `SuppliedCursor.supply`. Decoding an
ablation's bits is ref's decompress (fast/cpu/equalinfo.py).
"""
import numpy as np

from equalinfo.ref.arithmetic import quantize
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.equalinfo import check_window_bits, encode_window, resets_model
from equalinfo.ref.symbols import BOS, check_symbols


class SuppliedCursor(CdfCursor):
    """ref's CdfCursor whose prefetched rows may come from the caller, e.g. from one model call for many streams."""

    def supply(self, upcoming, cdfs):
        """prefetch(upcoming) with the rows' CDFs already made (cdfs [n, V+1]: row t is the CDF after
        (inputs + upcoming)[:t + 1]); the caller vouches for them. Like prefetched rows, they are dropped at the
        first pushed symbol that does not follow `upcoming`, and more are evaluated if the pushed ones run past."""
        self.assumed = self.inputs + [int(s) for s in upcoming]
        self.ahead = np.asarray(cdfs)


POSITIONS_PER_CALL = 16384  # a never-reset call evaluates whole sequences: its memory grows with streams x length


def calls_width(longest, streams_per_call):
    """Streams per model call when each stream's prefix is its whole sequence (never reset): at most
    POSITIONS_PER_CALL positions per call. One call over 64 sequences of 769 positions (3m M1, rule 3) held ~5.8 GB
    at its peak and a 256-row shard of them was killed for memory at 24 GB on the 24 GB dev machine; 16 per call
    peaked at 1.8 GB and ran faster (12.0 vs 20.5 s for 64 streams; fewer fresh pages). Rows depend on their prefix
    alone, so the width never changes a bit."""
    return max(1, min(streams_per_call, POSITIONS_PER_CALL // max(1, longest)))


def encode_keeping_context(streams, model, window_bits, precision, delimit, every, streams_per_call=64):
    """The Table 9 ablation (M1 reset every `every` windows, None: never) by ref's rule, streams batched.

    Each round, every unfinished stream starts a group of `every` windows (its model context starts afresh); ONE
    model call per `streams_per_call` streams gives each the rows of its next `ahead` symbols, which its cursor
    takes as prefetched (SuppliedCursor), and ref's encode_window codes the group's windows from them (the cursor
    evaluates more rows itself in the rare group that runs past them). Same windows as ref: rows depend on their
    prefix alone."""
    check_window_bits(window_bits, precision)
    streams = [check_symbols(s) for s in streams]
    cursors = [SuppliedCursor(model, precision) for _ in streams]
    windows = [[] for _ in streams]
    positions = [0] * len(streams)
    ahead, used = 32, []  # symbols supplied per group; the group lengths so far
    while True:
        active = [s for s in range(len(streams)) if positions[s] < len(streams[s])]
        if not active:
            return windows
        per_call = streams_per_call if every else calls_width(max(len(streams[s]) for s in active), streams_per_call)
        for first in range(0, len(active), per_call):
            chunk = active[first:first + per_call]
            prefixes = [streams[s][positions[s]:positions[s] + (ahead if every else len(streams[s]))]
                        for s in chunk]  # never reset: one group, the whole sequence
            batch = np.full((len(chunk), 1 + max(len(p) for p in prefixes)), BOS, np.int64)  # right-padded
            for row, prefix in enumerate(prefixes):
                batch[row, 1:1 + len(prefix)] = prefix
            probs = model.next_probs(batch)  # [A, T, V]
            for row, (s, prefix) in enumerate(zip(chunk, prefixes)):
                cursors[s].reset()
                cursors[s].supply(prefix, quantize(probs[row, :1 + len(prefix)], precision))
                group_start = positions[s]
                while positions[s] < len(streams[s]) and (positions[s] == group_start
                                                          or not resets_model(len(windows[s]), every)):
                    window = encode_window(streams[s], positions[s], cursors[s], window_bits,
                                           precision, delimit, reset_model=False)
                    windows[s].append(window)
                    positions[s] += window.length
                used.append(positions[s] - group_start)
        if every is not None:
            ahead = int(np.ceil(1.5 * np.mean(used[-256:]))) + 8  # most groups fit, few rows are wasted
