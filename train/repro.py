"""`equalinfo repro`: the whole pipeline from raw text to the paper's tables, driven by a preset (JSON data).

Steps, each resumable from what is already in the output directory (a finished step is skipped):
1. corpus -> examples (data/packing.py), the train side shuffled from the seed;
2. M1 trained on the train side only (train/m1.py) -> m1.npz;
3. the coding models: M1 (its rows by the exact rule of the backend), StaticAC's unigram model, SentencePiece;
4. one dataset per method, window size and token width (train/build.py) for train and validation;
5. M2 at every preset size on every dataset (train/m2.py), evaluated as the paper does, once per seed (m2.seeds,
   default 1; seed s trains from preset seed + s) and the seeds combined (combine_seeds);
6. results.json (every figure, the preset, versions), results.md (Tables 15/12 shaped, the paper beside us) and
   bits_per_byte_vs_flops.png (like Figure 3) if matplotlib is installed. Each bits/byte comes with its standard
   error and the floors it must beat; "below unigram floor?" (below_floor) is yes only beyond 2 SE (+ seed std).
"""
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equalinfo.data.corpus import open_corpus
from equalinfo.data.packing import examples_to_documents, iter_examples, shuffle
from equalinfo.ref import transformer
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import UnigramModel
from equalinfo.train import backends, build, controls, estimate, m1, m2, methods
from equalinfo.report import uncertainty
from equalinfo.report.paper_numbers import PAPER, label
from equalinfo.train.preset_schema import PresetError, validate
from equalinfo.train.trainer import versions, write_json

PRESETS = Path(__file__).resolve().parent / "presets"


def load_preset(name_or_path):
    """The preset of a name (train/presets) or a .json path, checked against train/preset_schema.py."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.json"))
        raise PresetError(f"no preset {name_or_path!r} (known: {', '.join(known)}; or give a .json path)")
    try:
        preset = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PresetError(f"{path}: not valid JSON ({error})") from None
    if isinstance(preset, dict) and isinstance(preset.get("coding"), dict) and "max_window_symbols" in preset["coding"]:
        raise PresetError(f"{path}: coding.max_window_symbols is not a setting: Equal-Info windows end on their bits "
                          f"alone (ref/equalinfo.py)")
    validate(preset, str(path))
    return preset


def m1_reset_every(entry):
    """An equalinfo entry's "m1_reset_every" as ref/equalinfo.py's model_reset_every: k, or None for "never"."""
    value = entry.get("m1_reset_every", 1)
    return None if value == "never" else int(value)


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
                specs.append((label(method, b, n, entry.get("delimit", True), m1_reset_every(entry)),
                              method, b, n, entry))
    return specs


@dataclass
class Examples:
    """The corpus cut into examples: the train side shuffled from the seed, the validation side in corpus order."""
    train: list
    validation: list


@dataclass
class TrainedM1:
    """M1's parameters and config; `result` (validation bits/byte, history, size) when this run trained it;
    `seq_len` the sequence length it was trained on when it comes from elsewhere (a checkpoint's meta)."""
    params: dict
    cfg: transformer.Config
    result: dict = None
    seq_len: int = None


class Pipeline:
    """The steps of `equalinfo repro`, each taking its inputs and returning its outputs (run() chains them).

    What the steps share is fixed at construction: the preset, the output directory, the backend, the corpus, the
    log, plus two caches that never change a result (coded bits per method and window size, reused by the v=256 and
    v=65k datasets; the SentencePiece model, trained once) and the timings for the report.
    """

    def __init__(self, preset, out_dir, backend_name=None, corpus=None, log=print):
        self.preset, self.out = preset, Path(out_dir)
        self.backend = backends.load_or_fastest(backend_name)
        self.corpus = open_corpus(corpus if corpus is not None else preset.get("corpus", "default"))
        self.seed = int(preset["seed"])
        self.log = log
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings = {}
        self.bit_caches = {}  # (method, window bits) -> {example: bits}, see methods.BitMethod
        self.spm = None  # (SentencePiece processor, model bytes) once trained

    def _timed(self, name, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
        return result

    # 1. examples
    def examples(self):
        """The corpus's examples (Examples)."""
        packing = self.preset["packing"]
        documents = list(self.corpus)
        sides = {side: list(iter_examples(documents, side, packing["group_size"], packing["example_length"],
                                          packing["validation_every"])) for side in ("train", "validation")}
        if not sides["train"] or not sides["validation"]:
            raise PresetError("the corpus is too small for this preset: one side of the split is empty")
        examples = Examples(shuffle(sides["train"], self.seed), sides["validation"])
        self.log(f"corpus: {len(documents)} documents -> {len(examples.train)} train / "
                 f"{len(examples.validation)} validation examples")
        return examples

    # 2. M1
    def train_m1(self, examples, path=None, resume=None):
        """M1 trained on the train side (TrainedM1), checkpointed at `path` (default OUT/m1.npz); by default a
        checkpoint already there is resumed (finished training is not repeated)."""
        spec = self.preset["m1"]
        path = self.out / "m1.npz" if path is None else Path(path)
        cfg = m1.make_config(spec["size"], spec.get("dtype", "float32"))
        train_symbols = np.concatenate([e.symbols for e in examples.train]).astype(np.int64)
        val_symbols = np.concatenate([e.symbols for e in examples.validation]).astype(np.int64)
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
        precision = self.preset["coding"].get("precision", 14)
        delimit, reset_every = entry.get("delimit", True), m1_reset_every(entry)
        cache = self.bit_caches.setdefault((method, window_bits, delimit, reset_every), {})  # v=256 and v=65k
        if method == "bytes":
            return methods.Bytes()
        if method == "gzip":
            return methods.Gzip(bits_per_token, cache)
        if method == "staticac":
            train_symbols = np.concatenate([e.symbols for e in examples.train]).astype(np.int64)
            return methods.ArithmeticCoded("staticac", UnigramModel.fit(train_symbols), bits_per_token,
                                           self.backend, precision, cache)
        if method in ("ac", "equalinfo"):
            model = self.m1_coding_model(trained_m1)
            if method == "ac":
                return methods.ArithmeticCoded("ac", model, bits_per_token, self.backend, precision, cache)
            return methods.EqualInfo(model, window_bits, bits_per_token, self.backend, precision, cache, delimit,
                                     reset_every)
        if method == "spm":
            if self.spm is None:
                documents = examples_to_documents(examples.train)
                self.spm = self._timed("train_spm", methods.train_sentencepiece, documents,
                                       entry.get("vocab_size", 32_000), self.seed)
                (self.out / "spm.model").write_bytes(self.spm[1])
            return methods.SentencePiece(self.spm[0])
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

    def build_datasets(self, examples, trained_m1):
        """(datasets {label: {"train": Dataset, "validation": Dataset}}, skipped {label: reason}) for the preset."""
        datasets, skipped = {}, {}
        for name, method, b, n, entry in dataset_specs(self.preset):
            if method == "spm" and not methods.sentencepiece_available():
                skipped[name] = "the sentencepiece package is not installed (pip install -e '.[spm]')"
                self.log(f"skipping {name}: {skipped[name]}")
                continue
            datasets[name] = self.build_one(name, method, b, n, entry, self.out / "datasets" / _slug(name),
                                            examples, trained_m1)
        return datasets, skipped

    def build_one(self, name, method, window_bits, bits_per_token, entry, directory, examples, trained_m1=None):
        """The train and validation datasets of one method in directory/train and directory/validation."""
        spec = self.preset["datasets"]
        coder = self.method_for(method, window_bits, bits_per_token, entry, examples, trained_m1)
        meta = {"label": name, "window_bits": window_bits, "bits_per_token": bits_per_token,
                "backend": self.backend.name, "m1_fingerprint": _m1_fingerprint(coder), "seed": self.seed}
        sets = {}
        for side, side_examples, count in (("train", examples.train, spec["train_examples"]),
                                           ("validation", examples.validation, spec["val_examples"])):
            sets[side] = self._timed(f"build {name}", build.build_dataset, side_examples[:count], coder,
                                     Path(directory) / side, spec["seq_len"], meta, desc=f"{name} {side}")
        self.log(f"dataset {name}: CR {build.summary(sets['validation'])['cr_full']:.3f}")
        return sets

    # 4b. controls
    def controls(self, examples, trained_m1, datasets):
        """{"ac_context": ..., "windows": {label: ...}} (train/controls.py): AC with M1 at its training length vs
        over whole examples, on the validation examples the datasets use; zero padding's trace in every Equal-Info
        dataset. Empty where the preset has no M1 method."""
        out = {}
        specs = {name: (method, b) for name, method, b, _, _ in dataset_specs(self.preset)}
        if any(method in ("ac", "equalinfo") for method, _ in specs.values()):
            precision = self.preset["coding"].get("precision", 14)
            chosen = examples.validation[:self.preset["datasets"]["val_examples"]]
            whole = self.m1_coding_model(trained_m1, restart_every=None)  # extrapolates, on purpose
            out["ac_context"] = self._timed("controls", controls.ac_context, self.backend,
                                            self.m1_coding_model(trained_m1), whole, chosen, precision)
            self.log("control: AC with M1 at its training length {bits_per_byte_trained_context:.3f} bits/byte, "
                     "over whole examples {bits_per_byte_whole_example:.3f}".format(**out["ac_context"]))
        out["windows"] = {name: controls.window_statistics(sets["validation"], specs[name][1])
                          for name, sets in datasets.items() if specs[name][0] == "equalinfo"}
        return out

    # 5. M2
    def train_m2(self, datasets, m1_cfg):
        """{label: {size: figures}}: M2 at every preset size trained on every dataset once per seed (m2.seeds),
        evaluated, and the seeds' figures combined (combine_seeds)."""
        spec = self.preset["m2"]
        m1_count = transformer.count_params(m1_cfg)["matrices"]
        results = {}
        for name, sets in datasets.items():
            vocab = sets["train"].meta["vocab_size"]
            uses_m1 = sets["train"].meta["method"] in ("ac", "equalinfo")
            for size in spec["sizes"]:
                cfg = m2.make_config(size, vocab, spec.get("dtype", "float32"))
                per_seed = [self.train_m2_seed(name, sets, size, cfg, s, m1_count if uses_m1 else 0)
                            for s in range(spec.get("seeds", 1))]
                figures = results.setdefault(name, {})[size] = combine_seeds(per_seed)
                se, seeds = figures["bits_per_byte_se"], figures["seeds"]
                self.log(f"M2 {size} on {name}: {figures['bits_per_byte']:.3f}"
                         + (f" ± {se:.3f}" if se is not None else "")
                         + (f" (seed std {seeds['std']:.3f}, {seeds['n']} seeds)" if seeds["n"] > 1 else "")
                         + f" bits/byte (uniform {figures['uniform_bits_per_byte']:.3f}, "
                         f"unigram {figures['unigram_bits_per_byte']:.3f})")
        return results

    def train_m2_seed(self, name, sets, size, cfg, seed_index, m1_params):
        """The figures of one M2 trained with seed preset seed + seed_index (its initial parameters and batch order),
        checkpointed at m2_path (resumed when there)."""
        spec = self.preset["m2"]
        path = m2_path(self.out, name, size, seed_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        settings = m2_settings(spec, len(sets["train"]), self.seed + seed_index)
        params, history = self._timed(
            f"train_m2 {name} {size}", m2.train_m2, sets["train"], sets["validation"], path, self.backend,
            cfg, settings, spec["batch_size"], spec.get("eval_rows"), resume=path.exists())
        figures = m2.evaluate(params, cfg, self.backend, sets["train"], sets["validation"], spec["batch_size"],
                              m1_params, spec.get("eval_rows"))
        figures["final_train_loss"] = [r for r in history if "train_loss" in r][-1]["train_loss"]
        figures["epochs"] = settings["steps"] * spec["batch_size"] / len(sets["train"])
        return figures

    # 6. reports
    def report(self, started, m1_result, datasets, m2_results, skipped, control_results=None):
        """results.json, results.md and the figure in OUT; returns the results dict."""
        results = {
            "preset": self.preset, "backend": self.backend.name, "corpus": self.corpus.describe(),
            "versions": versions(), "seconds": time.perf_counter() - started, "timings": self.timings,
            "m1": m1_result,
            "datasets": {name: {side: build.summary(d) for side, d in sets.items()}
                         for name, sets in datasets.items()},
            "m2": m2_results, "skipped": skipped, "controls": control_results or {},
        }
        write_json(self.out / "results.json", results)
        (self.out / "results.md").write_text(results_markdown(results))
        figure(results, self.out / "bits_per_byte_vs_flops.png")
        return results

    def estimate(self, examples):
        """Print how long this preset should take here (train/estimate.py), before the long work starts."""
        rows = min(self.preset["datasets"]["train_examples"], len(examples.train))
        figures = estimate.estimate(self.preset, self.backend, dataset_specs(self.preset), rows,
                                    np.asarray(examples.train[0].symbols, np.int64))
        self.log(estimate.describe(figures))
        return figures

    def run(self):
        started = time.perf_counter()
        examples = self.examples()
        self.estimate(examples)
        trained_m1 = self.train_m1(examples)
        datasets, skipped = self.build_datasets(examples, trained_m1)
        control_results = self.controls(examples, trained_m1, datasets)
        m2_results = self.train_m2(datasets, trained_m1.cfg)
        return self.report(started, trained_m1.result, datasets, m2_results, skipped, control_results)


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


def combine_seeds(per_seed):
    """One row's figures from the figures of each seed ([dict], seed 0 first).

    A figure the seeds share (the CR, the floors, FLOPs) is kept as it is; one that differs (bits/byte, its SE, the
    losses) becomes the mean over seeds (None if some seed has none). `seeds` adds the spread of bits/byte:
    {"n", "std" (sample std, None for one seed), "min", "max", "values" (seed 0 first)}."""
    combined = {}
    for key in per_seed[0]:
        values = [figures.get(key) for figures in per_seed]
        if all(value == values[0] for value in values):
            combined[key] = values[0]
        elif all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
            combined[key] = float(np.mean(values))
        else:
            combined[key] = None
    values = [figures["bits_per_byte"] for figures in per_seed]
    spread = uncertainty.seed_spread(values)
    combined["seeds"] = {"n": spread["n"], "std": spread["std"], "min": spread["min"], "max": spread["max"],
                         "values": values}
    return combined


def floor_margin(figures):
    """How far below a floor bits/byte must lie to count: 2 SE, plus the seed std when there are several seeds;
    None when the SE is unknown (fewer than two evaluated rows)."""
    se = figures.get("bits_per_byte_se")
    if se is None:
        return None
    seeds = figures.get("seeds") or {}
    return 2 * se + (seeds["std"] if seeds.get("n", 1) > 1 and seeds.get("std") is not None else 0.0)


def below_floor(figures, floor_key="unigram_bits_per_byte"):
    """True when bits/byte + floor_margin is below the floor (held-out unigram by default): "learnable" in the
    project's sense; False otherwise; None when the margin is unknown."""
    margin = floor_margin(figures)
    if margin is None or figures.get(floor_key) is None:
        return None
    return figures["bits_per_byte"] + margin < figures[floor_key]


def _slug(name):
    return name.replace("[", "_").replace("]", "").replace(",", "_").replace("=", "").replace(" ", "-")


def _m1_fingerprint(coder):
    model = getattr(coder, "model", None)
    return fingerprint(model.arrays()) if isinstance(model, TransformerModel) else None


def results_markdown(results):
    sizes = results["preset"]["m2"]["sizes"]
    lines = ["# equalinfo repro: preset results", "",
             f"Backend `{results['backend']}`, {results['seconds'] / 60:.1f} minutes, "
             f"{results['versions'].get('platform', '')}, Python {results['versions']['python']}.", "",
             f"M1 ({results['m1']['config']['d_model']}-dim, {results['m1']['config']['n_layers']} layers): "
             f"{results['m1']['val_bits_per_byte']:.3f} bits/byte on validation (the paper's M1: 1.457).", "",
             "## Bits/byte (FLOPs/byte) by M2 size, like the paper's Tables 15-16", "",
             "| Method | " + " | ".join(f"ours {s}" for s in sizes) + " | ours uniform | ours unigram (held-out) | "
             f"ours unigram (add-one) | below unigram floor? ({' / '.join(sizes)}) | paper 25m | paper 2b |",
             "|---" * (len(sizes) + 7) + "|"]
    for name, by_size in results["m2"].items():
        cells = [f"{_mean_se(by_size[s])} ({by_size[s]['flops_per_byte'] / 1e3:.1f}K)" for s in sizes]
        first = by_size[sizes[0]]
        verdicts = " / ".join({True: "yes", False: "no", None: "unknown"}[below_floor(by_size[s])] for s in sizes)
        paper = PAPER.get(name, (None, None, None))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {first['uniform_bits_per_byte']:.3f} | "
                     f"{first['unigram_bits_per_byte']:.3f} | {_fmt3(first.get('unigram_addone_bits_per_byte'))} | "
                     f"{verdicts} | {_fmt(paper[1])} | {_fmt(paper[2])} |")
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {reason} |")
    lines += ["", "bits/byte ± its standard error over the evaluated validation rows (delta method for a ratio of row "
              "sums, report/uncertainty.py); with several seeds (m2.seeds) the mean over seeds, and `seed std` their "
              "sample std. The unigram floor is held out: token frequencies of the train side, additive smoothing "
              "chosen by leave-one-out (report/unigram.py), scored on the same validation rows; add-one, the floor "
              "reported before, is unsound for a large vocabulary with few tokens and is shown for comparison only. "
              "\"below unigram floor?\" says yes only when bits/byte + 2 SE (+ the seed std) is below the held-out "
              "floor: a figure within that margin of the floor does not show that M2 learnt anything beyond token "
              "frequencies."]
    lines += ["", "## Token compression ratios, like the paper's Table 12", "",
              "| Method | ours (whole examples) | ours (kept data) | kept fraction | paper |", "|---|---|---|---|---|"]
    for name, sides in results["datasets"].items():
        s = sides["validation"]
        lines.append(f"| {name} | {s['cr_full']:.3f} | {s['cr_kept']:.3f} | {s['kept_fraction']:.2f} | "
                     f"{_fmt(PAPER.get(name, (None,))[0])} |")
    lines += controls_markdown(results.get("controls", {}))
    return "\n".join(lines) + "\n"


def controls_markdown(control_results):
    """The controls' section of results.md (train/controls.py says what each measures)."""
    lines = []
    context = control_results.get("ac_context")
    if context:
        lines += ["", "## Control: M1's context in AC", "",
                  f"AC over {context['examples']} validation examples ({context['bytes']:,} bytes), the coder's own "
                  "bits/byte:", "",
                  "| M1 reads | bits/byte |", "|---|---|",
                  f"| restarting every {context['restart_every']} symbols (its training length; what the datasets "
                  f"use) | {context['bits_per_byte_trained_context']:.3f} |",
                  f"| the whole example (extrapolating) | {context['bits_per_byte_whole_example']:.3f} |"]
    windows = control_results.get("windows")
    if windows:
        lines += ["", "## Control: zero padding's trace in Equal-Info tokens (validation, kept tokens)", "",
                  "| Dataset | windows | mean trailing zero bits | last bit 0 | KL(last token) | KL(all tokens) | "
                  "KL(random, same count) |", "|---|---|---|---|---|---|---|"]
        for name, w in windows.items():
            lines.append(f"| {name} | {w['windows']:,} | {w['mean_trailing_zero_bits']:.2f} | "
                         f"{w['last_bit_zero_fraction']:.2f} | {w['last_token_kl']:.3f} | {w['all_tokens_kl']:.3f} | "
                         f"{w['random_kl']:.3f} |")
    return lines


def _mean_se(figures):
    """'4.728 ± 0.012', with the seed std when there are several seeds: '4.728 ± 0.012, seed std 0.020 (n=3)'."""
    text = f"{figures['bits_per_byte']:.3f}"
    if figures.get("bits_per_byte_se") is not None:
        text += f" ± {figures['bits_per_byte_se']:.3f}"
    seeds = figures.get("seeds") or {}
    if seeds.get("n", 1) > 1:
        text += f", seed std {seeds['std']:.3f} (n={seeds['n']})"
    return text


def _fmt3(value):
    return "" if value is None else f"{value:.3f}"


def _fmt(value):
    return "" if value is None else f"{value:.2f}"


def figure(results, path):
    """bits/byte against FLOPs/byte, one line per method across M2 sizes (the paper's Figure 3), with error bars of
    floor_margin (2 SE, plus the seed std with several seeds) and each method's held-out unigram (dotted) and
    uniform (dash-dot) floors in its colour; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = results["preset"]["m2"]["sizes"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = plt.get_cmap("tab20").colors
    for index, (name, by_size) in enumerate(results["m2"].items()):
        color = colors[index % len(colors)]
        xs = [by_size[s]["flops_per_byte"] for s in sizes]
        ys = [by_size[s]["bits_per_byte"] for s in sizes]
        bars = [floor_margin(by_size[s]) or 0.0 for s in sizes]  # 2 SE (+ seed std): the "below floor" margin
        ax.errorbar(xs, ys, yerr=bars, marker="o", color=color, linestyle="-" if index < 20 else "--", capsize=3,
                    label=name)
        # the method's floors, as a segment across its FLOPs range (a little wider, so one size shows too)
        span = (min(xs) / 1.15, max(xs) * 1.15)
        ax.hlines(by_size[sizes[0]]["unigram_bits_per_byte"], *span, colors=[color], linestyles=":", linewidth=1.2)
        ax.hlines(by_size[sizes[0]]["uniform_bits_per_byte"], *span, colors=[color], linestyles="-.", linewidth=0.8,
                  alpha=0.5)
    ax.plot([], [], color="gray", linestyle=":", label="held-out unigram floor")
    ax.plot([], [], color="gray", linestyle="-.", alpha=0.5, label="uniform floor")
    ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs/byte")
    ax.set_ylabel("bits/byte (validation)")
    ax.set_title("bits/byte vs FLOPs/byte (cf. the paper's Figure 3); bars: 2 SE (+ seed std)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True

