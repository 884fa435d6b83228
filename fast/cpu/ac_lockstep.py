"""Plain AC over many independent sequences (a file's segments) in lockstep: fast.cpu.ac's batch coders for
whole-prefix models (M1).

Why: AC decoding with M1 is latency-bound. The decoder learns symbol t only after decoding it, so row t+1 needs a
model call of its own: one call of ONE row per symbol (fast.cpu.ac.decompress), most of it fixed cost. Segments
are independent, so the decoder runs them side by side: one grower (fast/cpu/m1.py) with one slot per segment,
and at each step ONE batched call extends every unfinished segment by the symbol it decoded last ([A rows], A the
segments still running); then each segment's arithmetic decoder takes one symbol from its own row (`_decode_step`,
a compiled loop over segments). A call of A rows costs little more than a call of one, so S segments decode about
S times as fast as one after another. A row depends on its own prefix alone (ref/m1.py: the exact rules give the
same bits whatever the batch), so every segment decodes exactly as fast.cpu.ac.decompress decodes it alone.

- Segments end at different lengths: a segment leaves the batch after its last symbol; the others' rows do not
  depend on who else is in the call.
- restart_every: the grower restarts each slot on its own (fast.cpu.m1.RestartingRows), as the single decoder's
  one slot does; without a grower (rows from ref or the GPU) the batch asks next_probs for the [A, t+1] prefixes
  (from the last restart on: a slice that starts at a multiple of restart_every restarts where the whole does).
- Errors: a segment whose bits end early (or whose row cannot be quantized) fails with the CoderError the single
  decoder raises for it, at the same symbol; the batch raises the failure of the FIRST failing segment, as a loop
  over the segments would (segments after it stop running: a loop would never reach them).

The encoder knows every symbol, so it already gets many rows per call (fast.cpu.ac._whole_prefix_cells); here its
calls take the column pieces of many segments at once when they are short enough: pieces of equal width are
stacked into [B, width] calls of at most ROWS_PER_CALL rows (so 16 KiB segments of a restarting M1 go in 2 KiB
pieces, one per call; 256-byte segments go 8 to a call). Pieces of different widths never share a call, so nothing is
padded.
"""
import contextlib

import numba
import numpy as np
from numba import njit

from equalinfo.fast.cpu.arithmetic import check_bits, decoder_start
from equalinfo.fast.cpu.fused import _decode_one_probs, _raise_quantize_error, encode_cells, symbol_cells
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.fast.cpu.threads import set_threads
from equalinfo.ref.ac import PROGRESS_EVERY
from equalinfo.ref.arithmetic import STATE_BITS, CoderError
from equalinfo.ref.symbols import BOS, check_symbols

# Rows of one encoder call. The shipped M1 encoded 32 KiB (4 x 8 KiB segments) at 2.0-4.0 KB/s in calls of 2048
# rows, 2.1-2.8 KB/s in calls of 8192 (fast.cpu.ac's one-stream pieces: more than the caches hold), 2.0-2.8 with
# 512 (dev machine, busy: load 5-13; python /tmp/enc_b.py-style alternation, two rounds each).
ROWS_PER_CALL = 2048

ONE_THREAD_ROWS = 1024  # decoder calls of fewer rows run on one thread (`one_thread`; measured up to 64)
RAN_OUT, BAD_ROW = 1, 2  # _decode_step's status of a segment that cannot take its symbol


@contextlib.contextmanager
def one_thread(n_rows):
    """Run the model calls inside on one thread (OpenBLAS and Numba) when they have fewer than ONE_THREAD_ROWS rows.

    Why: a decoder's call is a few rows, so its products take microseconds of work, and a second thread only adds
    the wait for it to be scheduled. The shipped M1's grower per step, one thread vs two (`python
    bench/ac_segments.py --grower-rows 1 4 16 32 64`, dev machine, load 1.6-2.9): 1.5 vs 1.5-26 ms for 1 row,
    2.8-3.9 vs 56-63 ms for 4, 8.2-9.0 vs 97-150 for 16, 14-17 vs 45-113 for 32, 27-30 vs 161-175 for 64. The exact
    rules give the same bits on any thread count (tests/test_quantized_rules.py). The count is restored afterwards,
    errors included.
    """
    threads = numba.get_num_threads()
    if n_rows >= ONE_THREAD_ROWS or threads == 1:
        yield
        return
    set_threads(1)
    try:
        yield
    finally:
        set_threads(threads)


def ran_out(index, n_symbols):
    """The CoderError of a decoder whose bits end before symbol `index` (fast.cpu.ac.decompress's)."""
    return CoderError(f"the bits end before symbol {index} of the {n_symbols} expected")


# ---------------------------------------------------------------------------------------------------------------
# encoding


def column_pieces(lengths, restart_every):
    """(segment, start, stop) of the column ranges each model call may take: a segment's whole length, or pieces of
    whole restarts of about ROWS_PER_CALL columns (a piece that starts at a restart has the rows the whole
    sequence has), as fast.cpu.ac._whole_prefix_cells cuts one sequence."""
    pieces = []
    for segment, n in enumerate(lengths):
        width = n if restart_every is None else restart_every * max(1, ROWS_PER_CALL // restart_every)
        for start in range(0, n, max(width, 1)):
            pieces.append((segment, start, min(start + width, n)))
    return pieces


def encode_segments(pieces, model, precision, progress=None):
    """bits (uint8 0/1) of each sequence of `pieces`, each coded alone from BOS with a whole-prefix model: the
    same bits as fast.cpu.ac.compress of each. progress(n): symbols coded so far, after each model call."""
    pieces = [check_symbols(piece) for piece in pieces]
    lengths = [len(piece) for piece in pieces]
    inputs = [np.concatenate([[BOS], piece]).astype(np.int64)[:len(piece)] for piece in pieces]  # [n] each
    cells = [np.zeros((n, 2), dtype=np.int64) for n in lengths]
    by_width = {}
    for segment, start, stop in column_pieces(lengths, getattr(model, "restart_every", None)):
        by_width.setdefault(stop - start, []).append((segment, start, stop))
    done = 0
    for width, group in sorted(by_width.items()):
        per_call = max(1, ROWS_PER_CALL // width)
        for begin in range(0, len(group), per_call):
            chunk = group[begin:begin + per_call]
            batch = np.stack([inputs[s][start:stop] for s, start, stop in chunk])  # [B, width]
            probs = np.asarray(model.next_probs(batch))  # [B, width, 257]
            for row, (s, start, stop) in enumerate(chunk):
                cells[s][start:stop] = symbol_cells(probs[row], pieces[s][start:stop], precision)
            done += len(chunk) * width
            if progress is not None:
                progress(done)
    return [encode_cells(c, precision) for c in cells]


# ---------------------------------------------------------------------------------------------------------------
# decoding


@njit(cache=True)
def _decode_step(flat_bits, bit_offsets, states, active, rows, out, out_offsets, step, precision, status, inputs):
    """Symbol `step` of each active segment, segment active[a] decoded with rows[a] ([A, V] floats); returns how
    many segments failed.

    Segment s reads flat_bits[bit_offsets[s]:bit_offsets[s+1]] with decoder state states[s] (offset, range,
    position) and writes out[out_offsets[s] + step] and inputs[a] (its next input). status[a]: 0, or RAN_OUT (its
    decoder has read more than STATE_BITS bits past its end: checked before decoding, as fast.cpu.ac.decompress
    does) or BAD_ROW (a row quantize rejects; the state is unchanged).
    """
    failed = 0
    for a in range(active.shape[0]):
        s = active[a]
        bits = flat_bits[bit_offsets[s]:bit_offsets[s + 1]]
        status[a] = 0
        if states[s, 2] > bits.shape[0] + STATE_BITS:
            status[a] = RAN_OUT
            failed += 1
            continue
        symbol, ok = _decode_one_probs(bits, states[s], rows[a], precision)
        if not ok:
            status[a] = BAD_ROW
            failed += 1
            continue
        out[out_offsets[s] + step] = symbol
        inputs[a] = symbol
    return failed


def _row_error(row, precision):
    """The CoderError quantize raises for a row the fused decoder rejected."""
    try:
        _raise_quantize_error(np.asarray(row)[None], precision)
    except CoderError as error:
        return error


def _running(lengths, failures, step, last):
    """(active [A]: the segments that decode symbol `step`, their next inputs [A], the step at which the first of
    them ends): segments with symbols left, before the first failed one (a loop over the segments would never
    reach those after it) and not failed themselves."""
    n_segments = len(lengths)
    first_failure = min(failures, default=n_segments)
    active = np.flatnonzero((lengths > step) & (np.arange(n_segments) < first_failure))  # [A]
    if failures:
        active = active[[s not in failures for s in active]]
    next_change = int(lengths[active].min()) if len(active) else step
    return active, last[active], next_change


def decode_segments(bit_arrays, model, lengths, precision, progress=None):
    """The symbols (int64) of each bit array, decoded alone to lengths[s] symbols with a whole-prefix model, all in
    lockstep: the same symbols and CoderErrors as fast.cpu.ac.decompress of each, one after another.
    progress(n): symbols decoded so far, every PROGRESS_EVERY steps and at the end."""
    lengths = np.array([int(n) for n in lengths], dtype=np.int64)
    if len(lengths) != len(bit_arrays):
        raise ValueError(f"{len(bit_arrays)} bit arrays but {len(lengths)} symbol counts")
    n_segments = len(lengths)
    failures = {}  # segment -> its CoderError; the first failing segment's is raised
    checked = []
    for s, bits in enumerate(bit_arrays):
        try:
            checked.append(check_bits(bits))
        except CoderError as error:
            failures[s] = error
            checked.append(np.zeros(0, dtype=np.uint8))
    bit_offsets = np.concatenate([[0], np.cumsum([len(b) for b in checked])]).astype(np.int64)  # [S + 1]
    flat_bits = np.concatenate(checked) if checked else np.zeros(0, dtype=np.uint8)
    out_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # [S + 1]
    out = np.zeros(int(out_offsets[-1]), dtype=np.int64)
    states = np.zeros((n_segments, 3), dtype=np.int64)  # offset, range, position
    for s in range(n_segments):
        states[s] = decoder_start(checked[s], 0)
    grower = prefix_rows(model, n_segments)
    prefixes = None if grower is not None else np.full((n_segments, int(lengths.max(initial=0)) + 1), BOS)
    every = getattr(model, "restart_every", None)
    last = np.full(n_segments, BOS, dtype=np.int64)  # each segment's next input
    status = np.zeros(n_segments, dtype=np.int64)
    step = 0
    active, inputs, next_change = _running(lengths, failures, step, last)
    with one_thread(n_segments):  # a few rows per call: fastest on one thread
        while len(active):
            if grower is not None:
                rows = grower.extend(active, inputs)  # [A, 257]: ONE call for every running segment
            else:
                first = 0 if every is None else every * (step // every)  # the last restart: rows forget before it
                rows = np.asarray(model.next_probs(prefixes[active, first:step + 1]))[:, -1]  # [A, 257]
            rows = np.ascontiguousarray(rows)
            failed = _decode_step(flat_bits, bit_offsets, states, active, rows, out, out_offsets, step,
                                  int(precision), status, inputs)
            if failed:
                for a in np.flatnonzero(status[:len(active)]):
                    s = int(active[a])
                    ran = status[a] == RAN_OUT
                    failures[s] = ran_out(step - 1, int(lengths[s])) if ran else _row_error(rows[a], precision)
            if prefixes is not None:
                prefixes[active, step + 1] = inputs
            step += 1
            if failed or step >= next_change:  # a segment ended or failed: the batch changes
                last[active] = inputs
                active, inputs, next_change = _running(lengths, failures, step, last)
            if progress is not None and step % PROGRESS_EVERY == 0:
                progress(int(np.minimum(lengths, step).sum()))
    for s in range(n_segments):  # the single decoder's last check: no more than STATE_BITS bits past the end
        if s not in failures and lengths[s] and states[s, 2] > len(checked[s]) + STATE_BITS:
            failures[s] = ran_out(int(lengths[s]) - 1, int(lengths[s]))
    if failures:
        raise failures[min(failures)]
    if progress is not None:
        progress(int(lengths.sum()))
    return [out[out_offsets[s]:out_offsets[s + 1]] for s in range(n_segments)]
