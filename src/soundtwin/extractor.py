"""From files to features: decode (:mod:`soundtwin.audio`), featurise (:mod:`soundtwin.features`), and
keep the result in the feature cache (:mod:`soundtwin.featcache`), many files at a time.

A second run over the same files reads features back instead of decoding; a changed file (new
content hash) or changed settings (new settings hash) is never served stale. ``from_files`` over
:data:`PACK_MIN` files or more writes what it computed as one pack.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .audio import decode, prepare_signal
from .config import FeatureConfig
from .errors import AudioError
from .featcache import RACY_NS, Packs, StatKey, default_cache_dir, settings_key, stat_key
from .features import compute_features
from .io import atomic_write_bytes, load_npy

log = logging.getLogger(__name__)

#: ``from_files`` over at least this many files writes what it computed as one pack.
PACK_MIN = 32
#: Files up to this size are read whole (hashed and decoded from the same bytes); larger ones stream.
WHOLE_READ_MAX = 64 << 20


def _warm_librosa() -> None:
    """Load librosa's MFCC code in this thread, before worker threads use it: librosa loads its submodules
    lazily by parsing stub files with ``ast.parse``, and CPython 3.11 can fail that when two threads do it
    at once ("AST constructor recursion depth mismatch", python/cpython#106905)."""
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        librosa.feature.mfcc(y=np.zeros(4096, np.float32), sr=22050, n_mfcc=20)


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
        self.packs = Packs(self.cache_root) if self.cache_root is not None else None
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
                return load_npy(cpath), digest, False
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
