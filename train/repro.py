"""`equalinfo repro`: the whole pipeline from raw text to the paper's tables, driven by a preset (JSON data).

Steps, each resumable from what is already in the output directory (a finished step is skipped):
1. corpus -> examples (data/packing.py), the train side shuffled from the seed, validation rows drawn from the seed
   across the whole validation side (data/packing.py draw);
2. M1 trained on the train side only (train/m1.py) -> m1.npz;
3. the coding models: M1 (its rows by the exact rule of the backend), StaticAC's unigram model, SentencePiece;
4. one dataset per method, window size and token width (train/build.py) for train and validation;
5. M2 at every preset size on every dataset (train/m2.py), evaluated as the paper does, once per seed (m2.seeds,
   default 1; seed s trains from preset seed + s) and the seeds combined (report/seeds.py);
6. results.json (every figure, the preset, versions), results.md (Tables 15/12 shaped, the paper beside us:
   report/tables.py), bits_per_byte_vs_flops.png (like Figure 3) and learning_curves.png (each M2 evaluated every
   m2.train.eval_every steps, with its floors) if matplotlib is installed (report/figure.py).
   Equal-Info rows also get the floors of a model of single windows (report/window_floors.py) and, where the preset
   lists the row with "shuffle_windows": true, the shuffled-window control (train/shuffled_windows.py), trained
   with the same steps and seeds; "learns across windows" needs M2 to beat it beyond the noise (report/seeds.py).
   Each bits/byte comes with its standard error and the floors it must beat; "below unigram floor?"
   (report/seeds.py below_floor) is yes only beyond 2 SE (+ seed std).
Steps 4 and 5 are cut into units (train/build.py ShardUnit: one shard of the datasets sharing a coder; M2Unit: one
M2 of the grid) that run on the Pipeline's executor (train/executors.py: in-process, a process pool, Ray) and give
the same bits wherever they run. An M2 unit's completion record (OUT/units/m2/*.json: its figures and history) is
all the report needs of it, so a rerun skips it; with the records of the datasets' figures, M1's result and the AC
control (OUT/units/*.json), a run rebuilds only what a missing unit needs, so OUT can hold the records and results
(committed to git between sessions) while --work holds M1, the datasets and the checkpoints (docs/scaling.md).
This module runs the steps and gathers their figures into the results dict; equalinfo.report lays them out.
"""
import hashlib
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equalinfo.data.corpus import document_sources, open_corpus
from equalinfo.data.example_store import StoreRows, build_store
from equalinfo.data.shards import open_dataset
from equalinfo.data.packing import document_bytes, draw, examples_to_documents, iter_examples, shuffle
from equalinfo.data.sources import PIECE_BYTES
from equalinfo.ref import transformer
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import UnigramModel
from equalinfo.ref.symbols import N_SYMBOLS, symbols_to_documents
from equalinfo.train import backends, build, controls, estimate, executors, m1, m2, methods
from equalinfo.report import figure, tables
from equalinfo.report.paper_numbers import label, unshuffled
from equalinfo.report.learning_curves import learning_curve
from equalinfo.report.seeds import beats_control, combine_seeds
from equalinfo.train.preset_schema import PresetError, read_preset_file, validate
from equalinfo.train.trainer import versions, write_json

PRESETS = Path(__file__).resolve().parent / "presets"
VALIDATION_DRAW = 1  # the validation draw's stream beside the seed: independent of the train side's shuffle


def load_preset(name_or_path):
    """The preset of a name (train/presets) or a .json path, checked against train/preset_schema.py."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.json"))
        raise PresetError(f"no preset {name_or_path!r} (known: {', '.join(known)}; or give a .json path)")
    preset = read_preset_file(path)
    if isinstance(preset, dict) and isinstance(preset.get("coding"), dict) and "max_window_symbols" in preset["coding"]:
        raise PresetError(f"{path}: coding.max_window_symbols is not a setting: Equal-Info windows end on their bits "
                          f"alone (ref/equalinfo.py)")
    validate(preset, str(path))
    return preset


def m1_reset_every(entry):
    """An equalinfo entry's "m1_reset_every" as ref/equalinfo.py's model_reset_every: k, or None for "never"."""
    value = entry.get("m1_reset_every", 1)
    return None if value == "never" else int(value)


def row_length(preset, entry):
    """Tokens per row of an entry's datasets: its own "seq_len" (Table 6's byte-matched rows: v=65k windows in half
    the tokens of v=256 ones) or the preset's datasets.seq_len."""
    return int(entry.get("seq_len", preset["datasets"]["seq_len"]))


def dataset_specs(preset):
    """(label, method, window_bits, bits_per_token, extra) for every dataset the preset asks for."""
    specs = []
    for entry in preset["datasets"]["methods"]:
        method = entry["method"]
        if method not in methods.METHODS:
            raise PresetError(f"unknown method {method!r} in the preset")
        widths = entry.get("bits_per_token", [None])
        windows = entry.get("window_bits", [None])
        for b in windows:
            for n in (widths if isinstance(widths, list) else [widths]):
                if entry.get("shuffle_windows") and b % n:
                    raise PresetError(f"shuffle_windows: a {b}-bit window is not a whole number of {n}-bit tokens, "
                                      "so its windows cannot be shuffled as whole tokens")
                specs.append((label(method, b, n, entry.get("delimit", True), m1_reset_every(entry),
                                    entry.get("shuffle_windows", False), entry.get("seq_len")), method, b, n, entry))
    return specs


@dataclass
class Examples:
    """The corpus cut into examples: the train side shuffled from the seed, the validation side in corpus order.
    `validation_rows(count)` is what datasets and controls evaluate on: a seeded draw across the whole validation
    side (all its documents and sources), not its first rows in corpus order. Held in memory (2 bytes per symbol of
    both sides); StoredExamples is the same interface over an example store on disk, for a large corpus."""
    train: list
    validation: list
    seed: int = 0

    def validation_rows(self, count):
        return draw(self.validation, count, [self.seed, VALIDATION_DRAW])

    def train_symbols(self):
        """int64 [symbols]: the train side, in its shuffled order, as one sequence (M1 trains on it)."""
        return np.concatenate([e.symbols for e in self.train]).astype(np.int64)

    def validation_symbols(self):
        """int64 [symbols]: the validation side in corpus order, as one sequence (M1 evaluates on it)."""
        return np.concatenate([e.symbols for e in self.validation]).astype(np.int64)

    def unigram_counts(self):
        """int64 [257]: each symbol's count on the train side (StaticAC's model)."""
        return UnigramModel.fit(self.train_symbols()).counts

    def train_documents(self):
        """The train side's documents (bytes), in corpus order (SentencePiece trains on them)."""
        return examples_to_documents(self.train)


class StoredExamples:
    """Examples as the in-memory Examples gives them -- the same rows in the same order -- read from an example store
    (data/example_store.py): `train` and `validation` are StoreRows (sequences of Examples read on demand), the
    train side in the order of the same permutation Examples shuffles with, the validation draw the same draw. So
    every dataset is byte-identical to the in-memory path's; what is held is 8 bytes per example (the order)."""

    def __init__(self, stores, seed, work):
        self.stores, self.seed, self.work = stores, int(seed), Path(work)
        train, validation = stores["train"], stores["validation"]
        self.train = StoreRows(str(train.directory), np.random.default_rng(self.seed).permutation(len(train)))
        self.validation = StoreRows(str(validation.directory), np.arange(len(validation)))

    def validation_rows(self, count):
        order = np.random.default_rng([self.seed, VALIDATION_DRAW]).permutation(len(self.validation))
        return StoreRows(self.validation.directory, order[:count])

    def _sequence(self, rows, name):
        """int64 [symbols] of `rows` as one sequence, in a memory-mapped file WORK/examples/<name>.<store>.npy
        written once (a chunk of rows at a time), so M1 reads it from disk rather than from memory. <store> is the
        store's identity: a rebuilt store never meets the file of an old one (which is removed)."""
        store = rows.store()
        path = self.work / "examples" / f"{name}.{store.identity}.npy"
        for old in path.parent.glob(f"{name}.*.npy"):
            if old != path:
                old.unlink()
        total = store.n_symbols if len(rows) == len(store) else rows.n_symbols()
        if not (path.is_file() and np.load(path, mmap_mode="r").shape == (total,)):
            temporary = path.with_name(f".tmp-{path.name}")
            out, position = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.int64, shape=(total,)), 0
            for example in rows:
                out[position:position + example.n_symbols] = example.symbols
                position += example.n_symbols
            out.flush()
            del out
            os.replace(temporary, path)
        return np.load(path, mmap_mode="r")

    def train_symbols(self):
        return self._sequence(self.train, f"train.seed{self.seed}.symbols")

    def validation_symbols(self):
        return self._sequence(self.validation, "validation.symbols")

    def unigram_counts(self):
        counts = np.zeros(N_SYMBOLS, np.int64)
        for example in self.stores["train"].iter_in_order():
            counts += np.bincount(np.asarray(example.symbols, np.int64), minlength=N_SYMBOLS)
        return counts

    def train_documents(self):
        group, parts = None, []
        for example in itertools.chain(self.stores["train"].iter_in_order(), [None]):  # corpus order: (group, index)
            if example is None or example.group != group:
                if parts:
                    yield from symbols_to_documents(np.concatenate(parts).astype(np.int64))
                group, parts = (None if example is None else example.group), []
            if example is not None:
                parts.append(np.asarray(example.symbols))


STREAM_ABOVE = 256 << 20  # --stream auto: a corpus whose files hold more bytes on disk is streamed into a store


def streams(corpus, stream="auto"):
    """Whether a run reads `corpus` through an example store (StoredExamples): always with stream "on", never with
    "off"; with "auto", when its files hold more than STREAM_ABOVE bytes on disk (the default corpus and stdin are
    small and held)."""
    if stream not in ("auto", "on", "off"):
        raise ValueError(f"stream must be auto, on or off, got {stream!r}")
    if stream != "auto":
        return stream == "on"
    files = corpus.describe().get("files")
    return bool(files) and sum(f["size"] for f in files) > STREAM_ABOVE


@dataclass
class TrainedM1:
    """M1's parameters and config; `result` (validation bits/byte, history, size) when this run trained it;
    `seq_len` the sequence length it was trained on when it comes from elsewhere (a checkpoint's meta)."""
    params: dict
    cfg: transformer.Config
    result: dict = None
    seq_len: int = None


def too_small(documents, packing):
    """The error for a corpus whose split leaves a side empty: how small it is, what the split needs, what to do."""
    size, every = packing["group_size"], packing["validation_every"]
    if every == 1:
        return "packing.validation_every=1 puts every group on the validation side: nothing would train"
    n_bytes = sum(len(document) for document in documents)
    groups = -(-len(documents) // size)
    return (f"the corpus is too small for this preset: its {len(documents)} documents ({n_bytes:,} bytes) fill "
            f"{groups} group(s) of packing.group_size={size}, and the split needs at least {size + 1} (group 0 "
            f"validates, group 1 trains); give a larger corpus (a single text file is cut into documents of about "
            f"{PIECE_BYTES:,} bytes) or a preset with a smaller packing.group_size")


class Pipeline:
    """The steps of `equalinfo repro`, each taking its inputs and returning its outputs (run() chains them).

    What the steps share is fixed at construction: the preset, the output directory (results and the M2 units'
    completion records), the work directory (M1, datasets, checkpoints; OUT itself by default), the backend, the
    corpus, the log, the executor that runs the units (train/executors.py; in-process by default), plus two caches
    that never change a result (coded bits per method and window size, reused by the v=256 and v=65k datasets; the
    SentencePiece model, trained once) and the timings for the report.
    """

    def __init__(self, preset, out_dir, backend_name=None, corpus=None, log=print, executor=None, work_dir=None,
                 stream="auto"):
        self.preset, self.out = preset, Path(out_dir)
        self.work = Path(work_dir) if work_dir is not None else self.out  # M1, datasets, M2 checkpoints
        self.work.mkdir(parents=True, exist_ok=True)
        self.executor = executor or executors.InProcess()  # where units run (train/executors.py)
        self.backend = backends.load_or_fastest(backend_name)
        self.corpus = open_corpus(corpus if corpus is not None else preset.get("corpus", "default"))
        self.seed = int(preset["seed"])
        self.stream = streams(self.corpus, stream)  # examples through an on-disk store (StoredExamples)
        self.log = log
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings = {}
        self.bit_caches = {}  # (method, window bits) -> {example: bits}, see methods.BitMethod
        self.spm = None  # (SentencePiece processor, model bytes) once trained
        self.so_far = False  # run(): report the M2 runs recorded so far into OUT/so-far, train and build nothing

    def _timed(self, name, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
        return result

    # 1. examples
    def examples(self):
        """The corpus's examples: Examples (in memory), or StoredExamples when the run streams its corpus into
        WORK/examples (self.stream: the same rows in the same order)."""
        if self.stream:
            return self.stored_examples()
        packing = self.preset["packing"]
        documents = list(self.corpus)
        sides = {side: list(iter_examples(documents, side, packing["group_size"], packing["example_length"],
                                          packing["validation_every"])) for side in ("train", "validation")}
        if not sides["train"] or not sides["validation"]:
            raise PresetError(too_small(documents, packing))
        examples = Examples(shuffle(sides["train"], self.seed), sides["validation"], self.seed)
        self.log(f"corpus: {len(documents)} documents -> {len(examples.train)} train / "
                 f"{len(examples.validation)} validation examples")
        return examples

    def stored_examples(self):
        """StoredExamples of the corpus, packed in one streaming pass into WORK/examples (data/example_store.py;
        reused when made from the same corpus and packing)."""
        packing = self.preset["packing"]
        stores = self._timed("example store", build_store, self.work / "examples", self.corpus, packing,
                             self.corpus.describe(), self.log)
        if not len(stores["train"]) or not len(stores["validation"]):
            raise PresetError(too_small(list(self.corpus), packing))
        examples = StoredExamples(stores, self.seed, self.work)
        self.log(f"corpus (streamed into {self.work / 'examples'}): {len(examples.train)} train / "
                 f"{len(examples.validation)} validation examples")
        return examples

    def source_mix(self, examples):
        """{"train": {source: share of bytes}, "validation": ...} of the rows the datasets use (the first
        train_examples of the shuffled train side, the validation draw); sources by data/corpus.py."""
        spec = self.preset["datasets"]
        rows = {"train": examples.train[:spec["train_examples"]],
                "validation": examples.validation_rows(spec["val_examples"])}
        sides = {side: document_bytes(chosen) for side, chosen in rows.items()}
        wanted = {document for by_document in sides.values() for document in by_document}
        sources = document_sources(self.corpus, wanted=wanted)  # the rows' documents only: any corpus size
        mix, said = {}, []
        for side, by_document in sides.items():
            totals, chosen = {}, rows[side]
            for document, count in by_document.items():
                totals[sources[document]] = totals.get(sources[document], 0) + count
            mix[side] = {source: count / sum(totals.values()) for source, count in sorted(totals.items())}
            said.append(f"{side} {len(chosen):,} rows from {len(by_document):,} documents: "
                        + ", ".join(f"{source} {share:.1%}" for source, share in mix[side].items()))
        self.log("sources of the rows (share of text bytes): " + "; ".join(said))
        return mix

    # 2. M1
    def train_m1(self, examples, path=None, resume=None):
        """M1 trained on the train side (TrainedM1), checkpointed at `path` (default WORK/m1.npz; WORK is OUT unless
        given); by default a checkpoint already there is resumed (finished training is not repeated)."""
        spec = self.preset["m1"]
        path = self.work / "m1.npz" if path is None else Path(path)
        cfg = m1.make_config(spec["size"], spec.get("dtype", "float32"))
        train_symbols, val_symbols = examples.train_symbols(), examples.validation_symbols()
        params, history = self._timed("train_m1", m1.train_m1, train_symbols, val_symbols, path, self.backend, cfg,
                                      {**spec["train"], "seed": self.seed}, spec["seq_len"], spec["batch_size"],
                                      spec.get("eval_sequences", 64),
                                      resume=path.exists() if resume is None else resume)
        result = {"config": cfg.to_dict(), "history": history,
                  "val_bits_per_byte": [r for r in history if "val_bits_per_byte" in r][-1]["val_bits_per_byte"],
                  "params": transformer.count_params(cfg)}
        self.log(f"M1: validation {result['val_bits_per_byte']:.3f} bits/byte")
        return TrainedM1(params, cfg, result)

    # 3.-4. datasets
    def method_for(self, method, window_bits, bits_per_token, entry, examples, trained_m1=None):
        """The tokenizer of one dataset (train/methods.py); ac and equalinfo code with trained_m1."""
        key, spec = self.coder_spec(method, window_bits, entry, examples, trained_m1)
        cache = self.bit_caches.setdefault(key, {})  # v=256 and v=65k share the coded bits
        return build.make_coder(spec, bits_per_token, cache)

    def coder_spec(self, method, window_bits, entry, examples, trained_m1=None):
        """(key, build.CoderSpec): what any worker needs to rebuild the tokenizer of a dataset, as plain data; the
        key names the coder, shared by the datasets that differ only in token width."""
        precision = self.preset["coding"].get("precision", 14)
        delimit, reset_every = entry.get("delimit", True), m1_reset_every(entry)
        key = f"{method}.{window_bits}.{delimit}.{reset_every}"
        if method in ("bytes", "gzip"):
            return key, build.CoderSpec(method)
        if method == "staticac":
            return key, build.CoderSpec(method, self.backend.name, precision=precision,
                                        counts=examples.unigram_counts())
        if method in ("ac", "equalinfo"):
            context = int(self.preset["m1"]["seq_len"])
            restart_every = m1.check_context(context, trained_m1.seq_len or context)
            rule = int(self.preset["coding"].get("exact_rule", 1))
            return key, build.CoderSpec(method, self.backend.name, window_bits, precision, delimit, reset_every,
                                        trained_m1.params, trained_m1.cfg.to_dict(), rule, restart_every)
        if method == "spm":
            if self.spm is None:
                documents = examples.train_documents()
                self.spm = self._timed("train_spm", methods.train_sentencepiece, documents,
                                       entry.get("vocab_size", 32_000), self.seed)
                (self.out / "spm.model").write_bytes(self.spm[1])
            return key, build.CoderSpec(method, spm_model=self.spm[1])
        raise PresetError(f"unknown method {method!r}")

    def m1_coding_model(self, trained_m1, restart_every="trained"):
        """M1 as the coders' model: exact rule coding.exact_rule (1 by default; 2 is the integer-product rule), on
        this run's backend, restarting every m1.seq_len symbols -- the length it was trained on -- so that neither
        AC over a whole example nor a long Equal-Info window makes it read a context it never learned
        (train.m1.check_context refuses anything longer). restart_every=None is the extrapolating control."""
        context = int(self.preset["m1"]["seq_len"])
        trained = trained_m1.seq_len or context  # a run's own M1 trained on the preset's (resume refuses others)
        if restart_every == "trained":
            restart_every = m1.check_context(context, trained)
        rule = int(self.preset["coding"].get("exact_rule", 1))
        return m1.coding_model(trained_m1.params, trained_m1.cfg, self.backend.name, rule, restart_every)

    def build_datasets(self, examples, trained_m1, only=None):
        """(datasets {label: {"train": Dataset, "validation": Dataset}}, skipped {label: reason}) for the preset
        (or the labels in `only`)."""
        wanted, skipped = {}, {}
        for name, method, b, n, entry in dataset_specs(self.preset):
            if only is not None and name not in only:
                continue
            if method == "spm" and not methods.sentencepiece_available():
                skipped[name] = "the sentencepiece package is not installed (pip install -e '.[spm]')"
                self.log(f"skipping {name}: {skipped[name]}")
                continue
            wanted[name] = (method, b, n, entry, self.work / "datasets" / _slug(name))
        return self.build_many(wanted, examples, trained_m1), skipped

    def build_one(self, name, method, window_bits, bits_per_token, entry, directory, examples, trained_m1=None):
        """The train and validation datasets of one method in directory/train and directory/validation."""
        return self.build_many({name: (method, window_bits, bits_per_token, entry, directory)}, examples,
                               trained_m1)[name]

    def build_many(self, wanted, examples, trained_m1=None):
        """{label: {"train": Dataset, "validation": Dataset}} of `wanted` {label: (method, window bits, token bits,
        preset entry, directory)}: every coded dataset's shards as units on the executor (build.shard_units), then
        the shuffled-window controls copied from their base datasets (train/shuffled_windows.py)."""
        coded, shuffled = {}, {}
        for name, (method, b, n, entry, directory) in wanted.items():
            if entry.get("shuffle_windows"):  # its base, built (or reused) where its own row would put it
                base_name = unshuffled(name)
                base_entry = {key: value for key, value in entry.items() if key != "shuffle_windows"}
                coded.setdefault(base_name, ("equalinfo", b, n, base_entry,
                                             self.work / "datasets" / _slug(base_name)))
                shuffled[name] = (base_name, b // n, directory)  # whole tokens: dataset_specs checked it
            else:
                coded[name] = (method, b, n, entry, directory)
        sets = self._timed("build datasets", self.code_datasets, coded, examples, trained_m1)
        for name, (method, b, n, entry, directory) in coded.items():
            self.log(f"dataset {name}: CR {build.summary(sets[name]['validation'])['cr_full']:.3f}")
        for name, (base_name, per_window, directory) in shuffled.items():
            sets[name] = {side: self._timed(f"build {name}", build.shuffled_copy, base, Path(directory) / side,
                                            per_window, self.seed, {"label": name})
                          for side, base in sets[base_name].items()}
            self.log(f"dataset {name}: {base_name} with each row's windows shuffled")
        return {name: sets[name] for name in wanted}

    def code_datasets(self, coded, examples, trained_m1):
        """Build the datasets of `coded` (as build_many's `wanted`) from their shards, run by self.executor."""
        spec = self.preset["datasets"]
        rows = {"train": examples.train[:spec["train_examples"]],
                "validation": examples.validation_rows(spec["val_examples"])}
        coders, groups, targets = {}, {}, {}
        for name, (method, b, n, entry, directory) in coded.items():
            key, coders_spec = self.coder_spec(method, b, entry, examples, trained_m1)
            coders[key] = coders_spec
            coder = build.make_coder(coders_spec, n)
            meta = {"label": name, "window_bits": b, "bits_per_token": n, "backend": self.backend.name,
                    "m1_fingerprint": _m1_fingerprint(coder), "seed": self.seed,
                    "validation_rows": "drawn"}  # a dataset of the first validation rows (before the draw) is refused
            length = row_length(self.preset, entry)  # Table 6's byte-matched rows have their own
            for side in rows:
                target = build.target_for(Path(directory) / side, coder, length, meta, n)
                targets[name, side] = target
                groups.setdefault((key, side, length), []).append(target)
        units = [unit for (key, side, length), group in groups.items()
                 for unit in build.shard_units(key, group, rows[side], length, label=f"{key} {side}")]
        gpu = self.backend.name == "gpu" and any(coders[unit.coder].uses_m1 for unit in units)
        self.executor.run(build.run_shard_unit, units, {"coders": coders}, desc="datasets", unit="B", gpu=gpu)
        return {name: {side: build.finish_dataset(targets[name, side], len(rows[side])) for side in rows}
                for name in coded}

    # 4b. controls
    def controls(self, examples, trained_m1, datasets):
        """{"ac_context": ..., "windows": {label: ...}} (train/controls.py): AC with M1 at its training length vs
        over whole examples, on the validation examples the datasets use; zero padding's trace in every Equal-Info
        dataset. Empty where the preset has no M1 method."""
        out = {}
        specs = {name: (method, b) for name, method, b, _, _ in dataset_specs(self.preset)}
        if any(method in ("ac", "equalinfo") for method, _ in specs.values()):
            precision = self.preset["coding"].get("precision", 14)
            chosen = examples.validation_rows(self.preset["datasets"]["val_examples"])
            whole = self.m1_coding_model(trained_m1, restart_every=None)  # extrapolates, on purpose
            out["ac_context"] = self._timed("controls", controls.ac_context, self.backend,
                                            self.m1_coding_model(trained_m1), whole, chosen, precision)
            self.log("control: AC with M1 at its training length {bits_per_byte_trained_context:.3f} bits/byte, "
                     "over whole examples {bits_per_byte_whole_example:.3f}".format(**out["ac_context"]))
        out["windows"] = {name: controls.window_statistics(sets["validation"], specs[name][1])
                          for name, sets in datasets.items() if specs[name][0] == "equalinfo"}
        return out

    # 5. M2
    def m2_units(self, names, datasets=None):
        """Every M2 of the grid (dataset x size x seed) as an M2Unit, in the report's order, for the dataset
        labels `names`: on the Datasets of `datasets` {label: {"train", "validation"}} where given, else in
        WORK/datasets where build_datasets puts them."""
        spec, datasets = self.preset["m2"], datasets or {}

        def directory(name, side):
            return str(datasets[name][side].directory if name in datasets else
                       self.work / "datasets" / _slug(name) / side)

        return [M2Unit(name, size, s, directory(name, "train"), directory(name, "validation"))
                for name in names for size in spec["sizes"] for s in range(spec.get("seeds", 1))]

    def m2_context(self, m1_cfg):
        """What every M2 unit shares (run_m2_unit's context)."""
        return {"preset": self.preset, "work": str(self.work), "records": str(self.out / "units" / "m2"),
                "backend": self.backend.name, "m1_params": transformer.count_params(m1_cfg)["matrices"],
                "corpus": corpus_identity(self.corpus)}

    def train_m2(self, datasets, m1_cfg, facts=None):
        """{label: {size: figures}}: M2 at every preset size trained on every dataset once per seed (m2.seeds),
        evaluated, and the seeds' figures combined (combine_seeds). Each M2 is a unit (run_m2_unit) on
        self.executor; one whose completion record is in OUT/units/m2 is not trained again. `facts` {label:
        dataset_facts} (run() passes them): the datasets to report, their floors taken from there, so a dataset
        whose M2s are all recorded need not be built; without it, `datasets` {label: {"train", "validation"}}."""
        spec = self.preset["m2"]
        context = self.m2_context(m1_cfg)
        names = list(facts) if facts is not None else list(datasets)
        units = self.m2_units(names, datasets)
        records = {unit.key: read_record(context, unit) for unit in units}
        pending = [unit for unit in units if records[unit.key] is None]
        if len(pending) < len(units):
            self.log(f"M2: {len(units) - len(pending)} of {len(units)} runs finished before (OUT/units/m2), "
                     f"{len(pending)} to " + ("go (not trained: --so-far)" if self.so_far else "train"))
        if self.so_far:  # only what is recorded: rows with no finished seed are left out, the others keep n seeds
            units = [unit for unit in units if records[unit.key] is not None]
            names = [name for name in names  # a row is shown once every size has a finished seed
                     if all(any((unit.name, unit.size) == (name, size) for unit in units) for size in spec["sizes"])]
            self.progress = {"runs": len(records), "finished": len(units),
                             "pending": sorted(unit.key for unit in pending)}
        else:
            pending = beside_their_rows(pending)
            for unit, record in zip(pending, self.executor.run(run_m2_unit, pending, context, desc="M2",
                                                               unit="run", gpu=self.backend.name == "gpu")):
                records[unit.key] = record
        for unit in units:
            name = f"train_m2 {unit.name} {unit.size}"
            self.timings[name] = self.timings.get(name, 0.0) + records[unit.key]["seconds"]
        results = {}
        for name in names:
            floors = facts[name]["floors"] if facts is not None else self._timed(
                "window floors", m2.window_floors_of, datasets[name]["train"], datasets[name]["validation"],
                spec.get("eval_rows"))
            for size in spec["sizes"]:
                per_seed = [dict(records[M2Unit.key_of(name, size, s)]["figures"])
                            for s in range(spec.get("seeds", 1)) if records[M2Unit.key_of(name, size, s)] is not None]
                histories = [figures.pop("history") for figures in per_seed]
                figures = results.setdefault(name, {})[size] = combine_seeds(per_seed)
                figures.update(floors)
                curve_floors = {key: figures[key] for key in FLOOR_KEYS if figures.get(key) is not None}
                figures["learning_curves"] = [learning_curve(history, floors=curve_floors) for history in histories]
                se, seeds = figures["bits_per_byte_se"], figures["seeds"]
                self.log(f"M2 {size} on {name}: {figures['bits_per_byte']:.3f}"
                         + (f" ± {se:.3f}" if se is not None else "")
                         + (f" (by document ± {figures['bits_per_byte_se_clustered']:.3f})"
                            if figures.get("bits_per_byte_se_clustered") is not None else "")
                         + (f" (seed std {seeds['std']:.3f}, {seeds['n']} seeds)" if seeds["n"] > 1 else "")
                         + f" bits/byte (uniform {figures['uniform_bits_per_byte']:.3f}, "
                         f"unigram {figures['unigram_bits_per_byte']:.3f})")
        attach_shuffled_controls(results)
        return results

    # 6. reports
    def report(self, started, m1_result, datasets, m2_results, skipped, control_results=None, source_mix=None,
               summaries=None):
        """results.json, results.md and the figure in OUT; returns the results dict. `summaries` {label: {side:
        build.summary}} stands for `datasets` where run() took them from the records."""
        results = {
            "preset": self.preset, "backend": self.backend.name, "corpus": self.corpus.describe(),
            "versions": versions(), "seconds": time.perf_counter() - started, "timings": self.timings,
            "m1": m1_result,
            "datasets": summaries if summaries is not None else {
                name: {side: build.summary(d) for side, d in sets.items()} for name, sets in datasets.items()},
            "m2": m2_results, "skipped": skipped, "controls": control_results or {},
            "source_mix": source_mix or {},
        }
        out = self.out
        if self.so_far:
            results["so_far"] = self.progress
            out = self.out / "so-far"
            out.mkdir(exist_ok=True)
        write_json(out / "results.json", results)
        (out / "results.md").write_text(tables.results_markdown(results))
        figure.draw(results, out / "bits_per_byte_vs_flops.png")
        figure.draw_learning_curves(results, out / "learning_curves.png")
        return results

    def estimate(self, examples):
        """Print how long this preset should take here (train/estimate.py), before the long work starts."""
        rows = min(self.preset["datasets"]["train_examples"], len(examples.train))
        figures = estimate.estimate(self.preset, self.backend, dataset_specs(self.preset), rows,
                                    np.asarray(examples.train[0].symbols, np.int64))
        self.log(estimate.describe(figures))
        return figures

    def run(self):
        """Every step; what OUT/units records (M2 runs, datasets' figures, M1's result, the AC control) is taken
        from there, so M1 is trained and a dataset built only when a unit still to run needs them."""
        started = time.perf_counter()
        examples = self.examples()
        source_mix = self.source_mix(examples)
        if self.so_far:
            return self.report_so_far(started, source_mix)
        self.estimate(examples)
        specs = {name: method for name, method, _, _, _ in dataset_specs(self.preset)}
        m1_cfg = m1.make_config(self.preset["m1"]["size"], self.preset["m1"].get("dtype", "float32"))
        context = self.m2_context(m1_cfg)
        pending = {unit.name for unit in self.m2_units(specs) if read_record(context, unit) is None}
        facts = {name: self.read_unit_record(f"datasets/{_slug(name)}") for name in specs}
        needed = [name for name in specs if name in pending or facts[name] is None]
        m1_record = self.read_unit_record("m1")
        ac_record = self.read_unit_record("controls") if any(m in ("ac", "equalinfo") for m in specs.values()) \
            else {"ac_context": None}
        if m1_record is None or ac_record is None or any(specs[name] in ("ac", "equalinfo") for name in needed):
            trained_m1 = self.train_m1(examples)
            self.write_unit_record("m1", {"result": trained_m1.result})
        else:
            trained_m1 = TrainedM1(None, m1_cfg, m1_record["result"])
            self.log(f"M1, {len(specs) - len(needed)} datasets and their M2s: from {self.out / 'units'}")
        datasets, skipped = self.build_datasets(examples, trained_m1, only=set(needed))
        for name, sets in datasets.items():
            facts[name] = self.write_unit_record(f"datasets/{_slug(name)}", self.dataset_facts(name, sets))
        if ac_record is None:
            ac_record = self.write_unit_record("controls", {"ac_context": self.controls(examples, trained_m1,
                                                                                        {})["ac_context"]})
        specs = {name: method for name, method in specs.items() if name not in skipped}
        facts = {name: facts[name] for name in specs}
        control_results = recorded_controls(specs, facts, ac_record)
        m2_results = self.train_m2(datasets, m1_cfg, facts)
        summaries = {name: facts[name]["summary"] for name in specs}
        return self.report(started, trained_m1.result, datasets, m2_results, skipped, control_results, source_mix,
                           summaries)

    def report_so_far(self, started, source_mix):
        """run() with --so-far: the report of the M2 runs recorded in OUT/units so far, written to OUT/so-far, for
        reading a long run while it goes (or after it stopped). Nothing is trained, built or written to OUT/units;
        every dataset, M1 and (with M1-coded rows) the AC control must be recorded already."""
        specs = {name: method for name, method, _, _, _ in dataset_specs(self.preset)}
        facts = {name: self.read_unit_record(f"datasets/{_slug(name)}") for name in specs}
        m1_record = self.read_unit_record("m1")
        ac_record = self.read_unit_record("controls") or {"ac_context": None}
        missing = [f"dataset {name}" for name, fact in facts.items() if fact is None] + \
            (["M1"] if m1_record is None else [])
        if missing:
            raise ValueError(f"--so-far: {self.out / 'units'} has no record of {', '.join(missing)} for this preset, "
                             "backend and corpus: run the command without --so-far first (it builds them)")
        m1_cfg = m1.make_config(self.preset["m1"]["size"], self.preset["m1"].get("dtype", "float32"))
        m2_results = self.train_m2(None, m1_cfg, facts)
        control_results = recorded_controls(specs, facts, ac_record)
        summaries = {name: facts[name]["summary"] for name in specs}
        return self.report(started, m1_record["result"], None, m2_results, {}, control_results, source_mix,
                           summaries)

    def dataset_facts(self, name, sets):
        """What the report needs of a built dataset: its summaries, its floors and (Equal-Info) its windows'
        statistics; kept in OUT/units/datasets/<slug>.json so a later run need not rebuild the dataset."""
        method, window_bits = next((m, b) for label_, m, b, _, _ in dataset_specs(self.preset) if label_ == name)
        floors = self._timed("window floors", m2.window_floors_of, sets["train"], sets["validation"],
                             self.preset["m2"].get("eval_rows"))
        windows = controls.window_statistics(sets["validation"], window_bits) if method == "equalinfo" else None
        return {"summary": {side: build.summary(d) for side, d in sets.items()}, "floors": floors,
                "windows": windows}

    def unit_identity(self):
        """What a step's record must match: this preset (its SHA-256), backend and corpus."""
        preset = json.dumps(self.preset, sort_keys=True).encode("utf-8")
        return {"backend": self.backend.name, "preset_sha256": hashlib.sha256(preset).hexdigest(),
                "corpus": corpus_identity(self.corpus)}

    def read_unit_record(self, name):
        """The content of OUT/units/<name>.json if it was written for this preset and backend, else None."""
        try:
            record = json.loads((self.out / "units" / f"{name}.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        ok = isinstance(record, dict) and record.get("identity") == self.unit_identity()
        return record.get("content") if ok else None

    def write_unit_record(self, name, content):
        """Write OUT/units/<name>.json and return its content as a reader gets it (through JSON)."""
        write_json(self.out / "units" / f"{name}.json", {"identity": self.unit_identity(), "content": content})
        return self.read_unit_record(name)


@dataclass(frozen=True)
class M2Unit:
    """One M2 of the grid: dataset `name` (its train and validation directories) x `size` x seed index."""
    name: str
    size: str
    seed_index: int
    train: str
    validation: str
    weight = 1

    @staticmethod
    def key_of(name, size, seed_index):
        return f"{_slug(name)}.{size}.seed{seed_index}"

    @property
    def key(self):
        return self.key_of(self.name, self.size, self.seed_index)


def record_path(context, unit):
    """Where an M2 unit's completion record lives: RECORDS/<slug>.<size>.seed<s>.json (small, self-contained JSON:
    commit it to carry the run into another session, docs/scaling.md)."""
    return Path(context["records"]) / f"{unit.key}.json"


def unit_identity(context, unit):
    """What a record must match to be taken for this unit: the unit, the backend, the whole preset, the corpus."""
    preset = json.dumps(context["preset"], sort_keys=True).encode("utf-8")
    return {"dataset": unit.name, "size": unit.size, "seed_index": unit.seed_index, "backend": context["backend"],
            "preset_sha256": hashlib.sha256(preset).hexdigest(), "corpus": context["corpus"]}


def corpus_identity(corpus):
    """The corpus as records name it: the default corpus's description (with its SHA-256), or each file's name,
    format and size -- not its path, which differs between checkouts and sessions."""
    described = corpus.describe()
    if "files" not in described:
        return described
    return {"format": described["format"], "text_field": described["text_field"],
            "text_split": described["text_split"],
            "files": [[Path(f["path"]).name, f["format"], f["size"]] for f in described["files"]]}


def read_record(context, unit):
    """The unit's completion record ({"unit", "figures", "seconds"}) if one for this very unit is there, else None."""
    path = record_path(context, unit)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("unit") == unit_identity(context, unit) else None


def run_m2_unit(context, unit):
    """Train and evaluate one M2 (checkpointed at WORK/m2/..., resumed when there), write its completion record and
    return it. context: {"preset", "work", "records", "backend", "m1_params"}. Runs anywhere that sees the dataset
    directories: in-process, in a pool, on Ray."""
    preset, spec = context["preset"], context["preset"]["m2"]
    backend = backends.load_or_fastest(context["backend"])
    sets = {side: open_dataset(getattr(unit, side)) for side in ("train", "validation")}
    uses_m1 = sets["train"].meta["method"] in ("ac", "equalinfo")
    cfg = m2.make_config(unit.size, sets["train"].meta["vocab_size"], spec.get("dtype", "float32"))
    path = m2_path(context["work"], unit.name, unit.size, unit.seed_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = m2_settings(spec, len(sets["train"]), int(preset["seed"]) + unit.seed_index)
    started = time.perf_counter()
    params, history = m2.train_m2(sets["train"], sets["validation"], path, backend, cfg, settings,
                                  spec["batch_size"], spec.get("eval_rows"), resume=path.exists())
    figures = m2.evaluate(params, cfg, backend, sets["train"], sets["validation"], spec["batch_size"],
                          context["m1_params"] if uses_m1 else 0, spec.get("eval_rows"))
    figures["final_train_loss"] = [r for r in history if "train_loss" in r][-1]["train_loss"]
    figures["history"] = history  # train_m2 turns it into the learning curve (report/learning_curves.py)
    figures["epochs"] = settings["steps"] * spec["batch_size"] / len(sets["train"])
    record = {"unit": unit_identity(context, unit), "figures": figures, "seconds": time.perf_counter() - started}
    write_json(record_path(context, unit), record)
    return json.loads(record_path(context, unit).read_text())  # what a rerun reads: the same figures, bit for bit


FLOOR_KEYS = ("uniform_bits_per_byte", "unigram_bits_per_byte", "whole_window_bits_per_byte", "bigram_bits_per_byte")


def recorded_controls(specs, facts, ac_record):
    """The report's controls from the records: each Equal-Info dataset's window statistics (its facts) and, where
    recorded, AC's context control. specs {label: method}."""
    controls = {"windows": {name: facts[name]["windows"] for name in specs if specs[name] == "equalinfo"}}
    if ac_record["ac_context"] is not None:
        controls["ac_context"] = ac_record["ac_context"]
    return controls


def beside_their_rows(units):
    """The M2 units in the order to run them: each shuffled-window control's runs right after the runs of the row it
    controls, so that a long run that stops early has finished pairs (a row without its control decides nothing
    about learning across windows). Otherwise the given order; the report's order does not change."""
    last_run = {unit.name: unit for unit in units}  # each dataset's last unit in the given order
    controls = {}  # row -> its control's units, held back until the row's last unit
    for unit in units:
        if unshuffled(unit.name) != unit.name and unshuffled(unit.name) in last_run:
            controls.setdefault(unshuffled(unit.name), []).append(unit)
    held = {id(unit) for waiting in controls.values() for unit in waiting}
    ordered = []
    for unit in units:
        if id(unit) in held:
            continue
        ordered.append(unit)
        if last_run[unit.name] is unit:
            ordered += controls.pop(unit.name, [])
    return ordered


def attach_shuffled_controls(m2_results):
    """Give every row that has a shuffled-window control in m2_results ({label: {size: figures}}) a
    "shuffled_control" per size: the control's label and bits/byte and report/seeds.py beats_control."""
    for name, by_size in m2_results.items():
        base = unshuffled(name)
        if base == name or base not in m2_results:
            continue
        for size, control in by_size.items():
            if size in m2_results[base]:
                m2_results[base][size]["shuffled_control"] = {
                    "label": name, "bits_per_byte": control["bits_per_byte"],
                    **beats_control(m2_results[base][size], control)}


def m2_path(out, name, size, seed_index=0):
    """OUT/m2/<slug>.<size>.npz for seed 0 (the path before seeds existed), <slug>.<size>.seed<s>.npz for others."""
    suffix = "" if seed_index == 0 else f".seed{seed_index}"
    return Path(out) / "m2" / f"{_slug(name)}.{size}{suffix}.npz"


def m2_settings(spec, train_rows, seed):
    """M2's training settings: the preset's, with the steps (and AdamW's total_steps) set from m2.epochs when the
    preset gives epochs, so that an epoch is exactly one pass over the training rows at any --scale."""
    settings = {**spec["train"], "seed": seed}
    if "epochs" in spec:
        steps = estimate.m2_steps(spec, train_rows)
        optimizer = dict(settings["optimizer"])
        if "total_steps" in optimizer:
            optimizer["total_steps"] = steps
            optimizer["warmup_steps"] = min(optimizer.get("warmup_steps", 0), steps // 2)
        settings.update(steps=steps, optimizer=optimizer)
    return settings


def scale_preset(preset, factor):
    """The preset with its data and training scaled by `factor` (repro --scale): train/validation examples, M1's
    steps and M2's steps (M2 stays at the same epochs); model sizes, lengths and learning rates stay."""
    if not factor > 0:
        raise PresetError(f"--scale must be positive, got {factor}")
    scaled = json.loads(json.dumps(preset))

    def times(value):
        return max(1, round(value * factor))

    for key in ("train_examples", "val_examples"):
        scaled["datasets"][key] = times(preset["datasets"][key])
    for part in ("m1", "m2"):
        train = scaled[part]["train"]
        train["steps"] = times(train["steps"])
        optimizer = train["optimizer"]
        if "total_steps" in optimizer:
            optimizer["total_steps"] = train["steps"]
            optimizer["warmup_steps"] = min(optimizer.get("warmup_steps", 0), train["steps"] // 2)
        for key in ("eval_every", "checkpoint_every"):
            if train.get(key):
                train[key] = times(train[key])
    if scaled["m2"].get("eval_rows"):
        scaled["m2"]["eval_rows"] = times(scaled["m2"]["eval_rows"])
    scaled["scale"] = factor
    validate(scaled, "the scaled preset")
    return scaled


def _slug(name):
    return name.replace("[", "_").replace("]", "").replace(",", "_").replace("=", "").replace(" ", "-")


def _m1_fingerprint(coder):
    model = getattr(coder, "model", None)
    return fingerprint(model.arrays()) if isinstance(model, TransformerModel) else None
