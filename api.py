"""The Python API: compress and decompress bytes or streams into `.eqi` files, with any model or M1.

Everything here is also `equalinfo.NAME` (the package re-exports it). The files are the command line's, byte for
byte: `equalinfo compress` calls the same functions (filetool/codec.py), and model=None resolves through the same
one place, filetool.codec.default_model: the shipped M1 for UTF-8 text (best ratio, KB/s: a few hundred bytes
here), named in the file by its fingerprint, with plain AC, its best method (codec.default_method):

>>> import equalinfo
>>> text = b"To be, or not to be, that is the question. " * 5
>>> blob = equalinfo.compress(text)               # the shipped M1, plain AC
>>> len(blob) < len(text)
True
>>> equalinfo.decompress(blob) == text            # found by its fingerprint
True
>>> header = equalinfo.info(blob)
>>> header.method, header.model_kind, header.fingerprint == equalinfo.filetool.shipped_model.FINGERPRINT
('ac', 'transformer', True)

model="fitted" is the fast coder (hundreds of KB/s): a Markov or unigram model fitted on the input and embedded
(also what model=None gives bytes that are not UTF-8), with Equal-Info windows of 16 bits:

>>> blob = equalinfo.compress(text * 8, "fitted")
>>> equalinfo.info(blob).method, equalinfo.info(blob).window_bits, equalinfo.decompress(blob) == text * 8
('equalinfo', 16, True)

A model fitted once codes many files, each storing only the model's fingerprint (decompress needs the model):

>>> from equalinfo.ref.models import MarkovModel
>>> text = text * 8
>>> model = MarkovModel.fit(list(text), order=2)
>>> blob = equalinfo.compress(text, model, method="ac", embed=False)
>>> equalinfo.decompress(blob, model) == text
True
>>> equalinfo.decompress(blob)
Traceback (most recent call last):
...
equalinfo.filetool.fileformat.FormatError: missing model: ...

Streams (inputs larger than memory, one batch of segments at a time; filetool/streaming.py) give the same bytes:

>>> import io
>>> out = io.BytesIO()
>>> header = equalinfo.compress_stream(io.BytesIO(text), out, model)
>>> out.getvalue() == equalinfo.compress(text, model)
True
>>> back = io.BytesIO()
>>> header = equalinfo.decompress_stream(io.BytesIO(out.getvalue()), back, model)
>>> back.getvalue() == text
True

An M1 checkpoint from `equalinfo train-m1` codes too: `m1 = equalinfo.load_m1("m1.npz")`, then
`equalinfo.compress(data, m1)` (plain AC; its rows by exact rule 2, restarting at the context it was trained on).
Errors: ValueError for bad settings, FormatError (a ValueError; its `cause` says why) for a bad file or model.
"""
from equalinfo import limits
from equalinfo.filetool import codec, fileformat, shipped_model, streaming
from equalinfo.filetool.fileformat import FormatError  # noqa: F401 (part of the API)
from equalinfo.train import backends

__all__ = ["compress", "decompress", "compress_stream", "decompress_stream", "load_m1", "info", "FormatError"]


def _backend(name):
    """The backend of a name (None: the fastest available, as the CLI's default)."""
    return backends.load_or_fastest(name)


def _model(model, sample, embed):
    """(model, embed) of compress's model argument: None -> codec.default_model(sample), "fitted" ->
    codec.fitted_model(sample), "shipped" -> the shipped M1; embed None takes the model's default (embedded for
    the fitted models, not for a given model or the shipped M1)."""
    if model is None or isinstance(model, str):
        if model not in (None, "fitted", "shipped"):
            raise ValueError(f"unknown model name {model!r}; expected 'fitted', 'shipped' or a model object")
        if model == "shipped":
            found, default_embed = shipped_model.load(), False
        else:
            found, default_embed = (codec.default_model if model is None else codec.fitted_model)(sample)
        return found, default_embed if embed is None else bool(embed)
    return model, bool(embed)


def compress(data, model=None, method=None, *, embed=None, window_bits=None, precision=14,
             segment_bytes=codec.AUTO_SEGMENTS, store=True, backend=None, workers=1):
    """The `.eqi` file bytes of `data` (bytes), as `equalinfo compress` writes them.

    model: a model object (ref.models, an M1 from load_m1), "shipped" (the shipped M1), "fitted" (a Markov or
    unigram model fitted on `data`, embedded) or None for codec.default_model's (the shipped M1 for UTF-8 text,
    else "fitted"). method: equalinfo, ac, staticac (its own unigram model), gzip or stored; None for
    codec.default_method(model) (ac with an M1, else equalinfo). window_bits: Equal-Info's window, None for
    codec.default_window_bits(model). embed: store the model in the file (default: yes for the fitted models, no
    for a given model or the shipped M1, as the CLI). store: write method `stored` when coding would not make the
    file smaller. backend: 'ref', 'cpu' or 'gpu' (default the fastest); every backend writes the same bytes.
    segment_bytes: input bytes per segment, "auto" (codec.even_segment_bytes: an even count of segments of at
    most 16 KiB) or None (one stream, format version 2). workers: processes coding the segments (filetool/workers.py), the same bytes for any number: 1 (the
    default: a library call starts no processes unless asked; with more, a script must guard its top level with
    `if __name__ == "__main__":`, as multiprocessing's 'spawn' needs), N, or "auto" (the CLI's default).
    """
    data = bytes(data)
    if method in (None, "ac", "equalinfo"):
        by_name = model is None or isinstance(model, str)
        model, embed = _model(model, data, embed)
        method = method or codec.default_method(model)
        model = codec.model_for_method(model, method) if by_name else model  # an M1 object keeps its rule
        window_bits = codec.default_window_bits(model) if window_bits is None else window_bits
    embed = bool(embed)
    window_bits = codec.DEFAULT_WINDOW_BITS if window_bits is None else window_bits
    backend = _backend(backend)
    if store:
        return codec.compress_or_store(data, method, model, embed, window_bits, precision, backend,
                                       segment_bytes=segment_bytes, workers=workers)[0]
    return codec.compress_bytes(data, method, model, embed, window_bits, precision, backend,
                                segment_bytes=segment_bytes, workers=workers)[0]


def decompress(blob, model=None, *, backend=None, workers=1):
    """The original bytes of `.eqi` file bytes; model: the one it was coded with, if it does not embed it.

    A model given for a file that takes none (compress stored the input, or gzip) is not used, so that
    decompress(compress(data, model), model) == data always holds; a wrong model for a coded file is refused.
    A file that names the shipped M1 decodes with it when no model is given (shipped_model.load_for). workers as
    in compress."""
    blob = bytes(blob)
    header = fileformat.parse_header(blob[:fileformat.HEADER_SIZE], None)
    if model is not None and header.method not in fileformat.CODED_METHODS:
        model = None
    if model is None:
        model = shipped_model.load_for(header)
    return codec.decompress_bytes(blob, model, backend=_backend(backend), workers=workers)[0]


def info(blob):
    """The Header of `.eqi` file bytes (method, window_bits, model_kind, fingerprint, lengths), checked."""
    return fileformat.unpack(blob).header


def compress_stream(src, dst, model=None, method=None, *, embed=None, window_bits=None, precision=14,
                    segment_bytes=codec.DEFAULT_SEGMENT_BYTES, batch_segments=streaming.DEFAULT_BATCH_SEGMENTS,
                    backend=None, workers=1):
    """Compress the binary file object src into dst, one batch of segments at a time; returns the Header.

    The bytes equal compress(src's bytes, model, method, store=False). model None, "fitted" or "shipped" as in
    compress, None resolved on the first batch (the whole input, when it fits one batch); method ac or
    equalinfo, None for codec.default_method(model); window_bits None for codec.default_window_bits(model).
    workers as in compress: one pool of processes serves every batch.
    """
    by_name = model is None or isinstance(model, str)
    if by_name:
        sample = limits.read_at_most(src, segment_bytes * batch_segments)
        model, embed = _model(model, sample, embed)
        src = _Prepended(sample, src)
    method = method or codec.default_method(model)
    model = codec.model_for_method(model, method) if by_name else model  # an M1 object keeps its rule
    window_bits = codec.default_window_bits(model) if window_bits is None else window_bits
    return streaming.compress_stream(src, dst, model, method, bool(embed), window_bits, precision,
                                     _backend(backend), segment_bytes, batch_segments, workers=workers)


def decompress_stream(src, dst, model=None, *, batch_segments=streaming.DEFAULT_BATCH_SEGMENTS, backend=None,
                      workers=1):
    """Decompress the `.eqi` file object src into dst, one batch of segments at a time; returns the Header.
    workers as in compress_stream."""
    return streaming.decompress_stream(src, dst, model, backend=_backend(backend), batch_segments=batch_segments,
                                       workers=workers)


def load_m1(path, rule=2, context=None, backend=None):
    """M1 from a `equalinfo train-m1` checkpoint as a coding model: rows by exact rule `rule` (2 int16 products,
    3 int8-valued, 4 int8 rows, 1 float), restarting every `context` symbols (default: its training length). Decompress needs
    the same checkpoint, rule and context (the file names the model by fingerprint)."""
    from equalinfo.train import m1  # M1's checkpoints and backend twins; imported only when an M1 is asked for

    return m1.coding_model_from_checkpoint(path, _backend(backend).name, rule, context)


class _Prepended:
    """A binary stream that yields `head` first, then the rest of `stream` (what default_model sampled)."""

    def __init__(self, head, stream):
        self.head, self.stream = head, stream

    def read(self, n_bytes=-1):
        if not self.head:
            return self.stream.read(n_bytes)
        if n_bytes < 0:
            part, self.head = self.head + self.stream.read(), b""
            return part
        part, self.head = self.head[:n_bytes], self.head[n_bytes:]
        return part
