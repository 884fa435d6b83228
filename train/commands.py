"""The pipeline's subcommands of `equalinfo`: repro, train-m1, build, train-m2, eval.

Each step reads its settings from a preset (train/presets/*.json; `--preset demo` by default) and lets a few flags
override them, so a step run alone does exactly what the same step does inside `equalinfo repro`.
The preset is checked (train/preset_schema.py) and checkpoints are loaded in their role (an M2 is refused as --m1)
before an output directory is made; a command that fails anyway removes the directories it made if they are
empty, so a failed command leaves no empty folders (a step's partial files stay: they are what --resume reads).
"""
import contextlib
import json
import os
import sys
from pathlib import Path

from equalinfo.data.shards import open_dataset
from equalinfo.options import number
from equalinfo.ref.transformer import SIZES, count_params
from equalinfo.train import backends, executors, m2, repro
from equalinfo.train.build import summary
from equalinfo.train.m1 import trained_context
from equalinfo.train.preset_schema import precision_of
from equalinfo.train.methods import METHODS
from equalinfo.report.paper_numbers import label
from equalinfo.train.trainer import load_checkpoint, write_json


@contextlib.contextmanager
def removing_new_empty_dirs(*paths):
    """On failure, remove the directories at or above `paths` (and below them) that did not exist before and are
    empty; on success leave everything."""
    created = []
    for path in paths:
        path = Path(path).absolute()
        for directory in [path, *path.parents]:
            if directory.exists():
                break
            created.append(directory)
    try:
        yield
    except BaseException:
        for top in sorted(set(created), key=lambda d: len(d.parts), reverse=True):
            if top.is_dir() and not top.is_symlink():
                for root, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
                    with contextlib.suppress(OSError):
                        os.rmdir(root)  # only succeeds on an empty directory
        raise


def kept_checkpoint(args):
    """train-m1/train-m2 interrupted: the last checkpoint written (trainer.py writes them every few minutes)."""
    if Path(args.out).exists():
        return f"kept {args.out}, the last checkpoint; rerun the same command with --resume to continue from it"
    return "no checkpoint written yet; rerun the same command to start again"


def kept_directory(args):
    """repro/build interrupted: the finished steps in OUT, which a rerun of the same command reuses."""
    out = Path(args.out)
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not names:
        return "no output written"
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"kept what was finished in {out} ({shown}); rerun the same command to resume"


def _executor(args):
    """Where the units of a build or repro run (train/executors.py): --ray, else --workers (default: the cores)."""
    if not hasattr(args, "workers"):
        return None
    if args.ray and args.workers is not None:
        raise ValueError("--ray and --workers choose where units run: give one of them")
    return executors.make_executor(args.workers, args.ray)


def _pipeline(args, out_dir):
    preset = repro.load_preset(args.preset)
    if getattr(args, "seed", None) is not None:
        preset["seed"] = args.seed
    if getattr(args, "scale", None) is not None:
        preset = repro.scale_preset(preset, args.scale)
    return repro.Pipeline(preset, out_dir, args.backend, args.corpus, log=lambda text: print(text, file=sys.stderr),
                          executor=_executor(args), work_dir=getattr(args, "work", None),
                          stream=getattr(args, "stream", None) or "auto")


def _closing(pipeline):
    """Stop a process pool's workers when the command ends (executors.ProcessPool keeps them between batches)."""
    close = getattr(pipeline.executor, "close", None)
    if close is not None:
        close()


def repro_command(args):
    if args.so_far:
        args.workers, args.ray = 1, None  # nothing runs: no worker to start
    pipeline = _pipeline(args, args.out)
    pipeline.so_far = args.so_far
    try:
        results = pipeline.run()
    finally:
        _closing(pipeline)
    if args.so_far:
        progress = results["so_far"]
        print(f"wrote {Path(args.out) / 'so-far' / 'results.md'} and results.json: {progress['finished']} of "
              f"{progress['runs']} M2 runs finished")
        return 0
    print(f"wrote {Path(args.out) / 'results.md'} and results.json ({results['seconds'] / 60:.1f} minutes, "
          f"backend {results['backend']})")
    return 0


def refuse_existing_checkpoint(path, resume):
    """A checkpoint OUT that exists is a trained model: replaced only when asked, continued with --resume."""
    if not resume and os.path.exists(path):
        raise ValueError(f"{path} already exists: --resume continues its training; to start over, remove it first")


def train_m1_command(args):
    refuse_existing_checkpoint(args.out, args.resume)
    pipeline = _pipeline(args, Path(args.out).parent)
    spec = pipeline.preset["m1"]
    if args.size is not None:
        spec["size"] = args.size
    if args.steps is not None:
        spec["train"]["steps"] = args.steps
        spec["train"]["optimizer"]["total_steps"] = args.steps
    pipeline.train_m1(pipeline.examples(), path=args.out, resume=args.resume)
    print(f"wrote {args.out}")
    return 0


def build_command(args):
    if args.method in ("ac", "equalinfo") and not args.m1:
        raise ValueError(f"--method {args.method} needs --m1 CHECKPOINT (train one with equalinfo train-m1)")
    precision = precision_of(repro.load_preset(args.preset))
    if args.method == "equalinfo" and args.window_bits < precision:
        raise ValueError(f"--window-bits {args.window_bits}: below the preset's coding.precision {precision}; a "
                         "window must hold any one symbol (b >= precision)")
    m1_checkpoint = load_checkpoint(args.m1, "m1") if args.m1 else None
    pipeline = _pipeline(args, args.out)
    trained_m1 = (repro.TrainedM1(*m1_checkpoint[:2], seq_len=trained_context(m1_checkpoint[3]))
                  if m1_checkpoint else None)
    entry = {"method": args.method, "vocab_size": args.vocab_size}
    name = label(args.method, args.window_bits, args.bits_per_token)
    try:
        sets = pipeline.build_one(name, args.method, args.window_bits, args.bits_per_token, entry, Path(args.out),
                                  pipeline.examples(), trained_m1)
    finally:
        _closing(pipeline)
    print(json.dumps({"dataset": name, **{side: summary(d) for side, d in sets.items()}}, indent=1))
    return 0


def train_m2_command(args):
    refuse_existing_checkpoint(args.out, args.resume)
    train_set, val_set = open_dataset(Path(args.data) / "train"), open_dataset(Path(args.data) / "validation")
    preset = repro.load_preset(args.preset)["m2"]
    settings = dict(preset["train"], seed=args.seed or 0)
    if args.steps is not None:
        settings["steps"] = args.steps
        settings["optimizer"] = dict(settings["optimizer"], total_steps=args.steps)
    if args.keep_every:
        settings["checkpoint_every"] = args.keep_every
    cfg = m2.make_config(args.size, train_set.meta["vocab_size"], preset.get("dtype", "float32"))
    _, history = m2.train_m2(train_set, val_set, args.out, backends.load_or_fastest(args.backend), cfg, settings,
                             preset["batch_size"], preset.get("eval_rows"), resume=args.resume,
                             keep_checkpoints=bool(args.keep_every))
    last = [r for r in history if "val_bits_per_byte" in r][-1]
    print(f"M2 {args.size}: {last['val_bits_per_byte']:.4f} bits/byte on validation; wrote {args.out}")
    return 0


def eval_command(args):
    params, cfg, _, _ = load_checkpoint(args.m2, "m2")
    m1_cfg = load_checkpoint(args.m1, "m1")[1] if args.m1 else None
    train_set, val_set = open_dataset(Path(args.data) / "train"), open_dataset(Path(args.data) / "validation")
    if cfg.vocab_out != val_set.meta["vocab_size"]:
        raise ValueError(f"{args.m2} predicts {cfg.vocab_out} tokens but {args.data} has "
                         f"{val_set.meta['vocab_size']}: wrong model for this dataset")
    m1_params = 0
    if val_set.meta["method"] in ("ac", "equalinfo"):
        if not args.m1:
            raise ValueError("this dataset was made with M1: give --m1 CHECKPOINT so FLOPs/byte can count it")
        m1_params = count_params(m1_cfg)["matrices"]
    backend = backends.load_or_fastest(args.backend)
    figures = m2.evaluate(params, cfg, backend, train_set, val_set, args.batch_size, m1_params)
    if args.json:
        write_json(args.json, figures)
    print(json.dumps(figures, indent=1))
    return 0


def add_commands(commands, add_threads_option):
    """Register the pipeline subcommands on an argparse subparsers object.

    add_threads_option(parser) adds the CLI's shared --threads N (cli.py applies it before a command runs).
    """
    def common(parser, corpus=True):
        parser.add_argument("--preset", default="demo", help="a preset name (train/presets) or a .json path")
        parser.add_argument("--backend", choices=backends.NAMES, default=None,
                            help="ref, cpu or gpu (default: the fastest available)")
        parser.add_argument("--seed", type=number("seed"), default=None, help="override the preset's seed")
        add_threads_option(parser)
        if corpus:
            parser.add_argument("--corpus", default=None,
                                help="C4 json/json.gz, JSONL, text files, a directory or a glob; one text file "
                                     "or - (stdin) is cut into documents of paragraphs, about 2 KB each "
                                     "(default: the embedded default corpus)")
            parser.add_argument("--stream", choices=("auto", "on", "off"), default="auto",
                                help="pack the corpus in one streaming pass into an example store in the work "
                                     "directory (examples/; build: OUT/examples) and give units row indices, in "
                                     "bounded memory; auto: "
                                     "when the corpus files hold more than 256 MB (the same datasets either way; "
                                     "docs/scaling.md)")

    def scale_out(parser):
        parser.add_argument("--workers", type=number("workers"), default=None,
                            help="local worker processes for the units (dataset shards, M2 runs); 1 runs them in "
                                 "this process (default: one per core)")
        parser.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                            help="run the units on Ray: auto (a local instance, or the cluster ray start made "
                                 "here) or a cluster's address; needs pip install -e '.[cluster]' (docs/scaling.md)")

    run = commands.add_parser("repro", help="the whole pipeline: M1, every dataset, M2, the paper's tables")
    run.add_argument("--out", required=True, help="output directory (a finished step there is reused)")
    run.add_argument("--scale", type=number("scale"), default=None,
                     help="multiply the preset's data (train/validation examples) and training steps by this "
                          "factor, keeping model sizes and M2's epochs: <1 for a quick look, >1 for more cores or a GPU")
    run.add_argument("--work", default=None,
                     help="where M1, the datasets and the checkpoints go (default: OUT); OUT then holds only the "
                          "results and the M2 runs' small completion records (docs/scaling.md)")
    run.add_argument("--so-far", action="store_true",
                     help="train and build nothing: report the M2 runs finished so far (OUT/units) into OUT/so-far, "
                          "e.g. while the same command runs or after it stopped; rows show how many seeds are in")
    common(run)
    scale_out(run)
    run.set_defaults(run=repro_command, out_dirs=lambda args: [args.out], kept=kept_directory)

    m1 = commands.add_parser("train-m1", help="train M1 on the train side of a corpus")
    m1.add_argument("--out", required=True, help="checkpoint to write (.npz)")
    m1.add_argument("--size", default=None, choices=sorted(SIZES),
                    help="model size (default from the preset)")
    m1.add_argument("--steps", type=number("steps"), default=None)
    m1.add_argument("--resume", action="store_true", help="continue from --out, bit-identically")
    common(m1)
    m1.set_defaults(run=train_m1_command, out_dirs=lambda args: [Path(args.out).parent], kept=kept_checkpoint)

    build = commands.add_parser("build", help="compress the corpus's examples into an M2 dataset")
    build.add_argument("--out", required=True, help="dataset directory (train/ and validation/ inside)")
    build.add_argument("--method", required=True, choices=METHODS)
    build.add_argument("--m1", default=None, help="M1 checkpoint (ac, equalinfo)")
    build.add_argument("--window-bits", type=number("window_bits"), default=16,
                       help="equalinfo window size b (16, 24, 32, 64, 128)")
    build.add_argument("--bits-per-token", type=number("bits_per_token"), default=8,
                       help="token width N: v = 2^N (1..16)")
    build.add_argument("--vocab-size", type=number("vocab_size"), default=32_000,
                       help="SentencePiece vocabulary (spm)")
    common(build)
    scale_out(build)
    build.set_defaults(run=build_command, out_dirs=lambda args: [args.out], kept=kept_directory)

    m2_parser = commands.add_parser("train-m2", help="train M2 on a dataset made by build")
    m2_parser.add_argument("--data", required=True, help="dataset directory from equalinfo build")
    m2_parser.add_argument("--out", required=True, help="checkpoint to write (.npz)")
    m2_parser.add_argument("--size", default="tiny", choices=sorted(SIZES), help="M2 size")
    m2_parser.add_argument("--steps", type=number("steps"), default=None)
    m2_parser.add_argument("--resume", action="store_true")
    m2_parser.add_argument("--keep-every", type=number("keep_every"), default=0, metavar="K",
                           help="also keep the checkpoint of every K steps as OUT.stepNNNNNN.npz (and step 0)")
    common(m2_parser, corpus=False)
    m2_parser.set_defaults(run=train_m2_command, out_dirs=lambda args: [Path(args.out).parent],
                           kept=kept_checkpoint)

    evaluate = commands.add_parser("eval", help="bits/byte, CRs and FLOPs/byte of an M2 on its dataset")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--m2", required=True, help="M2 checkpoint")
    evaluate.add_argument("--m1", default=None, help="M1 checkpoint (counted in FLOPs/byte for ac, equalinfo)")
    evaluate.add_argument("--batch-size", type=number("batch_size"), default=8)
    evaluate.add_argument("--json", default=None, help="also write the figures to this file")
    evaluate.add_argument("--backend", choices=backends.NAMES, default=None)
    add_threads_option(evaluate)
    evaluate.set_defaults(run=eval_command, out_dirs=lambda args: [Path(args.json).parent] if args.json else [])
