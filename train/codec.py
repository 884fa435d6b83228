"""Bytes in, `.eqi` file bytes out, and back: the four methods behind `equalinfo compress/decompress`.

Every method codes the input's bytes as symbols 0-255, one per byte, with no EOS added (a file is one document; its
length is in the header). The coding itself is ref/'s, unchanged: ac and staticac are ref.ac, equalinfo is
ref.equalinfo, gzip is ref.baselines; a tqdm bar follows their progress callbacks (the ref coder runs at ~20-50 us
per symbol, so a 1 MB text takes a minute or more).
"""
import zlib

from tqdm import tqdm

from ref import ac, baselines, equalinfo
from ref.arithmetic import check_precision
from ref.equalinfo import check_window_bits
from ref.fingerprint import fingerprint
from ref.models import UnigramModel
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
        with _bar(len(symbols), show, "equalinfo encode") as bar:
            bits = equalinfo.compress(symbols, model, window_bits, precision, progress=bar.update)
    else:
        window_bits = 0
        with _bar(len(symbols), show, "ac encode") as bar:
            bits = ac.compress(symbols, model, precision, progress=bar.update)
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
            with _bar(n, show, f"{header.method} decode") as bar:
                if header.method == "equalinfo":
                    symbols = equalinfo.decompress(container.bits, coder_model, header.window_bits,
                                                   header.precision, n_symbols=n, progress=bar.update)
                else:
                    symbols = ac.decompress(container.bits, coder_model, n, header.precision, progress=bar.update)
            data = symbols_to_bytes(symbols)
    except FormatError:
        raise
    except ValueError as error:  # WindowError, CoderError, a corrupt gzip stream, a non-byte symbol
        raise FormatError("corrupt", f"corrupt file: the payload does not decode ({error})") from None
    fileformat.check_output(header, data)
    return data, header
