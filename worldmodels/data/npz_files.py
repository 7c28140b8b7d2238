"""Reading ``.npy`` / ``.npz`` files without loading them: headers, members, memory maps.

Uncompressed ``.npz`` members are located inside the zip and memory-mapped read-only, so data
loader workers share the page cache instead of copying frames; a damaged file raises
:class:`ShardFormatError` with what to do.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np

__all__ = ["ShardFormatError", "array_shape", "npz_members", "open_array"]


class ShardFormatError(ValueError):
    """A shard or manifest that is missing, corrupt, or of an unknown format version."""


def _npz_member_offset(path: Path, key: str) -> tuple[int, bool] | None:
    """Byte offset of member ``key.npy`` inside an npz and whether it is stored uncompressed."""
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(f"{key}.npy")
        except KeyError:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ShardFormatError(f"{path}: the zip entry of {key!r} is damaged; re-record or delete the shard.")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_type == zipfile.ZIP_STORED


def _read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def array_shape(path: str | os.PathLike[str], key: str = "frames") -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of an array in a ``.npy`` or ``.npz`` file, from its header only.

    Args:
        path: the file.
        key: the member of an ``.npz`` (ignored for ``.npy``).

    Returns:
        ``(shape, dtype)``, or ``None`` if the ``.npz`` has no such member.

    Raises:
        ShardFormatError: if the file is not a readable numpy file.

    Shapes:
        none (metadata only).
    """
    path = Path(path)
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                shape, _, dtype = _read_npy_header(f)
            return tuple(shape), dtype
        with zipfile.ZipFile(path) as zf:
            try:
                member = zf.open(f"{key}.npy")
            except KeyError:
                return None
            with member:
                shape, _, dtype = _read_npy_header(member)
        return tuple(shape), dtype
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ShardFormatError(
            f"{path} is not a readable numpy file ({exc}); it is truncated or corrupt: re-record or delete it."
        ) from exc


def open_array(path: str | os.PathLike[str], key: str = "frames", *, mmap: bool = True) -> np.ndarray | None:
    """Open one array of a ``.npy`` / ``.npz`` file, memory-mapped where possible.

    Uncompressed ``.npz`` members and ``.npy`` files are memory-mapped read-only (no copy, so
    data loader workers share the page cache); compressed members are read into memory.

    Args:
        path: the file.
        key: the member of an ``.npz`` (ignored for ``.npy``).
        mmap: memory-map when possible.

    Returns:
        The array, or ``None`` if the ``.npz`` has no member ``key``.

    Raises:
        ShardFormatError: if the file is not a readable numpy file.

    Shapes:
        as stored.
    """
    path = Path(path)
    try:
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        located = _npz_member_offset(path, key)
        if located is None:
            return None
        offset, stored = located
        if mmap and stored:
            with open(path, "rb") as f:
                f.seek(offset)
                shape, fortran, dtype = _read_npy_header(f)
                data_offset = f.tell()
            if dtype.hasobject:
                raise ValueError(f"member {key!r} holds Python objects, which are never loaded")
            if int(np.prod(shape)) == 0:
                return np.zeros(shape, dtype)
            order = "F" if fortran else "C"
            return np.memmap(path, dtype=dtype, mode="r", shape=shape, order=cast(Any, order), offset=data_offset)
        with np.load(path, allow_pickle=False) as npz:
            return npz[key]
    except ShardFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ShardFormatError(
            f"{path} is not a readable numpy file ({exc}); it is truncated or corrupt: re-record or delete it."
        ) from exc


def npz_members(path: Path) -> list[str]:
    """The array names of an ``.npz`` (its ``.npy`` members without the suffix), sorted."""
    try:
        with zipfile.ZipFile(path) as zf:
            return sorted(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
    except zipfile.BadZipFile as exc:
        raise ShardFormatError(f"{path} is not a valid .npz ({exc}); it is truncated or corrupt.") from exc
