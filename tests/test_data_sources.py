"""Checks of data/sources.py and data/default_corpus.py: every reader on small files, bytes kept exactly, the errors."""
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from equalinfo.data import default_corpus
from equalinfo.data.corpus import open_corpus
from equalinfo.data.sources import (PIECE_BYTES, PIECE_LIMIT, DataError, iter_documents, list_files, read_json_lines,
                                     read_text, text_pieces)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Hello, world.", "Ünïcödé — 日本語 ✓", "", "line one\nline two\n"]


def write_jsonl(path, texts, field="text", opener=open, extra=None):
    with opener(path, "wt", encoding="utf-8") as stream:
        for text in texts:
            stream.write(json.dumps({field: text, "url": "http://x", **(extra or {})}) + "\n")
    return path


def test_c4_json_and_json_gz(tmp_path):
    plain = write_jsonl(tmp_path / "c4-train.00000-of-01024.json", TEXTS)
    zipped = write_jsonl(tmp_path / "c4-train.00001-of-01024.json.gz", TEXTS[::-1], opener=gzip.open)
    expected = [text.encode("utf-8") for text in TEXTS]
    assert list(iter_documents(plain)) == expected
    assert list(iter_documents(zipped)) == expected[::-1]
    assert list(iter_documents(tmp_path)) == expected + expected[::-1]  # sorted: shard 00000 then 00001


def test_jsonl_custom_field_and_blank_lines(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"body": "a"}\n\n   \n{"body": "b", "text": "ignored"}\n', encoding="utf-8")
    assert list(read_json_lines(path, "body")) == [b"a", b"b"]
    assert list(iter_documents(path, text_field="body")) == [b"a", b"b"]


def test_plain_text_file_and_blocks(tmp_path):
    path = tmp_path / "doc.txt"
    content = b"\n\nFirst block\nstill first\n\n \t\nSecond\r\nblock\r\n\r\nThird"
    path.write_bytes(content)
    assert list(iter_documents(path)) == [content]  # one document per file, exactly the file
    assert list(iter_documents(path, text_split="blocks")) == [b"First block\nstill first", b"Second\r\nblock",
                                                               b"Third"]
    gz = tmp_path / "doc.txt.gz"
    gz.write_bytes(gzip.compress(content))
    assert list(read_text(gz, "blocks")) == [b"First block\nstill first", b"Second\r\nblock", b"Third"]


def test_non_utf8_bytes_kept(tmp_path):
    raw = b"caf\xe9 \xff\xfe ok \xc3\xa9 \x80"
    text_file = tmp_path / "latin1.txt"
    text_file.write_bytes(raw)
    assert list(iter_documents(text_file)) == [raw]
    # A JSON line whose string holds invalid UTF-8 bytes: the bytes come back exactly.
    json_file = tmp_path / "bad.jsonl"
    json_file.write_bytes(b'{"text": "' + raw + b'"}\n{"text": "fine"}\n')
    assert list(iter_documents(json_file)) == [raw, b"fine"]


def test_lone_surrogate_escape_is_an_error(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "a\\ud800b"}\n', encoding="ascii")
    with pytest.raises(DataError, match=r"s\.jsonl, line 2: .*lone surrogate U\+D800"):
        list(iter_documents(path))


def test_directory_and_glob_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_bytes(b"A")
    (tmp_path / "b" / "c.txt").write_bytes(b"C")
    write_jsonl(tmp_path / "b" / "a.jsonl", ["BA"])
    (tmp_path / "notes.csv").write_bytes(b"skipped: unknown suffix in a directory")
    (tmp_path / ".hidden.txt").write_bytes(b"skipped: hidden")
    assert list(iter_documents(tmp_path)) == [b"A", b"BA", b"C"]
    assert [path.name for path, _ in list_files(tmp_path)] == ["a.txt", "a.jsonl", "c.txt"]
    assert list(iter_documents(str(tmp_path / "**" / "*.txt"))) == [b"A", b"C"]
    assert list(iter_documents(str(tmp_path / "*.csv"))) == [b"skipped: unknown suffix in a directory"]
    assert list(iter_documents([tmp_path / "b" / "c.txt", tmp_path / "a.txt"])) == [b"C", b"A"]


def test_streams_lazily(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", ["first"])
    with open(path, "a", encoding="utf-8") as stream:
        stream.write("{broken\n")
    documents = iter_documents(path)
    assert next(documents) == b"first"  # the bad line is only reached when iteration gets there
    with pytest.raises(DataError):
        next(documents)


@pytest.mark.parametrize("content, message", [
    (b'{"text": "a"}\n{"text": "b",}\n', r"x\.jsonl, line 2: malformed JSON"),
    (b'{"text": "a"}\n\n{"body": "b"}\n', r"x\.jsonl, line 3: no 'text' field \(fields: 'body'\)"),
    (b'{"text": 5}\n', r"x\.jsonl, line 1: field 'text' is a int, not a string"),
    (b'["text"]\n', r"x\.jsonl, line 1: expected a JSON object, got list"),
])
def test_json_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        list(iter_documents(path))


def test_path_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        list(iter_documents(tmp_path / "missing.json"))
    with pytest.raises(DataError, match="no files match"):
        list(iter_documents(str(tmp_path / "*.json")))
    (tmp_path / "data.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="directory holds no readable files"):
        list(iter_documents(tmp_path))
    with pytest.raises(DataError, match="format must be"):
        list(iter_documents(tmp_path, format="xml"))
    assert issubclass(DataError, ValueError)


def test_empty_corpus(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n")
    with pytest.raises(DataError, match="empty corpus"):
        list(iter_documents(tmp_path))
    (tmp_path / "spaces.txt").write_bytes(b"\n  \n")
    with pytest.raises(DataError, match="empty corpus"):
        list(iter_documents(tmp_path / "spaces.txt", text_split="blocks"))


def test_bad_gzip(tmp_path):
    fake = tmp_path / "fake.json.gz"
    fake.write_bytes(b'{"text": "not gzipped"}\n')
    with pytest.raises(DataError, match="fake.json.gz: unreadable gzip"):
        list(iter_documents(fake))
    truncated = tmp_path / "cut.json.gz"
    truncated.write_bytes(gzip.compress(b'{"text": "a"}\n' * 1000)[:60])
    with pytest.raises(DataError, match="cut.json.gz: unreadable gzip"):
        list(iter_documents(truncated))


def test_default_corpus_non_trivial_and_consistent():
    documents = default_corpus.documents()
    info = default_corpus.info()
    assert info["documents"] == len(documents) > 300
    assert info["bytes"] == sum(map(len, documents)) > 1_000_000
    assert all(isinstance(document, bytes) and document for document in documents)
    assert len(set(documents)) == len(documents)
    assert info["python_version"] and len(info["sha256"]) == 64
    joined = b"\n".join(documents)
    assert b"The \"if\" statement" in joined or b"if_stmt" in joined  # pydoc help topic
    assert b"json.decoder.JSONDecoder" in joined  # a stdlib class docstring
    assert default_corpus.documents() is documents  # built once per process


def test_default_corpus_deterministic_across_processes():
    """Two fresh interpreters (different hash seeds) build the same corpus as this process."""
    code = "from equalinfo.data import default_corpus as d; print(d.info()['sha256'], d.info()['documents'])"
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                check=True)
        outputs.add(result.stdout.strip())
    info = default_corpus.info()
    assert outputs == {f"{info['sha256']} {info['documents']}"}


def test_open_corpus_reiterable_and_described(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", ["one", "two"])
    corpus = open_corpus(path)
    assert list(corpus) == list(corpus) == [b"one", b"two"]
    described = corpus.describe()
    assert described["files"] == [{"path": str(path), "format": "json", "size": path.stat().st_size}]
    default = open_corpus("default")
    assert default.is_default and open_corpus(None).is_default
    assert default.describe()["sha256"] == default_corpus.info()["sha256"]
    assert next(iter(default)) == default_corpus.documents()[0]
    with pytest.raises(DataError, match="no such file"):
        open_corpus(tmp_path / "missing")  # at once, not when first iterated


def test_single_text_file_is_cut_into_paragraph_pieces_that_join_back(tmp_path):
    """A book becomes documents of whole paragraphs of about PIECE_BYTES, every byte kept, the same every time."""
    paragraphs = [(f"Paragraph {i}: " + "words and more words " * (3 + i % 40)).encode() for i in range(300)]
    text = b"\n\n".join(paragraphs) + b"\n"
    path = tmp_path / "book.txt"
    path.write_bytes(text)
    corpus = open_corpus(path)
    pieces = list(corpus)
    assert b"".join(pieces) == text and list(corpus) == pieces  # nothing lost; deterministic
    assert corpus.describe()["text_split"] == "pieces" and len(pieces) > 10
    for piece in pieces[:-1]:
        assert PIECE_BYTES <= len(piece) < PIECE_BYTES + 1000 and piece.endswith(b"\n\n")  # ends at a paragraph
    (tmp_path / "other.txt").write_bytes(b"a second file")
    assert open_corpus(tmp_path).describe()["text_split"] == "file"  # several files: one document per file


def test_pieces_of_a_text_without_blank_lines_cut_at_lines_then_characters():
    lines = [b"x" * 100 + b"\n"] * 200  # no paragraph break: cut at a line end at PIECE_LIMIT
    pieces = list(text_pieces(lines, "t"))
    assert b"".join(pieces) == b"".join(lines) and all(len(p) <= PIECE_LIMIT for p in pieces) and len(pieces) > 1
    line = "\u00e9\u2014".encode() * 10_000  # one long line of 2- and 3-byte characters
    pieces = list(text_pieces([line], "t"))
    assert b"".join(pieces) == line and len(pieces) > 1
    assert all(len(p) <= PIECE_LIMIT and p.decode("utf-8") for p in pieces)  # no character cut


def test_pieces_refuse_non_utf8_and_stdin_is_a_corpus(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xc3\xa9\n" + b"na\xefve\n")
    with pytest.raises(DataError, match=r"latin1.txt: not UTF-8 text \(byte 0xef at offset 8"):
        list(open_corpus(path))
    text = b"one paragraph\n\nanother\n"
    stdin = open_corpus_stdin(text)
    assert list(stdin) == list(stdin) == [text] and stdin.describe()["name"] == "stdin"
    with pytest.raises(DataError, match="nothing on stdin"):
        open_corpus_stdin(b"")


def open_corpus_stdin(data):
    import io

    from equalinfo.data.corpus import Corpus

    return Corpus("-", stdin=io.BytesIO(data))
