"""Equal-Info encoding of many streams in lockstep: ONE model call per step for every stream's current window.

For whole-prefix models (context_length None: M1), and for any model with compress_batch(..., use_table=False).
Each step asks the model for the next rows of every live stream's window in one call ([A, T], each row
[BOS, window symbols...] right-padded with BOS; `rows_for_streams`), quantizes the rows it needs, and advances
every stream's encoder as far as its rows allow in one compiled call (`advance_streams`); windows end
independently and a stream then starts its next one. The encoder knows the text, so a call may give a window
several rows at once: `lookahead` rows per window and call, adaptive by default (fast/cpu/lookahead.py);
lookahead=1 asks exactly the prefixes a decoder asks. With a key/value-cached grower (fast/cpu/m1.py: M1 with
fast.cpu's rows) each stream keeps one slot, grown by its lookahead's new positions per call, instead of having
its whole prefix evaluated again. Same windows as ref's one-at-a-time coding: a row depends on its prefix alone.

The state of stream s is stream_state[s] (int64 [S, N_STREAM_COLUMNS]), its rows in hand hist[s] (CDFs).
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu.arithmetic import FULL, STATE_BITS, quantize
from equalinfo.fast.cpu.lookahead import Lookahead
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.fast.cpu.window_rule import (META_DELIMITED, META_GREEDY, META_LENGTH, META_START, N_META_COLUMNS,
    end_window, raise_window_error, try_symbol)
from equalinfo.ref.symbols import BOS, N_SYMBOLS

# The columns of stream_state. LOW, RANGE, N_BITS: the current window's encoder (frame units as in ref); START:
# the window's first symbol (-1 once the stream is done); FITTED: its symbols encoded so far; AVAIL: its rows in
# hand (hist[s, :AVAIL]).
LOW, RANGE, N_BITS, START, FITTED, AVAIL = range(6)
N_STREAM_COLUMNS = 6


@njit(cache=True)
def advance_streams(flat, offsets, stream_state, buf, hist, identity, window_bits, delimit, precision,
                     ended, out_bits, out_meta):
    """Advance every live stream as far as its available rows allow; at most one window ends per stream.

    flat/offsets: stream s is flat[offsets[s]:offsets[s+1]]; stream_state [S, N_STREAM_COLUMNS].
    A window that ends writes ended[s] = 1, out_bits[s] [b] and out_meta[s] [N_META_COLUMNS];
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
            fitted, low, range_, n_bits = try_symbol(low, range_, n_bits, buf[s], hist[s, i], symbols[start + i],
                                                     window_bits, precision)
            if not fitted:
                finished = True
                break
            i += 1
        if finished:
            length, delimited = end_window(hist[s], identity, symbols, start, i, start + i == n, delimit,
                                           low, range_, n_bits, buf[s], window_bits, precision, out_bits[s])
            if length < 0:
                ended[s] = length
                out_meta[s, META_START] = start
                return
            ended[s] = 1
            out_meta[s, META_START], out_meta[s, META_LENGTH] = start, length
            out_meta[s, META_GREEDY], out_meta[s, META_DELIMITED] = i, delimited
            start += length
            i, low, range_, n_bits, avail = 0, np.int64(0), np.int64(FULL), 0, 0
            if start == n:
                start = -1
        stream_state[s, START], stream_state[s, FITTED] = start, i
        stream_state[s, LOW], stream_state[s, RANGE] = low, range_
        stream_state[s, N_BITS], stream_state[s, AVAIL] = n_bits, avail


def used_bits(states):
    """Bits of their windows the encoder states [A, N_STREAM_COLUMNS] have used: those emitted plus -log2 of the
    interval's width in the frame (0 for a window that has not started)."""
    return states[:, N_BITS] + STATE_BITS - np.log2(states[:, RANGE].astype(np.float64))


def rows_for_streams(model, flat, offsets, stream_state, hist, lookahead, precision, grower=None):
    """One model call for every live stream: fills hist[s, avail:r_max+1] and advances avail. Returns hist.

    lookahead: rows per stream and call, an int or a Lookahead (its per-stream counts, fast/cpu/lookahead.py,
    predicted from the text ahead and the bits each window has used so far).

    With a grower (a key/value cache, one slot per stream) only the new positions avail..r_max are evaluated; a
    stream whose window just started (avail 0) restarts its slot."""
    live = np.flatnonzero(stream_state[:, START] >= 0)
    start, avail = stream_state[live, START], stream_state[live, AVAIL]
    remaining = offsets[live + 1] - offsets[live] - start
    if isinstance(lookahead, Lookahead):
        lookahead = lookahead.per_stream(flat, offsets, live, start, avail, used_bits(stream_state[live]))
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


def encode_streams(streams, model, window_bits, precision, delimit, lookahead=None, progress=None):
    """Per-stream (bits [W_s, b], meta [W_s, N_META_COLUMNS]) of many symbol sequences, coded in lockstep.

    lookahead: rows per window and model call (None: adaptive, fast/cpu/lookahead.py); progress(n), if given, is
    called with the symbols of all the windows ended so far."""
    lookahead = Lookahead(lookahead, window_bits)
    offsets = np.zeros(len(streams) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in streams])
    flat = np.concatenate(streams) if streams else np.zeros(0, dtype=np.int64)
    n_streams = len(streams)
    stream_state = np.zeros((n_streams, N_STREAM_COLUMNS), dtype=np.int64)
    stream_state[:, RANGE] = FULL
    stream_state[offsets[1:] == offsets[:-1], START] = -1  # empty streams are done
    buf = np.zeros((n_streams, window_bits + 128), dtype=np.uint8)
    hist = np.zeros((n_streams, lookahead.rows_hint() + 1, N_SYMBOLS + 1), dtype=np.int64)
    ended = np.zeros(n_streams, dtype=np.int64)
    out_bits = np.zeros((n_streams, window_bits), dtype=np.uint8)
    out_meta = np.zeros((n_streams, N_META_COLUMNS), dtype=np.int64)
    events_stream, events_bits, events_meta = [], [], []
    coded = 0  # symbols of the windows ended so far
    grower = prefix_rows(model, n_streams)
    while np.any(stream_state[:, START] >= 0):
        hist = rows_for_streams(model, flat, offsets, stream_state, hist, lookahead, precision, grower)
        identity = np.arange(hist.shape[1], dtype=np.int64)
        advance_streams(flat, offsets, stream_state, buf, hist, identity, int(window_bits), bool(delimit),
                         int(precision), ended, out_bits, out_meta)
        if np.any(ended < 0):
            s = int(np.flatnonzero(ended < 0)[0])
            raise_window_error(int(out_meta[s, META_START]), int(ended[s]), window_bits, precision)
        done = np.flatnonzero(ended == 1)
        if len(done):
            lookahead.record(hist, flat, offsets, done, out_meta[done, META_START], out_meta[done, META_GREEDY],
                             precision)
            events_stream.append(done)
            events_bits.append(out_bits[done].copy())
            events_meta.append(out_meta[done].copy())
            coded += int(out_meta[done, META_LENGTH].sum())
            if progress is not None:
                progress(coded)
    if not events_stream:
        return [(np.zeros((0, window_bits), np.uint8), np.zeros((0, N_META_COLUMNS), np.int64)) for _ in streams]
    which = np.concatenate(events_stream)
    order = np.argsort(which, kind="stable")  # events of one stream stay in time order
    which, all_bits, all_meta = which[order], np.concatenate(events_bits)[order], np.concatenate(events_meta)[order]
    bounds = np.searchsorted(which, np.arange(n_streams + 1))
    return [(all_bits[bounds[s]:bounds[s + 1]], all_meta[bounds[s]:bounds[s + 1]]) for s in range(n_streams)]
