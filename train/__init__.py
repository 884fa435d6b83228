"""Drivers and the `equalinfo` command line.

The command line
    cli.py           main(); the file tool's commands (compress, decompress, fit-model) and their parser
    commands.py      the pipeline's commands (repro, train-m1, build, train-m2, eval)
    backends.py      a backend by name (ref, cpu, gpu): the modules every command computes with
The file tool: any file in, a self-describing .eqi file out, and back
    codec.py         bytes <-> file bytes with one of four methods (equalinfo, ac, staticac, gzip)
    fileformat.py    the .eqi container: header, checksums, embedded or referenced model
The paper's pipeline (train/repro.py runs it end to end; presets/ hold its settings)
    m1.py            M1: training on the corpus, and M1 as a coding model with the backend's exact rows
    methods.py       the tokenizers of the paper's Table 15: bytes, SentencePiece, gzip, StaticAC, AC, Equal-Info
    build.py         M2 datasets: every example tokenized, trimmed or padded to the row length
    m2.py            M2: training on a dataset and the paper's metrics
    trainer.py       the training loop both models share (batches, optimizer, checkpoints, resumption)
    checkpoint.py    the checkpoint container (.npz of named arrays, no pickle)
    paper_numbers.py the paper's figures, printed beside ours
"""
