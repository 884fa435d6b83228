"""fast.cpu's side of ref/m1.py: the key/value-cached growers its decoders evaluate M1's rows with.

A decoder sees a window's prefix one symbol at a time, so ref asks M1 for the whole prefix again at every step
(O(T^2) positions for a T-symbol window). A grower keeps each prefix's keys and values instead and evaluates only
the newest position, with the same rows bit for bit: `prefix_rows(model, n_slots)` gives one for an M1 whose rows
are fast.cpu's twin of its exact rule, the only implementations that have one (the PrefixRows of fast/cpu/exact_m1.py,
integer_m1.py, int8_m1.py and int8_rows_m1.py, the last two through fast/cpu/int8_step.py's compiled step, all
tested against next_probs). A grower's interface:
- `extend(slots, inputs)`: append inputs [A] to slots [A] (a slot may repeat: its inputs in order) and return the
  float64 rows [A, 257] that next_probs would give after each slot's prefix grown so far;
- `reset(slots)`: start those slots afresh (their next input is BOS); `lengths` [n_slots]: inputs held per slot.
fast/cpu/ac.py (the AC decoder, one slot) and fast/cpu/window_decoding.py (one slot per window) grow prefixes one
input per step; fast/cpu/lockstep.py (one slot per stream) grows each stream by its lookahead's new positions.
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu import exact_m1, int8_m1, int8_rows_m1, int8_step, integer_m1
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.symbols import BOS, N_SYMBOLS

GROWERS = {exact_m1.next_probs: exact_m1.PrefixRows,  # an M1's rows function -> the grower of the same rows
           integer_m1.next_probs: integer_m1.PrefixRows,
           int8_m1.next_probs: int8_step.Rule3Rows,  # int8_m1's grower, a step in one call where it can
           int8_rows_m1.next_probs: int8_step.Rule4Rows}


def prefix_rows(model, n_slots, capacity=8):
    """A grower of n_slots prefixes of `model`'s rows, or None for a model that has none (count models, M1 with
    rows from ref or the GPU): their callers evaluate whole prefixes with next_probs instead. capacity: positions
    per slot before the caches first grow (they grow as needed: only memory and speed depend on it)."""
    if not isinstance(model, TransformerModel) or model.rows not in GROWERS:
        return None
    grower = GROWERS[model.rows](model.params, model.cfg, n_slots, capacity)
    return grower if model.restart_every is None else RestartingRows(grower, model.restart_every)


@njit(cache=True)
def _restart_plan(lengths, slots, inputs, every, counts, rounds, restarts):
    """RestartingRows.extend's bookkeeping in one compiled pass (a decoder's step has one or a few rows, where
    NumPy's argsort/searchsorted per call cost more than the arithmetic): for each entry a, its position p in its
    slot's whole sequence (the slot's length plus its earlier entries), inputs[a] = BOS where p % every == 0,
    rounds[a] = the restart chunk it falls in counted from the slot's current one, restarts[a] = it restarts a slot
    that already holds inputs (p > 0). lengths += each slot's entries. Returns the largest round (-1: no entries).
    counts int64 [S]: scratch, zero on entry and on return. -2 if a slot is out of range (nothing changed then)."""
    for a in range(slots.shape[0]):
        if slots[a] < 0 or slots[a] >= lengths.shape[0]:
            return -2
    top = -1
    for a in range(slots.shape[0]):
        s = slots[a]
        p = lengths[s] + counts[s]
        counts[s] += 1
        if p % every == 0:
            inputs[a] = BOS
        rounds[a] = p // every - lengths[s] // every
        restarts[a] = p % every == 0 and p > 0
        top = max(top, rounds[a])
    for a in range(slots.shape[0]):
        s = slots[a]
        lengths[s] += counts[s]
        counts[s] = 0
    return top


class RestartingRows:
    """A grower (the module docstring's interface) whose slots start afresh every `every` inputs, for an M1 with
    restart_every: the input at a multiple of `every` is replaced by BOS and the slot's cache is reset before it,
    so `extend` gives the rows of ref.m1.restarted_rows and a slot never holds more than `every` positions."""

    def __init__(self, grower, every):
        self.grower, self.every = grower, int(every)
        self.lengths = np.zeros(len(grower.lengths), dtype=np.int64)  # inputs appended since reset, restarts aside
        self._counts = np.zeros(len(grower.lengths), dtype=np.int64)  # _restart_plan's scratch

    def reset(self, slots):
        self.grower.reset(slots)
        self.lengths[slots] = 0

    def extend(self, slots, inputs):
        """float64 rows [A, V] after appending inputs [A] to slots [A] (a slot may repeat: its inputs in order)."""
        slots = np.asarray(slots, dtype=np.int64)
        inputs = np.array(inputs, dtype=np.int64)  # a copy: restarts replace inputs by BOS
        rounds = np.empty(len(slots), dtype=np.int64)
        restarts = np.empty(len(slots), dtype=np.bool_)
        last_round = _restart_plan(self.lengths, slots, inputs, self.every, self._counts, rounds, restarts)
        if last_round == -2:
            raise IndexError(f"slots must lie in [0, {len(self.lengths)})")
        if last_round == 0:  # the common case (a decoder's step): no slot crosses a restart within this call
            if restarts.any():
                self.grower.reset(slots[restarts])
            return self.grower.extend(slots, inputs)
        # A call may carry a slot across a restart: split it into rounds, round r holding each slot's inputs in
        # the r-th chunk this call reaches, and reset a slot before the round whose first input restarts it.
        rows = None
        for r in range(last_round + 1):
            chosen = np.flatnonzero(rounds == r)
            self.grower.reset(slots[chosen[restarts[chosen]]])
            part = self.grower.extend(slots[chosen], inputs[chosen])
            if rows is None:
                rows = np.empty((len(slots),) + part.shape[1:], dtype=part.dtype)
            rows[chosen] = part
        return rows if rows is not None else np.zeros((0, N_SYMBOLS))
