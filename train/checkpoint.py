"""Checkpoints: one .npz holding the model's named arrays, the optimizer state and JSON config/meta. No pickle.

Layout of the archive (every member is a plain numeric array, so `np.load(path, allow_pickle=False)` reads it):
    __header__         uint8 bytes of a UTF-8 JSON object: {"format": "equalinfo-checkpoint", "version": 1,
                       "config": Config.to_dict(), "meta": <user meta>, "param_fingerprint": <sha256 hex>,
                       "opt_fingerprint": <sha256 hex or null>}
    params/NAME        one array per parameter (docs/design.md's names, e.g. params/blocks.0.wq)
    opt/KEY            one array per optimizer-state entry (e.g. opt/v_row/blocks.0.wq), if given
The fingerprints are `ref.fingerprint.fingerprint` of the params and of the optimizer state (the same hash that
compressed files carry to name their M1), so a load detects any changed byte even where the zip layer would not.

Writes are atomic: the archive goes to a temporary file in the same directory, is flushed to disk, and replaces the
target with os.replace, so a crash leaves either the old checkpoint or the new one, never half of one.
Every way a file can be wrong (missing members, truncated, corrupt, not a zip, another program's .npz, a newer
format version, arrays that do not fit the config) raises `CheckpointError` with a message that names the cause.
"""
import json
import zipfile

import numpy as np

from equalinfo.data.atomic import write_atomically
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.transformer import Config, check_params

FORMAT = "equalinfo-checkpoint"
VERSION = 1
HEADER = "__header__"
PARAM_PREFIX = "params/"
OPT_PREFIX = "opt/"

__all__ = ["CheckpointError", "save", "load", "fingerprint", "FORMAT", "VERSION"]


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message says why and names the file."""


def _json_to_array(obj):
    return np.frombuffer(json.dumps(obj, sort_keys=True, allow_nan=False).encode("utf-8"), dtype=np.uint8)


def _array_to_json(array, path):
    if array.dtype != np.uint8 or array.ndim != 1:
        raise CheckpointError(f"{path}: corrupt checkpoint: the header is not a byte string")
    try:
        return json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt checkpoint: the header is not valid JSON ({error})") from None


def save(path, params, cfg, opt_state=None, meta=None):
    """Write params (dict name -> array), cfg (Config), optional optimizer state (dict key -> array) and optional
    JSON-able meta (e.g. {"step": 1000, "optimizer": opt.config(), "seed": 0}) to `path` atomically."""
    check_params(params, cfg)
    header = {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "meta": meta,
              "param_fingerprint": fingerprint(params),
              "opt_fingerprint": None if opt_state is None else fingerprint(opt_state)}
    try:
        members = {HEADER: _json_to_array(header)}
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint meta must be JSON-serialisable: {error}") from None
    members.update({PARAM_PREFIX + name: np.asarray(value) for name, value in params.items()})
    for key, value in (opt_state or {}).items():
        value = np.asarray(value)
        if value.dtype == object:
            raise ValueError(f"optimizer state {key!r} is not a numeric array")
        members[OPT_PREFIX + key] = value

    write_atomically(path, lambda stream: np.savez(stream, **members))


def _read_members(path):
    """All arrays of the archive, with zip/npy-level failures turned into CheckpointError."""
    with open(path, "rb") as stream:
        magic = stream.read(6)
    if not magic:
        raise CheckpointError(f"{path}: not a checkpoint: the file is empty")
    if magic.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"{path}: not a checkpoint: it is a single .npy array, not an .npz archive")
    if not magic.startswith(b"PK"):
        raise CheckpointError(f"{path}: not a checkpoint: not an .npz (zip) archive (starts with {magic[:4]!r})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (PermissionError, IsADirectoryError):
        raise
    except MemoryError:  # an .npy header announcing more elements than memory holds (a crafted file)
        raise CheckpointError(f"{path}: corrupt checkpoint: an array announces more data than memory holds") from None
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (bad zip archive: {error})") from None
    except (EOFError, zipfile.LargeZipFile, OSError, NotImplementedError, RuntimeError, KeyError,
            UnicodeDecodeError) as error:  # e.g. a flipped byte claiming encryption or an unknown compression
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(error).__name__}: {error})") from None
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise CheckpointError(f"{path}: refused: the file contains pickled objects, which checkpoints never do"
                                  ) from None
        raise CheckpointError(f"{path}: not a checkpoint or corrupt ({error})") from None


def load(path):
    """(params, cfg, opt_state, meta) from a checkpoint written by `save`. opt_state is None if none was saved.

    Raises FileNotFoundError for a missing file and CheckpointError (naming the cause) for anything else wrong.
    """
    members = _read_members(path)
    if HEADER not in members:
        raise CheckpointError(f"{path}: not an equalinfo checkpoint (an .npz archive without a {HEADER} member)")
    header = _array_to_json(members.pop(HEADER), path)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an equalinfo checkpoint (format {header.get('format')!r})"
                              if isinstance(header, dict) else f"{path}: corrupt checkpoint header")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {header.get('version')!r} is not supported "
                              f"(this code reads version {VERSION})")
    try:
        cfg = Config.from_dict(header["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: the checkpoint's model config is invalid: {error}") from None

    params = {k[len(PARAM_PREFIX):]: v for k, v in members.items() if k.startswith(PARAM_PREFIX)}
    opt_state = {k[len(OPT_PREFIX):]: v for k, v in members.items() if k.startswith(OPT_PREFIX)}
    unknown = sorted(k for k in members if not k.startswith((PARAM_PREFIX, OPT_PREFIX)))
    if unknown:
        raise CheckpointError(f"{path}: corrupt checkpoint: unexpected members {unknown[:5]}")
    try:
        check_params(params, cfg)
    except ValueError as error:
        raise CheckpointError(f"{path}: the parameters do not match the checkpoint's config: {error}") from None
    if fingerprint(params) != header.get("param_fingerprint"):
        raise CheckpointError(f"{path}: corrupt checkpoint: the parameters do not match their stored fingerprint")
    if header.get("opt_fingerprint") is None:
        if opt_state:
            raise CheckpointError(f"{path}: corrupt checkpoint: optimizer state present but not recorded")
        opt_state = None
    elif fingerprint(opt_state) != header["opt_fingerprint"]:
        raise CheckpointError(f"{path}: corrupt checkpoint: the optimizer state does not match its fingerprint")
    return params, cfg, opt_state, header.get("meta")
