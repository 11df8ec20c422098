"""HTTP service: ``create_app(model_dir, gallery_dir)`` returns a FastAPI app (the ``server`` extra).

The model loads once. What one request may cost is bounded before any work is done on it:

- the body: ``Content-Length`` over ``max_request_bytes`` is refused at once (413), and a body is cut
  off as soon as the bytes received pass it, or when it has not arrived within ``upload_timeout``
  seconds (408); each upload is also limited to ``max_bytes`` and a request to ``max_files`` uploads;
- the audio: duration, channels and sample rate are read from the header before decoding (413),
  then decoded in bounded blocks to mono, so a small compressed file cannot expand in memory;
- the work: decoding and the math run in a pool of ``workers`` threads off the event loop, so
  ``/healthz`` and other requests stay answered while a slow one runs.

Errors are 4xx with a JSON ``detail``. Labels are data inside the gallery's JSON, never file names.
The gallery is changed copy-on-write under its directory lock (shared with the CLI): the new version
is saved first and only then served, so a failed save changes nothing, and a request always sees
one whole version.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from . import __version__
from .audio import AudioLimitError, UndecodableError, decode, prepare_signal
from .errors import AudioError, GalleryError, ModelError, SoundtwinError
from .gallery import Gallery, check_label, load_verifier

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one request may cost (see the module docstring)."""

    max_bytes: int = 10 * 1024 * 1024  # one upload
    max_seconds: float = 30.0  # one clip
    max_files: int = 16  # uploads in one request
    max_request_bytes: int = 64 * 1024 * 1024  # the whole body
    upload_timeout: float = 30.0  # seconds for the whole body to arrive
    max_channels: int = 8
    max_rate: int = 192_000


class BodyLimit:
    """ASGI middleware: refuse a body over ``max_request_bytes`` (by its header, or as soon as the
    bytes received pass it) or one that takes longer than ``upload_timeout`` to arrive."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        lim = self.limits
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n < 0 or n > lim.max_request_bytes:
                    await _refuse(send, 413, f"request body of {v.decode(errors='replace')} bytes is over the "
                                             f"{lim.max_request_bytes} byte limit")
                    return
        received = 0
        deadline = time.monotonic() + lim.upload_timeout

        async def limited() -> dict:
            nonlocal received
            left = deadline - time.monotonic()
            try:
                msg = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {lim.upload_timeout:g} s",
                                    headers={"Connection": "close"}) from None
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > lim.max_request_bytes:
                    raise HTTPException(413, f"request body over the {lim.max_request_bytes} byte limit",
                                        headers={"Connection": "close"})
            return msg

        await self.app(scope, limited, send)


async def _refuse(send: Callable, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI's files served from the ``fastapi-offline`` package, not a CDN, so the
    page works with no network."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = files("fastapi_offline") / "static"
    app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="soundtwin API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")


def status_of(exc: SoundtwinError) -> int:
    """The HTTP status for a library error."""
    if isinstance(exc, AudioLimitError):
        return 413
    if isinstance(exc, AudioError):
        return 422
    if isinstance(exc, GalleryError):
        return 409
    if isinstance(exc, ModelError):
        return 500
    return 422


def create_app(model_dir: str | Path, gallery_dir: str | Path | None = None, *, max_bytes: int = 10 * 1024 * 1024,
               max_seconds: float = 30.0, runtime: str = "torch", max_files: int = 16,
               max_request_bytes: int = 64 * 1024 * 1024, upload_timeout: float = 30.0,
               workers: int | None = None) -> FastAPI:
    """Build the service for one model (and optionally one gallery, created on first enrollment).

    ``workers``: threads for decoding and math (default: the number of cores)."""
    verifier = load_verifier(model_dir, runtime)
    limits = Limits(max_bytes=int(max_bytes), max_seconds=float(max_seconds), max_files=int(max_files),
                    max_request_bytes=int(max_request_bytes), upload_timeout=float(upload_timeout))
    pool = ThreadPoolExecutor(max(1, int(workers or os.cpu_count() or 1)), thread_name_prefix="soundtwin-work")
    write_lock = threading.Lock()
    state: dict[str, Any] = {"gallery": None}
    if gallery_dir is not None:
        from .store import check_writable

        check_writable(gallery_dir, "gallery")  # refuse a folder of other files now, not at the first enrollment
    if gallery_dir is not None and (Path(gallery_dir) / "gallery.json").is_file():
        g0 = Gallery.load(gallery_dir, model_dir=model_dir, runtime=runtime)
        g0.verifier = verifier  # one model in memory
        state["gallery"] = g0

    app = FastAPI(title="soundtwin", version=__version__, docs_url=None, redoc_url=None,
                  description="Siamese-network audio verification and few-shot sound recognition.")
    app.add_middleware(BodyLimit, limits=limits)
    _offline_docs(app)

    async def work(fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (decoding, math, disk) in the bounded pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))

    async def read_bytes(upload: UploadFile, field: str) -> tuple[bytes, str]:
        name = upload.filename or field
        data = await upload.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            raise HTTPException(413, f"{name}: upload larger than {limits.max_bytes} bytes")
        if not data:
            raise HTTPException(422, f"{name}: empty upload")
        return data, name

    def decode_clip(data: bytes, name: str) -> tuple[np.ndarray, int]:
        try:
            y, sr = decode(data, name=name, max_seconds=limits.max_seconds, max_channels=limits.max_channels,
                           max_rate=limits.max_rate)
            y, sr = prepare_signal(y, sr, verifier.cfg.features.sample_rate, name=name)
        except AudioLimitError as exc:
            raise HTTPException(413, str(exc)) from None
        except UndecodableError:
            raise HTTPException(415, f"{name}: cannot decode audio (send WAV, FLAC, OGG or MP3)") from None
        except AudioError as exc:
            raise HTTPException(422, str(exc)) from None
        return y, sr

    async def read_clips(uploads: list[tuple[UploadFile, str]]) -> list[tuple[np.ndarray, int]]:
        if len(uploads) > limits.max_files:
            raise HTTPException(413, f"{len(uploads)} files in one request; at most {limits.max_files}")
        raw = [await read_bytes(u, f) for u, f in uploads]
        return await work(lambda: [decode_clip(d, n) for d, n in raw])

    def gallery() -> Gallery:
        g = state["gallery"]
        if g is None or not g.labels:
            raise HTTPException(409, "the gallery is empty: enroll clips first (POST /gallery/{label})")
        return g

    @app.exception_handler(SoundtwinError)
    async def soundtwin_error(_request: Any, exc: SoundtwinError) -> JSONResponse:
        return JSONResponse(status_code=status_of(exc), content={"detail": str(exc)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("soundtwin.web").joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        m = verifier.meta
        g = state["gallery"]
        card: dict[str, Any] = {
            "soundtwin_version": __version__, "preset": verifier.cfg.preset, "runtime": runtime,
            "sample_rate": verifier.cfg.features.sample_rate, "features": verifier.cfg.features.kind,
            "model": verifier.cfg.model.name, "loss": verifier.cfg.loss.name, "distance": verifier.cfg.model.distance,
            "threshold": verifier.threshold, "threshold_rule": m.get("threshold_rule"),
            "heldout_eer": m.get("heldout_eer"), "classes_trained_on": m.get("classes"),
            "fingerprint": verifier.fingerprint, "limits": asdict(limits),
            "gallery_classes": g.classes if g is not None else {},
        }
        bench = Path(model_dir) / "benchmark.json"
        if bench.is_file():
            import json

            card["benchmarks"] = json.loads(bench.read_text())
        return card

    @app.post("/compare")
    async def compare(a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Score two clips: similarity, threshold, calibrated probability and decision."""
        ya, yb = await read_clips([(a, "a"), (b, "b")])
        return asdict(await work(verifier.verify, ya, yb))

    @app.post("/embed")
    async def embed(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        (y,) = await read_clips([(file, "file")])
        e = (await work(verifier.embed, [y]))[0]
        return {"dim": int(e.shape[0]), "embedding": [float(x) for x in e]}

    @app.post("/identify")
    async def identify(file: Annotated[UploadFile, File()], top: Annotated[int, Form()] = 3) -> dict[str, Any]:
        g = gallery()  # one version of the gallery for the whole request
        (y,) = await read_clips([(file, "file")])
        r = (await work(g.identify, [y], max(1, min(top, 50))))[0]
        return {"label": r.label, "score": r.score, "threshold": g.threshold,
                "matches": [asdict(m) for m in r.matches]}

    @app.post("/verify")
    async def verify(label: Annotated[str, Form()], file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        g = gallery()
        if label not in g.classes:
            raise HTTPException(404, f"no class {label!r} in the gallery")
        (y,) = await read_clips([(file, "file")])
        return {"label": label, **asdict((await work(g.verify, label, [y]))[0])}

    @app.get("/gallery")
    def list_gallery() -> dict[str, Any]:
        g = state["gallery"]
        return {"classes": g.classes if g is not None else {},
                "threshold": g.threshold if g is not None else verifier.threshold,
                "threshold_rule": g.threshold_rule if g is not None else verifier.meta.get("threshold_rule")}

    def change_gallery(fn: Callable[[Gallery], T]) -> T:
        """Copy-on-write: change a copy under the gallery's lock (re-read from disk, so changes by other
        processes are kept), save it, and serve it only once saved."""
        with write_lock:
            g = state["gallery"]
            new = g.copy() if g is not None else Gallery(gallery_dir, verifier)  # type: ignore[arg-type]
            with new.transaction():
                out = fn(new)
            state["gallery"] = new
            return out

    @app.post("/gallery/{label}")
    async def enroll(label: str, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        if gallery_dir is None:
            raise HTTPException(409, "the service was started without --gallery: enrollment is off")
        try:
            check_label(label)
        except GalleryError as exc:
            raise HTTPException(422, str(exc)) from None
        clips = await read_clips([(f, f"files[{k}]") for k, f in enumerate(files)])
        emb = await work(verifier.embed, clips)
        names = [f.filename or "upload" for f in files]

        def add(g: Gallery) -> dict[str, Any]:
            g.add_embeddings(label, emb, names)
            return {"label": label, "added": len(clips)}

        try:
            out = await work(change_gallery, add)
        except GalleryError as exc:
            raise HTTPException(500 if "cannot save" in str(exc) else 409, str(exc)) from None
        return {**out, "classes": state["gallery"].classes}

    @app.delete("/gallery/{label}")
    async def remove(label: str) -> dict[str, Any]:
        g = state["gallery"]
        if g is None or label not in g.classes:
            raise HTTPException(404, f"no class {label!r} in the gallery")

        def rm(g: Gallery) -> int:
            if label not in g.classes:
                raise HTTPException(404, f"no class {label!r} in the gallery")
            return g.remove(label, save=False)  # (the transaction saves)

        try:
            n = await work(change_gallery, rm)
        except GalleryError as exc:
            raise HTTPException(500 if "cannot save" in str(exc) else 409, str(exc)) from None
        return {"label": label, "removed": n, "classes": state["gallery"].classes}

    return app
