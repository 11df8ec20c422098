"""The feature cache: where features of a clip are kept between runs, keyed by content and settings.

Layout under ``<cache>/<settings hash>/``: single clips as ``<xx>/<content hash>.npy``, and batches
as packs: ``packs/<id>.npy``, every clip's features end to end, and ``packs/<id>.json``, its index
(content hash -> offset and shape) plus a *stat memo* (path, size, mtime, ctime, inode -> content
hash). A warm batch is then a ``stat`` and a slice per file, without reading or hashing the audio.
The memo is trusted the way git trusts its index: an entry is only recorded for a file whose last
change (ctime) was more than :data:`RACY_NS` before it was hashed, so a later write, which always
moves the ctime on, cannot leave the key unchanged. Packs are written once (data, then index, each
atomically) and never modified, so concurrent runs never see each other's half-written files.
Features served from a pack are read-only views (copy one before changing it in place).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import FeatureConfig
from .io import atomic_write_bytes, load_npy

log = logging.getLogger(__name__)

#: Bump when feature code changes in a way that alters values, to invalidate old caches.
FEATURE_CODE_VERSION = 1
#: A file changed this recently (ns) when it was hashed is not recorded in the stat memo.
RACY_NS = 2_000_000_000

StatKey = tuple[str, int, int, int, int]


def stat_key(path: str | os.PathLike[str]) -> StatKey | None:
    """What the stat memo keys on: absolute path, size, mtime, ctime (ns) and inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Packs:
    """The packs of one settings folder: which content hashes they hold and the stat memo."""

    def __init__(self, root: Path) -> None:
        self.root = root / "packs"
        self.seen: set[str] = set()
        self.arrays: dict[str, np.ndarray] = {}  # read-only: mappings, or packs read whole (``loaded``)
        self.loaded: set[str] = set()
        self.where: dict[str, tuple[str, int, int, int]] = {}
        self.memo: dict[StatKey, str] = {}
        self.refreshed = False

    def refresh(self) -> None:
        """Read the index of every pack not read yet (others' packs included)."""
        self.refreshed = True
        if not self.root.is_dir():
            return
        for idx in self.root.glob("*.json"):
            if idx.stem in self.seen:
                continue
            try:
                meta = json.loads(idx.read_text())
                arr = load_npy(self.root / f"{idx.stem}.npy", mmap_mode="r")
                if arr.dtype != np.float32 or arr.ndim != 1:
                    raise ValueError("not a float32 vector")
                entries = [(str(d), int(o), int(r), int(c)) for d, o, r, c in meta["entries"]]
                if any(o < 0 or o + r * c > arr.shape[0] for _, o, r, c in entries):
                    raise ValueError("entry beyond the data")
                stats = [(str(p), int(a), int(b), int(c), int(i), str(d)) for p, a, b, c, i, d in meta["stats"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable feature pack %s: %s", idx, exc)
                continue
            self.seen.add(idx.stem)
            self.arrays[idx.stem] = np.asarray(arr)  # a plain view of the mapping: slicing a memmap is slow
            for d, o, r, c in entries:
                self.where[d] = (idx.stem, o, r, c)
            for *key, d in stats:
                self.memo[tuple(key)] = d  # type: ignore[index]

    def get(self, digest: str) -> np.ndarray | None:
        """A read-only view of one clip's features (of the mapping, or of the pack read whole)."""
        if not self.refreshed:
            self.refresh()
        loc = self.where.get(digest)
        if loc is None:
            return None
        pid, off, rows, cols = loc
        return self.arrays[pid][off:off + rows * cols].reshape(rows, cols)

    def load(self, digests: Sequence[str]) -> None:
        """Read whole, with one read each, the packs that hold ``digests``: serving many clips from
        one pack then costs no page fault per 4 KiB, as views of a mapping would."""
        for pid in {self.where[d][0] for d in digests if d in self.where} - self.loaded:
            try:
                arr = load_npy(self.root / f"{pid}.npy")
            except (OSError, ValueError) as exc:
                log.warning("cannot read feature pack %s: %s", pid, exc)
                continue
            if arr.shape != self.arrays[pid].shape or arr.dtype != np.float32:
                log.warning("feature pack %s changed on disk; keeping its mapping", pid)
                continue
            arr.flags.writeable = False
            self.arrays[pid] = arr
            self.loaded.add(pid)

    def write(self, feats: dict[str, np.ndarray], stats: list[tuple[StatKey, str]]) -> None:
        pid = uuid.uuid4().hex
        entries, off = [], 0
        for d, f in feats.items():
            entries.append([d, off, int(f.shape[0]), int(f.shape[1])])
            off += f.size
        data = np.concatenate([f.ravel() for f in feats.values()]) if feats else np.zeros(0, np.float32)
        buf = io.BytesIO()
        np.save(buf, data.astype(np.float32, copy=False), allow_pickle=False)
        index = {"entries": entries, "stats": [[*k, d] for k, d in stats]}
        try:  # the index last: a pack without one is never read
            atomic_write_bytes(self.root / f"{pid}.npy", buf.getvalue(), durable=False)
            atomic_write_bytes(self.root / f"{pid}.json", json.dumps(index).encode(), durable=False)
        except OSError as exc:  # a read-only cache must not break extraction
            log.warning("cannot write feature pack in %s: %s", self.root, exc)


def default_cache_dir() -> Path:
    env = os.environ.get("SOUNDTWIN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "soundtwin" / "features"


def settings_key(cfg: FeatureConfig) -> str:
    blob = json.dumps({"v": FEATURE_CODE_VERSION, **dataclasses.asdict(cfg)}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
