"""Is there CuPy and a CUDA GPU here? One probe for the backend loader (train/backends.py) and fast/gpu/device.py.

It imports neither numba nor anything of fast.gpu, so asking costs no compilation and does not fix numba's choice
between a real GPU and the CUDA simulator (made when numba.cuda is first imported).
"""


class NoGPU(RuntimeError):
    """CuPy is missing or sees no GPU; the message says which, in a phrase to follow "needs" or "found"."""


def cupy_with_a_gpu():
    """The cupy module if it imports and sees at least one GPU; else NoGPU saying what is missing."""
    try:
        import cupy
    except ImportError:
        raise NoGPU("needs CuPy and a CUDA GPU, and CuPy is not installed: pip install -e '.[gpu]' (CUDA 12) or "
                    "pip install cupy-cuda13x (CUDA 13)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDA error types when no driver or device is present
        raise NoGPU(f"found no usable GPU ({error})") from None
    if count == 0:
        raise NoGPU("found no GPU")
    return cupy
