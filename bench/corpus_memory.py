"""Peak memory of a large corpus read the two ways `equalinfo repro` and `build` can read it: held in memory
(train/repro.py Examples) or streamed into an example store (data/example_store.py, --stream on), side by side in
one run on the same generated C4-style corpus.

Usage (from the repository root):
    python bench/corpus_memory.py [--mb 200] [--train-examples 2048]

The corpus: --mb MB of text (English from Python's help topics, cut into documents of 500 to 4,000 bytes, C4's
range) in C4-shaped json.gz shards of 50 MB of text each, in a temporary directory. The paper's packing (groups of
128 documents, examples of 10,240 symbols, every 10th group validation). Each measurement runs in a fresh process
and reports its peak resident set (getrusage's ru_maxrss), beside that of a process that only imports the package:
1. driver, in memory: the examples of both sides, then the units of --train-examples train rows for one dataset
   (each unit carrying its rows, as the driver ships them);
2. driver, streamed: the store written in one pass (then reused), the same units, carrying row indices;
3. one worker, streamed: the largest of those units read from the store and coded (Bytes, 256 rows of 10,240).
"""
import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)

PACKING = {"group_size": 128, "example_length": 10_240, "validation_every": 10}
SHARD_TEXT = 50 << 20


def make_corpus(directory, n_bytes):
    """C4-style shards of JSON lines {"text", "url"} with documents of 500-4,000 bytes; returns the bytes on disk."""
    import numpy as np
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[key] for key in sorted(topics))
    rng, written, shard, out = np.random.default_rng(0), 0, 0, None
    while written < n_bytes:
        if out is None or out.tell_text >= SHARD_TEXT:
            if out is not None:
                out.close()
            out = gzip.open(directory / f"c4-train.{shard:05d}-of-99999.json.gz", "wt", encoding="utf-8",
                            compresslevel=1)
            out.tell_text, shard = 0, shard + 1
        size, start = int(rng.integers(500, 4000)), int(rng.integers(0, len(text) - 4000))
        document = text[start:start + size]
        out.write(json.dumps({"text": document, "url": f"bench:{written}"}) + "\n")
        out.tell_text += len(document)
        written += len(document)
    out.close()
    return sum(path.stat().st_size for path in directory.iterdir())


def child(mode, corpus, work, train_examples):
    """One measurement, in this (fresh) process; prints {"peak_mb", ...} as JSON."""
    from equalinfo.data.example_store import open_store
    from equalinfo.train import build, repro

    result = {}
    if mode != "import":
        preset = {"seed": 0, "packing": PACKING}
        stream = "on" if mode.startswith("stream") else "off"
        pipeline = repro.Pipeline(preset, work, "ref", corpus, log=lambda text: None, stream=stream)
        started = time.perf_counter()
        examples = pipeline.examples()
        coder = build.make_coder(build.CoderSpec("bytes"), None)
        target = build.target_for(Path(work) / mode / "bytes", coder, 512, {"label": "bytes"})
        units = build.shard_units("bytes", [target], examples.train[:train_examples], 512)
        result.update(seconds=time.perf_counter() - started, train=len(examples.train),
                      validation=len(examples.validation), units=len(units))
        if mode == "stream-worker":
            unit = max(units, key=lambda u: len(u.rows))
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            build.run_shard_unit({"coders": {"bytes": build.CoderSpec("bytes")}}, unit)
            result.update(unit_rows=len(unit.rows), rows_read=open_store(unit.rows.directory).rows_read,
                          peak_before_unit_mb=baseline)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(mode, corpus, work, train_examples):
    output = subprocess.run([sys.executable, __file__, "--child", mode, "--corpus", str(corpus), "--work", str(work),
                             "--train-examples", str(train_examples)], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="MB of text in the generated corpus")
    parser.add_argument("--train-examples", type=int, default=2048)
    parser.add_argument("--child", default=None)
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.corpus, args.work, args.train_examples)
    with tempfile.TemporaryDirectory() as temporary:
        corpus, work = Path(temporary) / "c4", Path(temporary) / "work"
        corpus.mkdir()
        on_disk = make_corpus(corpus, args.mb * 1_000_000)
        print(f"corpus: {args.mb} MB of text in {len(os.listdir(corpus))} json.gz shards, {on_disk / 1e6:.0f} MB "
              f"on disk; packing {PACKING}; units of {args.train_examples} train rows")
        base = measure("import", corpus, work, args.train_examples)["peak_mb"]
        print(f"{'what':<52} {'peak RSS MB':>12} {'over import':>12} {'seconds':>8}")
        print(f"{'a process that imports equalinfo':<52} {base:>12.0f} {0:>12.0f}")
        for mode, what in (("memory", "driver, in memory (examples + units with rows)"),
                           ("stream", "driver, streamed (store written + units of indices)"),
                           ("stream-again", "driver, streamed, store reused"),
                           ("stream-worker", "worker: one unit read from the store and coded")):
            figures = measure(mode, corpus, work, args.train_examples)
            peak = figures["peak_mb"]
            extra = (f"  (before the unit: {figures['peak_before_unit_mb']:.0f} MB; unit rows "
                     f"{figures['unit_rows']}, rows read {figures['rows_read']})" if mode == "stream-worker" else
                     f"  ({figures['train']} train / {figures['validation']} validation examples, "
                     f"{figures['units']} units)")
            print(f"{what:<52} {peak:>12.0f} {peak - base:>12.0f} {figures['seconds']:>8.1f}{extra}")


if __name__ == "__main__":
    main()
