"""Numba twin of ref/equalinfo.py: Equal-Info windows with the same rule, the same public functions and the same bits.

The window rule is ref's, step for step (read ref/equalinfo.py for why it is the rule): greedy `fits`, then the
first `delimiting_cell` of the final interval, falling back to one symbol fewer while there is none; the input's last
window may end on the shortest cell (the decoder gets the symbol count). fast/cpu/window_rule.py compiles it on one
encoder state; windows of up to 128 bits and more never sit in an integer: a window's bits are a uint8 buffer,
carries run through it, and an encoder's trial step is undone in place when the symbol does not fit.

What runs where (how the model is asked differs from ref, never what it answers):
- table_encoding.py    finite-context models (context_length 0..7): every window of a sequence in one compiled call
                       from a ContextTable (fast/cpu/ac.py), one quantized CDF per context;
- lockstep.py          whole-prefix models (M1), and `compress_batch(..., use_table=False)`: many streams in
                       lockstep, one model call per step for every stream's window, with an adaptive number of rows
                       per window and call (lookahead.py) and M1's key/value-cached grower where it has one (m1.py);
- keeping_context.py   the Table 9 ablation (model_reset_every != 1): ref's rule, model calls batched per group;
- window_decoding.py   decoding: every window decoded alone, many in one compiled loop.
The *_batch functions code many sequences together; each result equals the one-sequence function's.

When batched bits equal one-at-a-time bits (and ref's): always for ref.models' Unigram and Markov models and any
model whose row t is a deterministic function of inputs 0..t of its own row alone -- not of the batch size B, the
padded length T, the padding or the other rows (the protocol in ref/models.py). ref.m1.TransformerModel makes it
so by computing its rows with an exact rule (ref/exact_rules.py), whose roundings do not depend on the call's
shape. A model run as ordinary float code (BLAS choosing kernels by shape) does not promise it; its rows may differ
in the last bits, the quantized CDFs then occasionally differ, and such output must be decoded by the same batched
code with the same batches, or not at all. The tests check the equality with models of both finite and
whole-prefix context.
"""
import numpy as np

from equalinfo.fast.cpu.ac import ContextTable, uses_table
from equalinfo.fast.cpu.keeping_context import encode_keeping_context
from equalinfo.fast.cpu.lockstep import encode_streams
from equalinfo.fast.cpu.table_encoding import encode_with_table
from equalinfo.fast.cpu.window_decoding import decode_windows
from equalinfo.fast.cpu.window_rule import META_LENGTH, windows_of
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref.arithmetic import CoderError
from equalinfo.ref.equalinfo import Window, WindowError, check_window_bits, max_symbols_per_window  # noqa: F401
from equalinfo.ref.symbols import check_symbols

__all__ = ["Window", "WindowError", "check_window_bits", "max_symbols_per_window", "encode_windows",
           "encode_windows_batch", "compress", "compress_batch", "decode_window", "decode_windows", "decompress",
           "decompress_batch"]


# ---------------------------------------------------------------------------------------------------------------
# encoding


def _encode_many(streams, model, window_bits, precision, delimit, use_table=True, lookahead=None, progress=None):
    """Per-stream (bits [W, b], meta [W, N_META_COLUMNS]): the table path for finite-context models, else
    lockstep. progress(n), if given, is called with the symbols coded so far (all streams together)."""
    check_window_bits(window_bits, precision)
    streams = [check_symbols(s) for s in streams]
    if use_table and uses_table(model):
        table = ContextTable(model, precision)
        results = [encode_with_table(s, table, window_bits, precision, delimit) for s in streams]
        if progress is not None:
            progress(sum(int(meta[:, META_LENGTH].sum()) for _, meta in results))
        return results
    if lookahead is not None and (int(lookahead) != lookahead or lookahead < 1):
        raise ValueError(f"lookahead must be a positive integer or None, got {lookahead}")
    lookahead = None if lookahead is None else int(lookahead)
    return encode_streams(streams, model, int(window_bits), int(precision), delimit, lookahead, progress)


def encode_windows(symbols, model, window_bits=16, precision=14, delimit=True, model_reset_every=1):
    """All windows of a symbol sequence, in order (a list of ref.equalinfo.Window), identical to ref's."""
    return encode_windows_batch([symbols], model, window_bits, precision, delimit, model_reset_every)[0]


def encode_windows_batch(symbol_arrays, model, window_bits=16, precision=14, delimit=True, model_reset_every=1):
    """encode_windows of each sequence, coded together in lockstep (identical to ref's one-by-one windows).
    model_reset_every != 1, the Table 9 ablation, is coded by fast/cpu/keeping_context.py."""
    if ref_equalinfo.check_model_reset_every(model_reset_every) != 1:
        return encode_keeping_context(list(symbol_arrays), model, window_bits, precision, delimit, model_reset_every)
    results = _encode_many(list(symbol_arrays), model, window_bits, precision, delimit)
    return [windows_of(meta, bits) for bits, meta in results]


def compress(symbols, model, window_bits=16, precision=14, progress=None):
    """bits (uint8 0/1, a multiple of window_bits long) of the sequence cut into Equal-Info windows (as ref).
    progress(n), if given, is called with the symbols coded so far."""
    [(bits, _)] = _encode_many([symbols], model, window_bits, precision, True, progress=progress)
    return bits.reshape(-1)


def compress_batch(symbol_arrays, model, window_bits=16, precision=14, *, use_table=True, lookahead=None):
    """Bits of many sequences (a list of uint8 arrays), each identical to compress(sequence, ...).

    Two settings ref does not have, neither of which changes a bit: use_table=False forces the lockstep path (one
    batched model call per step for all active windows) even for a finite-context model; lookahead: rows per
    window and model call in that path (None: adaptive, fast/cpu/lookahead.py).
    """
    results = _encode_many(list(symbol_arrays), model, window_bits, precision, True, use_table, lookahead)
    return [bits.reshape(-1) for bits, _ in results]


# ---------------------------------------------------------------------------------------------------------------
# decoding


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


def decompress(bits, model, window_bits=16, precision=14, n_symbols=None, model_reset_every=1, progress=None):
    """Symbols (int64) of a sequence of windows: identical to ref.equalinfo.decompress (same errors).
    model_reset_every != 1 decodes by ref's rule, window after window (the windows do not decode alone);
    progress(n), if given, is called with the symbols decoded so far."""
    if ref_equalinfo.check_model_reset_every(model_reset_every) != 1:
        return ref_equalinfo.decompress(bits, model, window_bits, precision, n_symbols, model_reset_every, progress)
    check_window_bits(window_bits, precision)
    windows = _window_array(bits, window_bits)
    return _assemble(decode_windows(windows, model, precision, progress), n_symbols)


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

    cursor: a ref.cursor.CdfCursor; only its model is used, unless reset_model=False (the Table 9 ablation: the
    cursor's context carries earlier windows), which decodes by ref's rule with that cursor.
    """
    if not reset_model:
        return ref_equalinfo.decode_window(window_bits_array, cursor, precision, limit, reset_model=False)
    window = np.asarray(window_bits_array, dtype=np.uint8)[None]
    [symbols] = decode_windows(window, cursor.model, precision)
    return [int(s) for s in (symbols if limit is None else symbols[:limit])]