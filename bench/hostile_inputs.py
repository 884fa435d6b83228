"""The hostile inputs of the hardening work, each run as a real `python -m equalinfo` process: exit status, wall
time, peak memory (the child's max RSS from wait4) and its error line, or the sizes where the command works.

    python bench/hostile_inputs.py            # prints a Markdown table (docs/limits.md, "Limits and hardening")

Every crafted file keeps valid CRCs (and fingerprints), so it gets past the checksums to the checks it tests.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import _checkout  # noqa: E402,F401 (equalinfo from this checkout, installed or not)

from helpers import english_text  # noqa: E402
from equalinfo.train import checkpoint  # noqa: E402
from equalinfo.ref.fingerprint import fingerprint  # noqa: E402
from equalinfo.ref.models import MarkovModel  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.filetool import codec, fileformat  # noqa: E402


def cli(*argv, stdin_fifo_reader=None):
    """(status, seconds, max RSS MB, stderr) of one CLI process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "equalinfo", *map(str, argv)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    err = process.stderr.read().decode()
    process.stdout.read()
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, err.strip()


def relabel(blob, **changes):
    container = fileformat.unpack(blob)
    for name, value in changes.items():
        setattr(container.header, name, value)
    return fileformat.pack(container.header, container.bits, container.model_arrays)


def main():
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    text = english_text(1_300)
    (work / "t.txt").write_bytes(text)
    markov = MarkovModel.fit(bytes_to_symbols(text), 2)
    ac_file = codec.compress_bytes(text, "ac", markov)[0]
    (work / "len40.eqi").write_bytes(relabel(ac_file, original_length=2 ** 40))
    (work / "len31.eqi").write_bytes(relabel(ac_file, original_length=2 ** 31))
    (work / "len27.eqi").write_bytes(relabel(ac_file, original_length=2 ** 27))
    vector_order = {**markov.arrays(), "order": np.array([2, 2])}
    (work / "order.npz").write_bytes(fileformat.arrays_to_npz({**vector_order, "__kind__": np.array("markov")}))
    container = fileformat.unpack(ac_file)
    container.header.fingerprint = fingerprint(vector_order)
    (work / "order.eqi").write_bytes(fileformat.pack(container.header, container.bits, vector_order))
    demo = json.loads((ROOT / "train" / "presets" / "demo.json").read_text())
    presets = {
        "checkpoint_evry": lambda p: p["m1"]["train"].update(checkpoint_evry=100),
        "steps \"400\"": lambda p: p["m1"]["train"].update(steps="400"),
        "m1 null": lambda p: p.update(m1=None),
        "packign": lambda p: p.update(packign=p.pop("packing")),
        "batchsize": lambda p: p["m2"].update(batchsize=4),
        "train_examples -40": lambda p: p["datasets"].update(train_examples=-40),
    }
    for name, change in presets.items():
        preset = json.loads(json.dumps(demo))
        change(preset)
        (work / f"{len(name)}-{name[:4]}.json").write_text(json.dumps(preset))
    random_bytes = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    (work / "random.bin").write_bytes(random_bytes)
    (work / "empty").write_bytes(b"")
    os.mkfifo(work / "fifo")
    cases = [
        ("ac file, original_length = 2^40", ["decompress", work / "len40.eqi", work / "o"]),
        ("ac file, original_length = 2^31", ["decompress", work / "len31.eqi", work / "o"]),
        ("ac file, original_length = 2^27 (under the input limit)", ["decompress", work / "len27.eqi", work / "o"]),
        ("model file with `order` a vector, as --model", ["compress", work / "t.txt", work / "o", "--model",
                                                         work / "order.npz"]),
        ("the same model embedded (fingerprint, CRCs recomputed)", ["decompress", work / "order.eqi", work / "o"]),
        ("--window-bits 4294967295", ["compress", work / "t.txt", work / "o", "--window-bits", 4294967295]),
        ("--window-bits 2^24", ["compress", work / "t.txt", work / "o", "--window-bits", 1 << 24]),
        *[(f"preset: {name}", ["repro", "--out", work / "run", "--preset",
                               work / f"{len(name)}-{name[:4]}.json", "--backend", "ref"]) for name in presets],
        ("eval --batch-size -3", ["eval", "--data", work / "d", "--m2", work / "m2.npz", "--batch-size", -3]),
        ("eval --batch-size 0", ["eval", "--data", work / "d", "--m2", work / "m2.npz", "--batch-size", 0]),
        ("train-m1 --steps 0", ["train-m1", "--out", work / "m1" / "m1.npz", "--steps", 0]),
        ("output is a FIFO nobody reads", ["compress", work / "t.txt", work / "fifo", "--method", "gzip"]),
        ("build --m1 <an M2 checkpoint>", ["build", "--out", work / "ds", "--method", "equalinfo", "--m1",
                                           work / "m2.npz"]),
        ("eval --m1 <an M2 checkpoint>", ["eval", "--data", work / "ds", "--m2", work / "m2.npz", "--m1",
                                          work / "m2.npz"]),
        ("compress 1 MiB of random bytes", ["compress", work / "random.bin", work / "random.eqi"]),
        *[(f"compress 1 MiB of random bytes, --method {method}",
           ["compress", work / "random.bin", work / f"random.{method}", "--method", method])
          for method in ("ac", "staticac", "gzip")],
        ("compress an empty file", ["compress", work / "empty", work / "empty.eqi"]),
    ]
    from equalinfo.train import backends, m1 as m1_training

    symbols = bytes_to_symbols(english_text(20_000))
    m1_training.train_m1(symbols[:15_000], symbols[15_000:], work / "m1tmp.npz", backends.load("ref"),
                         m1_training.make_config("micro"), {"steps": 1, "optimizer": {"name": "adamw",
                                                                                      "total_steps": 1}},
                         seq_len=16, batch_size=2, eval_sequences=2)
    params, cfg, state, meta = checkpoint.load(work / "m1tmp.npz")
    checkpoint.save(work / "m2.npz", params, cfg, state, {**meta, "role": "m2"})
    print("| case | exit | seconds | max RSS MB | result |")
    print("|---|---|---|---|---|")
    for name, argv in cases:
        status, seconds, rss, err = cli(*argv)
        result = err.replace(str(work) + "/", "").replace("|", "\\|")
        if status == 0:
            out = Path(argv[2])
            result = f"works: {os.path.getsize(argv[1]):,} -> {os.path.getsize(out):,} bytes"
        leftovers = [p.name for p in (work / "run", work / "ds", work / "m1") if p.exists()]
        if leftovers:
            result += f" (left behind: {leftovers})"
        print(f"| {name} | {status} | {seconds:.1f} | {rss:.0f} | {result} |")


if __name__ == "__main__":
    main()
