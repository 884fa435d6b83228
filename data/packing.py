"""The paper's packing of documents into fixed-size examples (docs/paper.md §1.7), with a train/validation split.

The pipeline, all streaming (documents go through in constant memory, one group at a time):
  1. documents are taken in corpus order in groups of `group_size` consecutive documents (128 in the paper; the last
     group of a corpus may be smaller);
  2. each group has one side, fixed by its index alone: group g is validation when g % validation_every == 0
     (every 10th group by default, the first one included, so any corpus with at least one document has a
     validation side), training otherwise; `validation_every=None` puts every group on the training side (for a
     corpus whose validation data comes from elsewhere, like C4's own validation split). The split never depends on
     the seed, so runs with different seeds are evaluated on the same validation documents, and no byte of a
     validation document is in any training example (a document lies wholly in one group);
  3. a group becomes one symbol sequence: each document's bytes (ids 0-255) followed by EOS (256);
  4. the sequence is cut into examples of `example_length` symbols (10,240 in the paper), from its start; the tail
     that remains (shorter than example_length, never empty) is kept as a last, shorter example of the group, as the
     paper keeps (and pads) the tail of each concatenation. Examples never span two groups.
The example length counts symbols, EOS included: the paper's "10,240 bytes" is 10,240 byte-level ids of a sequence
that has EOS ids in it. Each example reports `n_symbols` (its length: the paper's byte count, EOS counted as one
byte, which is what its compression ratios divide) and `n_bytes` (the strict count of text bytes, EOS excluded).

Shuffling is a separate, seeded step (`shuffle`, or `buffered_shuffle` for streams, or the seeded batch order of
data/shards.py) with a `numpy.random.Generator`; nothing here touches global random state. Every example carries
(group, index) so shuffled examples can be put back in corpus order (`examples_to_documents`), and the corpus index of
the document its first symbol belongs to (`document`), which M2's evaluation clusters its standard error by
(report/uncertainty.py: rows of one document are not independent evidence).
"""
from dataclasses import dataclass

import numpy as np

from equalinfo.ref.symbols import EOS, symbols_to_documents, text_to_bytes

__all__ = ["Example", "GROUP_SIZE", "EXAMPLE_LENGTH", "VALIDATION_EVERY", "SPLITS", "group_documents", "group_split",
           "group_symbols", "cut", "iter_examples", "iter_all_examples", "shuffle", "draw", "buffered_shuffle",
           "document_bytes", "examples_to_documents"]

GROUP_SIZE = 128
EXAMPLE_LENGTH = 10_240
VALIDATION_EVERY = 10
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class Example:
    """One packed example: `symbols` int16 (or the dtype asked for) [n_symbols <= example_length], ids 0-256.

    group: index of its document group in the corpus; index: its position within the group's sequence (0, 1, ...).
    document: the corpus index of the document holding its first symbol (None for an example made by hand).
    n_bytes: text bytes in it (symbols other than EOS); n_documents_ended: EOS symbols in it.
    """
    symbols: np.ndarray
    group: int
    index: int
    split: str
    document: int = None

    @property
    def n_symbols(self):
        return int(len(self.symbols))

    @property
    def n_documents_ended(self):
        return int(np.count_nonzero(self.symbols == EOS))

    @property
    def n_bytes(self):
        return self.n_symbols - self.n_documents_ended


def _check_positive(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def group_documents(documents, group_size=GROUP_SIZE):
    """Lists of `group_size` consecutive documents (bytes; str is UTF-8 encoded), the last possibly shorter."""
    _check_positive("group_size", group_size)
    group = []
    for document in documents:
        group.append(text_to_bytes(document))
        if len(group) == group_size:
            yield group
            group = []
    if group:
        yield group


def group_split(group, validation_every=VALIDATION_EVERY):
    """'validation' or 'train' for group index `group` (see the module docstring: every validation_every-th group,
    starting with group 0; None: always 'train')."""
    if validation_every is None:
        return "train"
    _check_positive("validation_every", validation_every)
    return "validation" if group % validation_every == 0 else "train"


def group_symbols(group):
    """Symbols of a group of documents: each document's bytes then EOS, concatenated. uint16 [sum(len + 1)]."""
    total = sum(len(document) + 1 for document in group)
    symbols = np.empty(total, dtype=np.uint16)
    position = 0
    for document in group:
        symbols[position:position + len(document)] = np.frombuffer(document, dtype=np.uint8)
        position += len(document)
        symbols[position] = EOS
        position += 1
    return symbols


def cut(symbols, example_length=EXAMPLE_LENGTH):
    """Consecutive pieces of `example_length` symbols, the last one (the tail) shorter if the length is not a
    multiple. Views of `symbols`; [] for an empty input."""
    _check_positive("example_length", example_length)
    return [symbols[start:start + example_length] for start in range(0, len(symbols), example_length)]


def iter_examples(documents, split="train", group_size=GROUP_SIZE, example_length=EXAMPLE_LENGTH,
                  validation_every=VALIDATION_EVERY, dtype=np.int16):
    """Examples of one side ('train' or 'validation') of a corpus, in corpus order (group, then index).

    Reading the other side's groups costs only their grouping, not their packing. Call it once per side on the same
    documents (a re-iterable, e.g. a list, or a fresh `iter_documents(...)` generator each time).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or np.iinfo(dtype).max < EOS:
        raise ValueError(f"dtype {dtype} cannot hold symbols 0-{EOS}")
    _check_positive("example_length", example_length)
    for group_index, group in enumerate(group_documents(documents, group_size)):
        if group_split(group_index, validation_every) == split:
            yield from _group_examples(group, group_index, split, group_size, example_length, dtype)


def iter_all_examples(documents, group_size=GROUP_SIZE, example_length=EXAMPLE_LENGTH,
                      validation_every=VALIDATION_EVERY, dtype=np.int16):
    """Examples of both sides in one pass over the documents, in corpus order (group, then index); each example's
    `split` says its side. The same examples as iter_examples(documents, side) for each side: for a source that is
    costly to read twice (data/example_store.py streams a large corpus into a store in one pass)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or np.iinfo(dtype).max < EOS:
        raise ValueError(f"dtype {dtype} cannot hold symbols 0-{EOS}")
    _check_positive("example_length", example_length)
    for group_index, group in enumerate(group_documents(documents, group_size)):
        split = group_split(group_index, validation_every)
        yield from _group_examples(group, group_index, split, group_size, example_length, dtype)


def _group_examples(group, group_index, split, group_size, example_length, dtype):
    """The examples of one group of documents (module docstring, steps 3-4)."""
    symbols = group_symbols(group)
    # document of each example's first symbol: the group's first document + the EOS ids before that symbol
    ended_before = np.concatenate([[0], np.cumsum(symbols == EOS)])  # [len + 1]
    for index, piece in enumerate(cut(symbols, example_length)):
        document = group_index * group_size + int(ended_before[index * example_length])
        yield Example(piece.astype(dtype), group_index, index, split, document)


def shuffle(examples, seed):
    """A list of the examples in a random order drawn from `seed` (numpy Generator; same seed, same order)."""
    examples = list(examples)
    order = np.random.default_rng(seed).permutation(len(examples))
    return [examples[i] for i in order]


def draw(examples, count, seed):
    """`count` examples drawn without replacement from all of `examples` by `seed`, in the drawn order: the first
    `count` of shuffle(examples, seed). Taking the first N of a side in corpus order reads a few documents of one
    source; a draw reads the whole side, and any prefix of it is itself a draw (so eval_rows < count stays fair)."""
    return shuffle(examples, seed)[:count]


def buffered_shuffle(items, buffer_size, seed):
    """Streaming shuffle (as tf.data does): keep `buffer_size` items, emit a random one of them as each new item
    arrives, then drain the buffer in random order. Deterministic for a given seed and input order; a bigger
    buffer mixes more. Memory: buffer_size items."""
    _check_positive("buffer_size", buffer_size)
    rng = np.random.default_rng(seed)
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        slot = int(rng.integers(buffer_size))
        yield buffer[slot]
        buffer[slot] = item
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]


def document_bytes(examples):
    """{document: text bytes} of examples that know their document (Example.document): an example's symbols
    before its first EOS belong to its document, each later EOS starts the next one. EOS ids are not counted."""
    counts = {}
    for example in examples:
        if example.document is None:
            raise ValueError("document_bytes needs examples that know their document (data.packing.iter_examples)")
        symbols = np.asarray(example.symbols)
        ends = np.flatnonzero(symbols == EOS)
        lengths = np.diff(np.concatenate([[-1], ends, [len(symbols)]])) - 1  # [EOS ids + 1] text bytes between
        for offset, length in enumerate(lengths):
            if length:
                counts[example.document + offset] = counts.get(example.document + offset, 0) + int(length)
    return counts


def examples_to_documents(examples):
    """Documents (bytes) of examples, in any order: sorted back by (group, index), each group's symbols joined and
    split at EOS. The inverse of `iter_examples` on one side."""
    ordered = sorted(examples, key=lambda example: (example.group, example.index))
    documents, group, parts = [], None, []
    for example in ordered + [None]:
        if example is None or example.group != group:
            if parts:
                documents.extend(symbols_to_documents(np.concatenate(parts).astype(np.int64)))
            parts = []
            group = None if example is None else example.group
        if example is not None:
            parts.append(np.asarray(example.symbols))
    return documents
