"""Atomic file writes (a temporary file beside the target, flushed to disk, then renamed over it), and the
checked read of a weights file.

A reader (a resumed run, a downstream bundle, a second process) never sees a half-written file: it sees
the previous file or the new one. Everything the package writes as a result goes through here, and every
checkpoint it reads goes through :func:`read_checkpoint` (``weights_only=True``, bad files named).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_mlip.errors import CheckpointError

__all__ = ["default_mode", "read_checkpoint", "save_atomic", "write_atomic", "write_json_atomic"]


def default_mode(directory: bool = False) -> int:
    """The permissions a new file (or directory) gets under the process umask (temporary files get 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def write_atomic(path: str | os.PathLike, write: Any, mode: str) -> None:
    """Call ``write(handle)`` on a temporary file (opened with ``mode``) next to ``path``, flush it to disk,
    then rename it there. If anything fails the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, default_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened, as on Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON through a temporary file and an atomic rename."""
    write_atomic(path, lambda handle: handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n"), "w")


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file in the same directory and an atomic rename."""
    write_atomic(path, lambda handle: torch.save(obj, handle), "wb")


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with a :class:`~monai_mlip.errors.CheckpointError` naming the
    file when it is missing, empty, truncated or not a plain-tensor torch file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty (a save that was interrupted?)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, pickle and zip errors for bad files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(path, f"cannot be loaded ({type(error).__name__}: {reason})") from error
