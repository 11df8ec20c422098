"""From files to features, with an on-disk cache keyed by file content and feature settings.

A second run over the same files reads features back instead of decoding; a changed file (new
content hash) or changed settings (new settings hash) is never served stale.

Layout under ``<cache>/<settings hash>/``: single clips as ``<xx>/<content hash>.npy``, and batches
(``from_files`` over :data:`PACK_MIN` files or more) as packs: ``packs/<id>.npy``, every clip's
features end to end, and ``packs/<id>.json``, its index (content hash -> offset and shape) plus a
*stat memo* (path, size, mtime, ctime, inode -> content hash). A warm batch is then a ``stat`` and a
slice per file, without reading or hashing the audio. The memo is trusted the way git trusts its
index: an entry is only recorded for a file whose last change (ctime) was more than
:data:`RACY_NS` before it was hashed, so a later write, which always moves the ctime on, cannot
leave the key unchanged. Packs are written once (data, then index, each atomically) and never
modified, so concurrent runs never see each other's half-written files. Features served from a pack
are read-only views (copy one before changing it in place).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .audio import decode, prepare_signal
from .config import FeatureConfig
from .errors import AudioError
from .features import compute_features
from .io import atomic_write_bytes

log = logging.getLogger(__name__)

#: Bump when feature code changes in a way that alters values, to invalidate old caches.
FEATURE_CODE_VERSION = 1
#: ``from_files`` over at least this many files writes what it computed as one pack.
PACK_MIN = 32
#: Files up to this size are read whole (hashed and decoded from the same bytes); larger ones stream.
WHOLE_READ_MAX = 64 << 20
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


class _Packs:
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
                arr = np.load(self.root / f"{idx.stem}.npy", mmap_mode="r", allow_pickle=False)
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
                arr = np.load(self.root / f"{pid}.npy", allow_pickle=False)
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


def _warm_librosa() -> None:
    """Load librosa's MFCC code in this thread, before worker threads use it: librosa loads its submodules
    lazily by parsing stub files with ``ast.parse``, and CPython 3.11 can fail that when two threads do it
    at once ("AST constructor recursion depth mismatch", python/cpython#106905)."""
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        librosa.feature.mfcc(y=np.zeros(4096, np.float32), sr=22050, n_mfcc=20)


def default_cache_dir() -> Path:
    env = os.environ.get("SOUNDTWIN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "soundtwin" / "features"


def settings_key(cfg: FeatureConfig) -> str:
    blob = json.dumps({"v": FEATURE_CODE_VERSION, **dataclasses.asdict(cfg)}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


class FeatureExtractor:
    """Decode, resample and featurise clips, caching each clip's features on disk.

    Parameters
    ----------
    cfg:
        Feature settings (the model's).
    cache_dir:
        Cache root; ``None`` uses ``$SOUNDTWIN_CACHE`` or ``~/.cache/soundtwin/features``;
        ``False`` disables the cache.
    workers:
        Threads used by :meth:`from_files` (decoding and the STFT release the GIL).
    """

    def __init__(self, cfg: FeatureConfig, cache_dir: str | os.PathLike[str] | None | bool = None,
                 workers: int = 2) -> None:
        self.cfg = cfg
        self.workers = max(1, int(workers))
        if cache_dir is False:
            self.cache_root: Path | None = None
        else:
            root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)  # type: ignore[arg-type]
            self.cache_root = root / settings_key(cfg)
        self.packs = _Packs(self.cache_root) if self.cache_root is not None else None
        if cfg.kind in ("tutorial", "mfcc"):
            _warm_librosa()

    # -- one clip ---------------------------------------------------------------------------
    def from_signal(self, y: np.ndarray, sr: int, *, name: str = "signal") -> np.ndarray:
        """Features of an in-memory signal at any rate: ``(n_features, frames)``."""
        y, _ = prepare_signal(y, sr, self.cfg.sample_rate, name=name)
        return compute_features(y, self.cfg)

    def _cache_path(self, digest: str) -> Path | None:
        if self.cache_root is None:
            return None
        return self.cache_root / digest[:2] / f"{digest}.npy"

    def from_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Features of one file, from the cache when its content was seen before."""
        return self._from_file(Path(path), write_entry=True)[0]

    def _from_file(self, path: Path, *, write_entry: bool) -> tuple[np.ndarray, str, bool]:
        """``(features, content hash, computed)``; ``write_entry=False`` leaves caching to a pack."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise AudioError(f"{path}: no such file") from None
        except OSError as exc:
            raise AudioError(f"{path}: cannot read file ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise AudioError(f"{path}: not a regular file (a device, FIFO or folder cannot be read as audio)")
        if st.st_size == 0:
            raise AudioError(f"{path}: empty file")
        data: bytes | None = None
        try:
            if st.st_size <= WHOLE_READ_MAX:  # hash and decode the very same bytes
                data = path.read_bytes()
                digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            else:  # a long recording: hashed in chunks and decoded from the file, in bounded memory
                h = hashlib.blake2b(digest_size=16)
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                digest = h.hexdigest()
        except OSError as exc:
            raise AudioError(f"{path}: cannot read file ({exc.strerror})") from None
        if not data and data is not None:
            raise AudioError(f"{path}: empty file")
        if self.packs is not None:
            packed = self.packs.get(digest)
            if packed is not None:
                return packed, digest, False
        cpath = self._cache_path(digest)
        if cpath is not None and cpath.is_file():
            try:
                return np.load(cpath, allow_pickle=False), digest, False
            except (OSError, ValueError):
                log.warning("ignoring unreadable cache entry %s", cpath)
        signal, sr = decode(data if data is not None else path, name=str(path), target_sr=self.cfg.sample_rate)
        feat = self.from_signal(signal, int(sr), name=str(path))
        if cpath is not None and write_entry:
            buf = io.BytesIO()
            np.save(buf, feat, allow_pickle=False)
            try:
                atomic_write_bytes(cpath, buf.getvalue(), durable=False)
            except OSError as exc:  # a read-only cache must not break extraction
                log.warning("cannot write feature cache %s: %s", cpath, exc)
        return feat, digest, True

    # -- many clips -------------------------------------------------------------------------
    def from_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        skip_errors: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[np.ndarray | None], list[tuple[str, str]]]:
        """Features of many files, in order.

        With ``skip_errors`` a bad clip yields ``None`` and an entry ``(path, message)`` in the
        returned error list; otherwise the first bad clip raises :class:`AudioError`.
        """

        pack = self.packs is not None and len(paths) >= PACK_MIN
        keys: list[StatKey | None] = [None] * len(paths)
        found: dict[int, np.ndarray] = {}
        packs = self.packs if pack else None
        if packs is not None:
            packs.refresh()
            digests: dict[int, str] = {}
            for k, p in enumerate(paths):
                keys[k] = key = stat_key(p)
                digest = packs.memo.get(key) if key is not None else None
                if digest is not None and digest in packs.where:
                    digests[k] = digest
            packs.load(list(digests.values()))
            for k, digest in digests.items():
                feat = packs.get(digest)
                if feat is not None:
                    found[k] = feat
        hashed_at = time.time_ns()

        def one(k: int) -> tuple[np.ndarray, str, bool] | str:
            try:
                return self._from_file(Path(paths[k]), write_entry=not pack)
            except AudioError as exc:
                if not skip_errors:
                    raise
                return str(exc)

        todo = [k for k in range(len(paths)) if k not in found]
        out: list[np.ndarray | None] = [None] * len(paths)
        errors: list[tuple[str, str]] = []
        new_feats: dict[str, np.ndarray] = {}
        new_stats: list[tuple[StatKey, str]] = []
        for k, feat in found.items():
            out[k] = feat
            if progress is not None:
                progress(1)
        if todo:  # (a fully warm batch skips the pool and the BLAS limit, which costs a library scan)
            # Clips are spread over our own threads; numpy's BLAS spawning threads of its own for each
            # clip's small mel matmul oversubscribes the cores (4-6x slower when they are busy).
            with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(self.workers) as pool:
                for k, res in zip(todo, pool.map(one, todo)):
                    if isinstance(res, str):
                        errors.append((str(paths[k]), res))
                    else:
                        out[k], digest, computed = res
                        if computed:
                            new_feats[digest] = res[0]
                        key = keys[k]
                        if pack and key is not None and key[3] < hashed_at - RACY_NS:
                            new_stats.append((key, digest))
                    if progress is not None:
                        progress(1)
        if packs is not None and (new_feats or new_stats):
            packs.write(new_feats, new_stats)
        return out, errors
