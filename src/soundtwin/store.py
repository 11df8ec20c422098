"""Directories soundtwin owns (a model, a gallery): versioned contents behind one atomic pointer, and a lock.

Layout of a store directory ``DIR``::

    DIR/current             symlink -> v-000007-1a2b3c  (replaced with one rename: a reader sees the old
                            version or the new one, never neither, never a mix)
    DIR/v-000007-1a2b3c/    one complete version; its files are never changed after the swap
    DIR/meta.json           symlink -> current/meta.json (one per file of the current version, so
                            ``DIR/meta.json`` keeps working for people and scripts)
    DIR/.lock               locked (``flock``) by the one process writing; holds its pid
    DIR/.build-*/           a version being written; removed by the next writer if its writer died

Rules (README, "What soundtwin writes"):

- soundtwin writes only into a directory that is new, empty, or already a store of the same kind
  (a model, a gallery); anything else is refused with a message naming the directory.
- Files and folders soundtwin did not write are never removed: only its own ``v-*``, ``.build-*``,
  ``current`` and the ``name -> current/name`` links are managed.
- One writer at a time: :func:`locked` takes ``DIR/.lock``; a second writer waits (up to a timeout)
  or fails with the holder's pid. The kernel drops the lock when its holder dies, however it dies.
- Directories in the layout of soundtwin 0.1 (files directly in ``DIR``) are read as they are and
  converted on their next write; a swap interrupted by the 0.1 code (``.DIR.old-*`` beside ``DIR``
  with ``DIR`` gone) is put back on the next open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import SoundtwinError
from .io import _FILE_MODE, _fsync_dir

#: The files that make a directory a store of each kind (all must be in the current version).
KINDS: dict[str, tuple[str, ...]] = {
    "model": ("config.json", "model.safetensors", "meta.json"),
    "gallery": ("gallery.json", "embeddings.npy"),
}
#: Files soundtwin 0.1 wrote directly into a store directory, by kind (converted to links on write).
LEGACY_FILES: dict[str, tuple[str, ...]] = {
    "model": ("config.json", "model.safetensors", "meta.json", "calibration.npz", "train_state.safetensors",
              "model.onnx"),
    "gallery": ("gallery.json", "embeddings.npy"),
}
CURRENT = "current"
LOCK = ".lock"
_VERSION_RE = re.compile(r"^v-(\d{6,})-[0-9a-f]{6,}$")
#: How many old versions stay after a swap (for readers that resolved ``current`` just before it).
KEEP_OLD = 1

T = TypeVar("T")


class StoreError(SoundtwinError):
    """A directory cannot be written as asked (it holds other files, is of another kind, or is busy)."""


class StoreBusyError(StoreError):
    """Another process is writing the directory."""


# -- test seam: called between the steps of a write, with the step's name ---------------------------
fault_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if fault_hook is not None:
        fault_hook(name)


# -- reading ----------------------------------------------------------------------------------------
def _recover_legacy_swap(path: Path) -> None:
    """soundtwin 0.1 moved ``DIR`` aside to ``.DIR.old-*`` before renaming the new one in: a kill in
    between left no ``DIR``. Put the newest complete one back (nothing is deleted)."""
    if path.exists() or not path.parent.is_dir():
        return
    for pattern in (f".{path.name}.tmp-*", f".{path.name}.old-*"):
        cands = sorted(path.parent.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for c in cands:
            if c.is_dir() and kind_of(c) is not None:
                with contextlib.suppress(OSError):
                    os.rename(c, path)
                    return


def version_dir(path: str | os.PathLike[str]) -> Path:
    """The folder holding the current files of a store: ``DIR/v-...`` (or ``DIR`` itself for the 0.1
    layout). Resolve it once and read every file from it, so all come from one version."""
    p = Path(path)
    _recover_legacy_swap(p)
    link = p / CURRENT
    if link.is_symlink():  # (a real folder named 'current' is a link-following copy: read the flat files)
        target = os.readlink(link)
        if "/" in target or not _VERSION_RE.match(target):
            raise StoreError(f"{p}: {CURRENT} points outside the store ({target!r})")
        return p / target
    return p


def read_version(path: str | os.PathLike[str], read: Callable[[Path], T], *, attempts: int = 5) -> T:
    """Call ``read(version folder)``; retried when a writer retired that version meanwhile."""
    for k in range(attempts):
        vdir = version_dir(path)
        try:
            return read(vdir)
        except FileNotFoundError:
            if k == attempts - 1 or version_dir(path) == vdir:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def kind_of(path: str | os.PathLike[str]) -> str | None:
    """``"model"``, ``"gallery"`` or ``None`` (not a store, or not there)."""
    p = Path(path)
    if not p.is_dir():
        return None
    link = p / CURRENT
    vdir = p / os.readlink(link) if link.is_symlink() else p
    for kind, files in KINDS.items():
        if all((vdir / f).is_file() for f in files):
            return kind
    return None


def _ours(entry: Path) -> bool:
    """Entries soundtwin manages inside a store directory."""
    name = entry.name
    if name in (CURRENT, LOCK) or name.startswith(".build-") or name.startswith(f".{CURRENT}-"):
        return True
    if _VERSION_RE.match(name):
        return True
    return entry.is_symlink() and os.readlink(entry).startswith(f"{CURRENT}/")


def check_writable(path: str | os.PathLike[str], kind: str) -> str:
    """Apply the rule on where soundtwin writes; returns ``"new"``, ``"empty"`` or ``"existing"``.

    Raises :class:`StoreError` naming the directory when it holds anything else."""
    p = Path(path)
    _recover_legacy_swap(p)
    if not p.exists():
        return "new"
    if not p.is_dir():
        raise StoreError(f"{p}: exists and is not a directory; give a new or empty directory")
    found = kind_of(p)
    if found == kind:
        return "existing"
    entries = [e for e in p.iterdir() if not _ours(e)]
    if found is not None:
        raise StoreError(f"{p}: holds a soundtwin {found}, not a {kind}; give a new or empty directory")
    if entries:
        shown = ", ".join(sorted(e.name for e in entries)[:5]) + (" ..." if len(entries) > 5 else "")
        raise StoreError(f"{p}: not empty and not a soundtwin {kind} (holds {shown}); soundtwin writes only "
                         f"into a new or empty directory or one of its own {kind}s, and never removes your files")
    return "empty"


# -- locking ----------------------------------------------------------------------------------------
class _Held:
    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd = -1


_registry: dict[str, _Held] = {}
_registry_lock = threading.Lock()


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        return "another process"
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], *, timeout: float = 60.0, purpose: str = "writing") -> Iterator[None]:
    """Hold the store's write lock (re-entrant within a thread; threads of one process queue).

    ``timeout`` seconds to wait for another holder (0: fail at once) before :class:`StoreBusyError`."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    key = str(p.resolve())
    with _registry_lock:
        held = _registry.setdefault(key, _Held())
    deadline = time.monotonic() + max(0.0, timeout)
    got = held.rlock.acquire(timeout=timeout) if timeout > 0 else held.rlock.acquire(blocking=False)
    if not got:
        raise StoreBusyError(f"{p}: busy in this process ({purpose} already under way)")
    try:
        if held.depth == 0:
            lock_path = p / LOCK
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        raise StoreBusyError(
                            f"{p}: in use by {_holder(lock_path)} (another soundtwin is writing it); wait for "
                            f"it to finish, or stop it (a lock dies with its process)") from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            held.fd = fd
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                fd, held.fd = held.fd, -1
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                os.close(fd)  # releases the flock
    finally:
        held.rlock.release()


# -- writing ----------------------------------------------------------------------------------------
def _versions(p: Path) -> list[tuple[int, str]]:
    out = []
    for e in p.iterdir():
        m = _VERSION_RE.match(e.name)
        if m and e.is_dir() and not e.is_symlink():
            out.append((int(m.group(1)), e.name))
    return sorted(out)


@contextlib.contextmanager
def new_version(path: str | os.PathLike[str], kind: str, *, carry: tuple[str, ...] | bool = (),
                timeout: float = 60.0) -> Iterator[Path]:
    """Write a new version of a store: the body fills the yielded folder, which then becomes current.

    ``carry``: names of files of the current version to copy into the new one first (``True``: all).
    The directory must pass :func:`check_writable` (the caller asks for ``--overwrite`` where that
    matters). Interrupted or failed, it leaves the current version as it was."""
    p = Path(path)
    check_writable(p, kind)
    with locked(p, timeout=timeout):
        # leftovers of writers that died (we hold the lock: no live writer owns them)
        for e in p.iterdir():
            if e.name.startswith(".build-") or e.name.startswith(f".{CURRENT}-"):
                if e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        e.unlink()
        old = version_dir(p)
        build = p / f".build-{uuid.uuid4().hex[:12]}"
        build.mkdir()
        try:
            if carry:
                for f in sorted(old.iterdir()) if old.is_dir() else []:
                    if f.is_file() and not f.is_symlink() and (carry is True or f.name in carry) \
                            and (old != p or f.name in LEGACY_FILES[kind]):
                        shutil.copyfile(f, build / f.name)
            yield build
            missing = [f for f in KINDS[kind] if not (build / f).is_file()]
            if missing:
                raise StoreError(f"{p}: new {kind} version lacks {', '.join(missing)}")
            for f in build.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(build)
            _step("built")
            seq = (_versions(p)[-1][0] + 1) if _versions(p) else 1
            name = f"v-{seq:06d}-{uuid.uuid4().hex[:6]}"
            os.rename(build, p / name)
            _step("renamed")
            tmp_link = p / f".{CURRENT}-{uuid.uuid4().hex[:8]}"
            os.symlink(name, tmp_link)
            cur = p / CURRENT
            if cur.is_dir() and not cur.is_symlink():
                # a copy made by a tool that follows links (shutil.copytree, cp -L): its 'current' is a
                # real folder; keep it, as an old version, rather than delete anything
                os.rename(cur, p / f"v-{seq - 1 if seq > 1 else 0:06d}-{uuid.uuid4().hex[:6]}")
            os.replace(tmp_link, p / CURRENT)  # the one atomic step: readers now see the new version
            _fsync_dir(p)
            _step("swapped")
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _link_files(p, kind)
        _retire_old(p)


def _link_files(p: Path, kind: str) -> None:
    """``DIR/name -> current/name`` for each current file; drop our links that now dangle. A legacy
    0.1 file of the same name is replaced by its link (one rename each); other files are left alone."""
    vdir = version_dir(p)
    names = {f.name for f in vdir.iterdir() if f.is_file()}
    for name in sorted(names):
        dst = p / name
        if dst.is_symlink() and os.readlink(dst) == f"{CURRENT}/{name}":
            continue
        if dst.exists() or dst.is_symlink():
            if not (dst.is_file() and name in LEGACY_FILES[kind]) and not (dst.is_symlink() and _ours(dst)):
                continue  # a file of the user's that happens to share the name: never touched
        tmp = p / f".{CURRENT}-{uuid.uuid4().hex[:8]}"
        os.symlink(f"{CURRENT}/{name}", tmp)
        os.replace(tmp, dst)
    for e in p.iterdir():
        if e.is_symlink() and e.name != CURRENT and os.readlink(e).startswith(f"{CURRENT}/") and not e.exists():
            with contextlib.suppress(OSError):
                e.unlink()
    _step("linked")


def _retire_old(p: Path) -> None:
    current = os.readlink(p / CURRENT)
    olds = [n for _, n in _versions(p) if n != current]
    for name in olds[: max(0, len(olds) - KEEP_OLD)]:
        shutil.rmtree(p / name, ignore_errors=True)
    _step("retired")
