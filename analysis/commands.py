"""`equalinfo analyze {stability,positions,uniformity,seq2seq}` and `equalinfo generate`: argument parsing and the
glue from files on disk to the analyses (analysis/*.py) and to generation (analysis/generate.py).

Every analysis writes OUT/<name>.json (every number, plus the versions that made it) and OUT/<name>.png (skipped
with a note without matplotlib) and prints a short table. `--run DIR` points at an `equalinfo repro` output
directory and takes from it what an analysis needs (m1.npz, spm.model, datasets/*); single files can be given
instead. Errors are one `equalinfo: error: ...` line (cli.py): a wrong model for a dataset, a dataset of the
wrong method, an M1 other than the one that built a dataset.
"""
import glob
import sys
from pathlib import Path

import numpy as np

from equalinfo.analysis import common, positions, seq2seq, stability, uniformity
from equalinfo.train import backends, methods
from equalinfo.analysis import generate
from equalinfo.options import number


def _run_file(args, name):
    """A file of the --run directory if it exists there, else None."""
    if getattr(args, "run_dir", None) is None:
        return None
    path = Path(args.run_dir) / name
    return path if path.exists() else None


def _m1(args, backend, documents):
    path = args.m1 or _run_file(args, "m1.npz")
    if path is None:
        return common.stand_in_m1(documents)
    return common.load_m1(path, backend)


def _print(lines):
    print("\n".join(lines) if isinstance(lines, list) else lines)


def stability_command(args):
    backend = common.load_backend(args.backend)
    documents = common.corpus_documents(args.corpus)
    model, model_note = _m1(args, backend, documents)
    spm_path = args.spm_model or _run_file(args, "spm.model")
    names = args.methods
    processor, spm_note = (None, "not asked for")
    if "spm" in names:
        processor, spm_note = common.spm_processor(spm_path, documents)
        if processor is None:
            names = [n for n in names if n != "spm"]
            print(f"skipping SentencePiece: {spm_note}", file=sys.stderr)
    specs = common.parse_methods(names, args.window_bits, args.bits_per_token)
    tokenizers = common.Tokenizers(backend, model, common.unigram_of(documents), processor)
    words, source = stability.word_list(documents, args.words, args.seed, args.word_list)
    results = stability.run(tokenizers, specs, documents, words, source, args.word, args.contexts,
                            models={"m1": model_note, "spm": spm_note, "staticac": "unigram model fitted on the corpus",
                                    "backend": backend.name})
    _print(stability.summary_table(results))
    _print(common.write_results(args.out, "stability", results, stability.draw(results)))
    return 0


def _checkpoint_paths(specs):
    """Checkpoint files of --m2 arguments: files, directories (their *.npz) and globs, sorted, deduplicated."""
    paths = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            paths += sorted(path.glob("*.npz"))
        elif any(ch in spec for ch in "*?["):
            paths += [Path(p) for p in sorted(glob.glob(spec))]
        else:
            paths.append(path)
    if not paths:
        raise common.AnalysisError(f"--m2 {' '.join(specs)}: no checkpoint files found")
    return list(dict.fromkeys(paths))


def positions_command(args):
    backend = common.load_backend(args.backend)
    train_set, val_set = common.open_split(args.data, "train"), common.open_split(args.data, "validation")
    positions.check_dataset(val_set)
    checkpoints = []
    for path in _checkpoint_paths(args.m2):
        params, cfg, meta = common.load_m2(path, val_set)
        checkpoints.append((path, params, cfg, int(meta.get("step", 0))))
    results = positions.run(train_set, val_set, checkpoints, backend, args.batch_size, args.max_rows)
    _print(positions.summary_table(results))
    _print(common.write_results(args.out, "positions", results, positions.draw(results)))
    return 0


def _datasets(args):
    """Dataset directories of --data and of --run DIR/datasets/*."""
    directories = [Path(d) for d in args.data or []]
    if args.run_dir is not None:
        directories += sorted(p for p in (Path(args.run_dir) / "datasets").glob("*") if (p / "train").is_dir())
    if not directories:
        raise common.AnalysisError("give --data DIR [DIR ...] or --run DIR (an equalinfo repro output)")
    return directories


def uniformity_command(args):
    streams, skipped = {}, {}
    for directory in _datasets(args):
        dataset = common.open_split(directory, args.side)
        name = dataset.meta.get("label", directory.name)
        if dataset.meta["method"] in ("bytes", "spm"):
            skipped[name] = "its tokens are not a bitstream"
            continue
        streams[name] = uniformity.dataset_bits(dataset)
    padding = {}
    if args.compare_bytes:
        backend = common.load_backend(args.backend)
        documents = common.corpus_documents(args.corpus)
        model, note = _m1(args, backend, documents)
        text = b"\n".join(documents)[-args.compare_bytes:]  # the corpus's end: away from what M1 trained on first
        symbols = np.frombuffer(text, np.uint8).astype(np.int64)
        rules = {}
        for b in args.window_bits:
            ours, paper = uniformity.compare_padding(backend, model, symbols, b)
            rules[f"EqualInfo b={b}, delimiting cell (ours)"] = ours
            rules[f"EqualInfo b={b}, zero-padded (paper)"] = paper
        padding = {"model": note, "text_bytes": len(text)}
    if not streams:
        raise common.AnalysisError("no bit-method datasets to measure (bytes and spm datasets are skipped)")
    results = uniformity.run({"datasets": streams, "window rules": rules if padding else {}}, args.samples)
    results.update(skipped=skipped, padding_comparison=padding, side=args.side)
    _print(uniformity.summary_table(results))
    if skipped:
        print("skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    _print(common.write_results(args.out, "uniformity", results, uniformity.draw(results)))
    return 0


def seq2seq_command(args):
    backend = common.load_backend(args.backend)
    documents = common.corpus_documents(args.corpus)
    model, note = _m1(args, backend, documents)
    tokenizers = common.Tokenizers(backend, model, None)
    results = seq2seq.run(tokenizers, documents, backend, args.text_bytes, args.train_texts, args.val_texts,
                          args.size, args.steps, args.batch_size, args.lr, args.seed,
                          models={"m1": note, "backend": backend.name})
    _print(seq2seq.summary_table(results))
    _print(common.write_results(args.out, "seq2seq", results, seq2seq.draw(results)))
    return 0


# ------------------------------------------------------------------------------------------------- generate

def _text_maker(data_dir, m2_path, m1_path, backend, spm_model):
    """(dataset, params, cfg, text maker) for one M2 and its dataset, with every mismatch refused."""
    dataset = common.open_split(data_dir, "validation")
    params, cfg, _ = common.load_m2(m2_path, dataset)
    meta = dataset.meta
    if meta["method"] == "bytes":
        return dataset, params, cfg, generate.BytesText()
    if meta["method"] == "spm":
        path = spm_model or next((p / "spm.model" for p in Path(data_dir).resolve().parents
                                  if (p / "spm.model").is_file()), None)
        if path is None:
            raise common.AnalysisError(f"{data_dir} is a SentencePiece dataset: give --spm-model spm.model")
        processor, _ = common.spm_processor(path)
        if processor is None:
            raise common.AnalysisError("the sentencepiece package is not installed (pip install -e '.[spm]')")
        return dataset, params, cfg, generate.SentencePieceText(methods.SentencePiece(processor))
    if meta["method"] == "equalinfo":
        if m1_path is None:
            raise common.AnalysisError(f"{data_dir} is an Equal-Info dataset: give --m1 M1.npz (the M1 that built it)")
        m1_model = common.m1_for_dataset(m1_path, backend, dataset)
        return dataset, params, cfg, generate.EqualInfoText(m1_model, meta["window_bits"], meta["bits_per_token"],
                                                            backend)
    raise common.AnalysisError(f"{data_dir}: {meta.get('label', meta['method'])} tokens do not decode window by "
                               "window; generate works on equalinfo, bytes and spm datasets")


def generate_command(args):
    backend = common.load_backend(args.backend)
    runs = [(args.data, args.m2)] + [tuple(pair[::-1]) for pair in args.baseline or []]
    prompt = args.prompt.encode("utf-8")
    reports = {}
    for index, (data_dir, m2_path) in enumerate(runs):
        dataset, params, cfg, maker = _text_maker(data_dir, m2_path, args.m1, backend, args.spm_model)
        align = getattr(maker, "tokens_per_window", 1)
        sampler = generate.Sampler(backend.transformer, params, cfg, dataset.columns["tokens"]["shape"][0],
                                   args.temperature, np.random.default_rng(args.seed), align)
        print(f"--- {maker.name} M2 {m2_path} ---\n{args.prompt}", end="", flush=True)
        stream = generate.Utf8Stream(sys.stdout)
        _, stats = generate.generate(sampler, maker, prompt, args.max_bytes, args.max_steps, stream)
        stream.close()
        print()
        report = stats.report()
        if isinstance(maker, generate.EqualInfoText):
            report["canonical_windows"], report["checked_windows"] = generate.canonical_windows(
                maker, stats.window_texts)
        report.update(m2=str(m2_path), data=str(data_dir), method=maker.name, role="main" if index == 0 else
                      "baseline")
        reports[maker.name if maker.name not in reports else f"{maker.name} ({m2_path})"] = report
    rows = [[name, f"{r['bytes_per_step']:.2f}", f"{r['m2_ms_per_step']:.2f}", f"{r['decode_ms_per_step']:.2f}",
             f"{r['bytes_per_second']:.0f}", r["steps"],
             f"{r['empty_windows']}/{r['windows']}" if "windows" in r else "",
             f"{r['canonical_windows']}/{r['checked_windows']}" if "checked_windows" in r else ""]
            for name, r in reports.items()]
    print(common.table(["M2 over", "bytes/step", "M2 ms/step", "decode (M1) ms/step", "bytes/s", "steps",
                        "empty windows", "canonical windows"], rows))
    if args.json:
        from equalinfo.train.trainer import versions, write_json

        write_json(args.json, {"runs": reports, "prompt": args.prompt, "temperature": args.temperature,
                               "seed": args.seed, "backend": backend.name, "versions": versions()})
        print(f"wrote {args.json}")
    return 0


# ------------------------------------------------------------------------------------------------- parser

def add_commands(commands, add_threads_option):
    """Register `analyze` (with its four subcommands) and `generate` on the CLI's subparsers."""
    analyze = commands.add_parser("analyze", help="the paper's analyses (§5.2, §6) on datasets and models")
    kinds = analyze.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    def common_options(parser, m1=True):
        parser.add_argument("--out", required=True, help="directory for <analysis>.json and <analysis>.png")
        parser.add_argument("--backend", choices=backends.NAMES, default=None)
        if m1:
            parser.add_argument("--run", dest="run_dir", default=None,
                                help="an equalinfo repro output directory (m1.npz, ...)")
            parser.add_argument("--m1", default=None, help="M1 checkpoint (default: the run's, else an order-2 "
                                                            "Markov stand-in fitted on the corpus)")
            parser.add_argument("--corpus", default=None, help="text source (default: the embedded corpus)")
        add_threads_option(parser)

    parser = kinds.add_parser("stability", help="token stability: Levenshtein distances (Fig. 8), Tables 7-8")
    common_options(parser)
    parser.add_argument("--spm-model", default=None, help="SentencePiece model (default: the run's, else trained "
                                                          "on the corpus)")
    parser.add_argument("--methods", nargs="+", default=list(methods.METHODS))
    parser.add_argument("--window-bits", default=[16], nargs="+", type=number("window_bits"))
    parser.add_argument("--bits-per-token", default=[8, 16], nargs="+", type=number("bits_per_token"))
    parser.add_argument("--words", type=number("words"), default=200, help="words to sample (default 200)")
    parser.add_argument("--word-list", default=None, help="a file of words, one per line (default: the corpus's "
                                                          "most frequent words)")
    parser.add_argument("--word", default=None, help="the word of the Table 7 view (default: the first word)")
    parser.add_argument("--contexts", type=number("contexts"), default=3, help="contexts of the Table 7 view")
    parser.add_argument("--seed", type=number("seed"), default=0)
    parser.set_defaults(run_command=stability_command)

    parser = kinds.add_parser("positions", help="accuracy and loss per Equal-Info window position over M2 "
                                                "checkpoints (Fig. 10)")
    common_options(parser, m1=False)
    parser.add_argument("--data", required=True, help="an Equal-Info dataset directory")
    parser.add_argument("--m2", nargs="+", required=True,
                        help="M2 checkpoints: files, a directory or a glob (train-m2 --keep-every K keeps them)")
    parser.add_argument("--batch-size", type=number("batch_size"), default=8)
    parser.add_argument("--max-rows", type=number("max_rows"), default=None,
                        help="validation rows to score (default: all)")
    parser.set_defaults(run_command=positions_command)

    parser = kinds.add_parser("uniformity", help="KL(bits || uniform) per method vs a secrets baseline "
                                                 "(Figs. 11, 16, 17)")
    common_options(parser)
    parser.add_argument("--data", nargs="+", default=None, help="dataset directories (bit methods)")
    parser.add_argument("--side", choices=["train", "validation"], default="train")
    parser.add_argument("--samples", type=number("samples"), default=20,
                        help="disjoint samples per stream (the paper: 100)")
    parser.add_argument("--compare-bytes", type=number("compare_bytes"), default=16384,
                        help="bytes of corpus text coded with both window rules (0: skip that comparison)")
    parser.add_argument("--window-bits", default=[16], nargs="+", type=number("window_bits"))
    parser.set_defaults(run_command=uniformity_command)

    parser = kinds.add_parser("seq2seq", help="learning AC and EqualInfoAC[16,256] as seq2seq (Table 5)")
    common_options(parser)
    parser.add_argument("--text-bytes", type=number("text_bytes"), default=32)
    parser.add_argument("--train-texts", type=number("train_texts"), default=1000)
    parser.add_argument("--val-texts", type=number("val_texts"), default=200)
    parser.add_argument("--size", default="tiny", help="model size (micro, tiny, ...)")
    parser.add_argument("--steps", type=number("steps"), default=300)
    parser.add_argument("--batch-size", type=number("batch_size"), default=16)
    parser.add_argument("--lr", type=number("lr"), default=0.003)
    parser.add_argument("--seed", type=number("seed"), default=0)
    parser.set_defaults(run_command=seq2seq_command)
    analyze.set_defaults(run=lambda args: args.run_command(args))

    gen = commands.add_parser("generate", help="sample text from an M2 and time it (bytes/step, ms/step, bytes/s)")
    gen.add_argument("--m2", required=True, help="M2 checkpoint")
    gen.add_argument("--data", required=True, help="the M2's dataset directory (its method, b, v, M1 fingerprint)")
    gen.add_argument("--m1", default=None, help="M1 checkpoint (Equal-Info datasets)")
    gen.add_argument("--baseline", nargs=2, action="append", metavar=("M2", "DATA"),
                     help="another M2 and its dataset (bytes or spm) to run and time the same way; repeatable")
    gen.add_argument("--spm-model", default=None, help="SentencePiece model of an spm baseline (default: a "
                                                       "spm.model above its dataset directory)")
    gen.add_argument("--prompt", default="")
    gen.add_argument("--max-bytes", type=number("max_bytes"), default=200)
    gen.add_argument("--max-steps", type=number("max_steps"), default=None)
    gen.add_argument("--temperature", type=number("temperature"), default=1.0)
    gen.add_argument("--seed", type=number("seed"), default=0)
    gen.add_argument("--json", default=None, help="also write the report to this file")
    gen.add_argument("--backend", choices=backends.NAMES, default=None)
    add_threads_option(gen)
    gen.set_defaults(run=generate_command)
