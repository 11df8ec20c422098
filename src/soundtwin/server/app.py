"""HTTP service: ``create_app(model_dir, gallery_dir)`` returns a FastAPI app (the ``server`` extra).

Layout: ``service`` holds the state (model, gallery, limits, work pool) and reads uploads; ``routes/``
has one ``APIRouter`` per resource; ``limits`` the body middleware; ``errors`` the error -> status map;
``docs`` the offline ``/docs``; ``web/`` the page.

The model loads once. What one request may cost is bounded before any work is done on it:

- the body: ``Content-Length`` over ``max_request_bytes`` is refused at once (413), and a body is cut
  off as soon as the bytes received pass it, or when it has not arrived within ``upload_timeout``
  seconds (408); each upload is also limited to ``max_bytes`` and a request to ``max_files`` uploads;
- the audio: duration, channels and sample rate are read from the header before decoding (413),
  then decoded in bounded blocks to mono, so a small compressed file cannot expand in memory;
- the work: decoding and the math run in a pool of ``workers`` threads off the event loop, so
  ``/healthz`` and other requests stay answered while a slow one runs.

Errors carry a JSON ``detail`` and a status by kind (:mod:`.errors`). Labels are data inside the gallery's JSON, never file names.
The gallery is changed copy-on-write under its directory lock (shared with the CLI): the new version
is saved first and only then served, so a failed save changes nothing, and a request always sees
one whole version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..gallery import Gallery
from ..runtime import load_verifier
from ..store import check_writable
from . import errors
from .docs import offline_docs
from .limits import BodyLimit, Limits
from .routes import ROUTERS
from .service import Service, default_workers


def create_app(model_dir: str | Path, gallery_dir: str | Path | None = None, *, max_bytes: int = 10 * 1024 * 1024,
               max_seconds: float = 30.0, runtime: str = "torch", device: Any = "cpu", max_files: int = 16,
               max_request_bytes: int = 64 * 1024 * 1024, upload_timeout: float = 30.0,
               workers: int | None = None) -> FastAPI:
    """Build the service for one model (and optionally one gallery, created on first enrollment).

    ``workers``: threads for decoding and math (default: the number of cores)."""
    verifier = load_verifier(model_dir, runtime, device=device)
    limits = Limits(max_bytes=int(max_bytes), max_seconds=float(max_seconds), max_files=int(max_files),
                    max_request_bytes=int(max_request_bytes), upload_timeout=float(upload_timeout))
    svc = Service(verifier, Path(model_dir), Path(gallery_dir) if gallery_dir is not None else None, limits,
                  runtime, int(workers or default_workers()))
    if gallery_dir is not None:
        # refuse a folder of other files now, not at the first enrollment
        if check_writable(gallery_dir, "gallery") == "existing":
            g = Gallery.load(gallery_dir, model_dir=model_dir, runtime=runtime, device=device)
            g.verifier = verifier  # one model in memory
            svc.gallery = g

    app = FastAPI(title="soundtwin", version=__version__, docs_url=None, redoc_url=None,
                  description="Siamese-network audio verification and few-shot sound recognition.")
    app.state.service = svc
    app.add_middleware(BodyLimit, limits=limits)
    errors.install(app)
    offline_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
