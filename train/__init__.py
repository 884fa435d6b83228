"""The paper's pipeline: raw text -> M1 -> compressed datasets -> M2 -> the paper's tables (`equalinfo repro`).

Running it
    repro.py         `equalinfo repro`: every step below from a preset, each resumable, then the report
    commands.py      the pipeline's subcommands (repro, train-m1, build, train-m2, eval) and their parsers
    preset_schema.py what a preset (presets/*.json) may contain, checked before any work starts
    estimate.py      how long a preset will take on this machine, said before the work starts
    memory.py        the memory a preset's training steps need at least; a preset above the machine's is refused
    backends.py      a backend by name (ref, cpu, gpu): the modules every step computes with
    executors.py     where the units of work (dataset shards, M2 runs) run: in-process, a process pool, Ray
The steps
    m1.py            M1: training on the corpus, and M1 as a coding model with the backend's exact rows
    methods.py       the tokenizers of the paper's Table 15: bytes, SentencePiece, gzip, StaticAC, AC, Equal-Info
    build.py         M2 datasets: every example tokenized, trimmed or padded to the row length; shards as units
    m2.py            M2: training on a dataset and the paper's metrics
    shuffled_windows.py  the shuffled-window control: each row's windows in a random order (no cross-window context)
    controls.py      measurements that say whether a difference means what it seems to (M1's context, padding)
    trainer.py       the training loop both models share (batches, optimizer, checkpoints, resumption)
    checkpoint.py    the checkpoint container (.npz of named arrays, no pickle)
The statistics and the paper's numbers printed beside ours are in equalinfo.report; the file tool is
equalinfo.filetool; the command line is equalinfo.cli.
"""
