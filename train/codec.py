"""Bytes in, `.eqi` file bytes out, and back: the four methods behind `equalinfo compress/decompress`.

Every method codes the input's bytes as symbols 0-255, one per byte, with no EOS added (a file is one document; its
length is in the header). The coding is a backend's (train/backends.py): ac and staticac are its `ac`, equalinfo
its `equalinfo`; every backend gives ref's bits, so a file made with one decodes with any other. gzip is
ref.baselines. The default backend is ref; the CLI uses the fastest available, as the pipeline does.
"""
import zlib

from ref import baselines
from ref.arithmetic import check_precision
from ref.equalinfo import check_window_bits
from ref.fingerprint import fingerprint
from ref.models import UnigramModel
from ref.symbols import N_SYMBOLS, bytes_to_symbols, symbols_to_bytes
from train import backends, fileformat
from train.fileformat import FormatError, Header

def compress_bytes(data, method="equalinfo", model=None, embed=True, window_bits=16, precision=14, backend=None):
    """(file bytes, Header) of `data` compressed with `method`.

    model: the model for ac/equalinfo (required there); embed: store its arrays in the file (self-contained) or
    only its fingerprint (the decoder must be given the model). staticac fits and embeds its own unigram model on
    `data`; gzip takes no model. window_bits is used by equalinfo only, precision by the coded methods only.
    backend: train.backends.load(name) (anything with `ac` and `equalinfo` modules); None means ref.
    """
    data = bytes(data)
    if method not in fileformat.METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(fileformat.METHODS)}")
    symbols = bytes_to_symbols(data)
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
    backend = backend or backends.load("ref")
    if method == "equalinfo":
        check_window_bits(window_bits, precision)
        bits = backend.equalinfo.compress(symbols, model, window_bits, precision)
    else:
        window_bits = 0
        bits = backend.ac.compress(symbols, model, precision)
    arrays = model.arrays()
    header = Header(method, precision, window_bits, model.kind, fingerprint(arrays), len(data), 0, zlib.crc32(data))
    return fileformat.pack(header, bits, arrays if embed else None), header


def decompress_bytes(blob, model=None, model_name="the given model", backend=None):
    """(original bytes, Header) of a file's bytes, decoded with `backend` (as in compress_bytes); FormatError names
    whatever is wrong.

    Order of checks: the container (magic, version, length, CRCs) before any decoding, then the model's
    fingerprint, then the decoded bytes against the original's length and CRC-32.
    """
    container = fileformat.unpack(blob)
    header = container.header
    try:
        if header.method == "gzip":
            if model is not None:
                raise FormatError("wrong-model", "wrong model: this is a gzip file, it takes no model")
            data = baselines.gzip_decompress(container.bits)
        else:
            coder_model = fileformat.resolve_model(container, model, model_name)
            n = header.original_length
            backend = backend or backends.load("ref")
            if header.method == "equalinfo":
                symbols = backend.equalinfo.decompress(container.bits, coder_model, header.window_bits,
                                                       header.precision, n_symbols=n)
            else:
                symbols = backend.ac.decompress(container.bits, coder_model, n, header.precision)
            data = symbols_to_bytes(symbols)
    except FormatError:
        raise
    except ValueError as error:  # WindowError, CoderError, a corrupt gzip stream, a non-byte symbol
        raise FormatError("corrupt", f"corrupt file: the payload does not decode ({error})") from None
    fileformat.check_output(header, data)
    return data, header
