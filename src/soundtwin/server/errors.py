"""Library errors -> HTTP statuses, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ..audio import AudioLimitError, UndecodableError
from ..errors import AudioError, GalleryError, ModelError, SoundtwinError


def status_of(exc: SoundtwinError) -> int:
    """The HTTP status for a library error: 413 over a limit, 415 not audio, 422 bad audio or value,
    409 a gallery conflict, 500 a broken model."""
    if isinstance(exc, AudioLimitError):
        return 413
    if isinstance(exc, UndecodableError):
        return 415
    if isinstance(exc, AudioError):
        return 422
    if isinstance(exc, GalleryError):
        return 500 if "cannot save" in str(exc) else 409
    if isinstance(exc, ModelError):
        return 500
    return 422


def install(app: FastAPI) -> None:
    """Answer every :class:`SoundtwinError` with its status and a JSON ``detail``."""

    @app.exception_handler(SoundtwinError)
    async def soundtwin_error(_request: Any, exc: SoundtwinError) -> JSONResponse:
        return JSONResponse(status_code=status_of(exc), content={"detail": str(exc)})
