"""SHA-256 fingerprint of a named set of arrays (model parameters, count tables).

Compressed files carry the fingerprint of the model that produced their probabilities, so a decoder can refuse a
different model instead of returning garbage. The hash covers, for every array in name order: the name, the dtype
(as a little-endian NumPy type string), the shape and the raw bytes in C order. Renaming, reshaping, retyping or
changing any bit of any array changes it; the order in which the dict was built does not.
"""
import hashlib

import numpy as np


def fingerprint(arrays):
    """Hex SHA-256 of a dict name -> array (see the module docstring for exactly what is hashed)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        array = array.astype(dtype, copy=False)
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(dtype.str.encode("ascii") + b"\0")
        digest.update(repr(tuple(array.shape)).encode("ascii") + b"\0")
        digest.update(array.tobytes())
    return digest.hexdigest()
