"""The file tool's subcommands of `equalinfo`: compress and decompress any file with a model, and fit models for
them (the pipeline's are in train/commands.py, the analyses' in analysis/commands.py; cli.py dispatches).

    equalinfo compress IN OUT [--method {ac,equalinfo,staticac,gzip,stored}] [--window-bits B] [--precision 14]
                              [--model shipped|fitted|markovK|unigram|MODEL.npz|M1.npz] [--backend ref|cpu|gpu]
                              [--m1-rule 1|2|3|4] [--m1-context N] [--workers N|auto]
    equalinfo decompress IN OUT [--model MODEL.npz|M1.npz] [--backend ref|cpu|gpu] [--m1-rule 1|2|3|4] [--m1-context N]
                                [--workers N|auto]
    equalinfo fit-model TEXT OUT.npz [--order 2 | --unigram]

Decisions (docs/commands.md shows them in use):
- Input is any bytes, one symbol per byte, no EOS added; the output of decompress is those bytes exactly.
- Without --model, UTF-8 text is coded with the pretrained M1 shipped with the package (filetool/shipped_model.py,
  `--model shipped` names it explicitly): the file names it by fingerprint and decompress finds it without
  --model. It has the best ratio but codes at KB/s (results/m1-shipped). Other bytes (binary, compressed, random)
  get the fitted model. codec.default_model decides, for the CLI and the Python API alike.
- `--model fitted` is the fast coder (hundreds of KB/s): a model fitted on the input and embedded in the file, so
  the file decodes on its own: `markov2`, or `markov1` or `unigram` when the smaller model makes the smaller file
  (its ideal code length plus its archive, estimated without coding: an order-2 model costs ~10-25 KB, which only
  pays on larger inputs); `--model markovK`/`unigram` fits that one. For many files, fit one model with
  `fit-model` and pass `--model PATH`: the file then stores only its fingerprint and decompress needs the same
  `--model PATH`. A name (shipped, fitted, markovK, unigram) wins over a file of that name.
- Without --method, an M1 (shipped or a checkpoint) codes with plain AC, its best ratio (docs/decisions.md "The
  file tool's defaults"); the other models with Equal-Info windows; `--window-bits` alone means Equal-Info.
  Equal-Info's window defaults to shipped_model.WINDOW_BITS (1,024) with the shipped M1 (every window restarts
  M1) and to 16 bits otherwise: `--method equalinfo --window-bits 16` asks for the paper's b=16.
- `--model M1.npz`, a checkpoint from `equalinfo train-m1`, codes with M1 (train/m1.py,
  coding_model_from_checkpoint): its rows by exact rule 2 (integer products; --m1-rule 1 for the float rule, 3 for
  int8-valued products), restarting every seq_len symbols, the length it was trained on (--m1-context N for less, never more),
  so plain AC over a whole file never shows M1 a context longer than it learned. Only the fingerprint goes into the
  file: decompress needs the same checkpoint and the same --m1-rule/--m1-context.
- staticac always fits and embeds its own unigram model on the input (the paper's StaticAC with the input as its
  "training text"); for a fixed unigram model use `--method ac --model UNIGRAM.npz`. gzip takes no model.
- gzip's conventions: `-` as IN reads stdin, `-` as OUT writes stdout; the summary line goes to stderr, so it
  never mixes with data on stdout; OUT that is IN (the same file, also through a hard link or a symlink: same
  st_dev and st_ino) is refused; an existing OUT is refused unless -f/--force is given. All of this is checked
  before the input is read.
- Outputs are written atomically (temp file in OUT's directory, fsync, os.replace): a failure leaves OUT absent or,
  if it existed, untouched. Everything is decoded and checked in memory before OUT is touched. A symlink's target
  is replaced (the link stays); a device or FIFO is written through, never replaced; a directory is refused.
- When coding would not make the file smaller (random or compressed input, tiny inputs, a model larger than what
  it saves), compress stores the input instead (method `stored`: 100 bytes of header and checksums on top);
  --no-store keeps the coded file anyway.
- Inputs, options and files are checked against limits.py before any work (docs/limits.md).
- Expected errors (bad arguments, unreadable input, corrupt/truncated/foreign files, wrong or missing model) print
  one line `equalinfo: error: ...` to stderr and exit with status 2, argparse's status for usage errors (argparse's
  own errors too: `equalinfo COMMAND --help` shows the usage).
- The file commands code with a backend (train/backends.py; default: the fastest available), as the pipeline
  does; every backend writes and reads the same bytes. They take no --threads: `--workers N` codes the segments
  in N processes (filetool/workers.py; the same bytes for any N), each with its share of the cores. The default,
  `auto`, uses every core only for an M1 on fast.cpu and inputs of workers.AUTO_MIN_BYTES or more (where a
  worker's start-up of ~2 s of a core pays); the Markov, unigram, gzip and stored methods stay in one process unless
  asked. The summary line names the processes when there were several.
"""
import os
import re
import stat
import sys
import time
from contextlib import contextmanager

from tqdm import tqdm

from equalinfo import limits
from equalinfo.data.atomic import write_atomically
from equalinfo.filetool import codec, fileformat, shipped_model, workers
from equalinfo.options import number
from equalinfo.ref.arithmetic import check_precision
from equalinfo.ref.equalinfo import check_window_bits
from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import N_SYMBOLS, bytes_to_symbols
from equalinfo.train import backends

DEFAULT_PRECISION = 14
DEFAULT_M1_RULE = 2  # an M1 checkpoint codes by exact rule 2 (integer products: ref/integer_m1.py)
PROGRESS_BYTES = 100_000  # smaller inputs code in a moment: no progress bar


class CliError(ValueError):
    """A usage problem found after parsing (argument combinations, model names)."""


# ------------------------------------------------------------------------------------------------- file helpers

STDIO = "-"  # as IN: standard input; as OUT: standard output


def check_paths(input_path, output_path, force):
    """Refuse, before any work, OUT that is IN (same device and inode: hard links and symlinks included) and an
    existing regular file OUT without --force; `-` (stdin/stdout) is never either."""
    if output_path == STDIO:
        return
    try:
        out_status = os.stat(output_path)
    except OSError:
        return  # absent (or unreachable: the write will say why)
    if input_path != STDIO:
        try:
            in_status = os.stat(input_path)
        except OSError:
            in_status = None  # the read will say why
        if in_status is not None and (in_status.st_dev, in_status.st_ino) == (out_status.st_dev, out_status.st_ino):
            raise CliError(f"{output_path} is the input {input_path} (the same file): it would be replaced")
    if not force and stat.S_ISREG(out_status.st_mode):  # a device or FIFO is written through (data/atomic.py)
        raise CliError(f"{output_path} already exists; use -f/--force to replace it")


def read_input(path, limit=limits.MAX_INPUT_BYTES):
    """All bytes of an input file (`-`: standard input), at most `limit` of them, or CliError naming the file and
    the reason."""
    if path == STDIO:
        data = limits.read_at_most(sys.stdin.buffer, limit + 1)
        if len(data) > limit:
            raise CliError(f"standard input is larger than the largest input, {limits.size_words(limit)}")
        return data
    try:
        with open(path, "rb") as handle:
            data = limits.read_at_most(handle, limit + 1)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise CliError(f"{path} is larger than the largest input, {limits.size_words(limit)} (docs/limits.md)")
    return data


def check_coding_memory(path, n_bytes):
    """CliError naming the file when coding n_bytes would not fit in memory (limits.coding_memory_problem):
    said before the input is read or decoded, not as a MemoryError halfway."""
    problem = limits.coding_memory_problem(n_bytes)
    if problem:
        raise CliError(f"{path}: {problem}")


def input_size(path):
    """The size of a regular input file, or None (stdin, a pipe, a missing file: the read will tell)."""
    try:
        status = os.stat(path) if path != STDIO else None
    except OSError:
        return None
    return status.st_size if status is not None and stat.S_ISREG(status.st_mode) else None


def write_atomic(path, data):
    """Write bytes to `path` so that it holds either its old content or all of `data`, never a part
    (data/atomic.py), or to standard output for `-`; an OSError becomes a CliError naming the file."""
    if path == STDIO:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError as error:
            raise CliError(f"cannot write standard output: {error.strerror or error}") from None
        return
    try:
        write_atomically(path, lambda stream: stream.write(data))
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror or error}") from None


# ------------------------------------------------------------------------------------------------------ models

def parse_model_name(spec):
    """(kind, order) of a model name: ('unigram', None) or ('markov', K); None if spec is not a name (a path)."""
    if spec == "unigram":
        return "unigram", None
    match = re.fullmatch(r"markov(\d+)", spec)
    if match is None:
        return None
    order = int(match.group(1))
    if not 1 <= order <= MarkovModel.MAX_ORDER:
        raise CliError(f"--model {spec}: the Markov order must be 1 to {MarkovModel.MAX_ORDER}")
    return "markov", order


def fit_named_model(name, symbols):
    """The model of a parsed name (parse_model_name), fitted on symbols (codec.fit_model); CliError if its table
    would be larger than the largest model (limits.py), found before the table is built."""
    try:
        return codec.fit_model(*name, symbols)
    except ValueError as error:
        raise CliError(f"--model {error}") from None


SHIPPED = "shipped"  # --model shipped: the package's pretrained M1 (a file of that name: ./shipped)
FITTED = "fitted"  # --model fitted: codec.fitted_model, the cheapest Markov/unigram model fitted and embedded


def shipped_rule_model(model, method, asked):
    """The model compress codes `method` with: for the shipped M1, its weights under --m1-rule 3 or 4 if asked,
    else under the rule shipped_model.rule_for(method) names (codec.model_for_method); other models as they are
    (a checkpoint already took --m1-rule; any other model refuses it)."""
    if asked is None:
        return codec.model_for_method(model, method)
    if not isinstance(model, TransformerModel):
        raise CliError("--m1-rule applies to an M1 checkpoint or the shipped M1; this input is coded with a "
                       f"{model.kind} model (not UTF-8 text: --model shipped codes it with M1)")
    if shipped_model.rule_of(fingerprint(model.arrays())) is None:
        return model  # a checkpoint: model_from_path gave it --m1-rule already
    if asked not in shipped_model.FINGERPRINTS:
        raise CliError(f"--m1-rule {asked}: the shipped M1 codes by exact rule "
                       f"{' or '.join(map(str, shipped_model.FINGERPRINTS))}")
    return shipped_model.load(asked)


def model_from_path(path, args, backend):
    """The model in a file made by fit-model, or M1 from a train-m1 checkpoint (with args' --m1-rule and
    --m1-context); the error hints at the model names when the path does not exist."""
    if path == SHIPPED:
        if args.m1_context is not None:
            raise CliError("--m1-context applies to an M1 checkpoint given as --model; the shipped M1 restarts "
                           f"every {shipped_model.load().restart_every} symbols")
        return shipped_model.load()  # compress picks its rule per method (shipped_rule_model)
    if not os.path.exists(path):
        raise CliError(f"--model {path}: no such model file (expected shipped, fitted, markovK with K = "
                       f"1..{MarkovModel.MAX_ORDER}, unigram, a file made by `equalinfo fit-model` or an M1 "
                       "checkpoint from `equalinfo train-m1`)")
    from equalinfo.train import m1  # M1 and its checkpoints; imported only when a path is given

    if m1.is_checkpoint(path):
        try:
            return m1.coding_model_from_checkpoint(path, backend.name, args.m1_rule or DEFAULT_M1_RULE,
                                                   args.m1_context)
        except ValueError as error:  # CheckpointError (wrong role, corrupt), a refused context
            raise CliError(str(error)) from None
    if args.m1_rule is not None or args.m1_context is not None:
        raise CliError(f"--m1-rule and --m1-context apply to an M1 checkpoint given as --model; {path} is a "
                       "model file")
    return fileformat.load_model_file(path)


@contextmanager
def coding_progress(n_bytes, verb):
    """A progress bar over the input's bytes (shown on a terminal, for inputs of PROGRESS_BYTES or more); yields
    the callback the coders call with the symbols coded so far."""
    with tqdm(total=n_bytes, desc=verb, unit="B", unit_scale=True, leave=False,
              disable=None if n_bytes >= PROGRESS_BYTES else True) as bar:
        yield lambda done: bar.update(done - bar.n)


def rate_words(rate):
    """'850 B/s', '85.3 KB/s', '1.2 MB/s': bytes per second in words (M1 codes at hundreds of B/s to KB/s, the
    Markov models at hundreds of KB/s, gzip at MB/s)."""
    if rate < 1e3:
        return f"{rate:,.0f} B/s"
    return f"{rate / 1e3:,.1f} KB/s" if rate < 1e6 else f"{rate / 1e6:,.1f} MB/s"


def speed_words(n_bytes, seconds, backend, processes=1):
    """'in 1.2 s, 85.3 KB/s on cpu' (', 2 processes' when several coded): the summary line's timing (of the
    original's bytes, coding only)."""
    rate = n_bytes / seconds if seconds > 0 else float("inf")
    return f"in {seconds:.1f} s, {rate_words(rate)} on {backend.name}" + (
        f", {processes} processes" if processes > 1 else "")


def describe_model(model):
    """'markov order 2' / 'unigram': a model in words."""
    return f"{model.kind} order {model.order}" if model.kind == "markov" else model.kind


# ---------------------------------------------------------------------------------------------------- commands

def check_compress_args(args):
    """(method, precision, window_bits) of the arguments, rejecting combinations that would be silently ignored,
    before any work is done. method None: ac or equalinfo, as the model will say (codec.default_method);
    window_bits None: the model's default (codec.default_window_bits)."""
    method = args.method if args.method is not None or args.window_bits is None else "equalinfo"
    if args.window_bits is not None and method != "equalinfo":
        raise CliError(f"--window-bits applies to --method equalinfo only, not {method}")
    if args.precision is not None and method in ("gzip", "stored"):
        raise CliError(f"--precision does not apply to --method {method}")
    if args.model is not None and method in ("gzip", "stored"):
        raise CliError(f"--model does not apply to --method {method}")
    if args.model is not None and method == "staticac":
        raise CliError("staticac fits its own unigram model on the input; for a fixed model use "
                       "--method ac --model MODEL.npz")
    precision = DEFAULT_PRECISION if args.precision is None else args.precision
    window_bits = args.window_bits
    if method not in ("gzip", "stored"):
        try:
            check_precision(precision, N_SYMBOLS)
        except ValueError as error:
            raise CliError(f"--precision {precision}: {error}") from None
    if window_bits is not None:
        try:
            check_window_bits(window_bits, precision)
        except ValueError as error:
            raise CliError(f"--window-bits {window_bits}: {error}") from None
        if window_bits > limits.MAX_WINDOW_BITS:
            raise CliError(f"--window-bits {window_bits}: the largest window is {limits.MAX_WINDOW_BITS} bits")
    return method, precision, window_bits


def status_line(text):
    """A command's summary, on stderr as gzip -v does: stdout may be carrying the data."""
    print(text, file=sys.stderr)


def compress_command(args):
    method, precision, window_bits = check_compress_args(args)
    check_paths(args.input, args.output, args.force)
    coded = method in (None, "ac", "equalinfo")
    spec = args.model if coded else None  # None: codec.default_model decides once the input is read
    name = parse_model_name(spec) if spec not in (None, FITTED) else None
    model, embed = None, False
    backend = backends.load_or_fastest(args.backend)
    if spec not in (None, FITTED) and name is None:
        model = model_from_path(spec, args, backend)  # loaded before the input is read, to fail early
    elif args.m1_context is not None or (args.m1_rule is not None and spec is not None):
        raise CliError("--m1-rule and --m1-context apply to an M1 checkpoint given as --model (--m1-rule 3 or 4 "
                       "also to the shipped M1)")
    size = input_size(args.input)
    if size is not None:
        check_coding_memory(args.input, min(size, limits.MAX_INPUT_BYTES + 1))
    data = read_input(args.input)
    check_coding_memory(args.input, len(data))
    if coded and model is None:
        if spec is None:
            model, embed = codec.default_model(data)
        elif spec == FITTED:
            model, embed = codec.fitted_model(data)
        else:
            model, embed = fit_named_model(name, bytes_to_symbols(data)), True
    method = method or codec.default_method(model)
    model = shipped_rule_model(model, method, args.m1_rule) if coded else model
    window_bits = codec.default_window_bits(model) if window_bits is None else window_bits
    processes = workers.resolve_workers(args.file_workers, model, backend, len(data),
                                        codec.DEFAULT_SEGMENT_BYTES) if coded else 1
    started = time.perf_counter()
    with coding_progress(len(data), "compress") as progress:
        if args.no_store:
            (blob, header), why = codec.compress_bytes(data, method, model, embed, window_bits, precision,
                                                       backend, progress, workers=processes), None
        else:
            blob, header, why = codec.compress_or_store(data, method, model, embed, window_bits, precision,
                                                        backend, progress, workers=processes)
    seconds = time.perf_counter() - started
    write_atomic(args.output, blob)
    processes = processes if header.method in fileformat.CODED_METHODS else 1
    status_line(compress_summary(args, data, blob, header, why) + "; "
                + speed_words(len(data), seconds, backend, processes))
    return 0


def compress_summary(args, data, blob, header, why=None):
    """One line: sizes, bits/byte, method, and where the bytes went (model vs payload)."""
    payload = -(-header.coded_bits // 8)
    rate = f"{8 * len(blob) / len(data):.3f} bits/byte" if data else "empty input"
    settings = [f"method {header.method}" + (f" ({why})" if why else "")]
    if header.method == "equalinfo":
        settings.append(f"b={header.window_bits}")
    if header.method not in ("gzip", "stored"):
        settings.append(f"precision {header.precision}")
    parts = [f"payload {payload:,} bytes"
             + (f" = {header.coded_bits / len(data):.3f} bits/byte" if data else "")]
    if header.model_length:
        parts.append(f"embedded {header.model_kind} model {header.model_length:,} bytes")
    elif header.method not in ("gzip", "stored"):
        needs = "the shipped M1" if shipped_model.rule_of(header.fingerprint) else "decompress needs --model"
        parts.append(f"{header.model_kind} model {header.fingerprint[:12]} not embedded ({needs})")
    parts.append(f"header+checksums {len(blob) - payload - header.model_length} bytes")
    return (f"compressed {args.input}: {len(data):,} -> {len(blob):,} bytes, {rate} "
            f"({', '.join(settings)}; {'; '.join(parts)})")


def decompress_command(args):
    check_paths(args.input, args.output, args.force)
    backend = backends.load_or_fastest(args.backend)
    if args.model == SHIPPED and args.m1_rule is not None:
        raise CliError("--m1-rule: a file made with the shipped M1 names the rule it was coded by")
    if args.model is not None:
        model = model_from_path(args.model, args, backend)
    elif args.m1_rule is not None or args.m1_context is not None:
        raise CliError("--m1-rule and --m1-context apply to an M1 checkpoint given as --model (a file made with "
                       "the shipped M1 names its rule)")
    else:
        model = None
    blob = read_input(args.input, limits.MAX_FILE_BYTES)
    container = fileformat.unpack(blob)
    header, segments = container.header, container.segments
    if args.model is None or args.model == SHIPPED:  # the shipped M1 under the rule the file names
        model = shipped_model.load_for(header) or model
    check_coding_memory(args.input, header.original_length)
    processes = workers.resolve_workers(args.file_workers, header.model_kind, backend, header.original_length,
                                        segments.segment_bytes) if segments is not None else 1
    started = time.perf_counter()
    with coding_progress(header.original_length, "decompress") as progress:
        data, header = codec.decompress_bytes(blob, model, model_name=f"--model {args.model}", backend=backend,
                                              progress=progress, workers=processes)
    seconds = time.perf_counter() - started
    write_atomic(args.output, data)
    settings = [f"method {header.method}"]
    if header.method == "equalinfo":
        settings.append(f"b={header.window_bits}")
    if header.method not in ("gzip", "stored"):
        settings.append(f"{header.model_kind} model {header.fingerprint[:12]}"
                        + (" (embedded)" if header.model_length else f" from {args.model or 'the shipped M1'}"))
    status_line(f"decompressed {args.input}: {len(blob):,} -> {len(data):,} bytes ({', '.join(settings)}; CRC-32 ok); "
          + speed_words(len(data), seconds, backend, processes))
    return 0


def fit_model_command(args):
    check_paths(args.text, args.output, args.force)
    data = read_input(args.text)
    symbols = bytes_to_symbols(data)
    model = UnigramModel.fit(symbols) if args.unigram else MarkovModel.fit(symbols, args.order)
    blob = fileformat.model_file_bytes(model)
    write_atomic(args.output, blob)
    contexts = f", {len(model.context_ids):,} contexts" if model.kind == "markov" else ""
    status_line(f"fitted {describe_model(model)} model on {len(data):,} bytes of {args.text}{contexts}; "
          f"wrote {args.output} ({len(blob):,} bytes), fingerprint {fingerprint(model.arrays())}")
    return 0


# ------------------------------------------------------------------------------------------------------ parser

def add_backend_option(parser):
    """--backend NAME: the backend a command computes with (train/backends.py)."""
    parser.add_argument("--backend", choices=backends.NAMES, default=None,
                        help="ref, cpu or gpu (default: the fastest available)")


def add_workers_option(parser):
    """--workers N|auto: the processes coding a file's segments (filetool/workers.py)."""
    parser.add_argument("--workers", dest="file_workers", type=number("file_workers"), default=workers.AUTO,
                        metavar="N|auto",
                        help="processes coding the file's segments at once, each with its share of the cores; "
                             "the same bytes for any N (default auto: every core for an M1 on the cpu backend "
                             f"and {workers.AUTO_MIN_BYTES // 1024} KiB or more, else 1)")


def add_m1_options(parser):
    """--m1-rule and --m1-context: how an M1 checkpoint given as --model codes (train/m1.py)."""
    parser.add_argument("--m1-rule", type=number("m1_rule"), choices=tuple(RULE_MODULES), default=None,
                        help="an M1 checkpoint's exact rule: 2 int16 products (default), 3 int8-valued products, "
                             "4 int8 rows (one GEMM per product), 1 float reductions (ref/exact_rules.py); the "
                             "shipped M1's: 3 or 4 (default: 4 for AC, 3 for Equal-Info, which rule 4 costs "
                             "0.4-1.0%% of the file)")
    parser.add_argument("--m1-context", type=number("m1_context"), default=None, metavar="N",
                        help="restart an M1 checkpoint every N symbols (default: the sequence length it was "
                             "trained on; longer is refused)")


def file_command(commands, name, run, files, **texts):
    """The parser of one file command: `name`, run by `run`, its positional files [(dest, metavar)] in order."""
    parser = commands.add_parser(name, **texts)
    for dest, metavar in files:
        parser.add_argument(dest, metavar=metavar)
    parser.add_argument("-f", "--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(run=run)
    return parser


def add_commands(commands):
    """Register compress, decompress and fit-model on the CLI's subcommands (an argparse subparsers object)."""
    compress = file_command(commands, "compress", compress_command, [("input", "IN"), ("output", "OUT")],
                            help="compress a file into an .eqi file",
                            description="Compress any file (bytes in, bytes out).")
    compress.add_argument("--method", choices=["equalinfo", "ac", "staticac", "gzip", "stored"], default=None,
                          help="ac: plain arithmetic coding (default with an M1); equalinfo: Equal-Info windows "
                               "(default with the other models, and with --window-bits); staticac: AC with a "
                               "unigram model; gzip: zlib at the default level; stored: the bytes as they are")
    compress.add_argument("--window-bits", type=number("window_bits"), default=None,
                          help=f"bits per Equal-Info window, >= precision (default {shipped_model.WINDOW_BITS} "
                               f"with the shipped M1, {codec.DEFAULT_WINDOW_BITS} otherwise)")
    compress.add_argument("--precision", type=number("precision"), default=None,
                          help=f"bits of the coder's integer CDFs, 9 to 16 (default {DEFAULT_PRECISION})")
    compress.add_argument("--model", default=None,
                          help="shipped: the package's pretrained M1 (the default for UTF-8 text; best ratio, "
                               "KB/s); fitted: the cheapest of markov2/markov1/unigram fitted on the input and "
                               "embedded (the default for other bytes; fast); markovK (K = "
                               f"1..{MarkovModel.MAX_ORDER}) or unigram: that model, fitted and embedded; or a "
                               "model file from fit-model or an M1 checkpoint from train-m1: only its "
                               "fingerprint is stored")
    add_m1_options(compress)
    compress.add_argument("--no-store", action="store_true",
                          help="keep the method's coding even when storing the input would be smaller")
    add_backend_option(compress)
    add_workers_option(compress)

    decompress = file_command(commands, "decompress", decompress_command, [("input", "IN"), ("output", "OUT")],
                              help="decompress an .eqi file",
                              description="Decompress a file made by `equalinfo compress`.")
    decompress.add_argument("--model", metavar="PATH", default=None,
                            help="the model file or M1 checkpoint the input was compressed with, if it does not "
                                 "embed its model")
    add_m1_options(decompress)
    add_backend_option(decompress)
    add_workers_option(decompress)

    fit = file_command(commands, "fit-model", fit_model_command, [("text", "TEXT"), ("output", "OUT.npz")],
                       help="fit a model on a text and save it",
                       description="Fit a simple model on a file and save it as an npz (no pickle).")
    kind = fit.add_mutually_exclusive_group()
    kind.add_argument("--order", type=number("order"), default=2, help="order of the Markov model (1..7, default 2)")
    kind.add_argument("--unigram", action="store_true", help="fit a unigram model instead")
