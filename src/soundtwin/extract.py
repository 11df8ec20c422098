"""From files to features, with an on-disk cache keyed by file content and feature settings.

A second run over the same files reads features back instead of decoding; a changed file (new
content hash) or changed settings (new settings hash) is never served stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import prepare_signal
from .config import FeatureConfig
from .errors import AudioError
from .features import compute_features
from .io import atomic_write_bytes

log = logging.getLogger(__name__)

#: Bump when feature code changes in a way that alters values, to invalidate old caches.
FEATURE_CODE_VERSION = 1


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
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise AudioError(f"{path}: no such file") from None
        except OSError as exc:
            raise AudioError(f"{path}: cannot read file ({exc.strerror})") from None
        if not data:
            raise AudioError(f"{path}: empty file")
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        cpath = self._cache_path(digest)
        if cpath is not None and cpath.is_file():
            try:
                return np.load(cpath, allow_pickle=False)
            except (OSError, ValueError):
                log.warning("ignoring unreadable cache entry %s", cpath)
        try:
            signal, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(f"{path}: cannot decode audio ({exc})") from None
        feat = self.from_signal(signal, int(sr), name=str(path))
        if cpath is not None:
            buf = io.BytesIO()
            np.save(buf, feat, allow_pickle=False)
            try:
                atomic_write_bytes(cpath, buf.getvalue(), durable=False)
            except OSError as exc:  # a read-only cache must not break extraction
                log.warning("cannot write feature cache %s: %s", cpath, exc)
        return feat

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

        def one(p: str | os.PathLike[str]) -> np.ndarray | str:
            try:
                return self.from_file(p)
            except AudioError as exc:
                if not skip_errors:
                    raise
                return str(exc)

        out: list[np.ndarray | None] = []
        errors: list[tuple[str, str]] = []
        with ThreadPoolExecutor(self.workers) as pool:
            for p, res in zip(paths, pool.map(one, paths)):
                if isinstance(res, str):
                    out.append(None)
                    errors.append((str(p), res))
                else:
                    out.append(res)
                if progress is not None:
                    progress(1)
        return out, errors
