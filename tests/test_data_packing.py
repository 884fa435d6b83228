"""Checks of data/packing.py: EOS placement, example sizes, the split, seeded shuffling, round trips to documents."""
import numpy as np
import pytest

from equalinfo.data import packing
from equalinfo.data.default_corpus import documents as default_documents
from equalinfo.ref.symbols import EOS


def corpus(n=53, seed=0):
    """Random documents of varied length (some empty, some longer than an example), all 256 byte values used."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 90, n)
    lengths[::7] = 0
    lengths[3] = 300
    return [rng.integers(0, 256, size).astype(np.uint8).tobytes() for size in lengths]


def test_group_symbols_eos_after_each_document():
    group = [b"ab", b"", b"\xff\x00c"]
    symbols = packing.group_symbols(group)
    assert symbols.tolist() == [97, 98, EOS, EOS, 255, 0, 99, EOS]


def test_example_sizes_and_tails():
    documents = corpus()
    length, group_size = 64, 5
    for split in packing.SPLITS:
        examples = list(packing.iter_examples(documents, split, group_size, length, validation_every=4))
        assert examples
        for group in {example.group for example in examples}:
            members = [example for example in examples if example.group == group]
            assert [example.index for example in members] == list(range(len(members)))
            # every example but the group's last is full; the last is the tail, never empty
            assert all(example.n_symbols == length for example in members[:-1])
            assert 1 <= members[-1].n_symbols <= length
            total = sum(len(document) + 1 for document in documents[group * group_size:(group + 1) * group_size])
            assert sum(example.n_symbols for example in members) == total
            assert members[-1].symbols[-1] == EOS  # a group's sequence ends with its last document's EOS
        for example in examples:
            assert example.symbols.dtype == np.int16
            assert example.n_bytes == int(np.count_nonzero(example.symbols != EOS))
            assert example.split == split


def test_split_is_by_group_and_disjoint():
    documents = [f"document number {i} ".encode() * 3 for i in range(100)]
    kwargs = dict(group_size=8, example_length=50, validation_every=3)
    train = list(packing.iter_examples(documents, "train", **kwargs))
    validation = list(packing.iter_examples(documents, "validation", **kwargs))
    assert {example.group for example in validation} == {0, 3, 6, 9, 12}
    assert {example.group for example in train} == {1, 2, 4, 5, 7, 8, 10, 11}
    train_documents = packing.examples_to_documents(train)
    validation_documents = packing.examples_to_documents(validation)
    assert sorted(train_documents + validation_documents) == sorted(documents)
    train_bytes = b"".join(np.asarray(example.symbols, np.int64).clip(0, 255).astype(np.uint8).tobytes()
                           for example in train)
    for document in validation_documents:  # every document is unique, so no validation text is in training
        assert document not in train_bytes
    # the split depends on the group index only, not on anything seeded
    assert packing.group_split(0, 3) == "validation" and packing.group_split(4, 3) == "train"
    assert packing.group_split(0, None) == "train"
    assert not list(packing.iter_examples(documents, "validation", 8, 50, validation_every=None))


def test_round_trip_after_shuffle():
    documents = corpus(seed=3)
    examples = list(packing.iter_examples(documents, "train", 6, 40, validation_every=None))
    shuffled = packing.shuffle(examples, seed=11)
    assert [e.symbols.tolist() for e in shuffled] != [e.symbols.tolist() for e in examples]
    assert packing.examples_to_documents(shuffled) == documents


def test_shuffle_deterministic_and_seed_dependent():
    items = list(range(200))
    assert packing.shuffle(items, 5) == packing.shuffle(items, 5)
    assert packing.shuffle(items, 5) != packing.shuffle(items, 6)
    assert sorted(packing.shuffle(items, 5)) == items
    buffered = list(packing.buffered_shuffle(items, 16, seed=5))
    assert buffered == list(packing.buffered_shuffle(iter(items), 16, seed=5))
    assert buffered != list(packing.buffered_shuffle(items, 16, seed=6))
    assert sorted(buffered) == items and buffered != items
    state = np.random.get_state()[1].copy()
    packing.shuffle(items, 1)
    assert np.array_equal(np.random.get_state()[1], state)  # no global random state touched


def test_str_documents_and_dtypes():
    examples = list(packing.iter_examples(["héllo", b"\xff"], "train", 2, 100, None, dtype=np.int64))
    assert examples[0].symbols.dtype == np.int64
    assert examples[0].symbols.tolist() == list("héllo".encode()) + [EOS, 255, EOS]
    with pytest.raises(ValueError, match="cannot hold"):
        list(packing.iter_examples([b"a"], "train", dtype=np.uint8))
    with pytest.raises(ValueError, match="example_length"):
        list(packing.iter_examples([b"a"], "train", example_length=0))
    with pytest.raises(ValueError, match="split"):
        list(packing.iter_examples([b"a"], "test"))


def test_paper_defaults_on_default_corpus():
    documents = default_documents()
    train = list(packing.iter_examples(documents, "train"))
    validation = list(packing.iter_examples(documents, "validation"))
    assert packing.GROUP_SIZE == 128 and packing.EXAMPLE_LENGTH == 10_240
    assert validation and train
    assert max(example.n_symbols for example in train + validation) == 10_240
    total = sum(len(document) + 1 for document in documents)
    assert sum(example.n_symbols for example in train + validation) == total
    assert packing.examples_to_documents(validation) == list(documents[:128])


@pytest.mark.parametrize("group_size, example_length", [(4, 37), (5, 64), (53, 500)])
def test_each_example_knows_the_document_of_its_first_symbol(group_size, example_length):
    documents = corpus()
    # independently: the corpus index of every symbol of a group, from the documents' lengths
    owner = {}
    for g in range(0, len(documents), group_size):
        owner[g // group_size] = np.concatenate([np.full(len(d) + 1, g + i) for i, d in
                                                 enumerate(documents[g:g + group_size])])
    for side in packing.SPLITS:
        for example in packing.iter_examples(documents, side, group_size, example_length, 3):
            assert example.document == owner[example.group][example.index * example_length]


def test_draw_reads_the_whole_side_and_its_prefixes_are_draws():
    examples = list(packing.iter_examples(corpus(200), "validation", 4, 37, 3))

    def keys(chosen):
        return [(e.group, e.index) for e in chosen]

    drawn = keys(packing.draw(examples, 10, [0, 1]))
    assert drawn == keys(packing.draw(examples, 30, [0, 1]))[:10]  # a prefix of a draw is the smaller draw
    assert len({g for g, _ in drawn}) > len({e.group for e in examples[:10]})  # more of the side than its start
    assert keys(packing.draw(examples, len(examples) + 5, 0)) == keys(packing.shuffle(examples, 0))


def test_document_bytes_counts_each_documents_text_in_the_examples():
    documents = corpus()
    examples = list(packing.iter_examples(documents, "train", 4, 37, 3))
    counts = packing.document_bytes(examples)
    # every document of the train side is whole in its examples: its bytes are its length
    train_documents = [i for i in range(len(documents)) if packing.group_split(i // 4, 3) == "train"]
    assert counts == {i: len(documents[i]) for i in train_documents if documents[i]}
    half = packing.document_bytes(examples[::2])
    assert sum(half.values()) == sum(e.n_bytes for e in examples[::2])
