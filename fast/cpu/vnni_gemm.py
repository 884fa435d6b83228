"""An exact u8 x s8 -> int32 GEMM compiled at run time for CPUs with AVX-512 VNNI: the few-row products of a
decoder's step without a library call around each.

Why a kernel of our own, beside onnxruntime's (fast/cpu/int8_gemm.py). A decoder's step is 13 products of a few
rows each (plain AC: 13 segments, one row each). onnxruntime's MatMulInteger runs those at ~110 G multiply-adds/s
in situ, but each call also costs ~10 us of binding, allocation and dispatch, and the rows must be quantized and
the int32 results rescaled in passes of their own: on the shipped 3m M1 the products took ~700 us of a 1.3 ms step,
of which the library's kernels ~470 (bench/README.md, round 7). This kernel is one call with no allocation: the
row tiles and column tiles of the product are loops inside the compiled code.

What it computes. out[r, j] = sum_k u8[r, k] * W[k, j] - corr[j], with u8 = half + 128 (rule 3 and 4's rows as
int8_gemm's onnxruntime path gets them) and corr[j] = 128 * sum_k W[k, j], i.e. exactly sum_k half[r, k] * W[k, j].
vpdpbusd multiplies four u8 by four s8 and adds the four products into an int32 lane, exactly, with wrap-around
past 2^31 (the saturating twin is vpdpbusds). |sum_k u8 * W| <= K * 255 * 127 = 33,680,400 < 2^31 for rule 3's
chunks (K <= CHUNK = 1040; int8_gemm's docstring has the bound for every size), and the correction is another
exact int32, so every output is the exact integer: the same as sgemm's and onnxruntime's, bit for bit, whatever
the tile order (integer addition is associative).

How. The weights are packed once per array into tiles of 64 columns: for each group of 4 consecutive k, the 64
columns' 4 bytes each (64 x 4 = 256 bytes, four zmm registers); a tile of 4 rows x 64 columns keeps 16 int32
accumulator registers across the whole k loop, each step loading the four weight registers once and each row's 4
bytes once (broadcast), for 16 vpdpbusd: 1,024 multiply-adds per 16 instructions, Zen 4's one vpdpbusd zmm per
cycle (bench/README.md round 3: 234 G/s per core). The code is written as LLVM IR text (below) and compiled with
llvmlite, which Numba already brings: no C compiler is needed on the user's machine.

Where it runs. Only where the host CPU reports avx512vnni (llvmlite's host features) and the compiled kernel
passes int8_gemm's self-check on extreme operands; anywhere else the products go to onnxruntime or sgemm, with
the same bits. K must be a multiple of 4 (every 3m and larger M1 width; other shapes go elsewhere).
"""
import ctypes
import functools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

TILE_COLUMNS = 64  # columns of one tile: four zmm registers of 16 int32 lanes
TILE_ROWS = 6  # rows of the largest tile: 6 x 4 = 24 accumulator registers (of 32), plus 4 weights and a row
ZERO_POINT = 128  # u8 = half + 128
GROUP_BYTES = TILE_COLUMNS * 4  # one group of 4 k's of one column tile: 64 columns x 4 bytes

_VNNI = "declare <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32>, <16 x i32>, <16 x i32>)"


def _tile_ir(rows):
    """IR of tile{rows}(x, x_stride, w, groups, out, out_stride, corr): out[r, 0:64] = x[r] . w - corr for r < rows.
    x: u8 rows, x_stride bytes apart; w: one column tile's packed weights [groups, 64, 4] (s8); out: int32 rows,
    out_stride elements apart; corr: int32 [64]."""
    lines = [f"define internal void @tile{rows}(ptr %x, i64 %xs, ptr %w, i64 %groups, ptr %out, i64 %os, ptr %corr)"
             " alwaysinline {", "entry:", "  br label %loop", "loop:", "  %k = phi i64 [0, %entry], [%k.next, %loop]"]
    for r in range(rows):
        for v in range(4):
            lines.append(f"  %acc{r}{v} = phi <16 x i32> [zeroinitializer, %entry], [%new{r}{v}, %loop]")
    lines += [f"  %wo = mul i64 %k, {GROUP_BYTES}", "  %w0 = getelementptr i8, ptr %w, i64 %wo"]
    for v in range(4):
        if v:
            lines.append(f"  %w{v} = getelementptr i8, ptr %w0, i64 {64 * v}")
        lines.append(f"  %wv{v} = load <16 x i32>, ptr %w{v}, align 1")
    lines.append("  %xo = mul i64 %k, 4")
    for r in range(rows):
        lines += [f"  %xr{r} = mul i64 %xs, {r}", f"  %xa{r} = add i64 %xr{r}, %xo",
                  f"  %xp{r} = getelementptr i8, ptr %x, i64 %xa{r}",
                  f"  %xv{r} = load i32, ptr %xp{r}, align 1",
                  f"  %xi{r} = insertelement <16 x i32> poison, i32 %xv{r}, i32 0",
                  f"  %xb{r} = shufflevector <16 x i32> %xi{r}, <16 x i32> poison, <16 x i32> zeroinitializer"]
        for v in range(4):
            lines.append(f"  %new{r}{v} = call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32> %acc{r}{v}, "
                         f"<16 x i32> %xb{r}, <16 x i32> %wv{v})")
    lines += ["  %k.next = add i64 %k, 1", "  %more = icmp ult i64 %k.next, %groups",
              "  br i1 %more, label %loop, label %done", "done:"]
    for v in range(4):
        lines += [f"  %cp{v} = getelementptr i8, ptr %corr, i64 {64 * v}",
                  f"  %cv{v} = load <16 x i32>, ptr %cp{v}, align 1"]
    for r in range(rows):
        lines += [f"  %or{r} = mul i64 %os, {4 * r}", f"  %op{r} = getelementptr i8, ptr %out, i64 %or{r}"]
        for v in range(4):
            lines += [f"  %res{r}{v} = sub <16 x i32> %new{r}{v}, %cv{v}",
                      f"  %st{r}{v} = getelementptr i8, ptr %op{r}, i64 {64 * v}",
                      f"  store <16 x i32> %res{r}{v}, ptr %st{r}{v}, align 1"]
    lines += ["  ret void", "}"]
    return "\n".join(lines)


# gemm(x, n_rows, x_stride, w, groups, n_tiles, out, out_stride, corr), every argument an i64 (pointers as
# addresses): column tiles outer (a tile's weights, groups x 256 bytes, stay in L2 while every row tile reads them),
# row tiles inner: the rows cut into ceil(rows / 6) tiles of near-equal size (13 rows: 5, 4, 4), so that every
# tile of 4 or more rows has 16 or more independent accumulator chains (a lone row's 4 chains wait on vpdpbusd's
# latency).
_GEMM_IR = """
define void @gemm(i64 %xa, i64 %rows, i64 %xs, i64 %wa, i64 %groups, i64 %tiles, i64 %oa, i64 %os, i64 %ca) {
entry:
  %x = inttoptr i64 %xa to ptr
  %w = inttoptr i64 %wa to ptr
  %out = inttoptr i64 %oa to ptr
  %corr = inttoptr i64 %ca to ptr
  %tile_bytes = mul i64 %groups, 256
  %rows5 = add i64 %rows, 5
  %n = udiv i64 %rows5, 6
  %base = udiv i64 %rows, %n
  %extra = urem i64 %rows, %n
  br label %column
column:
  %t = phi i64 [0, %entry], [%t.next, %column.end]
  %wto = mul i64 %t, %tile_bytes
  %wt = getelementptr i8, ptr %w, i64 %wto
  %oto = mul i64 %t, 256
  %ot = getelementptr i8, ptr %out, i64 %oto
  %ct = getelementptr i8, ptr %corr, i64 %oto
  br label %row
row:
  %i = phi i64 [0, %column], [%i.next, %row.end]
  %first = icmp ult i64 %i, %extra
  %plus = zext i1 %first to i64
  %count = add i64 %base, %plus
  %ib = mul i64 %i, %base
  %lower = icmp ult i64 %i, %extra
  %before = select i1 %lower, i64 %i, i64 %extra
  %start = add i64 %ib, %before
  %xro = mul i64 %start, %xs
  %xr = getelementptr i8, ptr %x, i64 %xro
  %oro1 = mul i64 %start, %os
  %oro = mul i64 %oro1, 4
  %or = getelementptr i8, ptr %ot, i64 %oro
  switch i64 %count, label %row.end [ i64 1, label %r1
                                      i64 2, label %r2
                                      i64 3, label %r3
                                      i64 4, label %r4
                                      i64 5, label %r5
                                      i64 6, label %r6 ]
""" + "".join(f"""r{n}:
  call void @tile{n}(ptr %xr, i64 %xs, ptr %wt, i64 %groups, ptr %or, i64 %os, ptr %ct)
  br label %row.end
""" for n in range(1, 7)) + """row.end:
  %i.next = add i64 %i, 1
  %more.rows = icmp ult i64 %i.next, %n
  br i1 %more.rows, label %row, label %column.end
column.end:
  %t.next = add i64 %t, 1
  %more.tiles = icmp ult i64 %t.next, %tiles
  br i1 %more.tiles, label %column, label %exit
exit:
  ret void
}
"""


def host_has_vnni():
    """Whether this CPU reports AVX-512 VNNI (and the AVX-512 F/BW it builds on), as LLVM sees it."""
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
    except Exception:  # an llvmlite that cannot say: not this path
        return False
    return all(features.get(name, False) for name in ("avx512f", "avx512bw", "avx512vnni"))


@functools.lru_cache(maxsize=None)
def compiled():
    """The compiled gemm as a ctypes function (kept with its engine for the process), or None where the host has
    no AVX-512 VNNI or the compilation fails."""
    if not host_has_vnni():
        return None
    try:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        source = "\n".join([_VNNI] + [_tile_ir(rows) for rows in range(1, TILE_ROWS + 1)] + [_GEMM_IR])
        module = llvm.parse_assembly(source)
        module.verify()
        machine = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
        engine = llvm.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        address = engine.get_function_address("gemm")
    except Exception:  # an llvmlite too old for this IR, or any build failure: the other paths remain
        return None
    function = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 9)(address)
    function.engine = engine  # the machine code lives as long as the engine
    return function


class PackedWeights:
    """int8 weights W [K, m] packed for `gemm`: [tiles, K/4, 64, 4] (column tiles of 64, zero columns past m),
    and corr = 128 * column sums (int32 [tiles * 64])."""

    def __init__(self, weights):
        weights = np.asarray(weights)
        if weights.dtype != np.int8 or weights.ndim != 2:
            raise ValueError(f"the VNNI kernel takes int8 weights [K, m], not {weights.dtype} {weights.shape}")
        k, m = weights.shape
        if k % 4:
            raise ValueError(f"the VNNI kernel takes K a multiple of 4, not {k}")
        tiles = -(-m // TILE_COLUMNS)
        padded = np.zeros((k, tiles * TILE_COLUMNS), dtype=np.int8)
        padded[:, :m] = weights
        # [K, tiles*64] -> [K/4, 4, tiles, 64] -> [tiles, K/4, 64, 4]
        self.packed = np.ascontiguousarray(padded.reshape(k // 4, 4, tiles, TILE_COLUMNS).transpose(2, 0, 3, 1))
        self.corr = np.ascontiguousarray(ZERO_POINT * padded.astype(np.int64).sum(axis=0), dtype=np.int32)
        self.k, self.m, self.tiles = k, m, tiles


_PACKED = {}  # id(int8 weights) -> (the weights, their PackedWeights): packed once per array for the process


def packed_for(weights):
    """The PackedWeights of an int8 array, made at its first use and kept (the array kept keeps its id unique)."""
    cached = _PACKED.get(id(weights))
    if cached is None or cached[0] is not weights:
        cached = _PACKED[id(weights)] = (weights, PackedWeights(weights))
    return cached[1]


@intrinsic
def _call_gemm(typingctx, address, x, rows, x_stride, w, groups, tiles, out, out_stride, corr):
    """Call the compiled gemm at `address` (an int64) with its nine int64 arguments, from compiled code: the address
    is an argument, not a constant, so the functions that call it can be cached on disk."""
    signature = types.void(*[types.int64] * 10)

    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(ir.VoidType(), [ir.IntType(64)] * 9)
        builder.call(builder.inttoptr(args[0], function_type.as_pointer()), args[1:])
        return context.get_dummy_value()

    return signature, codegen


@njit(cache=True)
def gemm_into(address, rows, packed, corr, out):
    """out[:, :64 * tiles] = (rows - 128) @ W exactly, by the compiled gemm at `address` (compiled()'s).
    rows uint8 [R, K], packed int8 [tiles, K/4, 64, 4] and corr int32 [tiles * 64] (PackedWeights'), out int32
    [R, >= 64 * tiles]; rows and out with contiguous rows (checked: the kernel reads raw memory)."""
    n_rows, k = rows.shape
    tiles = packed.shape[0]
    if n_rows == 0:
        return
    if (rows.strides[1] != 1 or out.strides[1] != 4 or packed.shape[1] * 4 != k or out.shape[0] != n_rows
            or out.shape[1] < tiles * TILE_COLUMNS or corr.shape[0] != tiles * TILE_COLUMNS
            or not packed.flags.c_contiguous or not corr.flags.c_contiguous):
        raise ValueError("gemm_into: operands of the wrong shape or layout")
    _call_gemm(address, np.int64(rows.ctypes.data), np.int64(n_rows), np.int64(rows.strides[0]),
               np.int64(packed.ctypes.data), np.int64(k // 4), np.int64(tiles), np.int64(out.ctypes.data),
               np.int64(out.strides[0] // 4), np.int64(corr.ctypes.data))


def address():
    """The compiled gemm's address (an int), or None where there is none."""
    function = compiled()
    return None if function is None else ctypes.cast(function, ctypes.c_void_p).value


def products(rows, packed):
    """int32 [R, m] = (rows - 128) @ W, exactly.   rows uint8 [R, K], packed: PackedWeights of W [K, m] (or the int8
    W itself). Only where compiled() is not None."""
    packed = packed if isinstance(packed, PackedWeights) else packed_for(packed)
    rows = np.ascontiguousarray(rows)
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != packed.k:
        raise ValueError(f"rows {rows.shape} {rows.dtype}: expected uint8 rows of {packed.k} values")
    out = np.empty((rows.shape[0], packed.tiles * TILE_COLUMNS), dtype=np.int32)
    gemm_into(address(), rows, packed.packed, packed.corr, out)
    return out[:, :packed.m]
