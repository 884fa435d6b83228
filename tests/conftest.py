"""Choose numba.cuda's mode before any test imports it: the real GPU when CuPy sees one, else the CUDA simulator.

fast/gpu's kernels are numba.cuda kernels. Where there is no GPU the tests run the very same kernel source under
numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1: Python threads on NumPy arrays; fast/gpu/device.py then uses NumPy
as its array module), so CI checks every kernel, and the whole GPU Transformer and optimizers, against ref. numba
reads the variable into numba.core.config when numba is imported and numba.cuda picks the simulator or the driver
once, when it is first imported: so the choice is made here, in conftest.py, which pytest imports before any test
module, and numba's config is reloaded in case numba is already loaded. Only fast.gpu imports numba.cuda, so the
other tests are unaffected. A NUMBA_ENABLE_CUDASIM already set in the environment is respected.
"""
import os


def _cupy_sees_a_gpu():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device
        return False


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _cupy_sees_a_gpu():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba.core import config

    config.reload_config()
