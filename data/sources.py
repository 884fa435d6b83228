"""Text sources: readers that stream documents, as bytes, from C4 shards, JSONL, plain text, directories and globs.

Every reader is a generator of `bytes` documents, so a corpus of any size streams through in constant memory (only a
"one document per file" text file is read whole, because it is one document).

Formats (picked from the file name when `format="auto"`):
    json lines   .json .jsonl .ndjson, optionally gzipped (.json.gz ...): one JSON object per line, the document in
                 a text field ("text" by default; C4's own shards, c4-*.json.gz, are exactly this). Blank lines are
                 skipped. An empty text ("") is kept as an empty document: it is a record of the corpus.
    plain text   .txt .text .md .rst, optionally gzipped: one document per file (`text_split="file"`, empty files
                 give no document) or one per block of lines separated by blank lines (`text_split="blocks"`; a
                 blank line is one holding only ASCII whitespace; a block keeps its lines exactly, line endings
                 included, except the newline that ends its last line), or cut into pieces of about PIECE_BYTES
                 (`text_split="pieces"`, below: what a single book or stdin becomes as a corpus).
Pieces: a corpus is split into train and validation by whole documents, so one text file, one document, can never
be split. "pieces" cuts it into documents of consecutive paragraphs: lines are gathered until the piece holds at
least PIECE_BYTES (2,048) bytes and ends with a blank line (a paragraph break), and the piece ends there. Paragraphs
rather than fixed-size cuts, so that no word, UTF-8 character or sentence is cut by an EOS that was never in the
text; about 2 KB so that a book gives hundreds of documents (the split needs packing.group_size + 1 of them) while
the EOS added per piece stays near 0.05% of the symbols. A piece never exceeds PIECE_LIMIT (4 x PIECE_BYTES): a text
without blank lines is cut at the line end before that, a single longer line at a UTF-8 character boundary.
Every byte is kept, blank lines included: the pieces joined are the file. Pieces must be UTF-8 (a book is text;
a DataError names the first invalid byte's offset).
A directory is walked recursively in sorted order of relative path (hidden names, starting with ".", are skipped);
inside a directory only files with the suffixes above are read, so checksums or READMEs beside C4 shards are not
swallowed (with an explicit `format` every file is read). A glob pattern (any of *?[ in the path, ** allowed) reads
its matches in sorted order; a matched file is read whatever its suffix (text unless it looks like JSON lines).
A list of sources is read in the order given.

Bytes, never lost: a text file is read as raw bytes, valid UTF-8 or not. A JSON line that is valid UTF-8 gives the
UTF-8 encoding of its text; a line that is not valid UTF-8 is decoded with Python's "surrogateescape" and the text
encoded back the same way, so every invalid byte inside the text comes back byte for byte. (On such a line, and only
there, a JSON escape \\udc80-\\udcff reads as the raw byte 0x80-0xff: the two cannot be told apart.) A JSON escape of
a lone surrogate that has no byte form (e.g. "\\ud800" on a valid line) is an error, not a silent replacement.

All problems raise `DataError` (a ValueError) whose message names the file, and the line for JSON lines: a missing
path, a glob or directory with nothing to read, an empty corpus, a malformed JSON line, a line without the text
field (or whose field is not a string), an unreadable or truncated gzip file (for JSON lines, the line
where reading failed: the one after the last line read whole).
"""
import glob
import gzip
import json
import os
import zlib
from pathlib import Path

__all__ = ["DataError", "iter_documents", "list_files", "read_json_lines", "read_text", "file_format",
           "JSON_SUFFIXES", "TEXT_SUFFIXES", "text_pieces", "PIECE_BYTES"]

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst")
FORMATS = ("auto", "json", "text")
TEXT_SPLITS = ("file", "blocks", "pieces")
PIECE_BYTES = 2048  # a piece ends at the first paragraph break after this many bytes (module docstring)
PIECE_LIMIT = 4 * PIECE_BYTES  # ... or at a line end after this many, when the text has no paragraph breaks


class DataError(ValueError):
    """A corpus, a document source or a dataset on disk cannot be used; the message says why and where."""


def _base_suffix(path):
    """The format suffix of a path, looking through a trailing .gz: 'a.json.gz' -> '.json'."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return os.path.splitext(name)[1]


def file_format(path, default="text"):
    """'json' or 'text' from the file name; `default` (None: not recognised) for an unknown suffix."""
    suffix = _base_suffix(path)
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return default


def _open_binary(path):
    """A binary stream of the file's content, gunzipped when the name ends in .gz."""
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


class _GzipGuard:
    """Turns gzip/zlib failures while reading `path` into DataError (they surface mid-iteration, not at open)."""

    def __init__(self, path):
        self.path = path
        self.line = None  # the caller sets the last line read whole (JSON lines), so the error names the next one

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if isinstance(error, (gzip.BadGzipFile, EOFError, zlib.error)):
            where = "" if self.line is None else f" at line {self.line + 1}"
            raise DataError(f"{self.path}: unreadable gzip file (corrupt or truncated){where}: {error}") from None
        return False


def read_json_lines(path, text_field="text"):
    """Documents (bytes) of a JSON-lines file (C4 shard, JSONL; gzipped if named .gz), one per non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with _GzipGuard(path) as guard, _open_binary(path) as stream:
        guard.line = 0
        for number, raw in enumerate(stream, start=1):
            guard.line = number
            if not raw.strip():
                continue
            yield _json_line_document(raw, path, number, text_field)


def _json_line_document(raw, path, number, text_field):
    try:
        line, errors = raw.decode("utf-8"), "strict"
    except UnicodeDecodeError:
        line, errors = raw.decode("utf-8", "surrogateescape"), "surrogateescape"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {number}: malformed JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
    if text_field not in record:
        fields = ", ".join(sorted(map(repr, record))) or "none"
        raise DataError(f"{path}, line {number}: no {text_field!r} field (fields: {fields})")
    text = record[text_field]
    if not isinstance(text, str):
        raise DataError(f"{path}, line {number}: field {text_field!r} is a {type(text).__name__}, not a string")
    try:
        return text.encode("utf-8", errors)
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise DataError(f"{path}, line {number}: field {text_field!r} holds a lone surrogate U+{code:04X} "
                        f"(a JSON escape) that has no UTF-8 encoding") from None


def read_text(path, text_split="file"):
    """Documents (bytes) of a plain-text file (gunzipped if named .gz): the whole file, or each blank-line block."""
    if text_split not in TEXT_SPLITS:
        raise DataError(f"text_split must be one of {TEXT_SPLITS}, got {text_split!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with _GzipGuard(path), _open_binary(path) as stream:
        if text_split == "file":
            data = stream.read()
            if data:
                yield data
            return
        if text_split == "pieces":
            yield from text_pieces(stream, path)
            return
        block = []
        for line in stream:
            if line.strip():
                block.append(line)
            elif block:
                yield _join_block(block)
                block = []
        if block:
            yield _join_block(block)


def _join_block(lines):
    """A block's lines joined exactly, minus the line ending of the last line (\\n or \\r\\n)."""
    last = lines[-1]
    if last.endswith(b"\r\n"):
        last = last[:-2]
    elif last.endswith(b"\n"):
        last = last[:-1]
    return b"".join(lines[:-1]) + last


def text_pieces(lines, name):
    """Documents (bytes) of a UTF-8 text given as an iterable of lines (a binary stream): paragraphs gathered into
    pieces of about PIECE_BYTES (module docstring). `name` labels the DataError of a non-UTF-8 text."""
    piece, size, offset = [], 0, 0
    for line in lines:
        _check_utf8(line, name, offset)
        offset += len(line)
        for part in _utf8_parts(line, PIECE_LIMIT):
            if piece and size + len(part) > PIECE_LIMIT:  # no paragraph break in reach: end at this line end
                yield b"".join(piece)
                piece, size = [], 0
            piece.append(part)
            size += len(part)
            if size >= PIECE_BYTES and not part.strip():  # a blank line past the target: a paragraph ends
                yield b"".join(piece)
                piece, size = [], 0
    if piece:
        yield b"".join(piece)


def _check_utf8(line, name, offset):
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: not UTF-8 text (byte 0x{line[error.start]:02x} at offset {offset + error.start} "
                        f"is invalid); convert it first, e.g. iconv -f latin1 -t utf-8") from None


def _utf8_parts(line, limit):
    """A line cut into parts of at most `limit` bytes, each ending before a UTF-8 character start (a lead byte is
    anything but 0b10xxxxxx), so every part is valid UTF-8 on its own."""
    while len(line) > limit:
        cut = limit
        while line[cut] & 0xC0 == 0x80:
            cut -= 1
        yield line[:cut]
        line = line[cut:]
    if line:
        yield line


def _is_glob(text):
    return any(char in text for char in "*?[")


def _walk(directory):
    """Files under `directory`, recursively, sorted by relative path, hidden names skipped."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            if not name.startswith("."):
                found.append(Path(root) / name)
    return sorted(found, key=lambda path: path.relative_to(directory).as_posix())


def list_files(source, format="auto"):
    """[(path, format)] in reading order for a source (file, directory, glob, or a list of them); DataError if a
    path is missing or a directory or glob gives nothing to read."""
    if format not in FORMATS:
        raise DataError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(source, (list, tuple)):
        if not source:
            raise DataError("empty list of sources")
        return [item for part in source for item in list_files(part, format)]
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        files = _walk(path)
        if format == "auto":
            chosen = [(file, file_format(file, None)) for file in files]
            chosen = [(file, kind) for file, kind in chosen if kind is not None]
        else:
            chosen = [(file, format) for file in files]
        if not chosen:
            raise DataError(f"{path}: directory holds no readable files (suffixes read: "
                            f"{', '.join(JSON_SUFFIXES + TEXT_SUFFIXES)}, optionally .gz)")
        return chosen
    if path.is_file():
        return [(path, file_format(path) if format == "auto" else format)]
    if _is_glob(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise DataError(f"{text}: no files match this pattern")
        chosen = []
        for match in matches:
            chosen.extend(list_files(match, format) if os.path.isdir(match) else
                          [(Path(match), file_format(match) if format == "auto" else format)])
        return chosen
    raise DataError(f"{text}: no such file or directory")


def iter_documents(source, format="auto", text_field="text", text_split="file"):
    """Documents (bytes) of a source: a file, a directory, a glob pattern, or a list of these (see the module
    docstring for formats and order). Raises DataError on bad input, and at the end if there was no document."""
    if text_split not in TEXT_SPLITS:
        raise DataError(f"text_split must be one of {TEXT_SPLITS}, got {text_split!r}")
    files = list_files(source, format)
    count = 0
    for path, kind in files:
        reader = read_json_lines(path, text_field) if kind == "json" else read_text(path, text_split)
        for document in reader:
            count += 1
            yield document
    if count == 0:
        names = ", ".join(str(path) for path, _ in files[:3]) + (" ..." if len(files) > 3 else "")
        raise DataError(f"empty corpus: no documents in {names}")
