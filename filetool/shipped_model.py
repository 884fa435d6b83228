"""The pretrained M1 shipped with the package: what `equalinfo compress` codes UTF-8 text with by default.

Why ship one: without it the file tool's best model is an order-2 Markov model fitted on the input, which loses to
gzip on English, and a user must train an M1 before neural compression does anything. The goal is an M1 that beats
xz -9 and bzip2 -9 on English it was not trained on (results/m1-shipped measures it: below PPMd too), so it is
compress's default for UTF-8 text (codec.default_model; `--model fitted` for the fast embedded Markov model), at the
price of speed: KB/s, where the fitted Markov model codes at hundreds of KB/s. The file holds the coding
model's arrays exactly as a model file does (`fileformat.model_file_bytes`: the int8 weights of exact rule 3,
ref/int8_m1.py, its scales, the restart length), read back by `fileformat.load_model_file`, which checks every
array's size and schema first and never unpickles. A compressed file stores only the model's fingerprint, so
`decompress` finds this model by that fingerprint (`load_for`); a file made with any other model still needs
--model.

The model was trained by the one-line command in README ("The shipped M1") and turned into this file by
    python -m equalinfo.filetool.shipped_model out/shipped/m1.npz
which prints the fingerprint to copy into FILE_FINGERPRINT below (a test checks that the file matches it and README).
The file's arrays name exact rule 3; compress codes with the same weights under rule 4 (FINGERPRINTS, RULE).
"""
import functools
import sys
from pathlib import Path

from equalinfo.filetool import fileformat
from equalinfo.filetool.fileformat import FormatError
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel

PATH = Path(__file__).with_name("shipped_m1.npz")  # package data (setup.cfg)
# SHA-256 of the file's arrays as stored (ref/fingerprint.py): rule 3's int8 weights, tagged rule 3
FILE_FINGERPRINT = "8ba940edb794b8be34e2d13c07707fcfe33d5ea8228be3d49ca1f4b3ec110236"
FILE_RULE = 3  # the rule its arrays name (ref/exact_rules.py): int8 weights, half the size of rule 2's int16
# The same weights code under rules 3 and 4 (rule 4 reads rule 3's arrays: ref/int8_rows_m1.py); the rule is part
# of the fingerprint a file carries, so each rule's files name the shipped M1 by their own fingerprint.
FINGERPRINTS = {3: FILE_FINGERPRINT,  # files compress wrote before rule 4 (they still decode)
                4: "6997b34c1c2dc4683032a020bda52bb529a78699b29f58efd4b943a7a5f30518"}
# The rule compress codes with, per method (bench/README.md round 5, 400 KB of held-out English, whole files):
# plain AC (the default) under rule 4, one int8 GEMM per product: 1.2-1.5x faster than rule 3 for +0.02% of the
# file; Equal-Info under rule 3: rule 4 cost it +0.8-1.0% of the file at b=16, above issue #24's 0.5% budget, and
# +0.4% at b=1,024, under it by less than its standard error (its windows pay for the coarser rows more than the
# rows' own bits/byte, +0.005%, show).
RULE = 4
EQUALINFO_RULE = 3
FINGERPRINT = FINGERPRINTS[RULE]  # what files compress writes by default carry; README states it too
WINDOW_BITS = 1024  # its default Equal-Info window, for --method equalinfo (docs/decisions.md: b=16 costs ~1.5x)


@functools.lru_cache(maxsize=1)
def _load_file():
    """The shipped model file as stored (rule FILE_RULE), checked against FILE_FINGERPRINT."""
    if not PATH.exists():
        raise FormatError("missing-model", f"the shipped M1 is missing from this install ({PATH}); reinstall "
                                           "equalinfo, or compress with the fitted model: --model fitted "
                                           "(model=\"fitted\" in Python)")
    model = fileformat.load_model_file(PATH)
    found = fingerprint(model.arrays())
    if found != FILE_FINGERPRINT:
        raise FormatError("bad-model-file", f"the shipped M1 at {PATH} has fingerprint {found}, not the "
                                            f"{FILE_FINGERPRINT} this build ships; reinstall equalinfo")
    return model


@functools.lru_cache(maxsize=len(FINGERPRINTS))
def load(rule=RULE):
    """The shipped M1 (ref.m1.TransformerModel) coding by exact rule `rule` (3 or 4; default RULE), its arrays
    those of FINGERPRINTS[rule]; FormatError if the file is missing or is not the model this build names (a damaged
    or replaced install)."""
    if rule not in FINGERPRINTS:
        raise ValueError(f"the shipped M1 codes by exact rule {', '.join(map(str, FINGERPRINTS))}, not {rule!r}")
    stored = _load_file()
    model = stored if rule == stored.rule else TransformerModel(stored.params, stored.cfg, rule=rule,
                                                                 restart_every=stored.restart_every)
    found = fingerprint(model.arrays())
    if found != FINGERPRINTS[rule]:  # only a build whose FINGERPRINTS and file disagree gets here
        raise FormatError("bad-model-file", f"the shipped M1 under rule {rule} has fingerprint {found}, not the "
                                            f"{FINGERPRINTS[rule]} this build names; reinstall equalinfo")
    return model


def rule_for(method):
    """The rule the shipped M1 codes `method` ("ac" or "equalinfo") with (RULE, EQUALINFO_RULE above)."""
    return EQUALINFO_RULE if method == "equalinfo" else RULE


def cache_clear():
    """Forget the loaded model (tests that replace the file)."""
    _load_file.cache_clear()
    load.cache_clear()


def rule_of(found):
    """The rule under which the shipped M1 has fingerprint `found`, or None if it is not the shipped M1's."""
    return next((rule for rule, named in FINGERPRINTS.items() if named == found), None)


def load_for(header):
    """The shipped M1 if a file's header names it (by fingerprint, under either rule) and the file does not embed
    its model, else None: decompress needs no --model for files that compress wrote by default."""
    rule = rule_of(header.fingerprint)
    if header.model_kind == "transformer" and rule is not None and not header.model_length:
        return load(rule)
    return None


def model_file_from_checkpoint(checkpoint_path, rule=FILE_RULE):
    """(bytes of the model file, fingerprint) of a train-m1 checkpoint as a coding model: rows by exact rule `rule`
    on ref's implementation, restarting every seq_len symbols (the length it was trained on)."""
    from equalinfo.train import m1  # only needed to build the file, never to use it

    model = m1.coding_model_from_checkpoint(checkpoint_path, "ref", rule)
    return fileformat.model_file_bytes(model), fingerprint(model.arrays())


def main(argv=None):
    """python -m equalinfo.filetool.shipped_model CHECKPOINT [OUT]: write the shipped model file, print its
    fingerprint."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print("usage: python -m equalinfo.filetool.shipped_model CHECKPOINT [OUT]", file=sys.stderr)
        return 2
    blob, found = model_file_from_checkpoint(argv[0])
    out = Path(argv[1]) if len(argv) == 2 else PATH
    out.write_bytes(blob)
    print(f"wrote {out} ({len(blob):,} bytes), fingerprint {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
