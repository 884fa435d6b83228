"""The `equalinfo` command line: main() builds one parser from each package's subcommands, runs the command and
turns an expected error into one line `equalinfo: error: ...` on stderr with exit status 2.

The subcommands live with their package, each registered by its add_commands (conformance: add_command):
    filetool/commands.py     compress, decompress, fit-model: the `.eqi` file tool
    train/commands.py        repro, train-m1, build, train-m2, eval: the paper's pipeline
    conformance/__init__.py  conformance export, conformance check
    analysis/commands.py     analyze {stability,positions,uniformity,seq2seq}, generate
Here: the options every package shares (--threads), applied before a command runs, and what a failed command
leaves (train/commands.py removing_new_empty_dirs). Every numeric option is read through its entry of options.py,
so argparse refuses a value out of range before any command starts.
"""
import argparse
import contextlib
import signal
import sys

from equalinfo.fast.cpu import threads  # first, before NumPy loads: fast/cpu/threads.py

threads.quiet_idle_blas_threads()  # OpenBLAS's idle workers sleep instead of spinning (read when NumPy loads it)

from equalinfo.filetool import commands as file_commands  # noqa: E402 (after the line above on purpose)
from equalinfo.filetool import fileformat  # noqa: E402
from equalinfo.filetool.workers import WorkerDied  # noqa: E402
from equalinfo.options import Number, number  # noqa: E402
from equalinfo.train.backends import BackendUnavailable  # noqa: E402

PROG = "equalinfo"


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as the CLI's other errors: one line `equalinfo: error: ...`, status 2."""

    def error(self, message):
        command = self.prog[len(PROG):].strip()
        print(f"{PROG}: error: {message} (see {PROG}{' ' + command if command else ''} --help)", file=sys.stderr)
        raise SystemExit(2)

    def _get_value(self, action, text):
        """A numeric option's value through its description (options.py), its error naming the option."""
        if isinstance(action.type, Number):
            try:
                return action.type.parse(text)
            except ValueError as error:
                self.error(f"{action.option_strings[0]} {text}: {error}")
        return super()._get_value(action, text)


def build_parser():
    parser = Parser(prog=PROG, description="Compress files with arithmetic coding and Equal-Info "
                                     "windows (Lester et al., 2024), and get them back bit for bit.")
    parser.add_argument("--version", action="version",
                        version=f"{PROG} 0.1.0 (file format version {fileformat.VERSION})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    file_commands.add_commands(commands)  # compress, decompress, fit-model
    from equalinfo.train import commands as pipeline_commands  # the pipeline: repro, train-m1, build, train-m2, eval

    pipeline_commands.add_commands(commands, add_threads_option)
    from equalinfo import conformance  # export and check conformance vectors (docs/conformance.md)

    conformance.add_command(commands)
    from equalinfo.analysis import commands as analysis_commands  # analyze {stability,...,seq2seq}, generate

    analysis_commands.add_commands(commands, add_threads_option)
    return parser


def add_threads_option(parser):
    """--threads N: the cores the command's Numba kernels and BLAS products use (fast/cpu/threads.py)."""
    parser.add_argument("--threads", type=number("threads"), default=None, metavar="N",
                        help="run Numba's kernels and OpenBLAS's products on N threads each (default: all cores)")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C's KeyboardInterrupt: the same cleanup runs (atomic writes
    remove their temporary file, a failed command its new empty directories)."""


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM raises Terminated while a command runs (the main thread only; elsewhere it is left as it is)."""
    def raise_terminated(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_words(args):
    """What an interrupted command kept and how to go on: the command's own `kept(args)`, else nothing kept."""
    kept = getattr(args, "kept", None)
    return kept(args) if kept else "no output written"


def main(argv=None):
    """Run one command; returns 0, or raises SystemExit(2) after one `equalinfo: error: ...` line on stderr;
    Ctrl-C (SIGINT) and SIGTERM end it with one line saying what was kept, status 130 or 143 (128 + the signal)."""
    args = build_parser().parse_args(argv)
    try:
        with sigterm_raises():
            return run(args)
    except KeyboardInterrupt as stop:
        print(f"{PROG}: interrupted; {interrupted_words(args)}", file=sys.stderr)
        raise SystemExit(128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)) from None


def run(args):
    """The command of parsed `args`, its expected errors turned into one line and status 2."""
    try:
        if getattr(args, "threads", None) is not None:
            threads.set_threads(args.threads)
        from equalinfo.train.commands import removing_new_empty_dirs

        with removing_new_empty_dirs(*getattr(args, "out_dirs", lambda _: [])(args)):
            return args.run(args)
    except (ValueError, OSError, BackendUnavailable, WorkerDied) as error:  # FormatError, ModelError, WindowError,
        # CoderError, CliError, DataError, PresetError, CheckpointError are ValueErrors
        print(f"{PROG}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except MemoryError:  # the checks before work (limits.py, train/memory.py) missed a case: still one line
        print(f"{PROG}: error: out of memory (docs/limits.md says what each command needs)", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
