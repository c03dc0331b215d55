"""Files galppl writes and reads back: atomic writes, array checksums, JSON read with errors
that name the file.

- :func:`atomic_path`: every file or folder galppl writes is built under a temporary name in
  the same folder and renamed into place only once complete, so a killed process leaves either
  the earlier result or the new one, never a truncated file, and never destroys a good earlier
  result (a rename within one file system is atomic).
- :func:`array_checksums` / :func:`verify_checksums`: sha256 digests of a catalog's arrays,
  stored in its attrs (:data:`CHECKSUM_ATTR`) by ``save_catalog`` and checked by
  ``load_catalog``: bit rot, an edit behind galppl's back or a lost zarr chunk is an error
  naming the file and the variable, never a quietly wrong number.
- :func:`tensor_checksums` / :func:`file_sha256`: the same for a saved model's weights.
- :func:`read_json`: a JSON file as a dict, with the file's name and what is wrong
  (missing, empty, truncated, not an object, a required key absent) in the error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

# The dataset attr holding the JSON {variable: sha256} of a saved catalog's arrays.
CHECKSUM_ATTR = "galppl_sha256"


class CorruptFileError(ValueError):
    """A file galppl wrote no longer holds what was written (truncated, edited, bit rot);
    the message names the file and, where known, the variable."""


def _temporary_sibling(path: Path) -> Path:
    # Hidden, in the same folder (so the final rename never crosses file systems), and unique
    # per writer, so two processes writing one path never share a temporary.
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` to write a file or folder to; on success move it
    into place, replacing what was there; on an exception remove it and leave ``path`` as it was.

    A file replaces a file in one atomic rename. A folder cannot be swapped atomically with a
    non-empty one, so the old folder is first renamed aside and removed only after the new one is
    in place: a kill between the two renames leaves the complete old folder under a hidden name
    beside ``path`` (``.NAME.old-...``), never a half-written one at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    try:
        yield temporary
        if temporary.is_dir() and path.exists():
            aside = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, aside)
            os.replace(temporary, path)
            _remove(aside)
        else:
            os.replace(temporary, path)
    finally:
        _remove(temporary)


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` through :func:`atomic_path` (fsynced before the rename)."""
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def _canonical_bytes(values: np.ndarray) -> bytes:
    """The bytes a checksum covers: equal for equal arrays whatever the file format's dtype
    round trip does (bool <-> int8, fixed-width <-> object strings, NaN payloads)."""
    values = np.asarray(values)
    if values.dtype.kind in "OUS":
        return "\x1f".join(map(str, values.ravel().tolist())).encode("utf-8")
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), np.nan, values.astype(np.float64))
    elif values.dtype.kind in "biu":
        values = values.astype(np.int64)
    return np.ascontiguousarray(values).tobytes()


def array_sha256(values) -> str:
    """Hex sha256 of an array's values and shape (see :func:`_canonical_bytes`)."""
    digest = hashlib.sha256(str(np.shape(values)).encode())
    digest.update(_canonical_bytes(values))
    return digest.hexdigest()


def array_checksums(ds) -> dict[str, str]:
    """``{name: sha256}`` of every variable and coordinate of an ``xarray.Dataset``."""
    return {str(name): array_sha256(variable.values) for name, variable in ds.variables.items()}


def verify_checksums(ds, recorded: dict[str, str], path) -> None:
    """Raise :class:`CorruptFileError` naming ``path`` and the first variables whose values
    differ from the checksums ``recorded`` when the file was written, or that are gone."""
    changed = [name for name, digest in recorded.items()
               if name not in ds.variables or array_sha256(ds.variables[name].values) != digest]
    if changed:
        raise CorruptFileError(
            f"{str(path)!r} is corrupt: the values of {', '.join(repr(n) for n in changed[:5])} differ from the "
            "checksums recorded when galppl wrote it (bit rot, a truncated copy, a lost chunk or an edit made "
            "outside galppl); restore it from a good copy or write it again"
        )


def tensor_checksums(state: dict) -> dict[str, str]:
    """``{name: sha256}`` of a state dict's tensors (their bytes, shape and dtype)."""
    import torch

    out = {}
    for name, tensor in state.items():
        digest = hashlib.sha256(f"{tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        out[name] = digest.hexdigest()
    return out


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path, what: str, required=()) -> dict:
    """The JSON object in file ``path`` (a ``what``, e.g. "saved model's config"); a
    :class:`CorruptFileError` naming the file when it is empty, truncated, not JSON, not an
    object or lacks a key of ``required``; ``FileNotFoundError`` when it is not there."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r}: no such file (the {what})")
    text = path.read_bytes()
    if not text.strip():
        raise CorruptFileError(f"{str(path)!r} is empty (0 bytes of JSON): the {what} was not written completely")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{str(path)!r} is not valid JSON ({err}): the {what} is truncated or "
                               "corrupt") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{str(path)!r} holds a JSON {type(data).__name__}, not an object: it is not a {what}")
    missing = [key for key in required if key not in data]
    if missing:
        raise CorruptFileError(f"{str(path)!r} lacks the key(s) {', '.join(map(repr, missing))} of a {what}: "
                               "it is incomplete or not a galppl file")
    return data
