"""Atomic file and directory writes: a reader never sees a half-written file; and ``.npy`` reads that are safe
from several threads at once."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Files we write get ordinary permissions (0666 less the umask), not mkstemp's private 0600.
_FILE_MODE = 0o666 & ~_current_umask()


#: ``np.load`` parses a ``.npy`` header with ``ast.literal_eval``; on CPython 3.11 two threads building an AST at
#: once can fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905). Our
#: readers take turns on the header; the data itself is read in bulk, so they hardly wait.
_NPY_LOCK = threading.Lock()


def load_npy(path: str | os.PathLike[str], *, mmap_mode: Any = None) -> Any:
    """``np.load`` of a ``.npy`` file (no pickles), safe to call from several threads at once (an ``.npz`` parses
    its members' headers later, outside the lock: not for those)."""
    import numpy as np

    with _NPY_LOCK:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    ``durable=False`` skips the fsyncs: still never half-visible, but may be lost on a power cut
    (for caches, whose entries are recomputed when missing or unreadable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
