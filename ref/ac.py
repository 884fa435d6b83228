"""Plain arithmetic coding of a whole symbol sequence with one model context (the paper's AC[v]).

The model sees the sequence from BOS on, with no reset; the output is the shortest bit string whose dyadic interval
lies inside the final interval (ref.arithmetic.Encoder.finish). The bit string carries no length: the decoder is
told how many symbols to read (files store it in their header).

Round trip with an order-2 Markov model fitted on the text itself (any model of ref/models.py's protocol codes):

>>> from equalinfo.ref import ac
>>> from equalinfo.ref.models import MarkovModel
>>> from equalinfo.ref.symbols import bytes_to_symbols, symbols_to_bytes
>>> text = b"abracadabra, abracadabra, abracadabra"
>>> symbols = bytes_to_symbols(text)  # int64, one symbol per byte
>>> model = MarkovModel.fit(symbols, order=2)
>>> bits = ac.compress(symbols, model)  # uint8 0/1
>>> len(bits) < 8 * len(text)
True
>>> symbols_to_bytes(ac.decompress(bits, model, len(symbols))) == text  # the decoder is told the count
True
"""
import numpy as np

from equalinfo.ref.arithmetic import STATE_BITS, CoderError, Decoder, Encoder, check_precision
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.symbols import N_SYMBOLS, check_symbols

PROGRESS_EVERY = 1024  # symbols between two calls of a coder's progress(n)


def compress(symbols, model, precision=14, progress=None):
    """bits (uint8 0/1) of the whole sequence coded with `model`; progress(n), if given, is called with the number
    of symbols coded so far (every PROGRESS_EVERY symbols and at the end: a file command's progress bar)."""
    symbols = check_symbols(symbols)
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    cursor.prefetch(symbols[:-1])  # the encoder knows the text: one model call can give every row
    encoder = Encoder(precision)
    for index, symbol in enumerate(symbols):
        encoder.encode(cursor.cdf(), symbol)
        cursor.push(symbol)
        report(progress, index + 1)
    if progress is not None:
        progress(len(symbols))
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
        report(progress, index + 1)
    if progress is not None:
        progress(len(symbols))
    return symbols


def compress_batch(pieces, model, precision=14, progress=None):
    """compress of each sequence of `pieces` (a list of symbol arrays), each coded alone from BOS: a file's
    segments. Here one after another (the reference); fast.cpu runs an M1's segments in lockstep. progress(n): the
    symbols coded so far over all pieces, after each piece."""
    bits, done = [], 0
    for piece in pieces:
        bits.append(compress(piece, model, precision))
        done += len(piece)
        if progress is not None:
            progress(done)
    return bits


def decompress_batch(bit_arrays, model, n_symbols_list, precision=14, progress=None):
    """decompress of each bit array to n_symbols_list[s] symbols, one after another: the first failing segment's
    CoderError is the batch's. progress(n) as in compress_batch."""
    if len(bit_arrays) != len(n_symbols_list):
        raise ValueError(f"{len(bit_arrays)} bit arrays but {len(n_symbols_list)} symbol counts")
    pieces, done = [], 0
    for bits, n in zip(bit_arrays, n_symbols_list):
        pieces.append(decompress(bits, model, n, precision))
        done += len(pieces[-1])
        if progress is not None:
            progress(done)
    return pieces


def report(progress, coded):
    """progress(coded) every PROGRESS_EVERY symbols, if there is a progress callback."""
    if progress is not None and coded % PROGRESS_EVERY == 0:
        progress(coded)
