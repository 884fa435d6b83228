"""What the fast.gpu tests can run here (tests/conftest.py chose numba.cuda's mode before this is imported).

- MODE "gpu": CuPy and a GPU; the kernels run for real, arrays are CuPy.
- MODE "simulator": numba's CUDA simulator; the same kernels run on NumPy arrays (slowly: keep shapes small).
- MODE None: neither (NUMBA_ENABLE_CUDASIM=0 forced without a GPU); every fast.gpu test skips.
"""
import sys

import helpers
import numpy as np
import pytest

from fast.gpu import device

try:
    device.xp()
    MODE = "simulator" if device.SIMULATED else "gpu"
    WHY_NOT = ""
except device.GPUUnavailable as error:
    MODE, WHY_NOT = None, str(error)

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
