"""Plain arithmetic coding of a whole symbol sequence with one model context (the paper's AC[v]).

The model sees the sequence from BOS on, with no reset; the output is the shortest bit string whose dyadic interval
lies inside the final interval (ref.arithmetic.Encoder.finish). The bit string carries no length: the decoder is
told how many symbols to read (files store it in their header).
"""
import numpy as np

from ref.arithmetic import STATE_BITS, CoderError, Decoder, Encoder, check_precision
from ref.models import CdfCursor
from ref.symbols import N_SYMBOLS


def check_symbols(symbols):
    """int64 copy of a 1-D symbol array, or a ValueError naming the first symbol outside 0..256."""
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or (symbols.size and not np.issubdtype(symbols.dtype, np.integer)):
        raise ValueError(f"symbols must be a 1-D integer array, got {symbols.dtype} {symbols.shape}")
    symbols = symbols.astype(np.int64)
    bad = (symbols < 0) | (symbols >= N_SYMBOLS)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"symbol {int(symbols[index])} at position {index} is outside 0..{N_SYMBOLS - 1}")
    return symbols


PROGRESS_EVERY = 4096  # symbols between two calls of a progress callback


def compress(symbols, model, precision=14, progress=None):
    """bits (uint8 0/1) of the whole sequence coded with `model`.

    progress: optional callable, called with the number of symbols coded since its last call (e.g. a tqdm bar's
    update); it cannot change the result.
    """
    symbols = check_symbols(symbols)
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    cursor.prefetch(symbols[:-1])  # the encoder knows the text: one model call can give every row
    encoder = Encoder(precision)
    for index, symbol in enumerate(symbols):
        encoder.encode(cursor.cdf(), symbol)
        cursor.push(symbol)
        if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None:
        progress(len(symbols) % PROGRESS_EVERY)
    return encoder.finish()


def decompress(bits, model, n_symbols, precision=14, progress=None):
    """The first n_symbols symbols coded in `bits` (int64); progress as in compress.

    The decoder reads one bit per doubling of its range, as the encoder wrote one, so decoding real data never
    reads more than STATE_BITS bits past the end of `bits`; a decoder that does is decoding symbols the bits do not
    hold (a wrong n_symbols), and stops with a CoderError instead of running on.
    """
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    decoder = Decoder(bits, precision)
    symbols = np.zeros(int(n_symbols), dtype=np.int64)
    for index in range(int(n_symbols)):
        symbols[index] = decoder.decode(cursor.cdf())
        cursor.push(symbols[index])
        if decoder.position > len(decoder.bits) + STATE_BITS:
            raise CoderError(f"the bits end before symbol {index} of the {int(n_symbols)} expected")
        if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None:
        progress(int(n_symbols) % PROGRESS_EVERY)
    return symbols
