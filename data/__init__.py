"""Text sources, packing and datasets on disk.

data.sources         documents (bytes) from C4 json/json.gz shards, JSONL, plain text, directories, globs
data.default_corpus  the embedded default corpus (Python's own documentation), no download needed
data.corpus          open_corpus(source or None): a re-iterable corpus with a description for the record, and
                     the source of each document (document_sources)
data.packing         EOS after each document, 128-document groups, 10,240-symbol examples, train/validation split,
                     each example's document, seeded draws of examples
data.shards          .npy shards + JSON index, atomic and resumable writes, memory-mapped reads
data.example_store   a large corpus packed in one streaming pass into on-disk stores, read back by row index
data.atomic          write_atomically: a file's old content or all of the new, never a part
Every problem with input data raises data.DataError (a ValueError).
"""
from equalinfo.data.sources import DataError

__all__ = ["DataError"]
