"""equalinfo: the reference implementation of "Training LLMs over Neurally Compressed Text" (Lester et al., 2024).

The repository's root is this package: each folder below is one subpackage, and imports flow one way, from the top
of this list to the bottom (a package imports only packages above it; tests/test_layering.py checks it).

    ref/         readable NumPy ground truth: symbols, coder, Equal-Info windows, tokens, Transformer, M1's exact rules
    data/        text sources, packing into examples, token shards on disk
    fast/        the same interfaces, fast: fast.cpu (Numba) and fast.gpu (CuPy, numba.cuda)
    limits.py    the explicit limits every input, option and file is checked against
    options.py   the ranges of the command line's numeric options
    report/      statistics and figures of results: standard errors, unigram floors, the paper's numbers
    train/       the paper's pipeline: train M1, build datasets, train and evaluate M2, `equalinfo repro`
    filetool/    the `.eqi` file tool: compress and decompress any file with a model
    conformance/ conformance vectors: export them, check an implementation against them
    analysis/    the paper's analyses (§5-6) and generation
    api.py       the Python API: equalinfo.compress, decompress, compress_stream, decompress_stream, load_m1
    cli.py       the `equalinfo` command line over all of the above

The API's names are attributes of the package itself (`equalinfo.compress(data)`), imported on first use, so that
`import equalinfo.ref` stays NumPy only.
"""
API = ("compress", "decompress", "compress_stream", "decompress_stream", "load_m1", "info", "FormatError")


def __getattr__(name):
    """equalinfo.NAME for the API's names (PEP 562): api.py is imported only when one is first used."""
    if name in API:
        from equalinfo import api

        return getattr(api, name)
    raise AttributeError(f"module 'equalinfo' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(API))
