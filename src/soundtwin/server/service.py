"""The state one service holds: its model, its gallery (copy-on-write), its limits and its work pool.

Routes reach it through :func:`service` (a FastAPI dependency); nothing else is global.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import HTTPException, Request, UploadFile

from ..audio import AudioLimitError, UndecodableError, decode, prepare_signal
from ..errors import AudioError
from ..gallery import Gallery
from ..runtime.base import EmbedderBase
from .limits import Limits

T = TypeVar("T")


class Service:
    """One model (and optionally one gallery directory) behind the HTTP routes."""

    def __init__(self, verifier: EmbedderBase, model_dir: Path, gallery_dir: Path | None, limits: Limits,
                 runtime: str, workers: int) -> None:
        self.verifier, self.model_dir, self.gallery_dir = verifier, model_dir, gallery_dir
        self.limits, self.runtime = limits, runtime
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="soundtwin-work")
        self.write_lock = threading.Lock()
        self.gallery: Gallery | None = None

    # -- work off the event loop --------------------------------------------------------------
    async def work(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (decoding, math, disk) in the bounded pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    # -- uploads ------------------------------------------------------------------------------
    async def read_bytes(self, upload: UploadFile, field: str) -> tuple[bytes, str]:
        name = upload.filename or field
        data = await upload.read(self.limits.max_bytes + 1)
        if len(data) > self.limits.max_bytes:
            raise HTTPException(413, f"{name}: upload larger than {self.limits.max_bytes} bytes")
        if not data:
            raise HTTPException(422, f"{name}: empty upload")
        return data, name

    def decode_clip(self, data: bytes, name: str) -> tuple[np.ndarray, int]:
        """An upload's bytes -> a mono signal at the model's rate, within the limits (checked from the
        header first, then while decoding in bounded blocks)."""
        lim = self.limits
        try:
            y, sr = decode(data, name=name, max_seconds=lim.max_seconds, max_channels=lim.max_channels,
                           max_rate=lim.max_rate)
            return prepare_signal(y, sr, self.verifier.cfg.features.sample_rate, name=name)
        except AudioLimitError as exc:
            raise HTTPException(413, str(exc)) from None
        except UndecodableError:
            raise HTTPException(415, f"{name}: cannot decode audio (send WAV, FLAC, OGG or MP3)") from None
        except AudioError as exc:
            raise HTTPException(422, str(exc)) from None

    async def read_clips(self, uploads: list[tuple[UploadFile, str]]) -> list[tuple[np.ndarray, int]]:
        if len(uploads) > self.limits.max_files:
            raise HTTPException(413, f"{len(uploads)} files in one request; at most {self.limits.max_files}")
        raw = [await self.read_bytes(u, f) for u, f in uploads]
        return await self.work(lambda: [self.decode_clip(d, n) for d, n in raw])

    # -- the gallery --------------------------------------------------------------------------
    def enrolled(self) -> Gallery:
        """The gallery as it is now (one version for the whole request); 409 while empty."""
        g = self.gallery
        if g is None or not g.labels:
            raise HTTPException(409, "the gallery is empty: enroll clips first (POST /gallery/{label})")
        return g

    def change_gallery(self, fn: Callable[[Gallery], T]) -> T:
        """Copy-on-write: change a copy under the gallery's lock (re-read from disk, so changes by other
        processes are kept), save it, and serve it only once saved."""
        with self.write_lock:
            g = self.gallery
            new = g.copy() if g is not None else Gallery(self.gallery_dir, self.verifier)  # type: ignore[arg-type]
            with new.transaction():
                out = fn(new)
            self.gallery = new
            return out


def service(request: Request) -> Service:
    """FastAPI dependency: the app's :class:`Service`."""
    return request.app.state.service


def default_workers() -> int:
    return os.cpu_count() or 1
