"""What the fast.gpu tests can run here (tests/conftest.py chose numba.cuda's mode before this is imported).

- MODE "gpu": CuPy and a GPU; the kernels run for real, arrays are CuPy.
- MODE "simulator": numba's CUDA simulator; the same kernels run on NumPy arrays (slowly: keep shapes small).
- MODE None: neither (NUMBA_ENABLE_CUDASIM=0 forced without a GPU); every fast.gpu test skips.
"""
import sys

import helpers
import numpy as np
import pytest

from equalinfo.fast.gpu import device

try:
    device.xp()
    MODE = "simulator" if device.SIMULATED else "gpu"
    WHY_NOT = ""
except device.GPUUnavailable as error:
    MODE, WHY_NOT = None, str(error)

def _thread_safe_simulated_shared_arrays():
    """numba's simulator gives a block's threads one shared array per source line by check-then-insert in a dict
    (FakeCUDAShared.array) with no lock: two threads that reach the line together can each make their own array,
    and a kernel that stages a tile through shared memory then reads another thread's garbage. The short switch
    interval below makes that likely when the machine is loaded (a flaky bit mismatch in the exact-M1 matmul). On a
    GPU shared arrays are static; here the allocation is serialized."""
    import threading

    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    shared = kernelapi.FakeCUDAShared
    if getattr(shared, "_equalinfo_locked", False):
        return
    dynamic, lock = shared.array, threading.Lock()

    def array(self, shape, dtype):
        if shape == 0:
            return dynamic(self, shape, dtype)  # one buffer for all, made in __init__: no race
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)  # the simulator's key: the allocating line
        with lock:
            if key not in self._allocations:
                self._allocations[key] = np.empty(shape, numpy_support.as_dtype(dtype)
                                                  if isinstance(dtype, types.Type) else dtype)
            return self._allocations[key]

    shared.array, shared._equalinfo_locked = array, True


if MODE == "simulator":
    _thread_safe_simulated_shared_arrays()

needs_kernels = pytest.mark.skipif(MODE is None, reason=f"neither a GPU nor numba's CUDA simulator: {WHY_NOT}")
gpu_only = pytest.mark.skipif(MODE != "gpu", reason="needs CuPy and a CUDA GPU (float32/TF32/bf16 tolerances, "
                                                   "10-step trajectories, cuBLAS); the simulator runs the rest")


@pytest.fixture(autouse=True, scope="module")
def quick_simulator_threads():
    """The simulator's block manager polls its threads while holding the GIL; a short switch interval makes
    simulated kernels with barriers several times faster. Restored after the module."""
    previous = sys.getswitchinterval()
    if MODE == "simulator":
        sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(previous)


def on_device(array):
    return device.asarray(array)


def on_host(array):
    return np.asarray(device.host(array))


def rel_err(got, want):
    """helpers.rel_err of two tensors either of which may live on the device."""
    return helpers.rel_err(on_host(got), on_host(want))
