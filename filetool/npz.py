"""npz archives (a zip of .npy arrays) written deterministically and read with every size checked first.

np.load trusts an archive: a member's .npy header may announce a shape of 2^40 elements (np.load reserves the
memory before reading the data) and a member of a few KB may inflate to gigabytes. `read_npz` instead reads every
member's .npy header first, checks the announced dtype and shape against the member's stored size, the total
against a byte limit and the whole against the caller's `check(meta)` (e.g. a model kind's schema), and only then
reads the data, each member bounded by the size its header announced. Never pickle: object dtypes are refused.
Damage can surface from zipfile, zlib or numpy's header parser as many exception types; all but MemoryError become
one ValueError naming the member.
"""
import io
import math
import zipfile

import numpy as np

ALLOWED_KINDS = "biufU"  # bool, signed/unsigned ints, floats and fixed-width strings: no objects, no records


def write_npz(arrays):
    """Bytes of an npz archive of a dict name -> array, deterministic (fixed timestamps, sorted names).

    np.savez_compressed stamps each member with the current time, so two runs on the same input would give
    different files; writing the zip here with a fixed date keeps compressed files reproducible byte for byte.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def _member_header(archive, info):
    """(dtype, shape, fortran_order, header_bytes) of one .npy member, read without its data."""
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        return dtype, tuple(int(n) for n in shape), bool(fortran), stream.tell()


def read_npz(data, max_bytes, max_members, check=None):
    """dict name -> array of npz bytes; ValueError naming the problem if they are not a sound archive.

    max_bytes bounds the sum of the arrays' announced sizes, max_members their number; check(meta), with meta a
    dict name -> (dtype, shape), may raise ValueError to refuse the archive before any data is read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as error:  # zipfile reports a damaged archive in many ways (BadZipFile, NotImplementedError..)
        raise ValueError(f"not a valid npz archive ({error})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise ValueError(f"{len(infos)} arrays, more than the {max_members} allowed")
        meta, layout, total = {}, {}, 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise ValueError(f"member {name!r} is not an .npy array")
            key = name[:-4]
            if key in meta:
                raise ValueError(f"array {key!r} appears twice")
            try:
                dtype, shape, fortran, header_size = _member_header(archive, info)
            except MemoryError:
                raise
            except Exception as error:  # numpy parses the header dict with ast/tokenize: any of their errors
                raise ValueError(f"array {key!r} has no readable .npy header ({type(error).__name__}: {error})"
                                 ) from None
            if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
                raise ValueError(f"array {key!r} has dtype {dtype}, which is not a plain number or string type")
            if any(n < 0 for n in shape):
                raise ValueError(f"array {key!r} has a negative dimension in its shape {shape}")
            n_bytes = math.prod(shape) * dtype.itemsize
            total += n_bytes
            if total > max_bytes:
                raise ValueError(f"the arrays announce more than the {max_bytes:,} bytes allowed "
                                 f"(array {key!r} alone {n_bytes:,})")
            if info.file_size != header_size + n_bytes:
                raise ValueError(f"array {key!r} holds {info.file_size - header_size:,} bytes of data, its header "
                                 f"announces {n_bytes:,} (truncated or padded)")
            meta[key], layout[key] = (dtype, shape), (info, fortran, header_size, n_bytes)
        if check is not None:
            check(meta)
        arrays = {}
        for key, (info, fortran, header_size, n_bytes) in layout.items():
            dtype, shape = meta[key]
            try:
                with archive.open(info) as stream:
                    stream.read(header_size)
                    raw = stream.read(n_bytes)
            except MemoryError:
                raise
            except Exception as error:  # zipfile/zlib: any damage in the member's compressed data
                raise ValueError(f"array {key!r} cannot be read ({type(error).__name__}: {error})") from None
            if len(raw) != n_bytes:
                raise ValueError(f"array {key!r} is truncated")
            flat = np.frombuffer(raw, dtype=dtype)
            arrays[key] = flat.reshape(shape, order="F" if fortran else "C").copy()
        return arrays
