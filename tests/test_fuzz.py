"""A structured fuzzer over the .eqi format and the model archives (hypothesis): every mutated file either decodes
to bytes that match its header's length and CRC-32, or ends in one clear error (exit 2, one `equalinfo: error:`
line, no output file), within a memory and a time limit per case (tests/limits.py).

Mutations are structured so they reach past the checksums: header fields set to edge values with both CRCs
recomputed, truncations and extensions (with and without a recomputed file CRC), payload bits flipped under a
recomputed CRC, model arrays replaced by arrays of wrong shapes, dtypes and values (fingerprint and CRCs
recomputed), and npz members whose .npy header announces sizes their data does not have.

Budgets: the CI run (`pytest`) runs CI_EXAMPLES cases per test, derandomized, in well under a minute; the long run
(`pytest -m slow tests/test_fuzz.py`) runs SLOW_EXAMPLES per test with fresh random seeds. docs/limits.md
("Limits and hardening") gives the counts.
"""
import collections
import contextlib
import io
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import english_text
from limits import bounded
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo import cli
from equalinfo.filetool import codec, fileformat

CI_EXAMPLES = 800
SLOW_EXAMPLES = 5000
MEMORY_MB, SECONDS = 300, 15

TEXT = english_text(300)
BINARY = np.random.default_rng(5).integers(0, 256, 120, dtype=np.uint8).tobytes()
WORK = Path(tempfile.gettempdir()) / f"equalinfo-fuzz-{os.getpid()}"  # made by setup_module
OUTCOMES = collections.Counter()  # "ok" or the error's cause (its first words): shown by `pytest -s`


def _seeds():
    """name -> (file bytes, model file bytes or None): valid files of every method and model placement."""
    markov = MarkovModel.fit(bytes_to_symbols(TEXT), 2)
    unigram = UnigramModel.fit(bytes_to_symbols(BINARY))
    files = {
        "ac markov": (codec.compress_bytes(TEXT, "ac", markov)[0], None),
        "equalinfo b16": (codec.compress_bytes(TEXT, "equalinfo", markov)[0], None),
        "equalinfo b32 external": (codec.compress_bytes(TEXT, "equalinfo", markov, embed=False, window_bits=32)[0],
                                   fileformat.model_file_bytes(markov)),
        "staticac": (codec.compress_bytes(BINARY, "staticac")[0], None),
        "ac unigram p16": (codec.compress_bytes(BINARY, "ac", unigram, precision=16)[0], None),
        "gzip": (codec.compress_bytes(TEXT, "gzip")[0], None),
        "stored": (codec.compress_bytes(BINARY, "stored")[0], None),
        "empty ac": (codec.compress_bytes(b"", "ac", unigram)[0], None),
    }
    return files


SEEDS = _seeds()
FIELDS = {  # name -> (offset, struct format) in the header (filetool/fileformat.py)
    "version": (8, "<H"), "method": (10, "<B"), "precision": (11, "<B"), "window_bits": (12, "<I"),
    "original_length": (64, "<Q"), "coded_bits": (72, "<Q"), "original_crc32": (80, "<I"),
    "model_length": (84, "<Q"),
}
EDGES = [0, 1, 2, 7, 8, 9, 13, 14, 16, 17, 31, 32, 64, 255, 256, 4096, 4097, 65535, 2 ** 24, 2 ** 31, 2 ** 32 - 1,
         2 ** 32, 2 ** 40, 2 ** 63, 2 ** 64 - 1]


def _reseal(blob):
    """Recompute the header CRC and the file CRC of (possibly inconsistent) file bytes."""
    blob = bytearray(blob)
    if len(blob) >= 96:
        blob[92:96] = struct.pack("<I", zlib.crc32(bytes(blob[:92])))
    if len(blob) >= 100:
        blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    return bytes(blob)


def _set_field(blob, name, value):
    offset, fmt = FIELDS[name]
    width = struct.calcsize(fmt)
    value %= 1 << (8 * width)
    blob = bytearray(blob)
    blob[offset:offset + width] = struct.pack(fmt, value)
    return bytes(blob)


def run_cli(argv):
    """(status, stderr) of cli.main in-process, bounded in memory and time."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), bounded(MEMORY_MB, SECONDS):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as exit_:
            status = exit_.code
    return status, err.getvalue()


def check_decompress(blob, model_file=None):
    """The fuzzer's one assertion: a clear error, or output matching the file's own header."""
    source, target, model_path = WORK / "case.eqi", WORK / "case.out", WORK / "model.npz"
    source.write_bytes(blob)
    target.unlink(missing_ok=True)
    argv = ["decompress", source, target]
    if model_file is not None:
        model_path.write_bytes(model_file)
        argv += ["--model", model_path]
    status, err = run_cli(argv)
    if status == 0:
        data = target.read_bytes()
        length, crc = struct.unpack_from("<Q", blob, 64)[0], struct.unpack_from("<I", blob, 80)[0]
        assert len(data) == length and zlib.crc32(data) == crc
        OUTCOMES["decoded, length and CRC-32 match"] += 1
    else:
        assert status == 2, (status, err)
        assert err.startswith("equalinfo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert not target.exists()
        OUTCOMES[_cause(err)] += 1
    return status


def _cause(err):
    """An error line's cause in a few words, numbers and paths left out (for the outcome counts)."""
    text = err[len("equalinfo: error: "):].replace(str(WORK), "")
    text = text.replace("corrupt file: ", "corrupt file, ").split(":")[0].split("(")[0]
    return " ".join("N" if word.strip(",").replace(",", "").isdigit() else word for word in text.split()[:7])


def setup_module():
    WORK.mkdir(exist_ok=True)


def teardown_module():
    shutil.rmtree(WORK, ignore_errors=True)
    print("\nfuzzer outcomes:", dict(OUTCOMES.most_common()))


def _profile(case, *strategies):
    """(CI test, slow test) of one case function and its argument strategies."""
    def make(**options):
        def test(data):
            case(*[data if strategy is DATA else data.draw(strategy) for strategy in strategies])

        return settings(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                        **options)(given(st.data())(test))

    return (make(max_examples=CI_EXAMPLES, derandomize=True),
            pytest.mark.slow(make(max_examples=SLOW_EXAMPLES)))


seed_names = st.sampled_from(sorted(SEEDS))
DATA = st.data()  # a case that draws more as it goes


# ---------------------------------------------------------------------------------------------------- headers

FIELD_CHANGE = st.tuples(st.sampled_from(sorted(FIELDS)),
                         st.one_of(st.sampled_from(EDGES), st.integers(0, 2 ** 64 - 1), st.integers(-3, 3)))
_HEADERS_STRATEGIES = (seed_names, st.lists(FIELD_CHANGE, min_size=1, max_size=3), st.booleans())


def _headers(name, changes, relative):
    blob, model_file = SEEDS[name]
    for field, value in changes:
        if relative and -3 <= value <= 3:  # near the real value: off by a few
            offset, fmt = FIELDS[field]
            value += struct.unpack_from(fmt, blob, offset)[0]
        blob = _set_field(blob, field, value)
    check_decompress(_reseal(blob), model_file)


test_fuzz_header_fields, test_fuzz_header_fields_long = _profile(_headers, *_HEADERS_STRATEGIES)


_MODEL_NAMES_STRATEGIES = (seed_names,
                           st.sampled_from([b"", b"markov", b"unigram", b"transformer", b"\xff\xfe", b"x" * 16]),
       st.sampled_from(["zero", "random", "other"]), st.integers(0, 2 ** 32 - 1),)


def _model_names(name, kind, digest, salt):
    blob, model_file = SEEDS[name]
    blob = bytearray(blob)
    blob[16:32] = kind.ljust(16, b"\0")
    if digest == "zero":
        blob[32:64] = bytes(32)
    elif digest == "random":
        blob[32:64] = np.random.default_rng(salt).integers(0, 256, 32, dtype=np.uint8).tobytes()
    check_decompress(_reseal(bytes(blob)), model_file)


test_fuzz_model_names, test_fuzz_model_names_long = _profile(_model_names, *_MODEL_NAMES_STRATEGIES)


# ------------------------------------------------------------------------------------ truncation and payload

_BYTES_STRATEGIES = (seed_names, DATA,
                     st.sampled_from(["cut", "cut+reseal", "append", "flip+reseal", "splice+reseal"]))


def _bytes(name, data, how):
    blob, model_file = SEEDS[name]
    if how.startswith("cut"):
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
        if how.endswith("reseal"):
            blob = _reseal(blob)
    elif how == "append":
        blob = blob + data.draw(st.binary(min_size=1, max_size=64))
    elif how == "flip+reseal":
        for _ in range(data.draw(st.integers(1, 8))):
            index = data.draw(st.integers(96, len(blob) - 5)) if len(blob) > 100 else 96
            bit = data.draw(st.integers(0, 7))
            blob = blob[:index] + bytes([blob[index] ^ (1 << bit)]) + blob[index + 1:] if index < len(blob) else blob
        blob = _reseal(blob)
    else:  # replace a run of payload bytes
        start = data.draw(st.integers(96, max(96, len(blob) - 5)))
        blob = _reseal(blob[:start] + data.draw(st.binary(min_size=1, max_size=32)) + blob[start:])
    check_decompress(blob, model_file)


test_fuzz_truncations_and_payloads, test_fuzz_truncations_and_payloads_long = _profile(_bytes, *_BYTES_STRATEGIES)


# ------------------------------------------------------------------------------------------------ model arrays

DTYPES = ["int8", "uint8", "int32", "int64", "uint64", "float32", "float64", "bool", "<U3", "complex64", ">i8"]
arrays_strategy = st.tuples(
    st.sampled_from(DTYPES),
    st.lists(st.integers(0, 300), min_size=0, max_size=3).map(tuple),
    st.sampled_from(["zeros", "ones", "negative", "huge", "random"]),
)


def _make_array(dtype, shape, values, salt):
    size = int(np.prod(shape)) if shape else 1
    if size > 200_000:
        shape, size = (size % 1000,), size % 1000
    rng = np.random.default_rng(salt)
    raw = {"zeros": np.zeros(size), "ones": np.ones(size), "negative": -np.ones(size) * 5,
           "huge": np.full(size, 2.0 ** 62), "random": rng.integers(0, 300, size).astype(np.float64)}[values]
    if np.dtype(dtype).kind == "U":
        return np.array([str(int(v)) for v in raw], dtype=dtype).reshape(shape)
    with np.errstate(all="ignore"):
        return raw.astype(dtype).reshape(shape)


_MODEL_ARRAYS_STRATEGIES = (seed_names.filter(lambda n: n not in ("gzip", "stored")),
       st.sampled_from(["replace", "drop", "add"]), st.integers(0, 10), arrays_strategy, st.integers(0, 2 ** 32 - 1),
       st.booleans(),)


def _model_arrays(name, action, which, array, salt, as_model_file):
    blob, model_file = SEEDS[name]
    container = fileformat.unpack(blob)
    header = container.header
    if model_file is not None:
        kind = header.model_kind
        arrays = {k: v for k, v in fileformat.npz_to_arrays(model_file).items() if k != fileformat.KIND_ENTRY}
    else:
        kind, arrays = header.model_kind, dict(container.model_arrays)
    names = sorted(arrays)
    target = names[which % len(names)]
    if action == "drop":
        del arrays[target]
    else:
        arrays[target if action == "replace" else f"extra{which}"] = _make_array(*array, salt)
    if as_model_file or model_file is not None:  # a model file given as --model (header names the new model)
        new_file = fileformat.arrays_to_npz({**arrays, fileformat.KIND_ENTRY: np.array(kind)})
        header.fingerprint = fingerprint(arrays)
        check_decompress(fileformat.pack(header, container.bits, None), new_file)
    else:  # embedded, fingerprint and CRCs recomputed
        header.fingerprint = fingerprint(arrays)
        check_decompress(fileformat.pack(header, container.bits, arrays))


test_fuzz_model_arrays, test_fuzz_model_arrays_long = _profile(_model_arrays, *_MODEL_ARRAYS_STRATEGIES)


def _npy_claiming(shape, dtype, payload):
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": dtype, "fortran_order": False, "shape": shape})
    return member.getvalue() + payload


_NPY_HEADERS_STRATEGIES = (st.lists(st.integers(0, 2 ** 40), min_size=0, max_size=3).map(tuple),
                           st.sampled_from(["<i8", "<f8", "|u1"]),
       st.binary(max_size=300), st.sampled_from(["counts", "order", "context_ids", "__kind__"]), st.booleans(),)


def _npy_headers(shape, dtype, payload, member, to_compress):
    """Model files whose .npy headers lie about their sizes, used by compress and by decompress."""
    markov = MarkovModel.fit(bytes_to_symbols(TEXT), 2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in {**markov.arrays(), fileformat.KIND_ENTRY: np.array("markov")}.items():
            stream = io.BytesIO()
            np.lib.format.write_array(stream, np.asarray(value), allow_pickle=False)
            data = _npy_claiming(shape, dtype, payload) if name == member else stream.getvalue()
            archive.writestr(name + ".npy", data)
    model_file = buffer.getvalue()
    if to_compress:
        (WORK / "model.npz").write_bytes(model_file)
        (WORK / "text.in").write_bytes(TEXT)
        (WORK / "text.eqi").unlink(missing_ok=True)
        status, err = run_cli(["compress", WORK / "text.in", WORK / "text.eqi", "--model", WORK / "model.npz"])
        assert status == 2 and err.startswith("equalinfo: error: ") and err.count("\n") == 1, (status, err)
        assert not (WORK / "text.eqi").exists()
    else:
        check_decompress(SEEDS["equalinfo b32 external"][0], model_file)


test_fuzz_npy_headers, test_fuzz_npy_headers_long = _profile(_npy_headers, *_NPY_HEADERS_STRATEGIES)


def test_fuzz_seeds_round_trip():
    """Unmutated, every seed decodes to its input (so the fuzzer starts from files that work)."""
    for name, (blob, model_file) in SEEDS.items():
        assert check_decompress(blob, model_file) == 0, name
