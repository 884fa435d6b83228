"""Numba twin of ref/equalinfo.py: Equal-Info windows with the same rule and the same bits, plus batched coding.

The window rule is ref's, step for step (read ref/equalinfo.py for why it is the rule): greedy `fits`, then the
first `delimiting_cell` of the final interval, falling back to one symbol fewer while there is none; the input's last
window may end on the shortest cell (the decoder gets the symbol count). Windows of up to 128 bits and more never
sit in an integer: a window's bits are a uint8 buffer, carries run through it, and an encoder's trial step is undone
in place when the symbol does not fit.

Where the rows come from (never changing what they are):
- finite-context models (context_length 0..7): a ContextTable (fast/cpu/ac.py) holds one quantized CDF per context.
  Encoding first lists every context a window position could have -- after j = 0..k symbols of its window a
  position's context is BOS*(k-j) + its j predecessors -- evaluates them in batched calls, and then encodes the
  whole sequence in ONE compiled call with no Python per symbol or window. Decoding looks contexts up in the same
  kind of table from inside the compiled loop and returns to Python only for contexts not seen yet.
- whole-prefix models (context_length None, M1) and `compress_batch(..., use_table=False)`: streams advance in
  lockstep; each step makes ONE model call on the prefixes of every active window ([A, T], each row
  [BOS, window symbols...] right-padded with BOS), quantizes the rows it needs and advances every stream's coder in
  one compiled call; windows end independently. `lookahead` rows per window and call lets the encoder, which
  knows the text, get a window's next rows from one call on a longer prefix; lookahead=1 asks exactly the
  prefixes a decoder asks. By default it adapts: a little more than the mean rows the windows so far needed
  (symbols + 1), so that most windows need one call and few rows are evaluated past a window's end.
  A model that offers `prefix_rows` (M1 with fast/cpu/exact_m1.PrefixRows or fast/cpu/integer_m1.PrefixRows) keeps
  keys and values instead of re-evaluating every prefix, with the same rows: the decoder grows one slot per
  window by one position per step, the encoder one slot per stream by its lookahead's new positions per call.

When batched bits equal one-at-a-time bits (and ref's): always for ref.models' Unigram and Markov models and any
model whose row t is a deterministic function of inputs 0..t of its own row alone -- not of the batch size B, the
padded length T, the padding or the other rows (the protocol in ref/models.py). ref.m1.TransformerModel makes it
so by computing its rows with the exact rule of ref/exact_m1.py, whose roundings do not depend on the call's shape.
A model run as ordinary float code (BLAS choosing kernels by shape) does not promise it; its rows may differ in the
last bits, the quantized CDFs then occasionally differ, and such output must be decoded by the same batched code
with the same batches, or not at all. The tests check the equality with models of both finite and whole-prefix
context.
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu.ac import ContextTable, context_id, table_row, uses_table
from equalinfo.fast.cpu.arithmetic import (FULL, STATE_BITS, CoderError, consume, decoder_start, encode_step,
    find_symbol, point_bits, quantize, undo_carry)
from equalinfo.ref import arithmetic as ref_arithmetic
from equalinfo.ref import cursor as ref_cursor
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref.equalinfo import Window, WindowError, check_window_bits, max_symbols_per_window  # noqa: F401
from equalinfo.ref.symbols import BOS, N_SYMBOLS, check_symbols

__all__ = ["Window", "WindowError", "check_window_bits", "max_symbols_per_window", "encode_windows",
           "encode_windows_batch", "compress", "decompress", "decode_window", "compress_batch", "decompress_batch",
           "decode_windows"]

# The lockstep encoder's state, one row per stream: stream_state[s, column], int64.
START, FITTED, LOW, RANGE, N_BITS, AVAIL = range(6)
# START: the current window's first symbol (-1 once the stream is done); FITTED: symbols of the window encoded so
# far; LOW, RANGE, N_BITS: its encoder (frame units as in ref); AVAIL: rows of the window in hand (hist[s, :AVAIL]).
N_STREAM_COLUMNS = 6
# A window decoder's state, one row per window, for each of the two points of the window's cell: int64 [W, 3].
OFFSET, RANGE_, POSITION = range(3)  # the decoder's point minus the interval's low end; its range; bits read
DECODE_CHUNK = 16384  # windows decoded together (bounds the symbol buffers' memory)
ERROR_NO_CELL, ERROR_NO_DELIMITER = -2, -1


# ---------------------------------------------------------------------------------------------------------------
# the window rule on one encoder state (low, range, n_bits, bit buffer); frame positions as in ref


@njit(cache=True)
def _fits(low, range_, n_bits, window_bits):
    """True if [low, low + range) contains an aligned cell of width 2^-window_bits (ref's fits)."""
    shift = n_bits + STATE_BITS - window_bits  # log2 of a cell's width in frame units
    if shift <= 0:
        return True
    if shift > STATE_BITS:  # a cell wider than the frame: wider than any interval
        return False
    cell = np.int64(1) << shift
    start = -((-low) // cell) * cell
    return start + cell <= low + range_


@njit(cache=True)
def _delimiting_cell(low, range_, n_bits, cdf, window_bits, precision):
    """First cell inside the interval that strictly contains a child boundary of cdf, or -1 (ref's rule)."""
    shift = n_bits + STATE_BITS - window_bits
    if shift <= 0 or shift > STATE_BITS:
        return np.int64(-1)
    cell = np.int64(1) << shift
    for s in range(1, cdf.shape[0] - 1):  # boundary between children s-1 and s
        boundary = low + ((range_ * cdf[s]) >> precision)
        start = (boundary >> shift) << shift
        if start < boundary and start >= low and start + cell <= low + range_:
            return start
    return np.int64(-1)


@njit(cache=True)
def _shortest_cell(low, range_, n_bits, window_bits):
    """Start of the shortest dyadic cell inside the interval (at most window_bits long), or -1."""
    for length in range(n_bits, window_bits + 1):
        shift = n_bits + STATE_BITS - length
        cell = np.int64(1) << shift if shift > 0 else np.int64(1)
        start = -((-low) // cell) * cell
        if start + cell <= low + range_:
            return start
    return np.int64(-1)


@njit(cache=True)
def _try_symbol(low, range_, n_bits, buf, cdf, symbol, window_bits, precision):
    """Encode symbol if the window still fits afterwards: (fitted, low, range, n_bits); undone in place if not."""
    new_low, new_range, new_bits, carried_at = encode_step(low, range_, n_bits, buf, cdf, symbol, precision)
    if _fits(new_low, new_range, new_bits, window_bits):
        return True, new_low, new_range, new_bits
    if carried_at >= 0:
        undo_carry(buf, carried_at, n_bits)
    return False, low, range_, n_bits


@njit(cache=True)
def _end_window(cdfs, rowidx, symbols, start, greedy, at_end, delimit, low, range_, n_bits, buf,
                window_bits, precision, out):
    """Pick the window's length and b bits (written to out [b]) after `greedy` symbols fitted.

    cdfs[rowidx[j]] is the CDF of the window's symbol j (j = 0..greedy); (low, range, n_bits, buf) is the encoder
    after `greedy` symbols. Returns (length, delimited), or length < 0 for an error (ERROR_*).
    """
    if not delimit:
        cell = _shortest_cell(low, range_, n_bits, window_bits)
        if cell < 0:
            return ERROR_NO_CELL, False
        point_bits(buf, n_bits, cell, window_bits, out)
        return greedy, False
    for length in range(greedy, 0, -1):
        if length < greedy:  # the fallback: re-encode the window's first `length` symbols (rare)
            low, range_, n_bits = np.int64(0), np.int64(FULL), 0
            for j in range(length):
                low, range_, n_bits, _ = encode_step(low, range_, n_bits, buf, cdfs[rowidx[j]],
                                                      symbols[start + j], precision)
        cell = _delimiting_cell(low, range_, n_bits, cdfs[rowidx[length]], window_bits, precision)
        if cell >= 0:
            point_bits(buf, n_bits, cell, window_bits, out)
            return length, True
        if at_end:  # the input's last window keeps all its symbols; the decoder is told the count
            cell = _shortest_cell(low, range_, n_bits, window_bits)
            if cell < 0:
                return ERROR_NO_CELL, False
            point_bits(buf, n_bits, cell, window_bits, out)
            return greedy, False
    return ERROR_NO_DELIMITER, False


# ---------------------------------------------------------------------------------------------------------------
# encoding with a context table: the whole sequence in one call


@njit(cache=True)
def _grow_rows(array, n_rows):
    bigger = np.zeros((max(2 * array.shape[0], n_rows),) + array.shape[1:], dtype=array.dtype)
    bigger[:array.shape[0]] = array
    return bigger


@njit(cache=True)
def _encode_with_table(symbols, cdfs, row_of, k, window_bits, delimit, precision):
    """All windows of symbols [n]; row_of[t, j] is the table row of position t after j (<= k) window symbols.

    Returns (error start or -1, error code, n_windows, bits [>= n_windows, b], meta [>= n_windows, 4]) with
    meta rows (start, length, greedy_length, delimited).
    """
    n = symbols.shape[0]
    buf = np.zeros(window_bits + 128, dtype=np.uint8)  # one window's emitted bits (+ a failed trial's)
    rowidx = np.zeros(64, dtype=np.int64)  # table rows of the current window's positions
    bits = np.zeros((16, window_bits), dtype=np.uint8)
    meta = np.zeros((16, 4), dtype=np.int64)
    start, n_windows = 0, 0
    while start < n:
        low, range_, n_bits, i = np.int64(0), np.int64(FULL), 0, 0
        while True:  # greedy
            if i + 1 >= rowidx.shape[0]:
                rowidx = _grow_rows(rowidx, i + 2)
            rowidx[i] = row_of[start + i, min(i, k)]
            if start + i == n:
                break
            fitted, low, range_, n_bits = _try_symbol(low, range_, n_bits, buf, cdfs[rowidx[i]],
                                                      symbols[start + i], window_bits, precision)
            if not fitted:
                break
            i += 1
        if n_windows == bits.shape[0]:
            bits, meta = _grow_rows(bits, n_windows + 1), _grow_rows(meta, n_windows + 1)
        length, delimited = _end_window(cdfs, rowidx, symbols, start, i, start + i == n, delimit,
                                        low, range_, n_bits, buf, window_bits, precision, bits[n_windows])
        if length < 0:
            return start, length, n_windows, bits, meta
        meta[n_windows, 0], meta[n_windows, 1], meta[n_windows, 2] = start, length, i
        meta[n_windows, 3] = delimited
        n_windows += 1
        start += length
    return -1, 0, n_windows, bits, meta


def _window_context_ids(symbols, k):
    """Context ids [n+1, k+1]: [t, j] is the context of position t after j window symbols (j clipped to t)."""
    n = len(symbols)
    ids = np.zeros((n + 1, k + 1), dtype=np.int64)
    t = np.arange(n + 1)
    for j in range(k + 1):
        kept = np.minimum(j, t)  # real symbols in the context
        ident = np.zeros(n + 1, dtype=np.int64)
        for m in range(k):  # context entry m (oldest first) is the symbol k - m places back, or BOS
            back = k - m
            index = t - back
            entry = np.where(back <= kept, symbols[np.maximum(index, 0)] if n else BOS, BOS)
            ident = ident * (BOS + 1) + entry
        ids[:, j] = ident
    return ids


def _raise_window_error(start, code, window_bits, precision):
    if code == ERROR_NO_CELL:
        raise WindowError("the interval holds no cell of the window's size")
    raise WindowError(f"no delimiting cell for the window at symbol {start} (model too extreme for "
                      f"window_bits={window_bits}, precision={precision})")


def _encode_table_path(symbols, table, window_bits, precision, delimit):
    """(bits [W, b], meta [W, 4]) of one sequence through a ContextTable."""
    rows = table.rows(_window_context_ids(symbols, table.k))  # [n+1, k+1]
    error_start, code, n_windows, bits, meta = _encode_with_table(
        symbols, table.cdfs, rows, table.k, int(window_bits), bool(delimit), int(precision))
    if error_start >= 0:
        _raise_window_error(error_start, code, window_bits, precision)
    return bits[:n_windows], meta[:n_windows]


# ---------------------------------------------------------------------------------------------------------------
# encoding in lockstep: many streams, one model call per step


@njit(cache=True)
def _advance_streams(flat, offsets, stream_state, buf, hist, identity, window_bits, delimit, precision,
                     ended, out_bits, out_meta):
    """Advance every live stream as far as its available rows allow; at most one window ends per stream.

    flat/offsets: stream s is flat[offsets[s]:offsets[s+1]]; stream_state [S, N_STREAM_COLUMNS] (START, ...).
    A window that ends writes ended[s] = 1, out_bits[s] [b] and out_meta[s] (start, length, greedy, delimited);
    ended[s] = code < 0 on an error. The stream then starts a new window with no rows.
    """
    for s in range(stream_state.shape[0]):
        ended[s] = 0
        start = stream_state[s, START]
        if start < 0:
            continue
        symbols = flat[offsets[s]:offsets[s + 1]]
        n = symbols.shape[0]
        i, low, range_ = stream_state[s, FITTED], stream_state[s, LOW], stream_state[s, RANGE]
        n_bits, avail = stream_state[s, N_BITS], stream_state[s, AVAIL]
        finished = False
        while True:
            if i >= avail:
                break  # needs the next row from the model
            if start + i == n:
                finished = True
                break
            fitted, low, range_, n_bits = _try_symbol(low, range_, n_bits, buf[s], hist[s, i], symbols[start + i],
                                                      window_bits, precision)
            if not fitted:
                finished = True
                break
            i += 1
        if finished:
            length, delimited = _end_window(hist[s], identity, symbols, start, i, start + i == n, delimit,
                                            low, range_, n_bits, buf[s], window_bits, precision, out_bits[s])
            if length < 0:
                ended[s] = length
                out_meta[s, 0] = start
                return
            ended[s] = 1
            out_meta[s, 0], out_meta[s, 1], out_meta[s, 2], out_meta[s, 3] = start, length, i, delimited
            start += length
            i, low, range_, n_bits, avail = 0, np.int64(0), np.int64(FULL), 0, 0
            if start == n:
                start = -1
        stream_state[s, START], stream_state[s, FITTED] = start, i
        stream_state[s, LOW], stream_state[s, RANGE] = low, range_
        stream_state[s, N_BITS], stream_state[s, AVAIL] = n_bits, avail


def _rows_for_streams(model, flat, offsets, stream_state, hist, lookahead, precision, grower=None):
    """One model call for every live stream: fills hist[s, avail:r_max+1] and advances avail. Returns hist.

    With a grower (a key/value cache, one slot per stream) only the new positions avail..r_max are evaluated; a
    stream whose window just started (avail 0) restarts its slot."""
    live = np.flatnonzero(stream_state[:, START] >= 0)
    start, avail = stream_state[live, START], stream_state[live, AVAIL]
    remaining = offsets[live + 1] - offsets[live] - start
    r_max = np.minimum(avail + lookahead - 1, remaining)  # last row wanted (row r follows r window symbols)
    width = int(r_max.max()) + 1
    if width > hist.shape[1]:
        bigger = np.zeros((hist.shape[0], max(width, 2 * hist.shape[1]), hist.shape[2]), dtype=np.int64)
        bigger[:, :hist.shape[1]] = hist
        hist = bigger
    if grower is not None:
        grower.reset(live[avail == 0])
        counts = np.maximum(r_max - avail + 1, 0)
        slots = np.repeat(live, counts)  # each stream's new positions, in order
        t = np.arange(len(slots)) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(avail, counts)
        source = np.repeat(offsets[live] + start, counts) + t - 1  # flat index of input t (input 0 is BOS)
        inputs = np.where(t >= 1, flat[np.clip(source, 0, max(len(flat) - 1, 0))] if len(flat) else BOS, BOS)
        hist[slots, t] = quantize(grower.extend(slots, inputs.astype(np.int64)), precision)
        stream_state[live, AVAIL] = r_max + 1
        return hist
    t = np.arange(width)[None, :]  # [1, T]
    source = offsets[live, None] + start[:, None] + t - 1  # flat index of input t (input 0 is BOS)
    valid = (t >= 1) & (t <= r_max[:, None])
    inputs = np.where(valid, flat[np.clip(source, 0, max(len(flat) - 1, 0))] if len(flat) else BOS, BOS)
    probs = np.asarray(model.next_probs(inputs.astype(np.int64)))  # [A, T, 257]
    wanted = (t >= avail[:, None]) & (t <= r_max[:, None])  # [A, T]
    which, row = np.nonzero(wanted)
    hist[live[which], row] = quantize(probs[which, row], precision)
    stream_state[live, AVAIL] = r_max + 1
    return hist


class _Lookahead:
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


def _encode_streams(streams, model, window_bits, precision, delimit, lookahead):
    """Per-stream (bits [W_s, b], meta [W_s, 4]) of many symbol sequences, coded in lockstep."""
    lookahead = _Lookahead(lookahead)
    offsets = np.zeros(len(streams) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in streams])
    flat = np.concatenate(streams) if streams else np.zeros(0, dtype=np.int64)
    n_streams = len(streams)
    stream_state = np.zeros((n_streams, N_STREAM_COLUMNS), dtype=np.int64)
    stream_state[:, RANGE] = FULL
    stream_state[offsets[1:] == offsets[:-1], START] = -1  # empty streams are done
    buf = np.zeros((n_streams, window_bits + 128), dtype=np.uint8)
    hist = np.zeros((n_streams, min(int(lookahead), 64) + 1, N_SYMBOLS + 1), dtype=np.int64)
    ended = np.zeros(n_streams, dtype=np.int64)
    out_bits = np.zeros((n_streams, window_bits), dtype=np.uint8)
    out_meta = np.zeros((n_streams, 4), dtype=np.int64)
    events_stream, events_bits, events_meta = [], [], []
    grower = model.prefix_rows(n_streams) if hasattr(model, "prefix_rows") else None
    while np.any(stream_state[:, START] >= 0):
        hist = _rows_for_streams(model, flat, offsets, stream_state, hist, int(lookahead), precision, grower)
        identity = np.arange(hist.shape[1], dtype=np.int64)
        _advance_streams(flat, offsets, stream_state, buf, hist, identity, int(window_bits), bool(delimit),
                         int(precision), ended, out_bits, out_meta)
        if np.any(ended < 0):
            s = int(np.flatnonzero(ended < 0)[0])
            _raise_window_error(int(out_meta[s, 0]), int(ended[s]), window_bits, precision)
        done = np.flatnonzero(ended == 1)
        if len(done):
            lookahead.record(out_meta[done, 2])
            events_stream.append(done)
            events_bits.append(out_bits[done].copy())
            events_meta.append(out_meta[done].copy())
    if not events_stream:
        return [(np.zeros((0, window_bits), np.uint8), np.zeros((0, 4), np.int64)) for _ in streams]
    which = np.concatenate(events_stream)
    order = np.argsort(which, kind="stable")  # events of one stream stay in time order
    which, all_bits, all_meta = which[order], np.concatenate(events_bits)[order], np.concatenate(events_meta)[order]
    bounds = np.searchsorted(which, np.arange(n_streams + 1))
    return [(all_bits[bounds[s]:bounds[s + 1]], all_meta[bounds[s]:bounds[s + 1]]) for s in range(n_streams)]


# ---------------------------------------------------------------------------------------------------------------
# public encoding API


def _encode_many(streams, model, window_bits, precision, delimit, use_table=True, lookahead=None):
    """Per-stream (bits [W, b], meta [W, 4]): the table path for finite-context models, else lockstep."""
    check_window_bits(window_bits, precision)
    streams = [check_symbols(s) for s in streams]
    if use_table and uses_table(model):
        table = ContextTable(model, precision)
        return [_encode_table_path(s, table, window_bits, precision, delimit) for s in streams]
    if lookahead is not None and (int(lookahead) != lookahead or lookahead < 1):
        raise ValueError(f"lookahead must be a positive integer or None, got {lookahead}")
    lookahead = None if lookahead is None else int(lookahead)
    return _encode_streams(streams, model, int(window_bits), int(precision), delimit, lookahead)


def _encode_keeping_context(streams, model, window_bits, precision, delimit, every, streams_per_call=64):
    """The Table 9 ablation (M1 reset every `every` windows, None: never) by ref's rule, streams batched.

    Each round, every unfinished stream starts a group of `every` windows (its model context starts afresh); ONE
    model call per `streams_per_call` streams gives each the rows of its next `ahead` symbols, which ref's cursor
    takes as prefetched, and ref's encode_window codes the group's windows from them (the cursor evaluates more
    rows itself in the rare group that runs past them). Same windows as ref: rows depend on their prefix alone."""
    check_window_bits(window_bits, precision)
    streams = [check_symbols(s) for s in streams]
    cursors = [ref_cursor.CdfCursor(model, precision) for _ in streams]
    windows = [[] for _ in streams]
    positions = [0] * len(streams)
    ahead, used = 32, []  # symbols supplied per group; the group lengths so far
    while True:
        active = [s for s in range(len(streams)) if positions[s] < len(streams[s])]
        if not active:
            return windows
        for first in range(0, len(active), streams_per_call):
            chunk = active[first:first + streams_per_call]
            prefixes = [streams[s][positions[s]:positions[s] + (ahead if every else len(streams[s]))]
                        for s in chunk]  # never reset: one group, the whole sequence
            batch = np.full((len(chunk), 1 + max(len(p) for p in prefixes)), BOS, np.int64)  # right-padded
            for row, prefix in enumerate(prefixes):
                batch[row, 1:1 + len(prefix)] = prefix
            probs = model.next_probs(batch)  # [A, T, V]
            for row, (s, prefix) in enumerate(zip(chunk, prefixes)):
                cursors[s].reset()
                cursors[s].supply(prefix, ref_arithmetic.quantize(probs[row, :1 + len(prefix)], precision))
                group_start = positions[s]
                while positions[s] < len(streams[s]) and (positions[s] == group_start
                                                          or not ref_equalinfo.resets_model(len(windows[s]), every)):
                    window = ref_equalinfo.encode_window(streams[s], positions[s], cursors[s], window_bits,
                                                         precision, delimit, reset_model=False)
                    windows[s].append(window)
                    positions[s] += window.length
                used.append(positions[s] - group_start)
        if every is not None:
            ahead = int(np.ceil(1.5 * np.mean(used[-256:]))) + 8  # most groups fit, few rows are wasted


def encode_windows(symbols, model, window_bits=16, precision=14, delimit=True, model_reset_every=1):
    """All windows of a symbol sequence, in order (a list of ref.equalinfo.Window), identical to ref's."""
    return encode_windows_batch([symbols], model, window_bits, precision, delimit, model_reset_every)[0]


def encode_windows_batch(symbol_arrays, model, window_bits=16, precision=14, delimit=True, model_reset_every=1):
    """encode_windows of each sequence, coded together in lockstep (identical to ref's one-by-one windows).

    model_reset_every != 1 (the Table 9 ablation, ref/equalinfo.py) is coded by ref's window rule with this model's
    rows batched per group of windows (`_encode_keeping_context`): the lockstep restarts a stream's model at every
    window, and an ablation does not justify a second lockstep that carries context across windows."""
    if ref_equalinfo.check_model_reset_every(model_reset_every) != 1:
        return _encode_keeping_context(list(symbol_arrays), model, window_bits, precision, delimit,
                                       model_reset_every)
    results = _encode_many(list(symbol_arrays), model, window_bits, precision, delimit)
    return [[Window(int(m[0]), int(m[1]), int(m[2]), bool(m[3]), b) for m, b in zip(meta, bits)]
            for bits, meta in results]


def compress(symbols, model, window_bits=16, precision=14):
    """bits (uint8 0/1, a multiple of window_bits long) of the sequence cut into Equal-Info windows (as ref)."""
    [(bits, _)] = _encode_many([symbols], model, window_bits, precision, True)
    return bits.reshape(-1)


def compress_batch(symbol_arrays, model, window_bits=16, precision=14, use_table=True, lookahead=None):
    """Bits of many sequences (a list of uint8 arrays), each identical to compress(sequence, ...).

    use_table=False forces the lockstep path (one batched model call per step for all active windows) even for a
    finite-context model; lookahead: rows per window and model call in that path (module docstring).
    """
    results = _encode_many(list(symbol_arrays), model, window_bits, precision, True, use_table, lookahead)
    return [bits.reshape(-1) for bits, _ in results]


# ---------------------------------------------------------------------------------------------------------------
# decoding: windows are independent, decoded together


RUNNING, DONE, NEED, FULL_BUFFER, OVERFLOW = 0, 1, 2, 3, 4


@njit(cache=True)
def _start_windows(windows):
    """Decoders (first, last) [W, 3] each (OFFSET, RANGE_, POSITION) of windows [W, b]: the cell's first point reads
    the bits past b as 0, its last point as 1."""
    first = np.zeros((windows.shape[0], 3), dtype=np.int64)
    last = np.zeros((windows.shape[0], 3), dtype=np.int64)
    for w in range(windows.shape[0]):
        first[w, OFFSET], first[w, RANGE_], first[w, POSITION] = decoder_start(windows[w], 0)
        last[w, OFFSET], last[w, RANGE_], last[w, POSITION] = decoder_start(windows[w], 1)
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
            symbol = find_symbol(first[OFFSET], first[RANGE_], cdf, precision)
            if symbol != find_symbol(last[OFFSET], last[RANGE_], cdf, precision):
                status[w] = DONE  # the cell straddles a child boundary: the window's text ends here
                break
            first[OFFSET], first[RANGE_], first[POSITION] = consume(first[OFFSET], first[RANGE_], first[POSITION],
                                                                   bits, 0, cdf, symbol, precision)
            last[OFFSET], last[RANGE_], last[POSITION] = consume(last[OFFSET], last[RANGE_], last[POSITION],
                                                              bits, 1, cdf, symbol, precision)
            out[w, count] = symbol
            counts[w] = count + 1


def _decode_chunk(windows, model, precision, table):
    """Self-delimited symbols of windows [W, b] (no count limit): (out [W, L], counts [W])."""
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
    grower = None
    if table is None and hasattr(model, "prefix_rows"):
        grower = model.prefix_rows(n_windows)  # one slot per window: each step adds one position, not a prefix
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
        needing = np.flatnonzero(status == NEED)
        if len(needing):
            if table is not None:
                table.add(need[needing])
            elif grower is not None:  # each waiting window's newest input: BOS, then its last decoded symbol
                assert np.array_equal(grower.lengths[needing], counts[needing])
                newest = np.where(counts[needing] == 0, BOS, out[needing, np.maximum(counts[needing] - 1, 0)])
                step_cdfs = quantize(grower.extend(needing, newest), precision)
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
        if not len(full) and not len(needing):
            return out, counts


def decode_windows(windows, model, precision=14):
    """Self-delimited symbols of many windows [W, b] (any streams), as a list of int64 arrays.

    Each is what ref's decode_window gives with no limit: exact for every delimited window (every window but an
    input's last non-delimited one, which needs its count: see decompress).
    """
    windows = np.asarray(windows)
    if windows.ndim != 2:
        raise WindowError(f"windows must be [n_windows, window_bits], got shape {windows.shape}")
    check_window_bits(windows.shape[1], precision)
    windows = np.ascontiguousarray(windows.astype(np.uint8))
    table = ContextTable(model, precision) if uses_table(model) else None
    result = []
    for begin in range(0, len(windows), DECODE_CHUNK):
        out, counts = _decode_chunk(windows[begin:begin + DECODE_CHUNK], model, precision, table)
        result.extend(out[w, :counts[w]] for w in range(len(counts)))
    return result


def _window_array(bits, window_bits):
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.ndim != 1 or len(bits) % window_bits:
        raise WindowError(f"{len(bits)} bits is not a whole number of {window_bits}-bit windows")
    if bits.size and bits.max() > 1:
        raise CoderError("bits must be a 1-D array of 0/1 values")
    return bits.reshape(-1, window_bits)


def _assemble(pieces, n_symbols):
    """Concatenate windows' symbols, applying ref's count rule (each window gets limit = n - symbols so far)."""
    counts = np.array([len(p) for p in pieces], dtype=np.int64)
    symbols = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
    if n_symbols is None:
        return symbols
    before = np.cumsum(counts) - counts  # symbols before each window
    past = np.flatnonzero(before >= n_symbols)
    if len(past):
        raise WindowError(f"window {int(past[0])} lies past the {n_symbols} symbols the input should hold")
    total = int(counts.sum())
    if total < n_symbols:
        raise WindowError(f"the windows hold {total} symbols, expected {n_symbols} (truncated input?)")
    return symbols[:n_symbols]  # only the last window can be cut by its limit


def decompress(bits, model, window_bits=16, precision=14, n_symbols=None, model_reset_every=1):
    """Symbols (int64) of a sequence of windows: identical to ref.equalinfo.decompress (same errors).
    model_reset_every != 1 decodes by ref's rule, window after window (see encode_windows_batch)."""
    if ref_equalinfo.check_model_reset_every(model_reset_every) != 1:
        return ref_equalinfo.decompress(bits, model, window_bits, precision, n_symbols, model_reset_every)
    check_window_bits(window_bits, precision)
    windows = _window_array(bits, window_bits)
    return _assemble(decode_windows(windows, model, precision), n_symbols)


def decompress_batch(bit_arrays, model, window_bits=16, precision=14, n_symbols=None):
    """Symbols of many compressed sequences (list), all their windows decoded together; n_symbols: list or None."""
    check_window_bits(window_bits, precision)
    arrays = [_window_array(bits, window_bits) for bits in bit_arrays]
    counts = [len(a) for a in arrays]
    pieces = decode_windows(np.concatenate(arrays) if arrays else np.zeros((0, window_bits), np.uint8), model,
                            precision)
    n_symbols = [None] * len(arrays) if n_symbols is None else list(n_symbols)
    result, begin = [], 0
    for count, n in zip(counts, n_symbols):
        result.append(_assemble(pieces[begin:begin + count], n))
        begin += count
    return result


def decode_window(window_bits_array, cursor, precision=14, limit=None, reset_model=True):
    """Symbols (list of int) of one window from its bits alone; at most `limit` if given (ref's signature).

    cursor: a ref.cursor.CdfCursor (its model is used) or a model. reset_model=False (the Table 9 ablation: the
    cursor's context carries earlier windows) decodes by ref's rule with that cursor.
    """
    if not reset_model:
        return ref_equalinfo.decode_window(window_bits_array, cursor, precision, limit, reset_model=False)
    model = getattr(cursor, "model", cursor)
    window = np.asarray(window_bits_array, dtype=np.uint8)[None]
    [symbols] = decode_windows(window, model, precision)
    return [int(s) for s in (symbols if limit is None else symbols[:limit])]
