"""Equal-Info windows (the paper's EqualInfoAC[b, v]) with a decoding guarantee the paper's rule lacks.

Encoding a window (coder and model context reset, M1's input starts again with BOS):
1. Greedy: add symbols while the window can still end within b bits, i.e. while the coder's interval I_k still
   contains an aligned dyadic cell of width 2^-b (`fits`). This is the paper's rule.
2. Delimit: the b window bits name one such cell. The decoder (below) decodes a symbol only while the *whole cell*
   lies inside one child interval, so it stops after exactly k symbols iff the cell lies inside I_k and strictly
   contains a boundary between two children of I_k (the intervals of the possible next symbols). The encoder picks
   the first such cell (`delimiting_cell`); if I_k has none, it ends the window one symbol earlier and tries again.
   The paper instead pads the shortest cell with zeros and decodes with a greedy look-ahead (App. D.5): a next
   symbol whose interval also holds the padded point is taken into the window, which is right unless that
   symbol was not there -- at the end of the input, where the paper locates its ambiguity (99.4% of its
   sequences decompressed). Naming a delimiting cell removes that ambiguity inside the input, at every window.
3. The window's bits are the first b bits of the chosen cell's start.

Decoding a window runs two decoders over its b bits, one reading the bits past b as zeros (the cell's first point)
and one as ones (its last point), and stops where they disagree: both points lie in the same child iff the cell
does. So every window decodes alone, from its b bits and the model, to exactly the symbols it was built from.

One window may not delimit itself: the input's last, when its k symbols admit no delimiting cell (its interval
may be coarser than a cell); the decoder is given the total symbol count (`n_symbols`, stored in file headers).
A window ends on its bits alone, never on a symbol count: the paper's rule has no cap on a window's symbols, and a
cap would only add a second way for a window to end that every coder and decoder must mirror.
If no k >= 1 admits a delimiting cell, compression raises WindowError rather than emit an undecodable window
(this needs a pathological model; the tests hunt for it with adversarial distributions).

`model_reset_every` = k is the paper's Table 9 ablation, for study only: the coder still resets at every window, but
the model's context only at every k-th window (None: never, only at the start of the input), so a window's symbols
are predicted from earlier windows too. Windows then no longer decode alone -- the decoder must have decoded the
k-1 windows before -- which is exactly why the paper resets at every window; `decompress` takes the same k.

Round trip with 16-bit windows (any model of ref/models.py's protocol codes; M1 is ref/m1.py's):

>>> from equalinfo.ref import equalinfo
>>> from equalinfo.ref.models import MarkovModel
>>> from equalinfo.ref.symbols import bytes_to_symbols, symbols_to_bytes
>>> text = b"abracadabra, abracadabra, abracadabra"
>>> symbols = bytes_to_symbols(text)
>>> model = MarkovModel.fit(symbols, order=2)
>>> bits = equalinfo.compress(symbols, model, window_bits=16)
>>> len(bits) % 16  # whole windows
0
>>> back = equalinfo.decompress(bits, model, window_bits=16, n_symbols=len(symbols))
>>> symbols_to_bytes(back) == text
True
>>> windows = bits.reshape(-1, 16)  # and every window decodes alone, to the symbols it was built from
>>> pieces = equalinfo.decode_windows(windows, model)
>>> sum(len(piece) for piece in pieces) == len(symbols)
True
"""
from dataclasses import dataclass

import numpy as np

from equalinfo.ref.arithmetic import STATE_BITS, Decoder, Encoder, check_precision
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.symbols import N_SYMBOLS, check_symbols


class WindowError(ValueError):
    """A window that cannot be built or decoded: bad window size, malformed or corrupt window bits."""


@dataclass
class Window:
    """One encoded window: symbols [start, start + length), `greedy_length` symbols would have fit."""
    start: int
    length: int
    greedy_length: int
    delimited: bool  # True if the bits alone tell the decoder where the window's text ends
    bits: np.ndarray  # uint8 [window_bits]


def check_window_bits(window_bits, precision):
    """A window must hold any single symbol after a reset: a symbol of probability 2^-precision needs b >= p."""
    check_precision(precision, N_SYMBOLS)
    if not isinstance(window_bits, (int, np.integer)) or window_bits < precision:
        raise WindowError(f"window_bits must be an integer >= precision ({precision}) so that a symbol of "
                          f"probability 2^-{precision} fits in a window, got {window_bits!r}")


def max_symbols_per_window(window_bits, precision, n_symbols=N_SYMBOLS):
    """Upper bound on the symbols a window can hold: each costs >= -log2(largest possible probability) bits."""
    largest = ((1 << precision) - (n_symbols - 1)) / float(1 << precision)
    return int(np.floor(window_bits / -np.log2(largest))) + 1


def _cell_shift(encoder, window_bits):
    """log2 of a b-bit cell's width in frame units (negative: a cell is finer than one unit)."""
    return encoder.n_bits + STATE_BITS - window_bits


def fits(encoder, window_bits):
    """True if the encoder's interval contains an aligned cell of width 2^-window_bits."""
    shift = _cell_shift(encoder, window_bits)
    if shift <= 0:
        return True  # the interval spans over 2^(STATE_BITS-1) units, each at least one cell wide
    cell = 1 << shift
    start = -(-encoder.low // cell) * cell
    return start + cell <= encoder.low + encoder.range


def delimiting_cell(encoder, next_cdf, window_bits):
    """Frame position of the first b-bit cell inside the interval that strictly contains a child boundary.

    next_cdf is the CDF of the symbol after the window's last one; its children tile the current interval.
    Returns None if there is no such cell (e.g. every boundary lies on the cell grid).
    """
    shift = _cell_shift(encoder, window_bits)
    if shift <= 0:
        return None  # boundaries are whole frame units, hence cell edges
    cell = 1 << shift
    precision = encoder.precision
    # boundaries between children s-1 and s, s = 1..V-1 (the shared interval update, vectorised): int64 [V-1]
    boundaries = encoder.low + ((np.int64(encoder.range) * np.asarray(next_cdf[1:-1], np.int64)) >> precision)
    starts = (boundaries >> shift) << shift  # the cell around each boundary
    usable = (starts < boundaries) & (starts >= encoder.low) & (starts + cell <= encoder.low + encoder.range)
    if not usable.any():
        return None
    return int(starts[np.argmax(usable)])


def shortest_cell(encoder, window_bits):
    """Frame position of the start of the shortest dyadic cell inside the interval (the paper's zero padding)."""
    for length in range(encoder.n_bits, window_bits + 1):
        shift = encoder.n_bits + STATE_BITS - length
        cell = 1 << shift if shift > 0 else 1
        start = -(-encoder.low // cell) * cell
        if start + cell <= encoder.low + encoder.range:
            return start
    raise WindowError("the interval holds no cell of the window's size")


def encode_window(symbols, start, cursor, window_bits, precision=14, delimit=True, reset_model=True):
    """Encode the window that starts at symbols[start]; returns a Window.

    delimit=False gives the paper's plain rule (greedy, shortest cell padded with zeros) for comparison only:
    such windows need not decode. reset_model=False keeps the cursor's context (the symbols of earlier windows);
    either way the cursor ends holding the window's symbols, not the ones tried past its end.
    """
    if reset_model:
        cursor.reset()
    before = len(cursor.inputs)
    window = _greedy_delimited_window(symbols, start, cursor, window_bits, precision, delimit)
    cursor.rewind(before + window.length)
    return window


def _greedy_delimited_window(symbols, start, cursor, window_bits, precision, delimit):
    """encode_window's rule, from the cursor's current context."""
    lookahead = max_symbols_per_window(window_bits, precision)
    cursor.prefetch(symbols[start:start + lookahead])  # rows for every symbol this window could take
    encoders = [Encoder(precision)]  # encoders[k]: state after the window's first k symbols
    next_cdfs = []  # next_cdfs[k]: CDF of the symbol that follows k symbols
    position = start
    while True:
        next_cdfs.append(cursor.cdf())
        if position == len(symbols):
            break
        trial = encoders[-1].copy()
        trial.encode(next_cdfs[-1], symbols[position])
        if not fits(trial, window_bits):
            break
        encoders.append(trial)
        cursor.push(symbols[position])
        position += 1
    greedy = position - start
    at_end = position == len(symbols)
    if not delimit:
        cell = shortest_cell(encoders[greedy], window_bits)
        return Window(start, greedy, greedy, False, encoders[greedy].point_bits(cell, window_bits))
    for length in range(greedy, 0, -1):
        cell = delimiting_cell(encoders[length], next_cdfs[length], window_bits)
        if cell is not None:
            return Window(start, length, greedy, True, encoders[length].point_bits(cell, window_bits))
        if at_end:  # the input's last window: keep all its symbols, the decoder is told the count
            cell = shortest_cell(encoders[greedy], window_bits)
            return Window(start, greedy, greedy, False, encoders[greedy].point_bits(cell, window_bits))
    raise WindowError(f"no delimiting cell for the window at symbol {start} (model too extreme for "
                      f"window_bits={window_bits}, precision={precision})")


def check_model_reset_every(model_reset_every):
    """k >= 1 (reset the model's context every k windows) or None (never); returns it."""
    if model_reset_every is not None and (isinstance(model_reset_every, bool)
                                          or not isinstance(model_reset_every, (int, np.integer))
                                          or model_reset_every < 1):
        raise WindowError(f"model_reset_every must be an integer >= 1 (windows between resets of the model's "
                          f"context) or None (never), got {model_reset_every!r}")
    return model_reset_every


def resets_model(index, model_reset_every):
    """True if window `index` (0-based) starts the model's context afresh."""
    return index == 0 or (model_reset_every is not None and index % model_reset_every == 0)


def encode_windows(symbols, model, window_bits=16, precision=14, delimit=True, model_reset_every=1):
    """All windows of a symbol sequence, in order (a list of Window)."""
    return list(_windows(symbols, model, window_bits, precision, delimit, model_reset_every))


def _windows(symbols, model, window_bits, precision, delimit=True, model_reset_every=1):
    """encode_windows, one window at a time (a generator)."""
    symbols = check_symbols(symbols)
    check_window_bits(window_bits, precision)
    check_model_reset_every(model_reset_every)
    cursor = CdfCursor(model, precision)
    start, index = 0, 0
    while start < len(symbols):
        window = encode_window(symbols, start, cursor, window_bits, precision, delimit,
                               resets_model(index, model_reset_every))
        yield window
        start, index = start + window.length, index + 1


def encode_windows_batch(symbol_arrays, model, window_bits=16, precision=14, delimit=True, model_reset_every=1):
    """encode_windows of each sequence (a list of lists of Window). Here one after another; the fast backends code
    them together (one M1 call per step for every active window), with the same windows."""
    return [encode_windows(symbols, model, window_bits, precision, delimit, model_reset_every)
            for symbols in symbol_arrays]


def compress(symbols, model, window_bits=16, precision=14, progress=None):
    """bits (uint8 0/1, a multiple of window_bits long) of the sequence cut into Equal-Info windows; progress(n), if
    given, is called with the symbols coded so far, after every window."""
    windows = []
    for window in _windows(symbols, model, window_bits, precision):
        windows.append(window)
        if progress is not None:
            progress(window.start + window.length)
    return np.concatenate([w.bits for w in windows]) if windows else np.zeros(0, dtype=np.uint8)


def compress_batch(symbol_arrays, model, window_bits=16, precision=14):
    """compress of each sequence (a list of uint8 arrays). Here one after another; fast.cpu codes them together."""
    return [compress(symbols, model, window_bits, precision) for symbols in symbol_arrays]


def decode_window(window_bits_array, cursor, precision=14, limit=None, reset_model=True):
    """Symbols (list of int) of one window from its bits alone (and, with reset_model=False, the cursor's
    context: the windows decoded before it); at most `limit` if given."""
    window_bits = len(window_bits_array)
    bound = max_symbols_per_window(window_bits, precision)
    first_point = Decoder(window_bits_array, precision, tail_bit=0)
    last_point = Decoder(window_bits_array, precision, tail_bit=1)
    if reset_model:
        cursor.reset()
    symbols = []
    while limit is None or len(symbols) < limit:
        cdf = cursor.cdf()
        symbol = first_point.find(cdf)
        if symbol != last_point.find(cdf):
            break  # the cell straddles a child boundary: the window's text ends here
        first_point.consume(cdf, symbol)
        last_point.consume(cdf, symbol)
        symbols.append(symbol)
        cursor.push(symbol)
        assert len(symbols) <= bound, "a window decoded more symbols than its bits can hold"
    return symbols


def decode_windows(windows, model, precision=14, progress=None):
    """Self-delimited symbols (a list of int64 arrays) of many windows [W, b], each decoded alone (no count limit):
    exact for every delimited window, i.e. all but an input's last non-delimited one (see decompress).
    progress(n), if given, is called with the symbols decoded so far, after every window."""
    windows = np.asarray(windows)
    if windows.ndim != 2:
        raise WindowError(f"windows must be [n_windows, window_bits], got shape {windows.shape}")
    check_window_bits(windows.shape[1], precision)
    cursor = CdfCursor(model, precision)
    pieces, decoded = [], 0
    for window in windows.astype(np.uint8):
        pieces.append(np.array(decode_window(window, cursor, precision), dtype=np.int64))
        decoded += len(pieces[-1])
        if progress is not None:
            progress(decoded)
    return pieces


def decompress(bits, model, window_bits=16, precision=14, n_symbols=None, model_reset_every=1, progress=None):
    """Symbols (int64) of a sequence of windows.

    Without n_symbols every window is decoded as self-delimiting, which is exact for every window but possibly the
    input's last (see the module docstring); with n_symbols the result is exact and its length is checked.
    model_reset_every must be the encoder's. progress(n), if given, is called with the symbols decoded so far,
    after every window.
    """
    check_window_bits(window_bits, precision)
    check_model_reset_every(model_reset_every)
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.ndim != 1 or len(bits) % window_bits:
        raise WindowError(f"{len(bits)} bits is not a whole number of {window_bits}-bit windows")
    cursor = CdfCursor(model, precision)
    symbols = []
    for index in range(len(bits) // window_bits):
        limit = None if n_symbols is None else n_symbols - len(symbols)
        if limit == 0:
            raise WindowError(f"window {index} lies past the {n_symbols} symbols the input should hold")
        window = decode_window(bits[index * window_bits:(index + 1) * window_bits], cursor, precision, limit,
                               resets_model(index, model_reset_every))
        symbols.extend(window)
        if progress is not None:
            progress(len(symbols))
    if n_symbols is not None and len(symbols) != n_symbols:
        raise WindowError(f"the windows hold {len(symbols)} symbols, expected {n_symbols} (truncated input?)")
    return np.array(symbols, dtype=np.int64)


def decompress_batch(bit_arrays, model, window_bits=16, precision=14, n_symbols=None):
    """decompress of each compressed sequence (a list); n_symbols: a list of counts, or None. Here one after
    another; fast.cpu decodes all their windows together."""
    n_symbols = [None] * len(bit_arrays) if n_symbols is None else list(n_symbols)
    return [decompress(bits, model, window_bits, precision, n) for bits, n in zip(bit_arrays, n_symbols)]
