"""The `.eqi` file tool: any bytes in, a self-describing compressed file out, and back (`equalinfo compress`).

    commands.py      `equalinfo compress`, `decompress` and `fit-model`: their options, the model a file is coded
                     with (fitted on the input, a model file or an M1 checkpoint), the summary lines
    codec.py         bytes <-> file bytes by method (equalinfo, ac, staticac, gzip), or stored when coding would
                     not make the file smaller; the default model (model=None) in one place
    fileformat.py    the container: header fields and offsets, checksums, the embedded model; model files
    segments.py      the segment table of format version 3: the input cut into independently coded segments
    streaming.py     compress and decompress over file objects, one batch of segments at a time (bounded memory)
    workers.py       a batch of segments coded in this process, or split among several (`--workers N`): the same
                     bytes for any number of processes
    model_arrays.py  one schema per model kind: what a stored model's arrays must look like, checked before use
    npz.py           npz archives written deterministically and read with every size checked first (no pickle)
    shipped_model.py the pretrained M1 shipped as package data (shipped_m1.npz): compress's default for text, found
                     by decompress through its fingerprint
docs/file-format.md describes the format for a reader; fileformat.py gives every field with its offset.
"""
