"""Numba twin of ref/ac.py (plain AC over a whole sequence, the paper's AC[v]) and the context tables it runs on.

Same signatures and the same bits as ref.ac. How the model is asked differs, never what it answers:
- A finite-context model (context_length k = 0..7) is asked once per distinct context, in batched calls, through
  a `ContextTable` (sorted context ids -> quantized CDF rows). Encoding looks up every row up front and codes the
  whole sequence in one compiled call. Decoding runs a compiled loop that looks contexts up in the table and
  returns to Python only at a context it has not seen, which is then evaluated (a MarkovModel's known contexts
  are evaluated up front, so on text like its training text that is rare).
  This equals ref's CdfCursor exactly because such a model's row is a deterministic function of its context
  (the protocol in ref/models.py): the row of context c is the last row of next_probs([c]) either way.
- A whole-prefix model (context_length None, M1) is evaluated as ref does, in fewer calls: the encoder on the
  whole sequence (row t depends on inputs 0..t only, ref's CdfCursor.prefetch relies on the same), in pieces of
  ROWS_PER_CALL rows when the model restarts (an M1 with restart_every: a piece that starts at a restart has the
  rows the whole sequence has), so memory stays bounded on long inputs; the decoder one symbol per call, through
  M1's key/value-cached grower where it has one (fast/cpu/m1.py: one new position per symbol instead of the
  whole prefix). Its float rows go to the fused coder (fast.cpu.fused): quantize's rule evaluated only at the CDF
  entries the coder reads, the same bits and errors as quantize + coder.
`progress(n)`, if given, is called with the number of symbols coded so far (the file commands' progress bar), as
by ref.ac.

compress_batch/decompress_batch code many independent sequences (a file's segments), each exactly as
compress/decompress code it alone. A whole-prefix model runs them in lockstep (fast/cpu/ac_lockstep.py: the decoder
makes ONE model call per step for every unfinished segment instead of one per symbol per segment); a table model
keeps the loop over segments, as its coders already run in compiled code without a model call per symbol.
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu import ac_lockstep
from equalinfo.fast.cpu.arithmetic import (check_bits, check_precision, consume, decoder_start, encode_rows_unchecked,
    find_symbol, quantize)
from equalinfo.fast.cpu.fused import decode_one_probs, encode_cells, symbol_cells
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.ref.ac import PROGRESS_EVERY
from equalinfo.ref.arithmetic import STATE_BITS
from equalinfo.ref.symbols import BOS, N_INPUTS, N_SYMBOLS, check_symbols

# ref.ac's; ContextTable serves fast/cpu/equalinfo.py too
__all__ = ["compress", "decompress", "compress_batch", "decompress_batch"]

MAX_TABLE_CONTEXT = 7  # context ids sum_j ctx[j] * 258^(k-1-j) fit int64 for k <= 7
EVALUATE_CHUNK = 4096  # contexts per model call when filling a table
ROWS_PER_CALL = 8192  # rows of a restarting whole-prefix model per call (8192 x 257 float64 = 17 MB)


def uses_table(model):
    """True if the model's rows depend on a short finite context, so a ContextTable can serve them."""
    k = getattr(model, "context_length", None)
    return k is not None and 0 <= k <= MAX_TABLE_CONTEXT


class ContextTable:
    """Quantized CDFs of a finite-context model by context id: ids [R] sorted int64, cdfs [R, 258] int64.

    A context is the k most recent inputs (BOS before the start), id = sum_j ctx[j] * 258^(k-1-j) (k = 0: id 0).
    Its row is quantize(model.next_probs([ctx])[0, -1]) -- what ref's CdfCursor computes for the same context.
    """

    def __init__(self, model, precision=14):
        if not uses_table(model):
            raise ValueError(f"a context table needs context_length 0..{MAX_TABLE_CONTEXT}, "
                             f"got {getattr(model, 'context_length', None)!r}")
        self.model, self.precision, self.k = model, int(precision), int(model.context_length)
        self.ids = np.zeros(0, dtype=np.int64)
        self.cdfs = np.zeros((0, N_SYMBOLS + 1), dtype=np.int64)
        from equalinfo.ref.models import MarkovModel  # its known contexts are worth evaluating up front

        if isinstance(model, MarkovModel) and len(model.context_ids):
            self.add(model.context_ids)

    def _evaluate(self, ids):
        """CDFs [u, 258] of contexts ids [u], in batched model calls."""
        k = self.k
        out = np.empty((len(ids), N_SYMBOLS + 1), dtype=np.int64)
        for begin in range(0, len(ids), EVALUATE_CHUNK):
            chunk = ids[begin:begin + EVALUATE_CHUNK]
            if k == 0:
                inputs = np.full((len(chunk), 1), BOS, dtype=np.int64)
            else:
                powers = N_INPUTS ** np.arange(k - 1, -1, -1, dtype=np.int64)  # [k]
                inputs = (chunk[:, None] // powers[None, :]) % N_INPUTS  # [u, k] context digits
            probs = np.asarray(self.model.next_probs(inputs))[:, -1]  # [u, 257]
            out[begin:begin + len(chunk)] = quantize(probs, self.precision)
        return out

    def add(self, ids):
        """Evaluate the contexts among ids that the table lacks."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        new = ids[~np.isin(ids, self.ids, assume_unique=True)] if len(self.ids) else ids
        if len(new):
            ids = np.concatenate([self.ids, new])
            cdfs = np.concatenate([self.cdfs, self._evaluate(new)])
            order = np.argsort(ids, kind="stable")
            self.ids, self.cdfs = ids[order], np.ascontiguousarray(cdfs[order])

    def rows(self, ids):
        """Table rows of context ids (added first if missing): int64, same shape as ids."""
        self.add(ids.ravel())
        return np.searchsorted(self.ids, ids)

    def sequence_ids(self, symbols):
        """Context id [n] of each symbol of a sequence coded from BOS with no reset (AC's contexts)."""
        k, n = self.k, len(symbols)
        inputs = np.concatenate([np.full(max(k, 1), BOS, dtype=np.int64), symbols[:max(n - 1, 0)]])
        ids = np.zeros(n, dtype=np.int64)
        for j in range(k):  # the input k-1-j places before the one that precedes symbol t
            ids = ids * N_INPUTS + inputs[max(k, 1) - k + j:max(k, 1) - k + j + n]
        return ids


@njit(cache=True)
def context_id(history, count, k):
    """Id of the k inputs before symbol `count` of a sequence history[0..count) that starts after BOS."""
    ident = np.int64(0)
    for j in range(k):
        index = count - k + j  # symbol index of this context entry; < 0 reads as BOS
        ident = ident * N_INPUTS + (history[index] if index >= 0 else BOS)
    return ident


@njit(cache=True)
def table_row(ids, ident):
    """Row of ident in the sorted ids, or -1 if absent."""
    row = np.searchsorted(ids, ident)
    if row < ids.shape[0] and ids[row] == ident:
        return row
    return -1


@njit(cache=True)
def _decode_with_table(bits, state, out, count, ids, cdfs, k, precision):
    """Decode out[count:] with table rows; stops early at an unknown context, or once the decoder has read more
    than STATE_BITS bits past the end (then missing is -2: the bits hold fewer symbols). Returns (count, missing)."""
    offset, range_, position = state[0], state[1], state[2]
    missing = np.int64(-1)
    while count < out.shape[0]:
        if position > bits.shape[0] + STATE_BITS:
            missing = np.int64(-2)
            break
        row = table_row(ids, context_id(out, count, k))
        if row < 0:
            missing = context_id(out, count, k)
            break
        cdf = cdfs[row]
        symbol = find_symbol(offset, range_, cdf, precision)
        offset, range_, position = consume(offset, range_, position, bits, 0, cdf, symbol, precision)
        out[count] = symbol
        count += 1
    state[0], state[1], state[2] = offset, range_, position
    return count, missing


def compress(symbols, model, precision=14, progress=None):
    """bits (uint8 0/1) of the whole sequence coded with `model`: identical to ref.ac.compress."""
    symbols = check_symbols(symbols)
    check_precision(precision, N_SYMBOLS)
    if uses_table(model):
        table = ContextTable(model, precision)
        rows = table.rows(table.sequence_ids(symbols))  # [n]
        bits = encode_rows_unchecked(table.cdfs, rows, symbols, int(precision))
    else:
        bits = encode_cells(_whole_prefix_cells(symbols, model, precision, progress), precision)
    if progress is not None:
        progress(len(symbols))
    return bits


def _whole_prefix_cells(symbols, model, precision, progress):
    """The coder's cells [n, 2] of a whole-prefix model's rows: one call, or ROWS_PER_CALL-row pieces that each
    start at a restart of a model with restart_every."""
    inputs = np.concatenate([[BOS], symbols[:-1]])[None] if len(symbols) else np.zeros((1, 0), dtype=np.int64)
    every = getattr(model, "restart_every", None)
    piece = len(symbols) if every is None else every * max(1, ROWS_PER_CALL // every)
    cells = np.zeros((len(symbols), 2), dtype=np.int64)
    for start in range(0, len(symbols), max(piece, 1)):
        stop = min(start + piece, len(symbols))
        probs = np.asarray(model.next_probs(inputs[:, start:stop]))[0]  # [stop - start, 257]
        cells[start:stop] = symbol_cells(probs, symbols[start:stop], precision)
        if progress is not None:
            progress(stop)
    return cells


def decompress(bits, model, n_symbols, precision=14, progress=None):
    """The first n_symbols symbols coded in `bits` (int64): identical to ref.ac.decompress, whose CoderError it
    raises too when the bits end before n_symbols symbols."""
    check_precision(precision, N_SYMBOLS)
    bits = check_bits(bits)
    out = np.zeros(int(n_symbols), dtype=np.int64)
    state = np.array(decoder_start(bits, 0), dtype=np.int64)  # offset, range, position
    if uses_table(model):
        table, count = ContextTable(model, precision), 0
        while count < len(out):
            count, missing = _decode_with_table(bits, state, out, count, table.ids, table.cdfs, table.k,
                                                int(precision))
            if missing == -2:
                raise _ran_out(count - 1, len(out))
            if missing >= 0:
                table.add(np.array([missing]))
    else:
        grower = prefix_rows(model, 1)
        inputs = np.full(len(out) + 1, BOS, dtype=np.int64)
        slot = np.zeros(1, dtype=np.int64)
        with ac_lockstep.one_thread(1):  # one row per call (ac_lockstep.one_thread says why)
            for index in range(len(out)):  # a decoder sees one more symbol per call: no way around the model call
                if state[2] > len(bits) + STATE_BITS:
                    raise _ran_out(index - 1, len(out))
                if grower is not None:
                    probs = grower.extend(slot, inputs[index:index + 1])[0]
                else:
                    probs = np.asarray(model.next_probs(inputs[None, :index + 1]))[0, -1]
                out[index] = decode_one_probs(bits, state, probs, precision)
                inputs[index + 1] = out[index]
                if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
                    progress(index + 1)
    if len(out) and state[2] > len(bits) + STATE_BITS:
        raise _ran_out(len(out) - 1, len(out))
    if progress is not None:
        progress(len(out))
    return out


_ran_out = ac_lockstep.ran_out


def compress_batch(pieces, model, precision=14, progress=None):
    """[bits] of each sequence of `pieces` (a list of symbol arrays), each identical to compress(piece, ...);
    progress(n): symbols coded so far over all pieces."""
    check_precision(precision, N_SYMBOLS)
    if not uses_table(model):
        return ac_lockstep.encode_segments(pieces, model, precision, progress)
    bits, done = [], 0
    for piece in pieces:
        bits.append(compress(piece, model, precision))
        done += len(piece)
        if progress is not None:
            progress(done)
    return bits


def decompress_batch(bit_arrays, model, n_symbols_list, precision=14, progress=None):
    """[symbols] of each bit array, decoded to n_symbols_list[s] symbols, each identical to decompress(bits, ...);
    the CoderError of the first segment that fails, as a loop over them would raise."""
    check_precision(precision, N_SYMBOLS)
    if not uses_table(model):
        return ac_lockstep.decode_segments(bit_arrays, model, n_symbols_list, precision, progress)
    if len(bit_arrays) != len(n_symbols_list):
        raise ValueError(f"{len(bit_arrays)} bit arrays but {len(n_symbols_list)} symbol counts")
    pieces, done = [], 0
    for bits, n in zip(bit_arrays, n_symbols_list):
        pieces.append(decompress(bits, model, n, precision))
        done += len(pieces[-1])
        if progress is not None:
            progress(done)
    return pieces
