"""Bytes in, `.eqi` file bytes out, and back: the four methods behind `equalinfo compress/decompress`.

Every method codes the input's bytes as symbols 0-255, one per byte, with no EOS added (a file is one document; its
length is in the header). The coding itself is ref/'s, unchanged: ac and staticac are ref.ac, equalinfo is
ref.equalinfo, gzip is ref.baselines. The loops below only add a progress bar: they call the same per-symbol and
per-window steps in the same order as ref.ac.compress/decompress and ref.equalinfo.compress/decompress (the ref
coder runs at ~20-50 us per symbol, so a 1 MB text takes a minute or more), and the tests check that they give
identical bits.
"""
import zlib

import numpy as np
from tqdm import tqdm

from ref import baselines
from ref.ac import check_symbols
from ref.arithmetic import Decoder, Encoder, check_precision
from ref.equalinfo import WindowError, check_window_bits, decode_window, encode_window
from ref.fingerprint import fingerprint
from ref.models import CdfCursor, UnigramModel
from ref.symbols import N_SYMBOLS, bytes_to_symbols, symbols_to_bytes
from train import fileformat
from train.fileformat import FormatError, Header

PROGRESS_BYTES = 100_000  # inputs at least this long show a progress bar (on a terminal)


def _bar(total, progress, description):
    """A tqdm bar over `total` symbols: progress True shows it, False hides it, None shows it on a terminal only."""
    return tqdm(total=total, unit="B", unit_scale=True, desc=description, leave=False,
                disable=None if progress is None else not progress)


def _wants_bar(n_bytes, progress):
    """progress=True/False forces the bar on/off; None shows it for long inputs on a terminal."""
    if progress is None and n_bytes < PROGRESS_BYTES:
        return False
    return progress


# ---------------------------------------------------------------------------------------- the coding loops

def ac_compress(symbols, model, precision=14, progress=False):
    """ref.ac.compress(symbols, model, precision), with a progress bar."""
    symbols = check_symbols(symbols)
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    encoder = Encoder(precision)
    with _bar(len(symbols), progress, "ac encode") as bar:
        for index, symbol in enumerate(symbols):
            encoder.encode(cursor.cdf(), symbol)
            cursor.push(symbol)
            if index % 4096 == 4095:
                bar.update(4096)
        bar.update(len(symbols) % 4096)
    return encoder.finish()


def ac_decompress(bits, model, n_symbols, precision=14, progress=False):
    """ref.ac.decompress(bits, model, n_symbols, precision), with a progress bar."""
    check_precision(precision, N_SYMBOLS)
    n_symbols = int(n_symbols)
    cursor = CdfCursor(model, precision)
    decoder = Decoder(bits, precision)
    symbols = np.zeros(n_symbols, dtype=np.int64)
    with _bar(n_symbols, progress, "ac decode") as bar:
        for index in range(n_symbols):
            symbols[index] = decoder.decode(cursor.cdf())
            cursor.push(symbols[index])
            if index % 4096 == 4095:
                bar.update(4096)
        bar.update(n_symbols % 4096)
    return symbols


def equalinfo_compress(symbols, model, window_bits=16, precision=14, progress=False):
    """ref.equalinfo.compress(symbols, model, window_bits, precision), window by window with a progress bar."""
    symbols = check_symbols(symbols)
    check_window_bits(window_bits, precision)
    cursor = CdfCursor(model, precision)
    windows, start = [], 0
    with _bar(len(symbols), progress, "equalinfo encode") as bar:
        while start < len(symbols):
            window = encode_window(symbols, start, cursor, window_bits, precision)
            windows.append(window.bits)
            start += window.length
            bar.update(window.length)
    return np.concatenate(windows) if windows else np.zeros(0, dtype=np.uint8)


def equalinfo_decompress(bits, model, n_symbols, window_bits=16, precision=14, progress=False):
    """ref.equalinfo.decompress(bits, model, window_bits, precision, n_symbols), window by window with a bar."""
    check_window_bits(window_bits, precision)
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.ndim != 1 or len(bits) % window_bits:
        raise WindowError(f"{len(bits)} bits is not a whole number of {window_bits}-bit windows")
    cursor = CdfCursor(model, precision)
    symbols = []
    with _bar(n_symbols, progress, "equalinfo decode") as bar:
        for index in range(len(bits) // window_bits):
            limit = n_symbols - len(symbols)
            if limit == 0:
                raise WindowError(f"window {index} lies past the {n_symbols} symbols the input should hold")
            window = decode_window(bits[index * window_bits:(index + 1) * window_bits], cursor, precision, limit)
            symbols.extend(window)
            bar.update(len(window))
    if len(symbols) != n_symbols:
        raise WindowError(f"the windows hold {len(symbols)} symbols, expected {n_symbols}")
    return np.array(symbols, dtype=np.int64)


# -------------------------------------------------------------------------------------------- files

def compress_bytes(data, method="equalinfo", model=None, embed=True, window_bits=16, precision=14,
                   progress=None):
    """(file bytes, Header) of `data` compressed with `method`.

    model: the model for ac/equalinfo (required there); embed: store its arrays in the file (self-contained) or
    only its fingerprint (the decoder must be given the model). staticac fits and embeds its own unigram model on
    `data`; gzip takes no model. window_bits is used by equalinfo only, precision by the coded methods only.
    """
    data = bytes(data)
    if method not in fileformat.METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(fileformat.METHODS)}")
    symbols = bytes_to_symbols(data)
    show = _wants_bar(len(data), progress)
    if method == "staticac":
        model, embed = UnigramModel.fit(symbols), True
    if method == "gzip":
        if model is not None:
            raise ValueError("gzip takes no model")
        header = Header("gzip", 0, 0, "", "", len(data), 0, zlib.crc32(data))
        return fileformat.pack(header, baselines.gzip_compress(data)), header
    if model is None:
        raise ValueError(f"method {method} needs a model")
    check_precision(precision, N_SYMBOLS)
    if method == "equalinfo":
        check_window_bits(window_bits, precision)
        bits = equalinfo_compress(symbols, model, window_bits, precision, show)
    else:
        window_bits = 0
        bits = ac_compress(symbols, model, precision, show)
    arrays = model.arrays()
    header = Header(method, precision, window_bits, model.kind, fingerprint(arrays), len(data), 0, zlib.crc32(data))
    return fileformat.pack(header, bits, arrays if embed else None), header


def decompress_bytes(blob, model=None, model_name="the given model", progress=None):
    """(original bytes, Header) of a file's bytes; FormatError names whatever is wrong.

    Order of checks: the container (magic, version, length, CRCs) before any decoding, then the model's
    fingerprint, then the decoded bytes against the original's length and CRC-32.
    """
    container = fileformat.unpack(blob)
    header = container.header
    show = _wants_bar(header.original_length, progress)
    try:
        if header.method == "gzip":
            if model is not None:
                raise FormatError("wrong-model", "wrong model: this is a gzip file, it takes no model")
            data = baselines.gzip_decompress(container.bits)
        else:
            coder_model = fileformat.resolve_model(container, model, model_name)
            n = header.original_length
            if header.method == "equalinfo":
                symbols = equalinfo_decompress(container.bits, coder_model, n, header.window_bits,
                                               header.precision, show)
            else:
                symbols = ac_decompress(container.bits, coder_model, n, header.precision, show)
            data = symbols_to_bytes(symbols)
    except FormatError:
        raise
    except ValueError as error:  # WindowError, CoderError, a corrupt gzip stream, a non-byte symbol
        raise FormatError("corrupt", f"corrupt file: the payload does not decode ({error})") from None
    fileformat.check_output(header, data)
    return data, header
