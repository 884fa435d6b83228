"""Equal-Info decoding on fast.cpu: many windows decoded together, each from its own bits alone.

ref's decode_window runs two decoders over a window's b bits, one reading the bits past b as zeros (the cell's
first point) and one as ones (its last point), and stops where they disagree. Windows are independent (the model
restarts at each), so here every window of a chunk advances in one compiled call (`_run_windows`) until it ends or
needs a row, and the rows the waiting windows need come from one place per step:
- a finite-context model: its ContextTable (fast/cpu/ac.py), looked up inside the compiled loop; a context not
  seen yet sends the window back to Python, which adds it to the table;
- M1 with fast.cpu's rows: its key/value-cached grower (fast/cpu/m1.py), one input per step for each of up to
  M1_SLOTS windows at a time: a window takes a slot when one is free and gives it back when it ends;
- any other model: one next_probs call on the prefixes [BOS, window symbols so far] of every waiting window.
The state of a window's decoder, for each of the two points, is a row of int64 [W, N_DECODER_COLUMNS].
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu.ac import ContextTable, context_id, table_row, uses_table
from equalinfo.fast.cpu.arithmetic import consume, decoder_start, find_symbol, quantize
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.ref.equalinfo import WindowError, check_window_bits, max_symbols_per_window
from equalinfo.ref.symbols import BOS, N_SYMBOLS

OFFSET, RANGE, POSITION = range(3)  # the decoder's point minus its interval's low end; the range; bits read
N_DECODER_COLUMNS = 3
RUNNING, DONE, NEED, FULL_BUFFER, OVERFLOW, QUEUED = range(6)  # a window's status (QUEUED: waits for a slot)
DECODE_CHUNK = 16384  # windows decoded together (bounds the symbol buffers' memory)
# Windows M1's cached grower serves at once (its slots). Every step's products write [rows, d_ff] arrays and read
# the slots' caches (~6 KB per slot and position for a 3m M1), so fewer rows per step keep more of a step in the
# CPU's caches; but each step also pays a fixed ~0.6 ms (13 products' calls), so not too few. When slots were
# chunks of 1,024 windows decoded to their last one, each chunk ended in steps of a few rows (its longest windows:
# 626 of a 100 KB file's 915 steps had <= 8 rows); a window now takes the slot another one leaves, so steps stay
# full until the last windows of the call (bench/README.md, round 6).
M1_SLOTS = 256
# Positions each slot holds before the caches grow. b=16 windows hold ~4-12 symbols, but a file's most predictable
# stretches put 33-64 in a few windows, and each growth copies every slot's caches (~0.1 s for 256 slots at 16 -> 32
# positions, fresh pages included): 64 positions from the start cost no copy, and little memory while the key
# cache is in blocks of 4 positions (exact_m1.key_layout: a slot's unused blocks are never touched, so never paged).
M1_CAPACITY = 64




@njit(cache=True)
def _start_windows(windows):
    """Decoders (first, last) [W, N_DECODER_COLUMNS] each of windows [W, b]: the cell's first point reads
    the bits past b as 0, its last point as 1."""
    first = np.zeros((windows.shape[0], N_DECODER_COLUMNS), dtype=np.int64)
    last = np.zeros((windows.shape[0], N_DECODER_COLUMNS), dtype=np.int64)
    for w in range(windows.shape[0]):
        first[w, OFFSET], first[w, RANGE], first[w, POSITION] = decoder_start(windows[w], 0)
        last[w, OFFSET], last[w, RANGE], last[w, POSITION] = decoder_start(windows[w], 1)
    return first, last


@njit(cache=True)
def _run_windows(windows, first_point, last_point, counts, status, need, out, bound, precision, ids, cdfs, k,
                 provided, step_cdfs):
    """Decode every RUNNING window until it ends (DONE), needs a row (NEED) or fills its out row (FULL_BUFFER).

    Rows come from the table (ids, cdfs) by context when k >= 0 (a missing context is reported in need[w]), else
    from step_cdfs[provided[w]], one row per call. A window ends where its cell's first point (bits past b read as
    0) and last point (read as 1) decode different symbols.
    """
    for w in range(windows.shape[0]):
        if status[w] != RUNNING:
            continue
        bits = windows[w]
        while True:
            count = counts[w]
            if count > bound:
                status[w] = OVERFLOW
                break
            if count == out.shape[1]:
                status[w] = FULL_BUFFER
                break
            if k >= 0:
                ident = context_id(out[w], count, k)
                row = table_row(ids, ident)
                if row < 0:
                    need[w] = ident
                    status[w] = NEED
                    break
                cdf = cdfs[row]
            else:
                if provided[w] < 0:
                    status[w] = NEED
                    break
                cdf = step_cdfs[provided[w]]
                provided[w] = -1
            first, last = first_point[w], last_point[w]
            symbol = find_symbol(first[OFFSET], first[RANGE], cdf, precision)
            if symbol != find_symbol(last[OFFSET], last[RANGE], cdf, precision):
                status[w] = DONE  # the cell straddles a child boundary: the window's text ends here
                break
            first[OFFSET], first[RANGE], first[POSITION] = consume(first[OFFSET], first[RANGE], first[POSITION],
                                                                   bits, 0, cdf, symbol, precision)
            last[OFFSET], last[RANGE], last[POSITION] = consume(last[OFFSET], last[RANGE], last[POSITION],
                                                              bits, 1, cdf, symbol, precision)
            out[w, count] = symbol
            counts[w] = count + 1


@njit(cache=True)
def _assign_slots(status, holder, slot_of, queued, admitted):
    """Slots of ended windows freed, free slots given to QUEUED windows in window order (they become NEED: their
    first row is BOS's). holder [S]: the window a slot serves (-1: free); slot_of [W]; queued: the first window
    not yet given a slot. Returns (the next such window, how many were admitted: their slots in admitted [S])."""
    n_admitted = 0
    for s in range(holder.shape[0]):
        if holder[s] >= 0 and status[holder[s]] == DONE:
            holder[s] = -1
        if holder[s] < 0 and queued < status.shape[0]:
            holder[s], slot_of[queued], status[queued] = queued, s, NEED
            admitted[n_admitted] = s
            n_admitted += 1
            queued += 1
    return queued, n_admitted


def _decode_chunk(windows, model, precision, table, progress=None, grower=None):
    """Self-delimited symbols of windows [W, b] (no count limit): (out [W, L], counts [W]); progress(n), if given,
    is called with the symbols decoded so far. grower: M1's cached grower (made here with a slot per window if
    None and the model has one); windows wait for a free slot (its sequence reset), so any number of slots works."""
    n_windows, window_bits = windows.shape
    bound = max_symbols_per_window(window_bits, precision)
    width = min(bound + 1, max(16, 2 * window_bits))
    first_point, last_point = _start_windows(windows)
    counts = np.zeros(n_windows, dtype=np.int64)
    status = np.zeros(n_windows, dtype=np.int8)
    need = np.zeros(n_windows, dtype=np.int64)
    provided = np.full(n_windows, -1, dtype=np.int64)
    out = np.zeros((n_windows, width), dtype=np.int64)
    empty = np.zeros((0, N_SYMBOLS + 1), dtype=np.int64)
    step_cdfs = empty
    if grower is None and table is None:
        grower = prefix_rows(model, n_windows)  # a slot per window, one input per step
    if grower is not None:  # every window waits for a slot
        status[:] = QUEUED
        holder = np.full(len(grower.lengths), -1, dtype=np.int64)
        slot_of = np.full(n_windows, -1, dtype=np.int64)
        admitted = np.empty(len(grower.lengths), dtype=np.int64)
        queued = 0
    while True:
        ids, cdfs, k = (table.ids, table.cdfs, table.k) if table is not None else (np.zeros(0, np.int64), empty, -1)
        _run_windows(windows, first_point, last_point, counts, status, need, out, bound, int(precision), ids, cdfs,
                     k, provided, step_cdfs)
        if np.any(status == OVERFLOW):
            raise AssertionError("a window decoded more symbols than its bits can hold")
        full = np.flatnonzero(status == FULL_BUFFER)
        if len(full):
            bigger = np.zeros((n_windows, min(bound + 1, 2 * out.shape[1])), dtype=np.int64)
            bigger[:, :out.shape[1]] = out
            out = bigger
            status[full] = RUNNING
        if grower is not None:
            queued, n_admitted = _assign_slots(status, holder, slot_of, queued, admitted)
            grower.reset(admitted[:n_admitted])
        needing = np.flatnonzero(status == NEED)
        if len(needing):
            if table is not None:
                table.add(need[needing])
            elif grower is not None:  # each waiting window's newest input: BOS, then its last decoded symbol
                slots = slot_of[needing]
                assert np.array_equal(grower.lengths[slots], counts[needing])
                newest = np.where(counts[needing] == 0, BOS, out[needing, np.maximum(counts[needing] - 1, 0)])
                step_cdfs = quantize(grower.extend(slots, newest), precision)
                provided[needing] = np.arange(len(needing))
            else:  # one model call on the prefixes [BOS, window symbols so far] of every waiting window
                length = int(counts[needing].max()) + 1
                t = np.arange(length)[None, :]
                inputs = np.where((t >= 1) & (t <= counts[needing, None]),
                                  out[needing[:, None], np.clip(t - 1, 0, out.shape[1] - 1)], BOS)
                probs = np.asarray(model.next_probs(inputs.astype(np.int64)))  # [A, T, 257]
                step_cdfs = quantize(probs[np.arange(len(needing)), counts[needing]], precision)
                provided[needing] = np.arange(len(needing))
            status[needing] = RUNNING
        if progress is not None:
            progress(int(counts.sum()))
        if not len(full) and not len(needing):
            return out, counts


def decode_windows(windows, model, precision=14, progress=None):
    """Self-delimited symbols of many windows [W, b] (any streams), as a list of int64 arrays.

    Each is what ref's decode_window gives with no limit: exact for every delimited window (every window but an
    input's last non-delimited one, which needs its count: see decompress). progress(n), if given, is called with
    the symbols decoded so far.
    """
    windows = np.asarray(windows)
    if windows.ndim != 2:
        raise WindowError(f"windows must be [n_windows, window_bits], got shape {windows.shape}")
    check_window_bits(windows.shape[1], precision)
    windows = np.ascontiguousarray(windows.astype(np.uint8))
    table = ContextTable(model, precision) if uses_table(model) else None
    chunk = DECODE_CHUNK
    grower = None
    if table is None and len(windows):  # None: no cached grower
        grower = prefix_rows(model, min(len(windows), M1_SLOTS), capacity=M1_CAPACITY)
    result, decoded = [], 0
    for begin in range(0, len(windows), chunk):
        in_chunk = None if progress is None else (lambda n, before=decoded: progress(before + n))
        out, counts = _decode_chunk(windows[begin:begin + chunk], model, precision, table, in_chunk, grower)
        result.extend(out[w, :counts[w]] for w in range(len(counts)))
        decoded += int(counts.sum())
    return result
