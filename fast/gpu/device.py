"""Where fast.gpu's arrays live, and how its kernels are launched: CuPy on a GPU, NumPy under the CUDA simulator.

fast.gpu writes its fused kernels with numba.cuda. On a GPU they run on CuPy arrays (numba reads CuPy's
`__cuda_array_interface__`, so no copies are made) and the matrix products go to cuBLAS (fast/gpu/blas.py). Under
numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set by tests/conftest.py on machines without a GPU) the very same
kernel source runs in Python threads on NumPy arrays, and the array module `xp()` is NumPy: the whole backend,
transformer and optimizers included, then runs on the CPU, slowly, and CI checks it against ref without a GPU.

Importing this module needs neither CuPy nor a GPU (so `import fast.gpu.transformer` never crashes); the first call
that needs them raises `GPUUnavailable` with what is missing.

One stream: CuPy and numba both launch on the CUDA legacy default stream, so their work is ordered without any
synchronisation. numba would otherwise synchronise the host with CuPy's stream on every kernel argument (CUDA Array
Interface v3 semantics): `kernel_arrays` converts the arguments with sync=False, which keeps launches asynchronous.
"""
import functools

import numpy as np
from numba import cuda

from .probe import NoGPU, cupy_with_a_gpu

SIMULATED = ".simulator" in cuda.jit.__module__  # numba.cuda's simulator was chosen when numba.cuda was imported


class GPUUnavailable(RuntimeError):
    """fast.gpu cannot run here: CuPy is missing or sees no GPU (and the CUDA simulator is off)."""


@functools.lru_cache(maxsize=1)
def xp():
    """The array module of the backend: cupy on a GPU, numpy under the simulator."""
    if SIMULATED:
        return np
    try:
        cupy = cupy_with_a_gpu()
    except NoGPU as reason:
        raise GPUUnavailable(f"fast.gpu {reason}") from None
    return cupy


def is_device_array(array):
    """True for an array the kernels can use as is (a CuPy array; under the simulator, any NumPy array)."""
    return isinstance(array, xp().ndarray)


def asarray(array, dtype=None):
    """`array` on the device (a copy only when it is on the host or has another dtype)."""
    return xp().asarray(array, dtype=dtype)


def _host(array):
    if SIMULATED or isinstance(array, np.ndarray) or np.isscalar(array):
        return array
    return array.get()


def to_device(arrays):
    """A dict name -> array with every array on the device (checkpoints hold NumPy arrays; training keeps its
    parameters and optimizer state on the GPU between steps)."""
    return {name: asarray(value) for name, value in arrays.items()}


def to_host(arrays):
    """A dict name -> NumPy array (what checkpoints and the rest of the pipeline use)."""
    return {name: _host(value) for name, value in arrays.items()}


def host(array):
    """One array as NumPy."""
    return _host(array)


# ----------------------------------------------------------------------------------------------------------------------
# Kernel launches
# ----------------------------------------------------------------------------------------------------------------------

# Threads per block and the cap on blocks for grid-stride kernels. The simulator runs every thread as a Python
# thread, so it gets few of both; every kernel loops (grid-stride or block-stride) so that any launch shape gives
# the same result, and the tests on a GPU run the real shapes.
THREADS = 4 if SIMULATED else 128
MAX_BLOCKS = 4 if SIMULATED else 65535  # 65,535: CUDA's limit on gridDim.y
REDUCE_BLOCKS = 4 if SIMULATED else 256  # fixed grid of the deterministic whole-tensor reductions


def kernel_arrays(*arrays):
    """The kernel arguments for these arrays: as they are under the simulator, numba device views of the CuPy
    arrays on a GPU (sync=False: see the module docstring)."""
    if SIMULATED:
        return arrays
    return tuple(cuda.as_cuda_array(a, sync=False) if hasattr(a, "__cuda_array_interface__") else a for a in arrays)


def blocks_for(n_items, per_block=1):
    """Blocks for n_items work items of per_block each, at least 1 and at most MAX_BLOCKS."""
    return max(1, min(MAX_BLOCKS, -(-n_items // per_block)))
