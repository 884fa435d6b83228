"""Bytes in, `.eqi` file bytes out, and back: the methods behind `equalinfo compress/decompress`.

Every method codes the input's bytes as symbols 0-255, one per byte, with no EOS added (a file is one document; its
length is in the header). The coding is a backend's (train/backends.py): ac and staticac are its `ac`, equalinfo
its `equalinfo`; every backend gives ref's bits, so a file made with one decodes with any other. gzip is zlib at
its default level (as ref.baselines). The default backend is ref; the CLI uses the fastest available, as the
pipeline does. `stored` keeps the bytes as they are: `compress_or_store` writes it instead of the method asked for
when coding would not make the file smaller (random or compressed input, tiny inputs, a model larger than what it
saves), so no input grows by more than the 100 bytes of header and checksums.

The coded methods write format version 3 (filetool/segments.py): the input is cut into segments of at most
DEFAULT_SEGMENT_BYTES (segment_bytes="auto": `even_segment_bytes`, an even number of equal segments), each coded
alone, and all of a file's segments go through the backend's coder as one batch
(`compress_batch`/`decompress_batch`: on fast.cpu one model call per step for every segment, for Equal-Info and
for plain AC with M1; plain AC with a table model loops over the segments in compiled code). segment_bytes=None is
the version 2 writer: the whole input as one stream. `workers` (compress_bytes, compress_or_store,
decompress_bytes, code_segments, decode_segments) splits the segments among processes instead
(filetool/workers.py): the same bytes for any number.

`default_model(sample)` is the one place that says what model=None means (the Python API, the CLI and the stream
coder all ask it): the shipped M1 (filetool/shipped_model.py) for UTF-8 text, named in the file by fingerprint; for
other bytes `fitted_model(sample)`, a Markov (order 2 or 1) or unigram model fitted on the sample and embedded in
the file, whichever makes the smaller file (an English M1 has nothing to say about binary data, and would code
random or already compressed input at KB/s only to store it). `default_method(model)` and
`default_window_bits(model)` say what method=None and window_bits=None mean for a model: plain AC for an M1 (the
best ratio, docs/decisions.md "The file tool's defaults"), Equal-Info windows of 16 bits for the other models.
"""
import zlib

import numpy as np

from equalinfo import limits
from equalinfo.ref.arithmetic import check_precision
from equalinfo.ref.equalinfo import check_window_bits
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import BOS, N_SYMBOLS, bytes_to_symbols, symbols_to_bytes
from equalinfo.train import backends
from equalinfo.filetool import fileformat, shipped_model
from equalinfo.filetool import workers as workers_module
from equalinfo.filetool.fileformat import FormatError, Header
from equalinfo.filetool.segments import check_segment_bytes, segment_lengths

DEFAULT_SEGMENT_BYTES = 1 << 14  # bench/segment_cost.py: <= 0.17% of the size with Markov and M1 (docs/file-format.md)
AUTO_SEGMENTS = "auto"  # segment_bytes's default: even_segment_bytes of the input's length
DEFAULT_MODEL_CHOICES = (("markov", 2), ("markov", 1), ("unigram", None))  # what fitted_model picks from
DEFAULT_WINDOW_BITS = 16  # Equal-Info windows of the fitted models and of M1 checkpoints (the paper's b=16)

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
                   progress=None, segment_bytes=AUTO_SEGMENTS, workers=1):
    """(file bytes, Header) of `data` compressed with `method`.

    model: the model for ac/equalinfo (required there); embed: store its arrays in the file (self-contained) or
    only its fingerprint (the decoder must be given the model). staticac fits and embeds its own unigram model on
    `data`; gzip takes no model. window_bits is used by equalinfo only, precision by the coded methods only.
    backend: train.backends.load(name) (anything with `ac` and `equalinfo` modules); None means ref.
    segment_bytes: input bytes per independently coded segment (format version 3); "auto" (the default):
    even_segment_bytes(len(data)); None: one stream (version 2).
    workers: processes coding the segments (filetool/workers.py): 1, N, or "auto" (workers.auto_workers); the
    file's bytes are the same for any number.
    """
    data = bytes(data)
    workers_module.check_workers(workers)
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
    header, coder_model = coded_header(data, method, model, window_bits, precision, backend)
    backend = backend or backends.load("ref")
    arrays = model.arrays() if embed else None
    if segment_bytes is None:
        if method == "equalinfo":
            bits = backend.equalinfo.compress(symbols, coder_model, window_bits, precision, progress=progress)
        else:
            bits = backend.ac.compress(symbols, coder_model, precision, progress=progress)
        return fileformat.pack(header, bits, arrays), header
    if segment_bytes == AUTO_SEGMENTS:
        segment_bytes = even_segment_bytes(len(data))
    check_segment_bytes(segment_bytes, len(data))
    pieces = np.split(symbols, np.cumsum(segment_lengths(len(data), segment_bytes))[:-1]) if len(data) else []
    workers = workers_module.resolve_workers(workers, coder_model, backend, len(data), segment_bytes)
    bits = code_segments(pieces, header, coder_model, backend, progress, workers=workers)
    return fileformat.pack(header, bits, arrays, segment_bytes), header


def even_segment_bytes(n_bytes, most=DEFAULT_SEGMENT_BYTES):
    """Segment size for an n-byte input: the fewest segments of at most `most` bytes, their count rounded up to an
    even number when above one, all of equal size (the last one up to a byte per segment shorter).

    Why: the segments are split among processes (filetool/workers.py) and each process runs its share in lockstep,
    one model call per step for all of them, so a process's time is its longest segment's steps times the cost of
    a step with its segments' rows. 25 segments of 16 KiB on two processes (a 400 KB file) make one process
    run 13 rows for 16,384 steps while the other idles at the end; 26 segments of 15,385 bytes give both 13 rows
    for 15,385 steps (one segment more: ~13 bytes, docs/file-format.md). The count depends on n_bytes alone, never
    on the number of processes, so a file's bytes stay the same for any --workers. The count is exact while
    n_bytes / most < most (ceil(n / ceil(n / k)) = k for n > k * (k - 1))."""
    if n_bytes <= most:
        return most
    n_segments = -(-n_bytes // most)
    n_segments += n_segments % 2
    return -(-n_bytes // n_segments)


def coded_header(data, method, model, window_bits, precision, backend):
    """(Header, the model on the backend) of a coded method's file of `data` (ValueError for bad settings); its
    coded_bits are set when the file is packed."""
    if model is None:
        raise ValueError(f"method {method} needs a model")
    check_precision(precision, N_SYMBOLS)
    if method == "equalinfo":
        check_window_bits(window_bits, precision)
    else:
        window_bits = 0
    header = Header(method, precision, window_bits, model.kind, fingerprint(model.arrays()), len(data), 0,
                    zlib.crc32(data))
    return header, on_backend(model, backend or backends.load("ref"))


def code_segments(pieces, header, coder_model, backend, progress=None, done=0, workers=1):
    """[uint8 0/1 bits] of each segment's symbols (a list of int arrays), coded alone with the header's method.
    workers = 1: all segments as one batch in this process (the backend's compress_batch: on fast.cpu,
    Equal-Info's and an M1's AC segments in lockstep); workers = N or a workers.SegmentPool: the segments cut into
    N groups coded by N processes at once (filetool/workers.py), the same bits. progress(n), if given, gets the
    symbols coded so far, `done` of them before these segments."""
    coding = (header.method, header.window_bits, header.precision)
    with workers_module.pool_for(workers, coder_model, backend) as pool:
        return pool.code(pieces, coding, progress, done)


def decode_segments(bit_arrays, lengths, header, coder_model, backend, progress=None, done=0, workers=1):
    """[int64 symbols] of each segment's bits, decoded alone (as code_segments coded them) to the given lengths,
    all segments as one batch (the backend's decompress_batch), or split among `workers` processes."""
    coding = (header.method, header.window_bits, header.precision)
    with workers_module.pool_for(workers, coder_model, backend) as pool:
        return pool.decode(bit_arrays, lengths, coding, progress, done)


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


def fit_model(kind, order, symbols):
    """The unigram (order None) or order-k Markov model fitted on symbols; ValueError, before the table is built,
    if its count table [contexts, 257] would be larger than the largest model (limits.py)."""
    if kind == "unigram":
        return UnigramModel.fit(symbols)
    most = limits.MAX_MODEL_BYTES // (N_SYMBOLS * 8)  # contexts of the largest model's int64 counts [contexts, 257]
    if more_contexts_than(symbols, order, most):
        raise ValueError(f"markov{order}: this input has more than {most:,} order-{order} contexts, so its count "
                         f"table would be larger than the largest model "
                         f"({limits.size_words(limits.MAX_MODEL_BYTES)}); use a lower order or a model file from "
                         "fit-model")
    _, contexts, _ = markov_estimate(symbols, order)
    table = contexts * N_SYMBOLS * 8  # its int64 counts [contexts, 257]
    if table > limits.MAX_MODEL_BYTES:
        raise ValueError(f"markov{order}: its count table on this input would take {table / 2 ** 20:,.0f} MiB, "
                         f"more than the largest model ({limits.size_words(limits.MAX_MODEL_BYTES)}); use a lower "
                         "order or a model file from fit-model")
    return MarkovModel.fit(symbols, order)


def more_contexts_than(symbols, order, most):
    """Whether the input surely has more than `most` order-K contexts: the distinct K-grams of ever longer
    prefixes (64 Ki, 256 Ki, ... symbols) are a lower bound on them, counted until they pass `most`. Random input
    is refused after a prefix of a few times `most` symbols instead of markov_estimate sorting K+1 int64
    contexts per byte of the whole input (13.5 GB for 20 MB at order 7)."""
    length = 1 << 16
    while True:
        prefix = symbols[:length + order]  # [L + K]
        grams = np.zeros(max(len(prefix) - order, 0), np.int64)  # [L]: the K symbols before each position
        for back in range(order):
            grams = grams * N_SYMBOLS + prefix[back:back + len(grams)]
        if len(np.unique(grams)) > most:
            return True
        if length >= len(symbols):
            return False
        length *= 4


def cheapest_model(choices, symbols):
    """The model of `choices` [(kind, order)] fitted on symbols whose embedded archive plus ideal code is the
    smallest.

    A Markov model is fitted only if a lower bound of its file beats the best so far: its ideal code plus one bit
    per nonzero count (markov_estimate, no dense table), so random input never builds a large table."""
    best, best_bytes = None, None
    for kind, order in sorted(choices, key=lambda choice: choice[1] or 0):  # unigram, then rising orders
        if kind == "markov" and best is not None:
            bits, _, nonzero = markov_estimate(symbols, order)
            if (bits + nonzero) / 8 >= best_bytes:
                continue
        model = fit_model(kind, order, symbols)
        size = ideal_bits(model, symbols) / 8 + len(fileformat.arrays_to_npz(model.arrays()))
        if best is None or size < best_bytes:
            best, best_bytes = model, size
    return best


def fitted_model(sample):
    """(model, embed) of `--model fitted` / model="fitted": the cheapest of DEFAULT_MODEL_CHOICES fitted on the
    sample and embedded, so the file decodes on its own (codes at hundreds of KB/s, where M1 codes at KB/s)."""
    return cheapest_model(DEFAULT_MODEL_CHOICES, bytes_to_symbols(bytes(sample))), True


def is_text(sample):
    """Whether `sample` is UTF-8, allowing a character cut by the sample's end (a stream's first batch)."""
    try:
        bytes(sample).decode("utf-8")
    except UnicodeDecodeError as error:
        return error.reason == "unexpected end of data" and error.start >= len(sample) - 3
    return True


def default_model(sample):
    """(model, embed) that model=None stands for, for an input whose bytes are (or begin with) `sample`: the one
    place to change the default (the Python API, the CLI and the stream coder ask here). UTF-8 text: the shipped M1,
    not embedded (the file names it by fingerprint; FormatError 'missing-model' if the install lacks it); other
    bytes: fitted_model(sample)."""
    if is_text(sample):
        return shipped_model.load(), False
    return fitted_model(sample)


def default_method(model):
    """The method that method=None stands for with `model`: plain AC for an M1 (shipped or a checkpoint), the
    best ratio with M1 (docs/decisions.md: Equal-Info's restarts cost it 1.6-3% at b=1,024, far more at b=16);
    Equal-Info for the other models (their default since the first file tool: each window decodes alone)."""
    return "ac" if isinstance(model, TransformerModel) else "equalinfo"


def model_for_method(model, method):
    """`model`, or for the shipped M1 the same weights under the rule that shipped_model.rule_for(method) names
    (Equal-Info: rule 3; AC: rule 4; the measured prices are in shipped_model.py). For the shipped M1 chosen by
    default or by name (the CLI, the Python API's model=None or "shipped"); a model object passed in keeps its
    rule."""
    if isinstance(model, TransformerModel) and method in ("ac", "equalinfo"):
        rule = shipped_model.rule_of(fingerprint(model.arrays()))
        if rule is not None and rule != shipped_model.rule_for(method):
            return shipped_model.load(shipped_model.rule_for(method))
    return model


def default_window_bits(model):
    """Equal-Info's window that window_bits=None stands for: shipped_model.WINDOW_BITS for the shipped M1 (each
    window restarts M1, so small windows cost its context), DEFAULT_WINDOW_BITS otherwise."""
    if isinstance(model, TransformerModel) and shipped_model.rule_of(fingerprint(model.arrays())) is not None:
        return shipped_model.WINDOW_BITS
    return DEFAULT_WINDOW_BITS


def compress_or_store(data, method="equalinfo", model=None, embed=True, window_bits=16, precision=14,
                      backend=None, progress=None, segment_bytes=AUTO_SEGMENTS, workers=1):
    """(file bytes, Header, why) of `data` compressed with `method`, or stored if that is no larger.

    why: None if the method's file was kept, else the reason it was stored (for the summary line). A unigram or
    Markov model's ideal code length (`ideal_bits`) is looked at before coding, so input that will not shrink is
    stored without running the slow coder; otherwise the coded file is compared with the stored one. workers as
    in compress_bytes.
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
        blob, header = compress_bytes(data, method, model, embed, window_bits, precision, backend, progress,
                                      segment_bytes, workers)
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


def decompress_bytes(blob, model=None, model_name="the given model", backend=None, progress=None, workers=1):
    """(original bytes, Header) of a file's bytes, decoded with `backend` (as in compress_bytes); FormatError names
    whatever is wrong.

    Order of checks: the container (magic, version, length, CRCs) before any decoding, then the model's
    fingerprint, then the decoded bytes against the original's length and CRC-32. workers: processes decoding a
    version 3 file's segments (1, N or "auto", as in compress_bytes).
    """
    workers_module.check_workers(workers)
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
            if container.segments is not None:
                lengths = container.segments.input_lengths(n)
                workers = workers_module.resolve_workers(workers, coder_model, backend, n,
                                                         container.segments.segment_bytes)
                pieces = decode_segments(container.segment_bits(), lengths, header, coder_model, backend, progress,
                                         workers=workers)
                symbols = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
            elif header.method == "equalinfo":
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
