"""Matrix products of fast.gpu: cuBLAS GEMMs on row-major CuPy arrays, with a choice of float32 arithmetic.

Every product of the Transformer goes through `matmul` (2-D, or 3-D batched with one matrix per batch entry), so
the precision of all of them is one setting:

    set_matmul_precision("float32")   # default: IEEE float32 products (CUBLAS_COMPUTE_32F)
    set_matmul_precision("tf32")      # tensor cores, inputs rounded to TF32 (10-bit mantissa), float32 accumulation
    set_matmul_precision("bf16")      # tensor cores, inputs rounded to bfloat16 (7-bit mantissa), float32 accumulation
    with matmul_precision("bf16"): ...  # the same, for a block of code

Parameters, activations, gradients and optimizer state stay float32 in every mode ("float32 master weights"); only
the inputs of each product are rounded inside cuBLAS (CUBLAS_COMPUTE_32F_FAST_TF32 / _FAST_16BF). Effect on
accuracy (measured against ref on a GPU by tests/test_fast_gpu_transformer.py): an input rounded to TF32 carries a
relative error up to 2^-11 (5e-4), to bfloat16 up to 2^-8 (4e-3); the errors of a d-term dot product partly
cancel, so logits move by about 1e-3 (tf32) and 1e-2 (bf16) of their scale, the loss by less, and gradients, which
pass through twice as many products, by a few times that. Training curves are not visibly affected (the paper
trained in bfloat16); M1's coding path must not use them, since its probabilities must be reproducible
(docs/design.md "Determinism of M1's probabilities"). float64 arrays always use float64 products.

Row-major on column-major cuBLAS: C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major, and a
row-major matrix read as column-major is its transpose, so the call passes B first, then A, each with its own
transpose flag and its row length as the leading dimension.
Under numba's CUDA simulator the arrays are NumPy and `matmul` is NumPy's (the precision setting is ignored there).
"""
import contextlib

import numpy as np

from . import device

PRECISIONS = ("float32", "tf32", "bf16")
_precision = "float32"

# cuBLAS enums (cublas_api.h, library_types.h); CuPy exposes the same values, looked up when present
_COMPUTE = {"float32": ("CUBLAS_COMPUTE_32F", 68), "tf32": ("CUBLAS_COMPUTE_32F_FAST_TF32", 77),
            "bf16": ("CUBLAS_COMPUTE_32F_FAST_16BF", 75)}
_ONE, _ZERO = np.array(1.0, np.float32), np.array(0.0, np.float32)  # host scalars, kept alive for cuBLAS


def set_matmul_precision(name):
    """Choose how float32 products are computed: "float32" (default), "tf32" or "bf16" (module docstring)."""
    global _precision
    if name not in PRECISIONS:
        raise ValueError(f"unknown matmul precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    _precision = name


def matmul_precision_name():
    return _precision


@contextlib.contextmanager
def matmul_precision(name):
    """Run a block of code with another matmul precision, restoring the previous one after."""
    previous = _precision
    set_matmul_precision(name)
    try:
        yield
    finally:
        set_matmul_precision(previous)


def matmul(a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, accumulate=False):
    """out = alpha * op(a) @ op(b) (+ out if accumulate); op transposes the last two axes when asked.

    a [M, K] (or [K, M] with trans_a), b [K, N] (or [N, K] with trans_b) -> [M, N]; or the same with a leading batch
    axis on all three (one product per batch entry). Inputs must be C-contiguous; out, if given, too.
    """
    xp = device.xp()
    if device.SIMULATED or a.dtype != np.float32:
        product = xp.matmul(xp.swapaxes(a, -1, -2) if trans_a else a, xp.swapaxes(b, -1, -2) if trans_b else b)
        if alpha != 1.0:
            product *= alpha
        if out is None:
            return product
        if accumulate:
            out += product
        else:
            out[...] = product
        return out
    return _gemm_float32(a, b, out, trans_a, trans_b, alpha, accumulate)


def _gemm_float32(a, b, out, trans_a, trans_b, alpha, accumulate):
    """cublasGemmEx / cublasGemmStridedBatchedEx on float32 arrays with the chosen compute type."""
    import cupy
    from cupy.cuda import cublas, runtime  # CuPy's wrappers of cuBLAS and the CUDA runtime (cupy_backends)

    batched = a.ndim == 3
    if b.ndim != a.ndim or a.ndim not in (2, 3) or (batched and a.shape[0] != b.shape[0]):
        raise ValueError(f"matmul: unsupported shapes {a.shape} and {b.shape}")
    if not (a.flags.c_contiguous and b.flags.c_contiguous):
        raise ValueError("matmul: inputs must be C-contiguous")
    M = a.shape[-1] if trans_a else a.shape[-2]
    K = a.shape[-2] if trans_a else a.shape[-1]
    N = b.shape[-2] if trans_b else b.shape[-1]
    if (b.shape[-1] if trans_b else b.shape[-2]) != K:
        raise ValueError(f"matmul: inner dimensions differ ({a.shape}, {b.shape}, trans {trans_a}, {trans_b})")
    shape = (a.shape[0], M, N) if batched else (M, N)
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate needs out")
        out = cupy.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"matmul: out must be a C-contiguous float32 array of shape {shape}")
    alpha_host = np.array(alpha, np.float32)
    beta_host = _ONE if accumulate else _ZERO
    name, fallback = _COMPUTE[_precision]
    compute = getattr(cublas, name, fallback)
    algo = getattr(cublas, "CUBLAS_GEMM_DEFAULT_TENSOR_OP", 99)
    op_b = cublas.CUBLAS_OP_T if trans_b else cublas.CUBLAS_OP_N
    op_a = cublas.CUBLAS_OP_T if trans_a else cublas.CUBLAS_OP_N
    r32 = runtime.CUDA_R_32F
    handle = cupy.cuda.device.get_cublas_handle()
    # column-major view: out^T [N, M] = op(b)^T [N, K] @ op(a)^T [K, M]; leading dimensions = row lengths
    if batched:
        cublas.gemmStridedBatchedEx(
            handle, op_b, op_a, N, M, K, alpha_host.ctypes.data,
            b.data.ptr, r32, b.shape[-1], b.shape[-2] * b.shape[-1],
            a.data.ptr, r32, a.shape[-1], a.shape[-2] * a.shape[-1],
            beta_host.ctypes.data, out.data.ptr, r32, N, M * N, a.shape[0], compute, algo)
    else:
        cublas.gemmEx(handle, op_b, op_a, N, M, K, alpha_host.ctypes.data, b.data.ptr, r32, b.shape[-1],
                      a.data.ptr, r32, a.shape[-1], beta_host.ctypes.data, out.data.ptr, r32, N, compute, algo)
    return out
