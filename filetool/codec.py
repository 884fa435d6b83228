"""Bytes in, `.eqi` file bytes out, and back: the methods behind `equalinfo compress/decompress`.

Every method codes the input's bytes as symbols 0-255, one per byte, with no EOS added (a file is one document; its
length is in the header). The coding is a backend's (train/backends.py): ac and staticac are its `ac`, equalinfo
its `equalinfo`; every backend gives ref's bits, so a file made with one decodes with any other. gzip is zlib at
its default level (as ref.baselines). The default backend is ref; the CLI uses the fastest available, as the
pipeline does. `stored` keeps the bytes as they are: `compress_or_store` writes it instead of the method asked for
when coding would not make the file smaller (random or compressed input, tiny inputs, a model larger than what it
saves), so no input grows by more than the 100 bytes of header and checksums.
"""
import zlib

import numpy as np

from equalinfo.ref.arithmetic import check_precision
from equalinfo.ref.equalinfo import check_window_bits
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import BOS, N_SYMBOLS, bytes_to_symbols, symbols_to_bytes
from equalinfo.train import backends
from equalinfo.filetool import fileformat
from equalinfo.filetool.fileformat import FormatError, Header

def as_fingerprinted(model, wanted):
    """The given model, or the same M1 as equalinfo 0.1.0 fingerprinted it when that is the fingerprint the file
    names (ref.m1.TransformerModel: M1s of 0.1.0 stored a retired window cap, so their fingerprints differ)."""
    if isinstance(model, TransformerModel) and not model.keeps_window_cap:
        old = model.with_window_cap_entry()
        if fingerprint(model.arrays()) != wanted and fingerprint(old.arrays()) == wanted:
            return old
    return model


def on_backend(model, backend):
    """The model with its rows computed by `backend`: an M1 moves to the backend's twin of its exact rule (the same
    rows, bit for bit, ref.m1); the other models compute the same way everywhere."""
    if not isinstance(model, TransformerModel):
        return model
    from equalinfo.train import m1  # M1's backend twins; imported only when an M1 codes

    return m1.on_backend(model, backend.name)


def compress_bytes(data, method="equalinfo", model=None, embed=True, window_bits=16, precision=14, backend=None,
                   progress=None):
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
    if method in ("gzip", "stored"):
        if model is not None:
            raise ValueError(f"{method} takes no model")
        header = Header(method, 0, 0, "", "", len(data), 0, zlib.crc32(data))
        return fileformat.pack(header, zlib.compress(data) if method == "gzip" else data), header
    if model is None:
        raise ValueError(f"method {method} needs a model")
    check_precision(precision, N_SYMBOLS)
    backend = backend or backends.load("ref")
    coder_model = on_backend(model, backend)
    if method == "equalinfo":
        check_window_bits(window_bits, precision)
        bits = backend.equalinfo.compress(symbols, coder_model, window_bits, precision, progress=progress)
    else:
        window_bits = 0
        bits = backend.ac.compress(symbols, coder_model, precision, progress=progress)
    arrays = model.arrays()
    header = Header(method, precision, window_bits, model.kind, fingerprint(arrays), len(data), 0, zlib.crc32(data))
    return fileformat.pack(header, bits, arrays if embed else None), header


def stored_size(n_bytes):
    """Bytes of the stored file of an n-byte input: the input plus header and checksums."""
    return fileformat.HEADER_SIZE + n_bytes + fileformat.TRAILER_SIZE


def ideal_bits(model, symbols):
    """-sum log2 p of the symbols under a unigram or Markov model read from BOS on (None for other models): about
    what plain AC would write, and a little less than Equal-Info would, computed without running the coder."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if isinstance(model, UnigramModel):
        return float(-np.log2(model.probs[symbols]).sum())
    if not isinstance(model, MarkovModel):
        return None
    inputs = np.concatenate([[BOS], symbols[:-1]])[None, :len(symbols)]  # [1, n]
    contexts = MarkovModel._context_ids(inputs, model.order)[0]
    rows = np.minimum(np.searchsorted(model.context_ids, contexts), max(len(model.context_ids) - 1, 0))
    probs = np.full(len(symbols), 1.0 / N_SYMBOLS)
    if len(model.context_ids):
        seen = model.context_ids[rows] == contexts
        probs[seen] = model.probs[rows[seen], symbols[seen]]
    return float(-np.log2(probs).sum())


def markov_estimate(symbols, order):
    """(ideal bits, contexts, nonzero counts) of the order-k Markov model MarkovModel.fit(symbols, order) would
    build, computed from the sparse (context, symbol) pairs without building its dense [contexts, 257] table: a
    fit on 1 MB of random bytes would allocate 136 MB to learn that it does not pay."""
    symbols = np.asarray(symbols, dtype=np.int64)
    n = len(symbols)
    if n == 0:
        return 0.0, 0, 0
    history = np.concatenate([np.full(order, BOS, dtype=np.int64), symbols])
    contexts = []
    for kept in range(order, -1, -1):  # the same contexts as MarkovModel.fit, the ordinary ones first
        ids = np.zeros(n, dtype=np.int64)
        for back in range(order, 0, -1):
            ids = ids * (BOS + 1) + (history[order - back:order - back + n] if back <= kept else BOS)
        contexts.append(ids)
    _, context_index, context_counts = np.unique(np.concatenate(contexts), return_inverse=True, return_counts=True)
    del contexts
    pairs = context_index * N_SYMBOLS + np.tile(symbols, order + 1)
    _, pair_index, pair_counts = np.unique(pairs, return_inverse=True, return_counts=True)
    probs = (pair_counts[pair_index[:n]] + 1) / (context_counts[context_index[:n]] + float(N_SYMBOLS))
    return float(-np.log2(probs).sum()), len(context_counts), len(pair_counts)


def compress_or_store(data, method="equalinfo", model=None, embed=True, window_bits=16, precision=14,
                      backend=None, progress=None):
    """(file bytes, Header, why) of `data` compressed with `method`, or stored if that is no larger.

    why: None if the method's file was kept, else the reason it was stored (for the summary line). A unigram or
    Markov model's ideal code length (`ideal_bits`) is looked at before coding, so input that will not shrink is
    stored without running the slow coder; otherwise the coded file is compared with the stored one.
    """
    data = bytes(data)
    limit = stored_size(len(data))
    if method != "stored" and data and method in ("ac", "equalinfo", "staticac"):
        symbols = bytes_to_symbols(data)
        estimate_model = UnigramModel.fit(symbols) if method == "staticac" else model
        estimate = ideal_bits(estimate_model, symbols)
        if estimate is not None:
            payload = estimate / 8
            model_bytes = 0
            if payload < len(data) and (embed or method == "staticac"):
                model_bytes = len(fileformat.arrays_to_npz(estimate_model.arrays()))
            if fileformat.HEADER_SIZE + payload + model_bytes >= limit:
                return (*compress_bytes(data, "stored"), f"its {estimate_model.kind} model would code it in "
                        f"{payload:,.0f} bytes" + (f" plus {model_bytes:,} of model" if model_bytes else ""))
    if method != "stored":
        blob, header = compress_bytes(data, method, model, embed, window_bits, precision, backend, progress)
        if len(blob) < limit:
            return blob, header, None
        why = f"{method} would write {len(blob):,} bytes"
    else:
        why = "asked for"
    return (*compress_bytes(data, "stored"), why)


def inflate(payload, n_bytes):
    """The n_bytes a zlib stream inflates to, never inflating past n_bytes + 1 (a crafted stream could expand
    1000-fold); FormatError if it does not end there."""
    stream = zlib.decompressobj()
    try:
        data = stream.decompress(payload, n_bytes + 1)
    except zlib.error as error:
        raise FormatError("corrupt", f"corrupt file: the payload does not decode (corrupt GZip stream: {error})"
                          ) from None
    if len(data) > n_bytes or not stream.eof:
        raise FormatError("corrupt", "corrupt file: the GZip stream does not end at the original's length "
                                     f"({n_bytes:,} bytes)")
    return data


def decompress_bytes(blob, model=None, model_name="the given model", backend=None, progress=None):
    """(original bytes, Header) of a file's bytes, decoded with `backend` (as in compress_bytes); FormatError names
    whatever is wrong.

    Order of checks: the container (magic, version, length, CRCs) before any decoding, then the model's
    fingerprint, then the decoded bytes against the original's length and CRC-32.
    """
    container = fileformat.unpack(blob)
    header = container.header
    try:
        if header.method in ("gzip", "stored"):
            if model is not None:
                raise FormatError("wrong-model", f"wrong model: this is a {header.method} file, it takes no model")
            if header.method == "gzip":
                data = inflate(container.payload, header.original_length)
            else:
                data = container.payload
        else:
            backend = backend or backends.load("ref")
            model = as_fingerprinted(model, header.fingerprint)
            coder_model = on_backend(fileformat.resolve_model(container, model, model_name), backend)
            n = header.original_length
            if header.method == "equalinfo":
                symbols = backend.equalinfo.decompress(container.bits, coder_model, header.window_bits,
                                                       header.precision, n_symbols=n, progress=progress)
            else:
                symbols = backend.ac.decompress(container.bits, coder_model, n, header.precision, progress=progress)
            data = symbols_to_bytes(symbols)
    except FormatError:
        raise
    except ValueError as error:  # WindowError, CoderError, a corrupt gzip stream, a non-byte symbol
        raise FormatError("corrupt", f"corrupt file: the payload does not decode ({error})") from None
    fileformat.check_output(header, data)
    return data, header
