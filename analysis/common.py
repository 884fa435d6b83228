"""What every analysis shares: opening datasets and models with clear errors, the coding models a run used (or a
stand-in), the tokenizers of the paper's methods, and writing results (a JSON with every number, a PNG beside it,
a short table on stdout).

Results are plain JSON (sorted keys, no NaN) written atomically; a figure needs matplotlib (the `plot` extra) and is
skipped with a note when it is missing, so every analysis runs on a bare install.
"""
import json
from pathlib import Path

import numpy as np

from equalinfo.data.corpus import open_corpus
from equalinfo.data.shards import open_dataset
from equalinfo.train import checkpoint
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import N_SYMBOLS
from equalinfo.train import backends, m1, methods
from equalinfo.report.paper_numbers import label
from equalinfo.train.trainer import versions, write_json


class AnalysisError(ValueError):
    """Inputs an analysis cannot use (a wrong model for a dataset, a dataset of the wrong method, ...)."""


# ------------------------------------------------------------------------------------------------- inputs

def load_backend(name=None):
    return backends.load(name or backends.fastest_available())


def open_split(directory, side="validation"):
    """One side (train/validation) of a dataset directory made by `equalinfo build` or `repro`."""
    path = Path(directory) / side
    if not path.is_dir():
        raise AnalysisError(f"{directory}: no {side}/ inside; expected a dataset directory from equalinfo build")
    return open_dataset(path)


def load_m2(path, dataset, what="--m2"):
    """(params, cfg, meta) of an M2 checkpoint, refused unless it predicts exactly the dataset's tokens."""
    params, cfg, _, meta = checkpoint.load(path)
    vocab = dataset.meta["vocab_size"]
    if cfg.vocab_out != vocab or cfg.vocab_in != vocab + 1:
        raise AnalysisError(f"{what} {path} reads {cfg.vocab_in} ids and predicts {cfg.vocab_out} tokens, but "
                            f"{dataset.directory} ({dataset.meta.get('label', dataset.meta['method'])}) has "
                            f"{vocab} tokens: wrong model for this dataset")
    return params, cfg, meta or {}


def load_m1(path, backend, rule=1):
    """(coding model, description) of an M1 checkpoint; its rows come from the backend's exact-rule twin, and it
    restarts every seq_len symbols, the length it was trained on, as `build` codes with it (train/repro.py)."""
    params, cfg, _, meta = checkpoint.load(path)
    if cfg.vocab_out != N_SYMBOLS:
        raise AnalysisError(f"{path} predicts {cfg.vocab_out} tokens, an M1 predicts {N_SYMBOLS} (bytes + EOS): "
                            f"is it an M2?")
    return m1.coding_model(params, cfg, backend.name, rule, m1.trained_context(meta)), f"M1 {path}"


def m1_for_dataset(path, backend, dataset):
    """M1 of a checkpoint exactly as it built an M1-coded dataset: the exact rule (the dataset records only the
    model's fingerprint, which covers the rule) is the one whose fingerprint matches; none: AnalysisError."""
    model = None
    for rule in (1, *m1.QUANTIZERS):  # the float rule, then the quantized ones
        model = load_m1(path, backend, rule)[0]
        try:
            check_m1_matches(dataset, model, path)
            return model
        except AnalysisError:
            continue
    check_m1_matches(dataset, model, path)  # raises, naming the last fingerprint tried


def check_m1_matches(dataset, model, m1_path):
    """Refuse an M1 other than the one that built an M1-coded dataset (fingerprints in the dataset's meta)."""
    from equalinfo.ref.fingerprint import fingerprint

    wanted = dataset.meta.get("m1_fingerprint")
    if wanted and fingerprint(model.arrays()) != wanted:
        raise AnalysisError(f"{m1_path} is not the M1 that built {dataset.directory} (fingerprint "
                            f"{fingerprint(model.arrays())[:12]}, the dataset says {wanted[:12]})")


def corpus_documents(corpus=None, limit=None):
    """Documents (bytes) of a corpus (default: the embedded default corpus), at most `limit`."""
    documents = []
    for document in open_corpus(corpus or "default"):
        documents.append(document)
        if limit is not None and len(documents) >= limit:
            break
    return documents


def stand_in_m1(documents):
    """An order-2 Markov model fitted on the documents: M1's stand-in when no --m1 is given (it codes the same
    way, only predicts worse; the JSON says which model was used)."""
    symbols = np.concatenate([np.frombuffer(d, np.uint8).astype(np.int64) for d in documents])
    return MarkovModel.fit(symbols, 2), "order-2 Markov model fitted on the corpus (stand-in for M1; no --m1 given)"


# ------------------------------------------------------------------------------------------------- methods

def parse_methods(names, window_bits, bits_per_token):
    """[(label, method, b, N)] for method names and the Equal-Info / bit-method grids.

    Bit methods (gzip, staticac, ac) take each N; equalinfo takes each (b, N); bytes and spm have no grid."""
    specs = []
    for name in names:
        if name not in methods.METHODS:
            raise AnalysisError(f"unknown method {name!r}; choose from {', '.join(methods.METHODS)}")
        if name in ("bytes", "spm"):
            specs.append((label(name), name, None, None))
        elif name == "equalinfo":
            specs += [(label(name, b, n), name, b, n) for b in window_bits for n in bits_per_token]
        else:
            specs += [(label(name, None, n), name, None, n) for n in bits_per_token]
    return specs


class Tokenizers:
    """The paper's tokenizers over one M1 (or stand-in), a unigram model (StaticAC) and a SentencePiece model.

    tokenize(spec, texts) -> [int64 tokens] per text; for Equal-Info it also keeps each text's windows, so the
    token -> text views (Tables 7, 8) can name the text of every window."""

    def __init__(self, backend, m1_model, unigram, spm_processor=None, precision=14):
        self.backend, self.m1, self.unigram, self.spm = backend, m1_model, unigram, spm_processor
        self.precision = precision

    def method(self, method, b, n):
        if method == "bytes":
            return methods.Bytes()
        if method == "spm":
            if self.spm is None:
                raise AnalysisError("no SentencePiece model")
            return methods.SentencePiece(self.spm)
        if method == "gzip":
            return methods.Gzip(n)
        if method == "staticac":
            return methods.ArithmeticCoded("staticac", self.unigram, n, self.backend, self.precision)
        if method == "ac":
            return methods.ArithmeticCoded("ac", self.m1, n, self.backend, self.precision)
        return methods.EqualInfo(self.m1, b, n, self.backend, self.precision)

    def windows(self, texts, b):
        """Equal-Info windows (ref.equalinfo.Window lists) of many symbol arrays, coded together."""
        return self.backend.equalinfo.encode_windows_batch([np.asarray(t, np.int64) for t in texts], self.m1, b,
                                                           self.precision)

    def tokenize(self, method, b, n, texts):
        if method == "equalinfo":
            from equalinfo.ref.tokens import bits_to_tokens

            return [bits_to_tokens(np.concatenate([w.bits for w in ws]), n) for ws in self.windows(texts, b)]
        coder = self.method(method, b, n)
        return [np.asarray(coder.tokens(np.asarray(t, np.int64)), np.int64) for t in texts]


def spm_processor(path=None, documents=None, vocab_size=1024):
    """A SentencePiece processor from a model file, or trained on `documents`; None (and why) if unavailable."""
    if not methods.sentencepiece_available():
        return None, "the sentencepiece package is not installed (pip install -e '.[spm]')"
    import sentencepiece

    if path is not None:
        try:
            return sentencepiece.SentencePieceProcessor(model_file=str(path)), f"SentencePiece model {path}"
        except (OSError, RuntimeError) as error:
            raise AnalysisError(f"{path}: not a SentencePiece model ({error})") from None
    processor, _ = methods.train_sentencepiece(documents, vocab_size)
    return processor, f"SentencePiece unigram ({processor.get_piece_size()} pieces) trained on the corpus"


def unigram_of(documents):
    symbols = np.concatenate([np.frombuffer(d, np.uint8).astype(np.int64) for d in documents])
    return UnigramModel.fit(symbols)


# ------------------------------------------------------------------------------------------------- outputs

def pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_results(out_dir, name, results, draw):
    """Write out_dir/name.json (results + versions) and out_dir/name.png (draw(plt, path)); returns the lines
    saying what was written (the figure is skipped, with a note, without matplotlib)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = dict(results, versions=versions())
    json_path = out_dir / f"{name}.json"
    write_json(json_path, _jsonable(results))
    lines = [f"wrote {json_path}"]
    plt = pyplot()
    if plt is None:
        lines.append(f"no figure: matplotlib is not installed (pip install -e '.[plot]'); {name}.png skipped")
    else:
        png = out_dir / f"{name}.png"
        draw(plt, png)
        plt.close("all")
        lines.append(f"wrote {png}")
    return lines


def _jsonable(value):
    """NumPy scalars and arrays as plain JSON values (json.dumps refuses them)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def host(array):
    """A backend's array as NumPy (the gpu backend's forward returns CuPy arrays)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def table(headers, rows):
    """A Markdown table as text (also readable on a terminal)."""
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
