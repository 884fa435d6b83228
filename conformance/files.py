"""How conformance vectors are stored: JSON descriptions, .npz arrays and a manifest, all byte-deterministic.

Every family is two files, FAMILY.json (what the vectors are, settings, small integers) and FAMILY.npz (the arrays),
plus one manifest.json for the set: {"format": "equalinfo-conformance", "format_version": N, "families": [...],
"files": {file: sha256 hex}}. The same content always gives the same bytes, so a freshly exported set can be
compared with a committed one byte for byte:
- JSON: keys in the order written, indent 1, ASCII only, a final newline; floats in Python's shortest repr (which
  reads back to the same float64 in any correct JSON parser);
- .npz: a zip archive with one member NAME.npy per array, in sorted order, stored uncompressed, every member dated
  1980-01-01 00:00:00 (np.savez would stamp the current time); each .npy is NumPy format 1.0 with an explicit
  little-endian dtype ('<i8', '<i2', '|i1', '<f8', '<f4', '|u1'), read back with np.load(..., allow_pickle=False).
  int16 ('<i2', since format version 2) and int8 ('|i1', since version 3) are kept for rules 2 and 3's quantized M1
  weights, which M1 itself stores so: a porter reads them in the type the rule defines them in; every other
  integer is widened to '<i8'.
"""
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "equalinfo-conformance"
MANIFEST = "manifest.json"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
DTYPES = ("<i8", "<i2", "|i1", "<f8", "<f4", "|u1")  # the only dtypes a vector array may have


class VectorError(ValueError):
    """A vector set that cannot be read: missing or unreadable files, a bad manifest, another format version."""


def json_bytes(value):
    return (json.dumps(value, indent=1, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def little_endian(array):
    """The array in one of DTYPES (int16 -> '<i2', int8 -> '|i1', other ints -> '<i8', bool/uint8 -> '|u1', float
    keeps its width), C-contiguous."""
    array = np.asarray(array)
    if array.dtype.kind == "b" or array.dtype == np.uint8:
        dtype = "|u1"
    elif array.dtype == np.int16:
        dtype = "<i2"
    elif array.dtype == np.int8:
        dtype = "|i1"
    elif array.dtype.kind in "iu":
        dtype = "<i8"
    elif array.dtype == np.float32:
        dtype = "<f4"
    elif array.dtype == np.float64:
        dtype = "<f8"
    else:
        raise TypeError(f"a vector array cannot have dtype {array.dtype}")
    return np.array(array, dtype=dtype, order="C")  # (ascontiguousarray would make a 0-d array 1-d)


def npz_bytes(arrays):
    """Deterministic .npz of a dict name -> array (see the module docstring)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, little_endian(arrays[name]), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_set(directory, families, format_version):
    """Write {family: (description, arrays)} and the manifest into `directory` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, (description, arrays) in families.items():
        for file, data in ((f"{name}.json", json_bytes(description)), (f"{name}.npz", npz_bytes(arrays))):
            (directory / file).write_bytes(data)
            hashes[file] = sha256(data)
    manifest = {"format": FORMAT, "format_version": format_version, "families": list(families), "files": hashes}
    (directory / MANIFEST).write_bytes(json_bytes(manifest))
    return manifest


def read_manifest(directory, format_version):
    """The manifest of a vector set, or VectorError (missing, malformed, another format or version)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as error:
        raise VectorError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise VectorError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise VectorError(f"{path} is not an {FORMAT} manifest")
    if manifest.get("format_version") != format_version:
        raise VectorError(f"{path} has format version {manifest.get('format_version')!r}; this equalinfo reads "
                          f"version {format_version} (export a new set with `equalinfo conformance export`)")
    if not isinstance(manifest.get("families"), list) or not isinstance(manifest.get("files"), dict):
        raise VectorError(f"{path} lacks its list of families or of files")
    return manifest


def read_family(directory, manifest, name):
    """(description, arrays) of one family after checking both files' SHA-256 against the manifest.

    Raises VectorError naming the file on a missing file, a hash mismatch or an unreadable archive."""
    directory = Path(directory)
    contents = {}
    for file in (f"{name}.json", f"{name}.npz"):
        want = manifest["files"].get(file)
        if want is None:
            raise VectorError(f"the manifest lists no {file}")
        try:
            data = (directory / file).read_bytes()
        except OSError as error:
            raise VectorError(f"cannot read {directory / file}: {error.strerror or error}") from None
        if sha256(data) != want:
            raise VectorError(f"{file}: SHA-256 does not match the manifest (file changed or corrupt)")
        contents[file] = data
    try:
        description = json.loads(contents[f"{name}.json"])
        with np.load(io.BytesIO(contents[f"{name}.npz"]), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise VectorError(f"{name}: unreadable vector files ({error})") from None
    return description, arrays
