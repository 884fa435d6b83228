"""Family `packing`: documents -> packed examples -> fixed-length rows (data.packing and train.build.fit_row).

The paper's pipeline at toy sizes: documents in groups of GROUP_SIZE, every VALIDATION_EVERY-th group (from group
0) on the validation side, each group one sequence of bytes with EOS (256) after every document, cut from its start
into examples of EXAMPLE_LENGTH symbols (the tail kept as a shorter example), then every example's tokens (here the
bytes method: one token per symbol) trimmed or padded to ROW_LENGTH with token 0 at weight 0.
"""
import numpy as np

NAME = "packing"
GROUP_SIZE, EXAMPLE_LENGTH, VALIDATION_EVERY, ROW_LENGTH = 3, 16, 2, 14
DOCUMENTS = [b"Hello, world.", b"", "na\u00efve caf\u00e9 \u2615".encode("utf-8"), b"a" * 20,
             b"The quick brown fox jumps over the lazy dog.", b"\x00\xff\xfe raw bytes", b"x",
             b"Seven documents, then an eighth", b"and a ninth: 12345"]


def build():
    from equalinfo.data.packing import iter_examples
    from equalinfo.train.build import fit_row

    arrays = {"documents": np.frombuffer(b"".join(DOCUMENTS), dtype=np.uint8),
              "document_lengths": np.array([len(d) for d in DOCUMENTS])}
    splits = {}
    for split in ("train", "validation"):
        examples = list(iter_examples(DOCUMENTS, split, GROUP_SIZE, EXAMPLE_LENGTH, VALIDATION_EVERY))
        arrays[f"{split}.symbols"] = np.concatenate([e.symbols for e in examples]).astype(np.int64)
        rows = [fit_row(e.symbols.astype(np.int64), ROW_LENGTH) for e in examples]
        arrays[f"{split}.rows"] = np.stack([r for r, _ in rows]).astype(np.int64)
        arrays[f"{split}.weights"] = np.stack([w for _, w in rows])
        splits[split] = {"groups": [e.group for e in examples], "indices": [e.index for e in examples],
                         "lengths": [e.n_symbols for e in examples]}
    description = {
        "family": NAME,
        "settings": {"group_size": GROUP_SIZE, "example_length": EXAMPLE_LENGTH,
                     "validation_every": VALIDATION_EVERY, "row_length": ROW_LENGTH, "eos": 256},
        "arrays": {"documents": "|u1 every document's bytes, concatenated",
                   "document_lengths": "<i8 [n_documents]",
                   "SPLIT.symbols": "<i8 the side's examples' symbols, concatenated (lengths below)",
                   "SPLIT.rows": "<i8 [n_examples, row_length] tokens trimmed/padded with 0",
                   "SPLIT.weights": "<f4 [n_examples, row_length] 1 on kept tokens, 0 on padding"},
        "splits": splits,
    }
    return description, arrays


def documents_of(arrays):
    ends = np.cumsum(arrays["document_lengths"])
    return [arrays["documents"][end - length:end].tobytes() for end, length in zip(ends, arrays["document_lengths"])]


def check(description, arrays, impl, tally):
    from equalinfo.data.packing import examples_to_documents, iter_examples
    from equalinfo.train.build import fit_row

    settings, documents = description["settings"], documents_of(arrays)
    for split, want in description["splits"].items():
        where = f"{split} side"
        examples = tally.call(where, "iter_examples", lambda: list(iter_examples(
            documents, split, settings["group_size"], settings["example_length"], settings["validation_every"])))
        if examples is None:
            continue
        tally.same([e.group for e in examples], want["groups"], where, "example groups")
        tally.same([e.index for e in examples], want["indices"], where, "example indices")
        tally.same([e.n_symbols for e in examples], want["lengths"], where, "example lengths")
        symbols = np.concatenate([e.symbols for e in examples]) if examples else np.zeros(0, np.int64)
        tally.same(symbols, arrays[f"{split}.symbols"], where, "example symbols")
        rows = [fit_row(np.asarray(e.symbols, np.int64), settings["row_length"]) for e in examples]
        tally.same(np.stack([r for r, _ in rows]), arrays[f"{split}.rows"], where, "trimmed/padded rows")
        tally.same(np.stack([w for _, w in rows]).astype(np.float32), arrays[f"{split}.weights"], where,
                   "row weights")
        size, every = settings["group_size"], settings["validation_every"]
        on_side = [document for start in range(0, len(documents), size)
                   if ((start // size) % every == 0) == (split == "validation")
                   for document in documents[start:start + size]]
        back = tally.call(where, "examples_to_documents", examples_to_documents, examples)
        if back is not None:
            tally.expect(back == on_side, where, "documents unpacked from the examples differ from the side's")


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

SIDE_ARRAYS = ("symbols", "rows", "weights")  # SPLIT.KEY arrays, answered under the same names
SIDE_LISTS = ("groups", "indices", "lengths")  # JSON lists of each side, answered as SPLIT.KEY


def request(description, arrays):
    """(description, arrays, expected): the documents and settings only; the answers are SPLIT.KEY for each side
    and KEY in SIDE_ARRAYS + SIDE_LISTS."""
    asked = {key: arrays[key] for key in ("documents", "document_lengths")}
    expected = {}
    for split, lists in description["splits"].items():
        expected.update({f"{split}.{key}": arrays[f"{split}.{key}"] for key in SIDE_ARRAYS})
        expected.update({f"{split}.{key}": np.array(lists[key]) for key in SIDE_LISTS})
    asked_description = {key: value for key, value in description.items() if key != "splits"}
    asked_description["sides"] = list(description["splits"])
    return asked_description, asked, expected


def answer(description, arrays, impl):
    from equalinfo.data.packing import iter_examples
    from equalinfo.train.build import fit_row

    settings, documents, answers = description["settings"], documents_of(arrays), {}
    for split in description["sides"]:
        examples = list(iter_examples(documents, split, settings["group_size"], settings["example_length"],
                                      settings["validation_every"]))
        rows = [fit_row(np.asarray(e.symbols, np.int64), settings["row_length"]) for e in examples]
        answers.update({f"{split}.symbols": np.concatenate([e.symbols for e in examples]),
                        f"{split}.rows": np.stack([r for r, _ in rows]),
                        f"{split}.weights": np.stack([w for _, w in rows]),
                        f"{split}.groups": [e.group for e in examples],
                        f"{split}.indices": [e.index for e in examples],
                        f"{split}.lengths": [e.n_symbols for e in examples]})
    return answers
