"""Who computes rule 3's exact integer products: OpenBLAS's float32 sgemm, or onnxruntime's integer GEMM.

Why there is a choice. Rule 3 (ref/int8_m1.py) defines every M1 product by the exact integers
acc = sum_k x_int * W_int, with W_int int8 in [-127, 127] and each row split into two int8-valued halves hi, lo
(x_int = 128 * hi + lo). Because acc is exact, ANY GEMM that returns the exact integers of a chunk's two halves
gives the same bits. Two do here:
- "sgemm" (always there): the halves and the weights as float32, NumPy's `@` (OpenBLAS). Exact because every partial
  sum is an integer of magnitude <= K * 127 * 127 <= 2^24 for a chunk of K <= 1040 terms (ref/int8_m1.py's bound).
- "onnxruntime" (the optional extra `int8`; fast/cpu/onnx_graph.py writes its one-node graph): its MatMulInteger,
  u8 x s8 -> int32, whose MLAS kernels use the CPU's VNNI (vpdpbusd) or AMX instructions. A maintained library's
  kernels, picked at run time for the CPU, rather than a hand-written kernel of ours. The halves go in as
  u8 = half + 128 (in [1, 255], made directly by the quantizing pass) with a_zero_point = 128, so that
  MatMulInteger's sum_k (u8 - 128) * W_int is the half's exact product. On the dev machine it runs a 3m M1's decoder
  calls 2.4-4.2x faster than sgemm (bench/int8_gemm_speed.py, bench/README.md).

Why int32 is exact. VNNI and AMX multiply u8 by s8 and add the products into int32 lanes, exact as long as no
int32 sum leaves [-2^31, 2^31). However MLAS applies the zero point (before the products, or after them as
128 * column sums of W, subtracted), its partial sums are bounded by the u8 form's: |sum_k u8 * W_int| <=
K * 255 * 127 = K * 32,385, and |128 * sum_k W_int| <= K * 16,256. Chunks stay rule 3's (K <= CHUNK = 1040, so
that both paths run the same loop): at most 1040 * 32,385 = 33,680,400 < 2^25, far below 2^31 (int32 would hold
K <= 66,311). Per size in ref.transformer.SIZES the largest chunk is min(d_ff, 1040) terms: micro 12 (388,620),
tiny 64 (2,072,640), 3m 1024 (33,162,240), 25m, 113m, 403m and 2b 1040 (33,680,400): all < 2^31 = 2,147,483,648.
Each half's product |sum_k half * W_int| <= K * 127 * 127 <= 16,774,160. The chunks' int32 results are then
combined and rescaled in float64 exactly as the sgemm path's float32 ones are (fast/cpu/int8_m1.py).

Why the path is guarded. On CPUs without VNNI, MLAS's u8 x s8 kernels use vpmaddubsw, which adds PAIRS of u8 * s8
products in int16 with saturation: 255 * 127 * 2 = 64,770 > 32,767, so extreme operands give wrong integers. So
"onnxruntime" is used only if (a) it imports, and (b) a self-check passes, once per process and per inner width K
(at K = 1024 and at every K a model's weights bring): rows of u8 255 (half +127), u8 1 (half -127), alternating
and random (8, 16 and 64 of them), against columns of W = +127, -127, alternating and random, must give exactly
the int64 products.
(c) `auto` uses it only for products of at least THRESHOLD_MACS = 2^17 multiply-adds (2N rows, both halves, times
n terms times m columns): 3m's smallest product at one row (2 x 256 x 256). Why so low: timed alone in a loop (its
weights kept warm in the cache), a small product is faster on sgemm (one row of wo, 256 x 256: ~10 us against
onnxruntime's ~16, whose call costs ~15 us), and that table put the crossover near 2^19. But in a forward pass each
product's weights come from memory (presumably why: int8 weights are a quarter of float32's bytes): measured in
context (a decoder's PrefixRows.extend on N slots), onnxruntime on every product was faster than that crossover at
every N, 1.1-1.4x for N = 1-16, and 2.4-4.2x faster than sgemm alone. Below 2^17 (the tiny test models, whose
weights stay in the cache) the loop's table applies: the call's fixed cost is not worth it.
Rechecked per row count on an AMD EPYC Zen 4 dev machine (round 2 of issue #24; `python bench/ac_segments.py
--grower-rows 1 2 4 8 --grower-threads 1 --grower-gemm sgemm onnxruntime`, a whole decoder step of the shipped 3m
M1, load ~2.7): sgemm / onnxruntime 1.6 / 0.53 ms at 1 row, 1.9 / 0.58 at 2, 2.4 / 0.89 at 4, 3.6 / 1.4 at 8 --
onnxruntime 2.6-3.2x faster at every count, so no row threshold is needed for 3m: sgemm's float32 weights (13 MB for
3m) stream from memory on every step, onnxruntime's int8 ones are a quarter of that.

A third path, "vnni" (fast/cpu/vnni_gemm.py, round 7 of issue #24): our own u8 x s8 kernel, compiled at run time
from LLVM IR where the CPU reports AVX-512 VNNI, checked by the same self-check; its bound is the onnxruntime
path's above (the same u8 form, int32 lanes that vpdpbusd fills exactly). auto prefers it on one thread (the file
tool's workers) and below VNNI_MAX_ROWS rows on more, because a decoder's products are a few rows, where a
library call's fixed cost was most of the product: on the shipped 3m M1, a 13-slot decoder's step spent ~470 us in
onnxruntime's calls and ~135 us in the glue around them, against ~220 us for the kernel alone (bench/README.md,
round 7). Larger products on several threads stay with onnxruntime, whose kernels use them.

EQUALINFO_INT8_GEMM = sgemm | onnxruntime | vnni | auto (default auto) forces a path; a forced path that cannot
run (onnxruntime not installed, no VNNI kernel here) or fails the self-check raises GemmUnavailable (a ValueError:
the CLI prints its one line). Every path gives the same bits (tests/test_int8_gemm.py and tests/test_vnni_gemm.py:
rows, PrefixRows, extreme operands, files made with one decoded with another), so the choice only changes the
speed, and a file never records it.

onnxruntime runs one cached InferenceSession per weight chunk and thread count (intra_op_num_threads = Numba's
current thread count, which fast.cpu.threads.set_threads sets together with OpenBLAS's: the cores products may
use), sequential execution, the chunk's int8 weights as the graph's initializer, so that they are packed once for
MLAS's kernels rather than on every call (3m has 13 weight chunks).
"""
import os

import numpy as np

from equalinfo.fast.cpu import vnni_gemm
from equalinfo.fast.cpu.exact_m1 import numba_threads  # asked once per product: the compiled getter
from equalinfo.ref.int8_m1 import CHUNK, WEIGHT_MAX

ENV = "EQUALINFO_INT8_GEMM"
PATHS = ("sgemm", "onnxruntime", "vnni", "auto")
VNNI_MAX_ROWS = 512  # auto with more than one thread: products of this many GEMM rows or more go to onnxruntime,
# whose MLAS kernels use every thread (the VNNI kernel runs on one; the file tool's workers have one each)
THRESHOLD_MACS = 2 ** 17  # auto: onnxruntime for products of this many multiply-adds (2N * n * m) or more: every
# product of a 3m M1, even at one row; smaller models' tiny products stay on sgemm (bench/int8_gemm_speed.py)
ZERO_POINT = 128  # u8 = half + 128, in [1, 255] since |half| <= 127
SELF_CHECK_K = 1024  # always checked, besides each K in use (3m's d_ff)
INT32_MAX = 2 ** 31 - 1
ROWS_PER_RUN = 1024  # rows per onnxruntime call: each session's memory arena keeps its largest output for good
# (13 sessions for 3m; a never-reset call of 16,384 rows left ~1.5 GB held per process, a cpu-long pool worker
# reached 8 GB); 1,024 rows cost the same per row as more (2.4-2.7 us at 256-4,096 rows, AMD EPYC Zen 4), and
# turning the arena off instead made 4,096-row calls 2.7x slower (fresh pages on every call)


class GemmUnavailable(ValueError):
    """EQUALINFO_INT8_GEMM names a path this machine cannot run (or an unknown one)."""


class Sgemm:
    """float32 halves @ float32 weights: exact integers below 2^24 (any BLAS, any order)."""

    name = "sgemm"
    row_dtype = np.float32
    row_offset = 0

    @staticmethod
    def products(rows, weights_f32, weights_i8):
        """float32 [R, m] = rows @ weights.   rows float32 [R, K], weights_f32 [K, m] (weights_i8 unused)"""
        return rows @ weights_f32


class U8Rows:
    """A GEMM that reads the halves as u8 = half + 128 and returns int32 (onnxruntime's and the VNNI kernel's)."""

    row_dtype = np.uint8
    row_offset = ZERO_POINT


class OnnxRuntime(U8Rows):
    """u8 halves (half + 128) x int8 weights -> int32, onnxruntime's MatMulInteger with a_zero_point 128."""

    name = "onnxruntime"

    @staticmethod
    def products(rows, weights_f32, weights_i8):
        """int32 [R, m] = (rows - 128) @ weights.   rows uint8 [R, K], weights_i8 int8 [K, m] (weights_f32 unused);
        only after `choose` returned this path (it loads the runner and runs the self-check)"""
        return _STATE["runner"](rows, weights_i8)


class Vnni(U8Rows):
    """u8 halves (half + 128) x int8 weights -> int32, the compiled AVX-512 VNNI kernel (fast/cpu/vnni_gemm.py)."""

    name = "vnni"

    @staticmethod
    def products(rows, weights_f32, weights_i8):
        """int32 [R, m] = (rows - 128) @ weights.   rows uint8 [R, K], weights_i8 int8 [K, m]; only after `choose`
        returned this path (it compiles the kernel and runs the self-check)"""
        return vnni_gemm.products(rows, weights_i8)


SGEMM, ONNXRUNTIME, VNNI = Sgemm(), OnnxRuntime(), Vnni()
_STATE = {"runner": None, "load_error": None, "checked": {}}  # the loaded runner; K -> self-check passed (bool)
_VNNI_CHECKED = {}  # K -> the VNNI kernel passed the self-check at K (bool)
_PARSED = {}  # EQUALINFO_INT8_GEMM's raw values -> their path (read on every product: kept cheap)
_CHOSEN = {}  # (EQUALINFO_INT8_GEMM's raw value, rows, n, m) -> the GEMM `choose` picked


def _session_runner():
    """A function (u8 rows [R, K], s8 weights [K, m]) -> int32 [R, m] running MatMulInteger; raises ImportError
    without the extra. One session per weight array and thread count, made at its first use and kept (keep=False:
    not kept, for the self-check's operands): the weights are the graph's initializer, so onnxruntime packs them
    once (feeding them on every call was slower on every 3m shape in a throwaway timing, bench/README.md)."""
    import onnxruntime as ort

    from equalinfo.fast.cpu.onnx_graph import matmul_integer_model

    sessions = {}  # (id(weights), threads) -> (weights, session): the array kept keeps its id unique

    def session(weights, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle workers sleep (threads.py)
        model = matmul_integer_model(weights, ZERO_POINT)  # the bytes onnx.helper would make (onnx_graph.py)
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(rows, weights, keep=True):
        key = (id(weights), numba_threads())
        cached = sessions.get(key)
        if cached is None or cached[0] is not weights:
            made = session(weights, key[1])
            # InferenceSession.run checks its arguments in Python on every call (~4 us, a third of a one-row
            # product's call here); its compiled session's run is what it then calls: used where it is there
            inner = getattr(made, "_sess", None)
            runs = (lambda feed, inner=inner: inner.run(["Y"], feed, None)) if hasattr(inner, "run") else \
                (lambda feed, made=made: made.run(["Y"], feed))
            cached = (weights, runs)
            if keep:
                sessions[key] = cached
        runs = cached[1]
        if len(rows) <= ROWS_PER_RUN:
            return runs({"A": rows})[0]
        out = np.empty((len(rows), weights.shape[1]), dtype=np.int32)  # [R, m], filled ROWS_PER_RUN rows a call
        for start in range(0, len(rows), ROWS_PER_RUN):
            out[start:start + ROWS_PER_RUN] = runs({"A": rows[start:start + ROWS_PER_RUN]})[0]
        return out

    return run


def _load_runner():
    """The onnxruntime runner, loaded once (or the reason it could not be, kept)."""
    if _STATE["runner"] is None and _STATE["load_error"] is None:
        try:
            _STATE["runner"] = _session_runner()
        except Exception as error:  # ImportError, or a broken install: either way, not usable here
            _STATE["load_error"] = f"onnxruntime is not usable ({type(error).__name__}: {error}); " \
                                   f"pip install 'equalinfo[int8]'"
    return _STATE["runner"]


def extreme_operands(k, rng=None):
    """(u8 rows [8, k], int8 weights [k, 8]) of the self-check: halves +127, -127, alternating and random, against
    weights +127, -127, alternating and random (the sums that saturate int16 pairs, and the largest int32 sums)."""
    rng = np.random.default_rng(k) if rng is None else rng
    alternate = np.where(np.arange(k) % 2 == 0, 1, -1)
    halves = np.stack([np.full(k, WEIGHT_MAX), np.full(k, -WEIGHT_MAX), WEIGHT_MAX * alternate,
                       -WEIGHT_MAX * alternate, rng.choice([-WEIGHT_MAX, WEIGHT_MAX], k),
                       rng.integers(-WEIGHT_MAX, WEIGHT_MAX + 1, k), np.zeros(k, dtype=np.int64),
                       np.full(k, 1)])
    weights = np.stack([np.full(k, WEIGHT_MAX), np.full(k, -WEIGHT_MAX), WEIGHT_MAX * alternate,
                        -WEIGHT_MAX * alternate, rng.choice([-WEIGHT_MAX, WEIGHT_MAX], k),
                        rng.integers(-WEIGHT_MAX, WEIGHT_MAX + 1, k), np.zeros(k, dtype=np.int64),
                        np.full(k, -1)], axis=1)
    return (halves + ZERO_POINT).astype(np.uint8), weights.astype(np.int8)


def _passes(k, runner=None, row_counts=(8, 16, 64)):
    """Whether the runner (onnxruntime's, or `runner`) gives the exact integers of the extreme operands over k terms,
    as each of row_counts rows (the library may pick its kernel by shape; the VNNI kernel's tiles of 1-6 rows run
    at 1, 2, 3 rows and among 7 and 13)."""
    rows, weights = extreme_operands(k)
    weights = np.ascontiguousarray(np.tile(weights, (1, 2)))  # [k, 16]
    runner = runner or (lambda a, w: _STATE["runner"](a, w, keep=False))
    try:
        for count in row_counts:
            a = np.ascontiguousarray(np.tile(rows, (-(-count // len(rows)), 1))[:count])
            got = runner(a, weights)
            want = (a.astype(np.int64) - ZERO_POINT) @ weights.astype(np.int64)
            if got.shape != want.shape or not np.array_equal(got.astype(np.int64), want):
                return False
    except Exception:  # an onnxruntime that fails to run is as unusable as a wrong one
        return False
    return True


def _self_check(k):
    """Raise GemmUnavailable unless the loaded runner passes the self-check at k terms (and at SELF_CHECK_K)."""
    if not usable(k):
        raise GemmUnavailable(_why_not())


def _why_not():
    if _load_runner() is None:
        return f"{ENV}=onnxruntime, but {_STATE['load_error']}"
    failed = sorted(k for k, ok in _STATE["checked"].items() if not ok)
    return (f"{ENV}=onnxruntime, but its integer GEMM gave wrong integers on extreme int8 operands (K = "
            f"{failed[0]}): this CPU's kernels saturate (no VNNI?); use {ENV}=sgemm or auto")


def usable(k):
    """Whether the onnxruntime path imports and passes the self-check at k terms and at SELF_CHECK_K (cached)."""
    checked = _STATE["checked"]
    if checked.get(k) and checked.get(SELF_CHECK_K):  # the common case, once checked: no more work per call
        return True
    if _load_runner() is None:
        return False
    if k > CHUNK:
        raise ValueError(f"an integer GEMM over {k} terms: rule 3's chunks hold at most {CHUNK}")
    for width in (SELF_CHECK_K, k):
        if width not in _STATE["checked"]:
            _STATE["checked"][width] = _passes(width)
        if not _STATE["checked"][width]:
            return False
    return True


def vnni_usable(k):
    """Whether the compiled VNNI kernel exists on this CPU, takes k terms (a multiple of 4) and passes the
    self-check at k and at SELF_CHECK_K (cached)."""
    if k % 4 or vnni_gemm.compiled() is None:
        return False
    for width in (SELF_CHECK_K, k):
        if width not in _VNNI_CHECKED:
            _VNNI_CHECKED[width] = _passes(width, lambda a, w: vnni_gemm.products(a, vnni_gemm.PackedWeights(w)),
                                           row_counts=(1, 2, 3, 7, 8, 13, 16, 64))
        if not _VNNI_CHECKED[width]:
            return False
    return True


def requested():
    """The path EQUALINFO_INT8_GEMM asks for (auto when unset); an unknown value raises GemmUnavailable."""
    raw = os.environ.get(ENV, "auto")
    path = _PARSED.get(raw)
    if path is None:
        path = raw.strip().lower() or "auto"
        if path not in PATHS:
            raise GemmUnavailable(f"{ENV}={raw!r}: expected one of {', '.join(PATHS)}")
        _PARSED[raw] = path
    return path


def choose(n_rows, n, m):
    """The GEMM for a product of n_rows GEMM rows (both halves: 2N for N rows) over n terms into m columns.

    sgemm or onnxruntime as EQUALINFO_INT8_GEMM forces (onnxruntime unusable -> GemmUnavailable); auto: onnxruntime
    when usable and the product has at least THRESHOLD_MACS multiply-adds (n_rows * n * m), else sgemm.
    The answer is remembered per (EQUALINFO_INT8_GEMM's value, shape) until `reset`: a decoder asks 13 times per
    symbol, and the checks below cost microseconds each time."""
    key = (os.environ.get(ENV), n_rows, n, m, numba_threads())
    gemm = _CHOSEN.get(key)
    if gemm is None:
        gemm = _CHOSEN[key] = _choose(n_rows, n, m, key[-1])  # raises (and remembers nothing) if a forced path fails
    return gemm


def _choose(n_rows, n, m, threads):
    path = requested()
    k = min(n, CHUNK)  # the largest chunk's terms
    if path == "sgemm":
        return SGEMM
    if path == "onnxruntime":
        _self_check(k)
        return ONNXRUNTIME
    vnni = n % 4 == 0 and vnni_usable(k)  # every chunk's width a multiple of 4 (CHUNK is one)
    if path == "vnni":
        if not vnni:
            raise GemmUnavailable(f"{ENV}=vnni, but this CPU or build has no usable AVX-512 VNNI kernel for "
                                  f"{k} terms (it needs avx512vnni and a width that is a multiple of 4); use "
                                  f"{ENV}=auto")
        return VNNI
    if n_rows * n * m < THRESHOLD_MACS:
        return SGEMM
    if (threads == 1 or n_rows < VNNI_MAX_ROWS) and vnni:
        return VNNI
    return ONNXRUNTIME if usable(k) else (VNNI if vnni else SGEMM)


def reset():
    """Forget the loaded runner and the self-checks (tests replace the runner)."""
    _STATE.update(runner=None, load_error=None, checked={})
    _VNNI_CHECKED.clear()
    _CHOSEN.clear()
