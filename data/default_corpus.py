"""The embedded default corpus: English text that ships with Python itself, so the pipeline runs with no download.

What it holds, gathered deterministically:
  * every help topic of `pydoc_data.topics` (the text of the language reference that `help("if")` prints), one
    document per topic;
  * the docstrings of a fixed, sorted list of standard-library modules (MODULES): for each module one document of
    its own docstring followed by a titled section per public function and per small public class, and one document
    per public class with at least MIN_CLASS_BYTES of text (its docstring, then a section per documented public
    method, property or nested routine). Each document starts with its dotted name on a line of its own.
    Docstrings are cleaned with `inspect.cleandoc`, never inherited (`obj.__doc__`, not `inspect.getdoc`), and
    members are visited in sorted name order; only objects whose `__module__` is the module itself count, so
    re-exports are not duplicated.
Documents are then ordered by the SHA-256 of their title: a fixed order that interleaves language-reference topics
and module docs, so that consecutive 128-document groups (data/packing.py) each mix both kinds and a held-out group
looks like the rest of the corpus.

Size on CPython 3.11.7 (Linux): 497 documents, 1,262,844 bytes (about 2,541 bytes per document; C4's average is
2,170), sha256 047dba2ad82bdaccb3f884e5e72214530487168906c3994f05c015fafa9c0386. The corpus depends only on the Python version (docstrings are part of the interpreter and
its library); `info()` records that version, the platform, the modules read or skipped, the document and byte counts
and a SHA-256 so a result can say exactly what it was computed on. Python run with -OO strips docstrings, so the
module refuses to build then (DataError) instead of quietly returning a much smaller corpus.

Modules with import side effects (antigravity, this, tkinter/turtle and other GUI, network clients and servers) are
not in the list; a listed module that fails to import on this interpreter (e.g. a missing optional C extension) is
skipped, and recorded in `info()["skipped_modules"]`.
"""
import functools
import hashlib
import importlib
import inspect
import platform
import sys
import warnings

from equalinfo.data.sources import DataError

__all__ = ["documents", "info", "MODULES", "NAME"]

NAME = "python-docs"

# Pure computation, text, data-structure and file-format modules: importing them has no effect beyond definitions.
MODULES = sorted([
    "abc", "argparse", "array", "ast", "asyncio.events", "asyncio.futures", "asyncio.locks", "asyncio.queues",
    "asyncio.streams", "asyncio.tasks", "atexit", "base64", "binascii", "bisect", "builtins", "bz2", "calendar",
    "cmath", "cmd", "code", "codecs", "codeop", "collections", "collections.abc", "colorsys",
    "concurrent.futures._base", "concurrent.futures.thread", "configparser", "contextlib", "contextvars", "copy",
    "copyreg", "csv", "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email.header",
    "email.headerregistry", "email.message", "email.parser", "email.policy", "email.utils", "enum", "errno",
    "filecmp", "fileinput", "fnmatch", "fractions", "functools", "gc", "getopt", "gettext", "glob", "graphlib",
    "gzip", "hashlib", "heapq", "hmac", "html", "html.parser", "importlib", "inspect", "io", "ipaddress",
    "itertools", "json", "json.decoder", "json.encoder", "keyword", "linecache", "logging", "logging.handlers",
    "lzma", "mailbox", "marshal", "math", "mimetypes", "modulefinder", "netrc", "ntpath", "numbers", "opcode",
    "operator", "optparse", "os", "pathlib", "pkgutil", "plistlib", "posixpath", "pprint", "py_compile", "pyclbr",
    "pydoc", "queue", "quopri", "random", "re", "reprlib", "runpy", "sched", "secrets", "selectors", "shlex",
    "shutil", "sqlite3.dbapi2", "stat", "statistics", "string", "stringprep", "struct", "symtable", "sysconfig",
    "tabnanny", "tarfile", "tempfile", "textwrap", "threading", "timeit", "token", "tokenize", "tomllib", "trace",
    "traceback", "tracemalloc", "types", "typing", "unicodedata", "unittest.case", "unittest.mock", "urllib.parse",
    "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax.saxutils",
    "zipapp", "zipfile", "zipimport", "zlib", "zoneinfo",
])


MIN_CLASS_BYTES = 256  # a class with less text is a section of its module's document, not a document of its own


def _clean(doc):
    """The cleaned docstring, or '' when there is none (or it is not a string)."""
    return inspect.cleandoc(doc).strip() if isinstance(doc, str) else ""


def _public(name):
    return not name.startswith("_")


def _class_text(name, cls):
    """The class docstring, then a section per documented public member; '' when nothing is documented."""
    parts = [_clean(cls.__doc__)]
    for member_name in sorted(vars(cls)):
        if not _public(member_name):
            continue
        member = vars(cls)[member_name]
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if not (inspect.isroutine(member) or isinstance(member, property)):
            continue
        text = _clean(member.__doc__)
        if text:
            parts.append(f"{name}.{member_name}\n\n{text}")
    return "\n\n".join(part for part in parts if part)


def _module_documents(module):
    """[(title, text)] for one module: a document of its docstring followed by its functions and small classes as
    sections, and one document per class whose text is at least MIN_CLASS_BYTES long."""
    name = module.__name__
    sections, documents = [_clean(module.__doc__)], []
    namespace = vars(module)
    for member_name in sorted(namespace):
        obj = namespace[member_name]
        if not _public(member_name) or getattr(obj, "__module__", None) != name:
            continue
        if inspect.isclass(obj):
            text = _class_text(member_name, obj)
            if len(text.encode("utf-8", "surrogatepass")) >= MIN_CLASS_BYTES:
                documents.append((f"{name}.{member_name}", text))
            elif text:
                sections.append(f"{member_name}\n\n{text}")
        elif inspect.isroutine(obj):
            text = _clean(obj.__doc__)
            if text:
                sections.append(f"{member_name}\n\n{text}")
    text = "\n\n".join(section for section in sections if section)
    return ([(name, text)] if text else []) + documents


@functools.lru_cache(maxsize=1)
def _build():
    if sys.flags.optimize >= 2:
        raise DataError("the default corpus needs docstrings, but Python runs with -OO (docstrings stripped); "
                        "run without -OO or give a corpus path")
    from pydoc_data.topics import topics

    titled = [(f"topic {name}", _clean(text)) for name, text in sorted(topics.items())]
    read, skipped = [], []
    for module_name in MODULES:
        with warnings.catch_warnings():  # deprecation warnings of imports and of attribute access (typing.io)
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(module_name)
            except Exception:  # e.g. an optional C extension missing on this build: skip it, and record it
                skipped.append(module_name)
                continue
            read.append(module_name)
            titled.extend(_module_documents(module))
    titled = [(title, text) for title, text in titled if text]
    titled.sort(key=lambda item: (hashlib.sha256(item[0].encode("utf-8")).hexdigest(), item[0]))
    docs = tuple(f"{title}\n\n{text}".encode("utf-8", "surrogatepass") for title, text in titled)
    digest = hashlib.sha256()
    for document in docs:
        digest.update(len(document).to_bytes(8, "little"))
        digest.update(document)
    meta = {"name": NAME, "python_version": platform.python_version(),
            "python_implementation": platform.python_implementation(), "platform": sys.platform,
            "documents": len(docs), "bytes": sum(map(len, docs)), "sha256": digest.hexdigest(),
            "modules": read, "skipped_modules": skipped, "pydoc_topics": len(topics)}
    return docs, meta


def documents():
    """The default corpus: a tuple of documents (bytes), in its fixed order. Built once per process (about 1 s)."""
    return _build()[0]


def info():
    """What the corpus is: name, Python version and implementation, platform, documents, bytes, sha256 (over each
    document's 8-byte little-endian length followed by its bytes, in order), modules read and skipped."""
    meta = _build()[1]
    return {key: list(value) if isinstance(value, list) else value for key, value in meta.items()}
