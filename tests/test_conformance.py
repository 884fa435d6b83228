"""The conformance vectors (conformance/, docs/conformance.md): the committed set passes on every backend, a
fresh export reproduces it byte for byte, and an edited vector fails exactly its own family."""
import hashlib
import io
import json
import math
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from equalinfo import conformance
from equalinfo.train.backends import BackendUnavailable
from equalinfo.cli import main
from equalinfo.conformance import files, implementations

VECTORS = Path(__file__).resolve().parent / "conformance_vectors"
# SHA-256 of the committed manifest.json of each format version. Any change to the vectors changes the manifest;
# such a change must come with a new FORMAT_VERSION (and its line here), never under an old version's number.
RELEASED = {1: "1ee5041cdc6fa9c0e02e475c9602805a876f70faba7ff47f3dc6272fe5412692",
            2: "00d73d6592ee86dda060788974c532f6385064d30cc59d4f2629e6768d21a2d0",  # + m1_integer_m1 (rule 2)
            3: "c70ff8c28c346fd20c5fc6b8c99abf787932ea6284cc808da4c9b5623b1386b0",  # + m1_int8_m1 (rule 3), rejections
            4: "90ec63ffd304025f7aa45f35d0bf50f39889882a1037b040bad3675a6f90e1f8"}  # + m1_int8_rows_m1 (rule 4)
GPU_SHARED = ["quantization", "coder", "windows", "tokens", "packing", "rejections"]  # fast under the simulator


def failed_families(results):
    return {name for name, passed, _, _, _ in results if not passed}


@pytest.mark.parametrize("backend", ["ref", "cpu"])
def test_committed_vectors_pass(backend):
    results = conformance.check(VECTORS, implementations.load(backend))
    assert [name for name, *_ in results] == conformance.family_names()
    assert failed_families(results) == set(), conformance.table(results, backend, VECTORS)
    assert all(checks > 0 for _, _, checks, _, _ in results)


@pytest.mark.parametrize("path", ["sgemm", "onnxruntime", "vnni"])
def test_rules_3_and_4_pass_on_every_gemm_path_this_machine_has(monkeypatch, path):
    """fast/cpu's int8 families with each GEMM path forced (fast/cpu/int8_gemm.py): the vectors are the rule's
    integers, so sgemm, onnxruntime's MatMulInteger and the VNNI kernel must all reproduce them."""
    from equalinfo.fast.cpu import int8_gemm

    int8_gemm.reset()
    if path == "onnxruntime" and not int8_gemm.usable(int8_gemm.SELF_CHECK_K):
        pytest.skip("onnxruntime is not usable here")
    if path == "vnni" and not int8_gemm.vnni_usable(int8_gemm.SELF_CHECK_K):
        pytest.skip("no AVX-512 VNNI kernel here")
    monkeypatch.setenv(int8_gemm.ENV, path)
    try:
        families = ["m1_int8_m1", "m1_int8_rows_m1"]
        results = conformance.check(VECTORS, implementations.load("cpu"), only=families)
    finally:
        int8_gemm.reset()
    assert sorted(name for name, *_ in results) == families
    assert failed_families(results) == set(), conformance.table(results, "cpu", VECTORS)


def gpu_or_skip():
    try:
        return implementations.load("gpu")
    except BackendUnavailable as error:
        pytest.skip(f"no GPU and no CUDA simulator: {error}")


def test_gpu_backend_shared_families_pass():
    """The gpu backend codes with fast.cpu's coder; its own kernels (M1 rows, Transformer) take minutes under the
    simulator, so they run in the slow test below."""
    results = conformance.check(VECTORS, gpu_or_skip(), GPU_SHARED)
    assert failed_families(results) == set(), conformance.table(results, "gpu", VECTORS)


@pytest.mark.slow
def test_gpu_backend_every_family_passes():
    results = conformance.check(VECTORS, gpu_or_skip())
    assert failed_families(results) == set(), conformance.table(results, "gpu", VECTORS)


def test_gpu_backend_rule_2_steps_pass():
    """fast.gpu's rule-2 steps (quantize_rows, int_matmul) on the edge rows and traced products: the part of the
    family that needs no simulated kernel (its rows run in the slow test above; about 100 s under the simulator)."""
    import importlib

    from equalinfo.conformance import m1_integer
    from equalinfo.conformance.tally import Tally

    gpu_or_skip()
    module = importlib.import_module("equalinfo.fast.gpu.integer_m1")
    description, arrays = files.read_family(VECTORS, files.read_manifest(VECTORS, conformance.FORMAT_VERSION),
                                            "m1_integer_m1")
    qparams = {name[len("param."):]: value for name, value in arrays.items() if name.startswith("param.")}
    tally = Tally()
    for name, product in [("edge", description["edge_product"])] + [(f"trace.{n}", n) for n in description["traced"]]:
        want = {key: arrays[f"{name}.{key}"] for key in ("x", "x_int", "e", "acc", "y")}
        m1_integer.check_steps(name, product, want, qparams, module, tally)
    assert tally.checks == 12 and not tally.failures, tally.failures


BLAS_RESULTS = ("logits", "loss", "grad.", "adafactor.new_", "adamw.new_")  # made by ref.transformer's BLAS products


def same_up_to_blas_rounding(fresh, committed):
    """True if two transformer.npz files hold the same inputs and, for the arrays ref computes with BLAS products
    (whose last bits may depend on the BLAS build and CPU), values within 1e-12 relative: the one family whose
    export may legitimately differ in bits between machines (its check has a tolerance; every other family's
    vectors come from integer or fixed-order float arithmetic)."""
    with np.load(fresh, allow_pickle=False) as a, np.load(committed, allow_pickle=False) as b:
        if sorted(a.files) != sorted(b.files):
            return False
        for key in a.files:
            x, y = a[key], b[key]
            if x.shape != y.shape or x.dtype != y.dtype:
                return False
            if key.startswith(BLAS_RESULTS):
                if np.abs(x - y).max(initial=0.0) > 1e-12 * np.abs(y).max(initial=0.0):
                    return False
            elif not np.array_equal(x, y):
                return False
    return True


BLAS_JSON = ("gradient_global_norm",)  # transformer.json's one float computed from BLAS-made gradients


def same_json_up_to_blas_rounding(fresh, committed):
    """True if two transformer.json files are equal but for BLAS_JSON floats within 1e-12 relative (the global
    gradient norm of the AdamW step sums the BLAS-made gradients, so its last bit may move with them)."""
    def same(a, b, key=None):
        if isinstance(a, dict) and isinstance(b, dict):
            return list(a) == list(b) and all(same(a[k], b[k], k) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y, key) for x, y in zip(a, b))
        if key in BLAS_JSON and isinstance(a, float) and isinstance(b, float):
            return abs(a - b) <= 1e-12 * abs(b)
        return a == b and type(a) is type(b)
    return same(json.loads(fresh.read_bytes()), json.loads(committed.read_bytes()))


FORGIVEN = {"transformer.npz": same_up_to_blas_rounding, "transformer.json": same_json_up_to_blas_rounding}


def test_fresh_export_is_the_committed_set_byte_for_byte(tmp_path):
    manifest = conformance.export(tmp_path)
    committed = sorted(p.name for p in VECTORS.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    changed = [name for name in committed if (tmp_path / name).read_bytes() != (VECTORS / name).read_bytes()]
    fresh = json.loads((tmp_path / files.MANIFEST).read_bytes())
    for name, same in FORGIVEN.items():
        if name in changed and same(tmp_path / name, VECTORS / name):
            changed.remove(name)  # and the manifest may differ only in that file's hash:
            fresh["files"][name] = files.sha256((VECTORS / name).read_bytes())
    if files.MANIFEST in changed and files.json_bytes(fresh) == (VECTORS / files.MANIFEST).read_bytes():
        changed.remove(files.MANIFEST)
    assert not changed, (f"the exported vectors differ from tests/conformance_vectors in {changed}: if the change "
                         "is intended, bump equalinfo.conformance.FORMAT_VERSION, re-export, and record the new "
                         "manifest's SHA-256 in RELEASED")
    assert manifest["format_version"] == conformance.FORMAT_VERSION
    digest = hashlib.sha256((VECTORS / files.MANIFEST).read_bytes()).hexdigest()
    assert RELEASED.get(conformance.FORMAT_VERSION) == digest, (
        f"the committed vectors changed (manifest SHA-256 {digest}) but FORMAT_VERSION is still "
        f"{conformance.FORMAT_VERSION}: bump it and record the new digest in RELEASED")


def rewrite_npz(directory, family, edit, fix_manifest=True):
    """Apply edit(arrays) to FAMILY.npz in a copied set; fix the manifest's hash so only the content differs."""
    path = directory / f"{family}.npz"
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key].copy() for key in archive.files}
    edit(arrays)
    data = files.npz_bytes(arrays)
    path.write_bytes(data)
    if fix_manifest:
        manifest = json.loads((directory / files.MANIFEST).read_bytes())
        manifest["files"][f"{family}.npz"] = files.sha256(data)
        (directory / files.MANIFEST).write_bytes(files.json_bytes(manifest))


def flip(key, index):
    def edit(arrays):
        arrays[key].reshape(-1)[index] ^= 1
    return edit


def one_ulp(key, index):
    def edit(arrays):
        flat = arrays[key].reshape(-1)
        flat[index] = np.nextafter(flat[index], np.inf)
    return edit


def scale(key, index, factor):
    def edit(arrays):
        arrays[key].reshape(-1)[index] *= factor
    return edit


EDITS = {  # family -> one small edit of its expected outputs or inputs
    "quantization": flip("cdf.050", 3),  # one CDF entry off by one
    "coder": flip("bits.028", 200),  # one bit of the many-carries stream
    "windows": flip("bits.009", 30),  # one bit of a window of the skewed model
    "tokens": flip("tokens.006.16", 0),  # one token
    "m1_exact_m1": one_ulp("probs", 1000),  # one probability off by one unit in the last place
    "m1_integer_m1": flip("trace.blocks.0.wq.acc", 9),  # one integer sum of the first product off by one
    "m1_int8_m1": flip("trace.blocks.0.w_down.lo", 4),  # one low half of the second traced product
    "m1_int8_rows_m1": one_ulp("trace.blocks.0.wk.y", 9),  # one key, off by one float32 ulp: no bfloat16 value
    "transformer": scale("grad.blocks.1.wk", 5, 1.0 + 1e-6),  # one gradient entry, 1e-6 relative
    "packing": flip("validation.rows", 3),  # one packed token
    "rejections": lambda arrays: arrays["tokens.002"].__setitem__(1, 0),  # the negative token made valid
}


@pytest.fixture
def vector_copy(tmp_path):
    target = tmp_path / "vectors"
    shutil.copytree(VECTORS, target)
    return target


def test_every_family_has_an_edit():
    assert set(EDITS) == set(conformance.family_names())


@pytest.mark.parametrize("family", list(EDITS))
def test_an_edited_vector_fails_exactly_its_family(vector_copy, family):
    rewrite_npz(vector_copy, family, EDITS[family])
    results = conformance.check(vector_copy, implementations.load("ref"))
    assert failed_families(results) == {family}
    [failures] = [f for name, _, _, f, _ in results if name == family]
    assert not any("SHA-256" in line for line in failures)  # the content check caught it, not the manifest


RULE_2_EDITS = [  # (edit of m1_integer_m1, the failure it must cause): each step of the rule is checked on its own
    (flip("edge.x_int", 11), "edge: x_int differs"),  # a tie rounded the wrong way (1.5 -> 3, not 2)
    (flip("edge.e", 7), "edge: row exponents e differs"),  # the tiny row's frexp exponent
    (flip("edge.acc", 0), "edge: acc = x_int @ W_int differs"),  # the zero row's sum
    (flip("trace.blocks.0.w_down.x_int", 0), "trace.blocks.0.w_down: x_int differs"),
    (one_ulp("edge.y", 20), "edge: y differs"),  # one rescaled output
    (one_ulp("long.probs", 2400), "long: rows at long.positions differs"),  # the row beyond max_distance
    (flip("param.unembed.int", 100), "rows: probability rows differs"),  # one int16 weight of the last product
    (scale("param.blocks.0.wq.scale", 3, 1.0 + 2.0 ** -20), "trace.blocks.0.wq: y differs"),  # one scale
]


def assert_edit_fails_at(vector_copy, family, edit, reason):
    """ref fails `family` (and only it, m1_exact_m1 beside it passing) once its vectors carry `edit`, with a first
    line that starts with `reason`: each step of an exact rule is checked on its own."""
    rewrite_npz(vector_copy, family, edit)
    results = conformance.check(vector_copy, implementations.load("ref"), ["m1_exact_m1", family])
    assert failed_families(results) == {family}
    failures = results[1][3]
    assert any(line.startswith(reason) for line in failures), failures


@pytest.mark.parametrize("edit,reason", RULE_2_EDITS)
def test_rule_2_edits_fail_its_family_at_the_edited_step(vector_copy, edit, reason):
    assert_edit_fails_at(vector_copy, "m1_integer_m1", edit, reason)


def test_rule_2_vectors_exercise_the_rule_s_edge_cases():
    """The family's own rows meet a zero row and a halfway tie, its long input crosses every relative-position
    bucket, and its edge rows are rounded and clipped as the rule says (docs/conformance.md works them out)."""
    description = json.loads((VECTORS / "m1_integer_m1.json").read_text())
    counts = description["forward_pass"]
    assert counts["blocks.0.wq"]["zero_rows"] > 0 and sum(c["halfway_ties"] for c in counts.values()) > 0
    with np.load(VECTORS / "m1_integer_m1.npz", allow_pickle=False) as archive:
        assert archive["param.blocks.0.wq.int"].dtype == np.int16
        assert archive["long.positions"].max() >= description["config"]["max_distance"]
        assert archive["long.inputs"].shape[1] > description["config"]["max_distance"]
        x_int, e = archive["edge.x_int"], archive["edge.e"]
    assert e[0] == 0 and not x_int[0].any()  # the zero row
    assert x_int[1].tolist() == [16384, 0, 2, 2, 4, 0, -2, -16386] and e[1] == -14  # halves to even
    assert x_int[4, :2].tolist() == [32767, -32767]  # 32767.998 rounds to 32768, clipped


RULE_3_EDITS = [  # (edit of m1_int8_m1, the failure it must cause)
    (flip("edge.x_int", 11), "edge: x_int differs"),  # a tie rounded the wrong way (1.5 -> 3, not 2)
    (flip("edge.hi", 18), "edge: hi = sign(x_int) * floor(|x_int| / 128) differs"),  # -200's high half
    (flip("edge.lo", 18), "edge: lo = x_int - 128 * hi differs"),
    (flip("edge.acc", 0), "edge: acc = x_int @ W_int differs"),
    (one_ulp("edge.y", 20), "edge: y differs"),
    (one_ulp("long.probs", 2400), "long: rows at long.positions differs"),
    (flip("param.unembed.int", 100), "rows: probability rows differs"),  # one int8 weight of the last product
]


@pytest.mark.parametrize("edit,reason", RULE_3_EDITS)
def test_rule_3_edits_fail_its_family_at_the_edited_step(vector_copy, edit, reason):
    assert_edit_fails_at(vector_copy, "m1_int8_m1", edit, reason)


def test_rule_3_vectors_exercise_the_rule_s_edge_cases():
    """A zero row in the family's own rows (they meet no halfway tie at 14 bits: the edge rows hold those); the edge
    rows rounded, clipped and split as the rule says (docs/conformance.md)."""
    description = json.loads((VECTORS / "m1_int8_m1.json").read_text())
    assert description["forward_pass"]["blocks.0.wq"]["zero_rows"] > 0
    with np.load(VECTORS / "m1_int8_m1.npz", allow_pickle=False) as archive:
        assert archive["param.blocks.0.wq.int"].dtype == np.int8
        x_int, e, hi, lo = (archive[f"edge.{key}"] for key in ("x_int", "e", "hi", "lo"))
    assert e[0] == 0 and not x_int[0].any()  # the zero row
    assert x_int[1].tolist() == [8192, 0, 2, 2, 4, 0, -2, -8194] and e[1] == -13  # halves to even
    assert hi[2].tolist() == [127, -127, -1, 1, -1, 0, -1, 63]  # truncated toward zero
    assert lo[2].tolist() == [127, -127, -72, 0, 0, 127, -1, 127]
    assert x_int[4, :2].tolist() == [16383, -16383]  # 16383.999 rounds to 16384, clipped


def test_an_edit_without_a_new_hash_fails_by_the_manifest(vector_copy):
    rewrite_npz(vector_copy, "tokens", EDITS["tokens"], fix_manifest=False)
    results = conformance.check(vector_copy, implementations.load("ref"), ["tokens", "packing"])
    assert failed_families(results) == {"tokens"}
    assert "SHA-256 does not match" in results[0][3][0]


def test_cli_check_passes_and_fails_with_the_table(vector_copy, capsys):
    assert main(["conformance", "check", str(vector_copy), "--family", "packing", "--family", "tokens"]) == 0
    assert "2 of 2 families pass" in capsys.readouterr().out
    rewrite_npz(vector_copy, "packing", EDITS["packing"])
    assert main(["conformance", "check", str(vector_copy), "--backend", "ref"]) == 1
    out = capsys.readouterr().out
    assert "packing            FAIL" in out and "FAIL packing: validation side: trimmed/padded rows differs" in out


def test_cli_refuses_another_format_version_in_one_line(vector_copy, capsys):
    manifest = json.loads((vector_copy / files.MANIFEST).read_bytes())
    manifest["format_version"] = conformance.FORMAT_VERSION + 1
    (vector_copy / files.MANIFEST).write_bytes(files.json_bytes(manifest))
    with pytest.raises(SystemExit) as exit_info:
        main(["conformance", "check", str(vector_copy)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equalinfo: error:") and "format version" in err[0]


BLAS_FAMILIES = {"transformer"}  # computed by ref's NumPy Transformer: dgemm's last bits follow OpenBLAS's threads


def _close_json(got, want, rel):
    """got == want, numbers within rel of each other (JSON of a tolerance family)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _close_json(got[key], want[key], rel)
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _close_json(g, w, rel)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rel, abs=0.0)
    else:
        assert got == want


def test_cli_export_writes_what_check_reads(tmp_path, capsys):
    """A fresh export equals the committed set: byte for byte in the exact families; in the Transformer family,
    whose figures come from BLAS products (their last bits depend on how OpenBLAS splits a product among its
    threads), within 1e-12 relative -- far inside the family's own tolerances."""
    assert main(["conformance", "export", str(tmp_path / "set")]) == 0
    got = json.loads((tmp_path / "set" / files.MANIFEST).read_text())
    want = json.loads((VECTORS / files.MANIFEST).read_text())
    assert got["families"] == want["families"] and got["files"].keys() == want["files"].keys()
    for name, digest in want["files"].items():
        family = name.rsplit(".", 1)[0]
        if family not in BLAS_FAMILIES:
            assert got["files"][name] == digest, name
        elif name.endswith(".json"):
            _close_json(json.loads((tmp_path / "set" / name).read_text()), json.loads((VECTORS / name).read_text()),
                        1e-12)
        else:
            with np.load(tmp_path / "set" / name, allow_pickle=False) as fresh, \
                    np.load(VECTORS / name, allow_pickle=False) as committed:
                assert fresh.files == committed.files
                for key in committed.files:
                    if committed[key].dtype.kind == "f":  # the family's rule: relative to the tensor's max
                        scale = np.max(np.abs(committed[key]), initial=0.0)
                        assert np.max(np.abs(fresh[key] - committed[key]), initial=0.0) <= 1e-12 * scale, key
                    else:
                        assert np.array_equal(fresh[key], committed[key]), key


def test_npz_files_are_plain_numpy_without_pickle():
    """Every array loads with allow_pickle=False and has one of the documented little-endian dtypes."""
    for path in sorted(VECTORS.glob("*.npz")):
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as archive:
            for key in archive.files:
                assert archive[key].dtype.str in files.DTYPES, (path.name, key)


def test_the_spec_s_worked_examples_are_the_committed_vectors():
    """docs/conformance.md works out case 000 of quantization and the first window of windows vector 001 by hand:
    its stated results must be what the committed files hold."""
    spec = (VECTORS.parents[1] / "docs" / "conformance.md").read_text()
    with np.load(VECTORS / "quantization.npz", allow_pickle=False) as archive:
        cdf = archive["cdf.000"].tolist()
        assert archive["probs.000"].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert f"`cdf.000` = [{', '.join(map(str, cdf))}]" in spec
    with np.load(VECTORS / "windows.npz", allow_pickle=False) as archive:
        first_window = "".join(map(str, archive["bits.001"][:16]))
    assert f"the window is\n  `{first_window}`" in spec
    vector = json.loads((VECTORS / "windows.json").read_text())["vectors"][1]
    assert (vector["window_bits"], vector["window_lengths"][0], vector["greedy_lengths"][0]) == (16, 1, 1)


def test_the_spec_s_rule_2_example_is_the_committed_vectors():
    """docs/conformance.md works edge row 5 of m1_integer_m1 through the four steps of rule 2 by hand."""
    spec = (VECTORS.parents[1] / "docs" / "conformance.md").read_text()
    with np.load(VECTORS / "m1_integer_m1.npz", allow_pickle=False) as archive:
        w_int, s = archive["param.blocks.0.w_gate.int"][3, 0], archive["param.blocks.0.w_gate.scale"][0]
        x_int, e, acc, y = (archive[f"edge.{key}"][5] for key in ("x_int", "e", "acc", "y"))
    assert e == -13 and x_int.tolist() == [0, 0, 0, -24576, 0, 0, 0, 0] and acc[0] == -24576 * int(w_int)
    for text in (f"W_int[3, 0] = {w_int}", f"= {acc[0]}; s_0 = {float(s)!r}", f"{float(acc[0] * s)!r} (float64)",
                 f"{float(acc[0] * s * 2.0 ** -13)!r},", f"`edge.y[5, 0]` = {str(y[0])}."):
        assert text in spec, text


def test_the_spec_s_rule_3_example_is_the_committed_vectors():
    """docs/conformance.md works edge row 2 of m1_int8_m1 through the steps of rule 3 (the split included) by hand."""
    spec = " ".join((VECTORS.parents[1] / "docs" / "conformance.md").read_text().split())  # line breaks as spaces
    with np.load(VECTORS / "m1_int8_m1.npz", allow_pickle=False) as archive:
        w_int = archive["param.blocks.0.w_gate.int"][:, 0].astype(np.int64)
        s = archive["param.blocks.0.w_gate.scale"][0]
        hi, lo, acc, y = (archive[f"edge.{key}"][2] for key in ("hi", "lo", "acc", "y"))
    p_hi, p_lo = int(hi @ w_int), int(lo @ w_int)
    assert acc[0] == 128 * p_hi + p_lo
    for text in (f"hi = {hi.tolist()}, lo = {lo.tolist()}", f"W_int[:, 0] = {w_int.tolist()}",
                 f"P_hi = {p_hi} and P_lo = {p_lo}", f"= {acc[0]}; s_0 = {float(s)!r}",
                 f"{float(acc[0] * s)!r} (float64)", f"{float(acc[0] * s * 2.0 ** -13)!r}", f"`edge.y[2, 0]` = {str(y[0])}."):
        assert text in spec, text


@pytest.mark.parametrize("edit,same", [(one_ulp("grad.blocks.0.wq", 3), True),
                                       (scale("grad.blocks.0.wq", 3, 1.0 + 1e-9), False),
                                       (one_ulp("param.blocks.0.wq", 3), False)])
def test_only_blas_rounding_is_forgiven_in_the_transformer_export(vector_copy, edit, same):
    rewrite_npz(vector_copy, "transformer", edit)
    assert same_up_to_blas_rounding(vector_copy / "transformer.npz", VECTORS / "transformer.npz") is same


def test_each_rejection_vector_breaks_the_rule_it_names():
    """ref refuses every case of family rejections for the stated reason, not an incidental one."""
    from equalinfo.conformance import rejections

    description, arrays = rejections.build()
    says = {"every token lies in 0 .. 2^N - 1": "tokens must lie in 0..",
            "exactly ceil(n_bits / N) tokens: a trailing all-zero token is not padding": "does not match",
            "window_bits >= precision": "window_bits must be an integer >= precision",
            "the bits are a whole number of b-bit windows": "is not a whole number of 16-bit windows"}
    impl = implementations.load("ref")
    for case in description["cases"]:
        function, args = rejections.attempt(case, arrays, impl)
        with pytest.raises(ValueError, match=re.escape(says[case["breaks"]])):
            function(*args)


RULE_4_EDITS = [  # (edit of m1_int8_rows_m1, the failure it must cause)
    (flip("edge.x_int", 11), "edge: x_int differs"),  # a tie rounded the wrong way (1.5 -> 3, not 2)
    (flip("edge.x_int", 16), "edge: x_int differs"),  # the tie 127.5 -> 128 clipped to 127: 126 instead
    (flip("edge.e", 8), "edge: row exponents e differs"),  # the subnormal row's frexp exponent
    (flip("edge.acc", 0), "edge: acc = x_int @ W_int differs"),
    (one_ulp("edge.y_rescaled", 20), "edge: y_rescaled = float32((acc * s) * 2^e) differs"),
    (one_ulp("trace.blocks.0.wk.y_rescaled", 9), "trace.blocks.0.wk: y_rescaled = float32((acc * s) * 2^e) differs"),
    (scale("bf16_edge.y", 2, 1.0 + 2.0 ** -7), "bf16_edge: y = bfloat16(y_rescaled) differs"),  # the tie rounded up
    (one_ulp("trace.blocks.0.wq.y", 5), "trace.blocks.0.wq: y = y_rescaled differs"),
    (lambda arrays: arrays["bfloat16.rounded"].__setitem__(1, np.float32(1.0078125)),  # 0x3F808000 up, not to even
     "bfloat16: rounded = the bfloat16 formula on y's bits differs"),
    (one_ulp("long.probs", 2400), "long: rows at long.positions differs"),
    (flip("param.unembed.int", 100), "rows: probability rows differs"),  # one int8 weight of the last product
]


@pytest.mark.parametrize("edit,reason", RULE_4_EDITS)
def test_rule_4_edits_fail_its_family_at_the_edited_step(vector_copy, edit, reason):
    assert_edit_fails_at(vector_copy, "m1_int8_rows_m1", edit, reason)


def bits32(values):
    return np.asarray(values, np.float32).view(np.uint32)


def test_rule_4_vectors_exercise_the_rule_s_edge_cases():
    """The family's own rows meet zero rows, halfway ties and clipped entries; its edge rows are rounded and clipped
    as the rule says; the bf16_edge rows hold bfloat16 ties both ways, near-ties and a carry; only wk and wv are
    rounded (docs/conformance.md)."""
    description = json.loads((VECTORS / "m1_int8_rows_m1.json").read_text())
    counts = description["forward_pass"]
    assert counts["blocks.0.wq"]["zero_rows"] > 0 and counts["blocks.0.wo"]["halfway_ties"] > 0
    assert counts["blocks.0.w_down"]["clipped"] > 0
    assert set(description["bfloat16_products"]) == {"wk", "wv"}
    assert {"blocks.0.wk", "blocks.0.wv"} <= set(description["traced"])
    with np.load(VECTORS / "m1_int8_rows_m1.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert arrays["param.blocks.0.wq.int"].dtype == np.int8
    x_int, e = arrays["edge.x_int"], arrays["edge.e"]
    assert e[0] == 0 and not x_int[0].any()  # the zero row
    assert x_int[1].tolist() == [64, 0, 2, 2, 4, 0, -2, -66] and e[1] == -6  # halves to even
    assert x_int[2].tolist() == [127, -127, 126, -126, 126, 0, -64, 100]  # 127.5 -> 128, clipped
    assert x_int[4, :2].tolist() == [127, -127] and e[3] == -8  # 127.99999 rounds to 128, clipped; 0.25 -> 64
    assert e[7:10].tolist() == [-105, -139, 113]  # tiny, subnormal, huge
    assert np.abs(x_int).max() <= 127
    for name in description["traced"]:  # wk and wv hold bfloat16 values only; every other product is not rounded
        y, y_rescaled = bits32(arrays[f"trace.{name}.y"]), bits32(arrays[f"trace.{name}.y_rescaled"])
        if name.endswith((".wk", ".wv")):
            assert not (y & 0xFFFF).any() and (y != y_rescaled).any()
        else:
            assert (y == y_rescaled).all() and (y & 0xFFFF).any()
    before, after = bits32(arrays["bf16_edge.y_rescaled"]), bits32(arrays["bf16_edge.y"])
    assert (before[0, 2], after[0, 2]) == (0x40548000, 0x40540000)  # a tie, down to even
    assert (before[1, 7], after[1, 7]) == (0xC0438000, 0xC0440000)  # a negative tie, up to even
    assert (before[2, 0] & 0xFFFF, before[3, 3] & 0xFFFF) == (0x7FFF, 0x8001)  # just below and above a tie
    assert (before[4, 3], after[4, 3]) == (0xBFFF869A, 0xC0000000)  # the carry into the exponent
    assert (bits32(arrays["bfloat16.rounded"])[-1], bits32(arrays["bfloat16.rounded"])[10]) == (0x7F800000, 0x80000000)


def spec_float32(value):
    """The float32 nearest to a Python float (IEEE rounding to nearest, ties to even), as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def spec_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]


def spec_bfloat16_bits(bits):
    return (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000


def spec_rule_4_product(x_row, w_int, scale, rounded):
    """One row of a rule-4 product written from docs/conformance.md alone, with Python floats and integers: (x_int,
    e, acc, y_rescaled bits, y bits)."""
    top = max(abs(value) for value in x_row)
    e = 0 if top == 0 else math.frexp(top)[1] - 7
    x_int = [max(-127, min(127, round(math.ldexp(value, -e)))) for value in x_row]  # round(): halves to even
    acc = [sum(x_int[k] * int(w_int[k][j]) for k in range(len(x_row))) for j in range(len(scale))]  # exact ints
    before = [spec_bits(spec_float32((float(a) * float(s)) * 2.0 ** e)) for a, s in zip(acc, scale)]
    return x_int, e, acc, before, [spec_bfloat16_bits(b) for b in before] if rounded else before


def test_rule_4_from_the_spec_reproduces_every_stored_step():
    """An independent implementation of rule 4's product (the spec's steps 1-5, in plain Python: math.frexp,
    round(), Python integers, struct's float32) gives every stored x_int, e, acc, y_rescaled and y of the traced
    products, the edge rows and the bfloat16 rows, and every bfloat16 case."""
    description = json.loads((VECTORS / "m1_int8_rows_m1.json").read_text())
    with np.load(VECTORS / "m1_int8_rows_m1.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    sets = ([(f"trace.{name}", name) for name in description["traced"]] + [("edge", description["edge_product"])]
            + [("bf16_edge", description["bfloat16_product"])])
    rows = 0
    for prefix, product in sets:
        w_int, scale = arrays[f"param.{product}.int"].tolist(), arrays[f"param.{product}.scale"].tolist()
        rounded = product.rsplit(".", 1)[-1] in ("wk", "wv")
        for r, x_row in enumerate(arrays[f"{prefix}.x"].tolist()):
            x_int, e, acc, before, after = spec_rule_4_product(x_row, w_int, scale, rounded)
            where = f"{prefix} row {r}"
            assert x_int == arrays[f"{prefix}.x_int"][r].tolist(), where
            assert e == arrays[f"{prefix}.e"][r], where
            assert acc == arrays[f"{prefix}.acc"][r].tolist(), where
            assert before == bits32(arrays[f"{prefix}.y_rescaled"][r]).tolist(), where
            assert after == bits32(arrays[f"{prefix}.y"][r]).tolist(), where
            rows += 1
    assert rows == 4 * 84 + 11 + 6
    want = bits32(arrays["bfloat16.rounded"]).tolist()
    assert [spec_bfloat16_bits(b) for b in bits32(arrays["bfloat16.y"]).tolist()] == want


def test_the_spec_s_rule_4_example_is_the_committed_vectors():
    """docs/conformance.md works bf16_edge row 0, output 2 of m1_int8_rows_m1 through rule 4's steps by hand."""
    spec = " ".join((VECTORS.parents[1] / "docs" / "conformance.md").read_text().split())  # line breaks as spaces
    with np.load(VECTORS / "m1_int8_rows_m1.npz", allow_pickle=False) as archive:
        w_int = archive["param.blocks.0.wk.int"][:, 2].astype(np.int64)
        s = archive["param.blocks.0.wk.scale"][2]
        x_int, e, acc, before, after = (archive[f"bf16_edge.{key}"][0] for key in ("x_int", "e", "acc", "y_rescaled",
                                                                                    "y"))
    assert e == -6 and acc[2] == int(x_int.astype(np.int64) @ w_int)
    terms = " + ".join(str(int(t)) for t in x_int.astype(np.int64) * w_int)
    for text in (f"x = {x_int.astype(int).tolist()} * 2^-6", f"= {w_int.tolist()}, so acc = {terms} = {acc[2]};",
                 f"s_2 = {float(s)!r}, acc * s_2 = {float(acc[2] * s)!r} (float64)",
                 f"times 2^-6 = {float(acc[2] * s * 2.0 ** -6)!r}", f"`bf16_edge.y_rescaled[0, 2]` = {before[2]!s}",
                 f"bits 0x{int(bits32(before[2])):08X}", f"`bf16_edge.y[0, 2]` = {after[2]!s}"):
        assert text in spec, text


def rule_4_mutant(wrong):
    """A module computing rule 4 with one step changed by `wrong` (a dict of replaced steps), the rest ref's."""
    from types import SimpleNamespace

    from equalinfo.ref import exact_m1, int8_rows_m1

    quantize_rows = wrong.get("quantize_rows", int8_rows_m1.quantize_rows)
    to_bfloat16 = wrong.get("to_bfloat16", int8_rows_m1.to_bfloat16)
    rounds = wrong.get("rounds", int8_rows_m1.rounds_to_bfloat16)

    def int8_rows_matmul(x, qparams, name):
        x_int, e = quantize_rows(x)
        acc = int8_rows_m1.chunked_product(x_int, qparams[name + ".int"])
        y = ((acc * qparams[name + ".scale"]) * np.ldexp(1.0, e)[:, None]).astype(x.dtype)
        return to_bfloat16(y) if rounds(name) else y

    def logits(qparams, cfg, inputs):
        return exact_m1.logits(qparams, cfg, inputs, product=int8_rows_matmul)

    return SimpleNamespace(quantize_rows=quantize_rows, int8_rows_matmul=int8_rows_matmul, to_bfloat16=to_bfloat16,
                           logits=logits,
                           next_probs=lambda qparams, cfg, inputs: exact_m1.softmax64(logits(qparams, cfg, inputs)))


def _bfloat16_by(adjust):
    def to_bfloat16(y):
        bits = np.asarray(y, np.float32).view(np.uint32).astype(np.uint64)
        return ((adjust(bits) & 0xFFFF0000).astype(np.uint32)).view(np.float32)
    return to_bfloat16


def _rows_half_away(x):
    from equalinfo.ref import integer_m1

    e = integer_m1.row_exponents(x, 7)
    scaled = np.ldexp(x.astype(np.float64), -e[:, None])
    return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -127, 127), e


RULE_4_MUTANTS = {  # a plausible wrong port -> a failure it must cause
    "bfloat16 by truncation": ({"to_bfloat16": _bfloat16_by(lambda b: b)}, "bf16_edge: y differs"),
    "bfloat16 ties away from zero": ({"to_bfloat16": _bfloat16_by(lambda b: b + 0x8000)}, "bf16_edge: y differs"),
    "no bfloat16 step": ({"rounds": lambda name: False}, "trace.blocks.0.wk: y differs"),
    "queries rounded too": ({"rounds": lambda name: name.rsplit(".", 1)[-1] in ("wq", "wk", "wv")},
                            "trace.blocks.0.wq: y differs"),
    "rows' halves away from zero": ({"quantize_rows": _rows_half_away}, "edge: x_int differs"),
}


@pytest.mark.parametrize("mutant", list(RULE_4_MUTANTS))
def test_a_wrong_rule_4_port_fails_its_family(monkeypatch, mutant):
    """Each plausible slip in a port of rule 4 fails m1_int8_rows_m1 at the step it gets wrong."""
    from equalinfo.conformance import m1_rows

    wrong, reason = RULE_4_MUTANTS[mutant]
    real = m1_rows.backends.exact_rule
    monkeypatch.setattr(m1_rows.backends, "exact_rule",
                        lambda version, name: rule_4_mutant(wrong) if version == 4 else real(version, name))
    results = conformance.check(VECTORS, implementations.load("ref"), ["m1_int8_rows_m1"])
    assert failed_families(results) == {"m1_int8_rows_m1"}
    assert any(line.startswith(reason) for line in results[0][3]), results[0][3]


def test_rule_4_family_fails_a_backend_without_the_rule(monkeypatch):
    """A backend whose rule-4 module cannot be imported fails the family in one line (Rule.module returns None)."""
    from equalinfo.conformance import m1_rows

    def missing(version, name):
        raise BackendUnavailable(f"backend {name!r} cannot compute exact rule {version}")

    monkeypatch.setattr(m1_rows.backends, "exact_rule", missing)
    results = conformance.check(VECTORS, implementations.load("ref"), ["m1_int8_rows_m1"])
    assert results[0][3] == ["int8_rows_m1: backend ref has no implementation of this rule"]
