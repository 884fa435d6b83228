"""Conformance vectors: files that let any implementation (ours on another backend, or a port in another language)
prove that it quantizes, codes, cuts windows and tokens, computes M1's exact rows, packs data and trains exactly as
the reference does. docs/conformance.md is the specification a porter reads; this package writes and checks them.

    equalinfo conformance export DIR                 write the vector set (deterministic: same bytes every run)
    equalinfo conformance check DIR [--backend B]    run backend ref, cpu or gpu against it; a pass/fail table
    equalinfo conformance check DIR --implementation CMD [--timeout S]
                                                     run an outside program by the protocol of protocol.py

One module per family, each with NAME, build() -> (description, arrays) and check(description, arrays, impl,
tally):
    quantization.py    float probability rows -> integer CDFs
    coder.py           integer CDFs and symbols -> bits and back (the arithmetic coder)
    windows.py         plain AC and Equal-Info windows with a small Markov model
    tokens.py          bitstreams -> N-bit tokens and back
    m1_rows.py         families m1_RULE: a tiny M1's probability rows under each exact rule, and the windows they code
    m1_integer.py      rule 2's own steps (its quantized weights, row exponents, integer sums), in its m1_rows family
    m1_int8.py         rule 3's own steps (int8 weights, 14-bit rows, their int8 halves), in its m1_rows family
    m1_int8_rows.py    rule 4's own steps (7-bit int8 rows, one GEMM, bfloat16 keys and values), in its m1_rows family
    transformer.py     a small Transformer's logits, loss and gradients, one Adafactor and one AdamW step
    packing.py         documents -> packed examples -> fixed-length rows
    rejections.py      inputs every implementation must refuse (bad tokens, windows smaller than the precision)
The rest: files.py stores a set (JSON, .npz, a manifest of SHA-256 sums), implementations.py says which code a
backend name checks, tally.py counts checks and keeps the reasons of failures (and judges an outside program's
answers), protocol.py runs an outside program, one call per family: each family module's request(description,
arrays) -> (description, arrays, expected answers) says what it is asked, answer(description, arrays, impl) how our
code answers it. FORMAT_VERSION names the
content: any change to the vectors (a coder or rule that gives other bits, a new case) must come with a new version,
and a vector set of another version is refused rather than half-checked.
"""
import time

from equalinfo import options
from equalinfo.conformance import coder, m1_rows, packing, quantization, rejections, tokens, transformer, windows
from equalinfo.conformance.files import VectorError, read_family, read_manifest, write_set
from equalinfo.conformance.tally import Tally

FORMAT_VERSION = 4  # 4: + m1_int8_rows_m1 (rule 4) (version 3 files byte for byte the same)
FAMILIES = [quantization, coder, windows, tokens, *m1_rows.FAMILIES, transformer, packing, rejections]


def family_names():
    return [family.NAME for family in FAMILIES]


def export(directory):
    """Build every family and write the set into `directory`; returns the manifest."""
    return write_set(directory, {family.NAME: family.build() for family in FAMILIES}, FORMAT_VERSION)


def check(directory, impl, only=None):
    """[(family, passed, checks, failures, seconds)] of `impl` (implementations.load) against the set in
    `directory`; `only`: family names to check (default all). Raises VectorError if the set cannot be read."""
    manifest = read_manifest(directory, FORMAT_VERSION)
    known = {family.NAME: family for family in FAMILIES}
    unknown = [name for name in manifest["families"] if name not in known]
    if unknown:
        raise VectorError(f"the vector set has families this equalinfo does not know: {', '.join(unknown)}")
    names = family_names() if only is None else list(only)
    for name in names:
        if name not in known:
            raise VectorError(f"unknown family {name!r}; families: {', '.join(family_names())}")
    results = []
    for name in names:
        tally, started = Tally(), time.perf_counter()
        if name not in manifest["families"]:
            tally.expect(False, name, "the vector set has no such family")
        else:
            try:
                description, arrays = read_family(directory, manifest, name)
            except VectorError as error:
                tally.expect(False, "files", str(error))
            else:
                try:
                    known[name].check(description, arrays, impl, tally)
                except (KeyError, TypeError, ValueError, IndexError) as error:  # a malformed vector file
                    tally.expect(False, "vector files", f"malformed: {type(error).__name__}: {error}")
        results.append((name, not tally.failures, tally.checks, tally.failures, time.perf_counter() - started))
    return results


def check_implementation(directory, command, only=None, timeout=300.0):
    """check() for an outside program run by the protocol of protocol.py; passed is None for a family it does not
    implement."""
    from equalinfo.conformance import protocol

    return protocol.check(directory, command, FAMILIES, FORMAT_VERSION, only, timeout)


def answers_of(family, description, arrays, backend="ref"):
    """{answer key: value} of one family's request (protocol.py), computed by our backend `backend` (ref, cpu or
    gpu): what the docs' example adapter answers."""
    from equalinfo.conformance import implementations

    known = {module.NAME: module for module in FAMILIES}
    if family not in known:
        raise VectorError(f"unknown family {family!r}; families: {', '.join(family_names())}")
    return known[family].answer(description, arrays, implementations.load(backend))


RESULT = {True: "pass", False: "FAIL", None: "n/impl"}  # None: an outside program does not implement the family


def table(results, backend_name, directory, reasons=Tally.MAX_REASONS):
    """The printed report: one line per family, then the first failures of each failed family."""
    lines = [f"conformance of {backend_name} against {directory} (format version {FORMAT_VERSION})",
             f"{'family':<18} {'result':<6} {'checks':>7} {'failed':>7} {'time':>8}"]
    for name, passed, checks, failures, seconds in results:
        lines.append(f"{name:<18} {RESULT[passed]:<6} {checks:>7} {len(failures):>7} {seconds:>7.1f}s")
    for name, passed, _, failures, _ in results:
        for failure in failures[:reasons]:
            lines.append(f"FAIL {name}: {failure}")
        if len(failures) > reasons:
            lines.append(f"FAIL {name}: ... and {len(failures) - reasons} more")
    failed = sum(passed is False for _, passed, _, _, _ in results)
    missing = sum(passed is None for _, passed, _, _, _ in results)
    lines.append(f"{len(results) - failed - missing} of {len(results)} families pass" +
                 ("" if not failed else f"; {failed} FAIL") + ("" if not missing else f"; {missing} not implemented"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the command

def export_command(args):
    manifest = export(args.directory)
    print(f"wrote {len(manifest['files'])} files and manifest.json to {args.directory} "
          f"(format version {FORMAT_VERSION}; families: {', '.join(manifest['families'])})")
    return 0


def check_command(args):
    from equalinfo.conformance import implementations

    if args.implementation is not None:
        results = check_implementation(args.directory, args.implementation, args.family or None, args.timeout)
        print(table(results, f"implementation {args.implementation!r}", args.directory))
        return 0 if all(passed is not False for _, passed, _, _, _ in results) else 1
    impl = implementations.load(args.backend)
    results = check(args.directory, impl, args.family or None)
    print(table(results, f"backend {impl.name}", args.directory))
    return 0 if all(passed for _, passed, _, _, _ in results) else 1


def add_command(commands):
    """Register `equalinfo conformance {export,check}` on the CLI's subcommands."""
    parser = commands.add_parser("conformance", help="export conformance vectors, or check a backend against them",
                                 description="Vectors that let any implementation prove it codes, windows and "
                                             "trains exactly like the reference (docs/conformance.md).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export_parser = actions.add_parser("export", help="write the vector set into DIR")
    export_parser.add_argument("directory", metavar="DIR")
    export_parser.set_defaults(run=export_command)
    check_parser = actions.add_parser("check", help="check a backend against the vectors in DIR; exit status 1 "
                                                    "if any family fails")
    check_parser.add_argument("directory", metavar="DIR")
    check_parser.add_argument("--backend", choices=["ref", "cpu", "gpu"], default="ref",
                              help="which backend to check (gpu: CuPy and a GPU, or numba's CUDA simulator with "
                                   "NUMBA_ENABLE_CUDASIM=1)")
    check_parser.add_argument("--family", action="append", choices=family_names(), metavar="NAME",
                              help="check only this family (repeatable); default: all")
    check_parser.add_argument("--implementation", default=None, metavar="CMD",
                              help="check an outside program instead of a backend: CMD FAMILY DIR is run once per "
                                   "family and answers DIR/request.* in DIR/response.json (docs/conformance.md)")
    check_parser.add_argument("--timeout", type=options.number("timeout"), default=300.0, metavar="SECONDS",
                              help="with --implementation: the most one family's call may take (default 300)")
    check_parser.set_defaults(run=check_command)
