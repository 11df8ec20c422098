"""HTTP service: ``create_app(model_dir, gallery_dir)`` returns a FastAPI app (the ``server`` extra).

The model loads once. Uploads are limited in bytes and seconds, decoded in memory and validated;
errors are 4xx with a JSON ``detail``. Labels are data inside the gallery's JSON, never file names,
so no request can write outside the gallery directory; gallery writes are serialised and atomic.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse

from . import __version__
from .audio import prepare_signal
from .errors import AudioError, GalleryError, SoundtwinError
from .gallery import Gallery, load_verifier

LABEL_RE = re.compile(r"^[\w][\w .\-]{0,63}$")


class Limits:
    def __init__(self, max_bytes: int = 10 * 1024 * 1024, max_seconds: float = 30.0) -> None:
        self.max_bytes, self.max_seconds = int(max_bytes), float(max_seconds)


def create_app(model_dir: str | Path, gallery_dir: str | Path | None = None, *, max_bytes: int = 10 * 1024 * 1024,
               max_seconds: float = 30.0, runtime: str = "torch") -> FastAPI:
    """Build the service for one model (and optionally one gallery, created on first enrollment)."""
    verifier = load_verifier(model_dir, runtime)
    limits = Limits(max_bytes, max_seconds)
    lock = threading.Lock()
    state: dict[str, Any] = {"gallery": None}
    if gallery_dir is not None and (Path(gallery_dir) / "gallery.json").is_file():
        state["gallery"] = Gallery.load(gallery_dir, model_dir=model_dir, runtime=runtime)
        state["gallery"].verifier = verifier  # one model in memory

    app = FastAPI(title="soundtwin", version=__version__,
                  description="Siamese-network audio verification and few-shot sound recognition.")

    async def read_clip(upload: UploadFile, field: str) -> tuple[np.ndarray, int]:
        data = await upload.read(limits.max_bytes + 1)
        name = upload.filename or field
        if len(data) > limits.max_bytes:
            raise HTTPException(413, f"{name}: upload larger than {limits.max_bytes} bytes")
        if not data:
            raise HTTPException(422, f"{name}: empty upload")
        try:
            y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception:
            raise HTTPException(415, f"{name}: cannot decode audio (send WAV, FLAC, OGG or MP3)") from None
        if len(y) / sr > limits.max_seconds:
            raise HTTPException(413, f"{name}: {len(y) / sr:.1f} s is longer than the {limits.max_seconds:g} s limit")
        try:
            y, sr = prepare_signal(y, int(sr), None, name=name)
        except AudioError as exc:
            raise HTTPException(422, str(exc)) from None
        return y, sr

    def gallery() -> Gallery:
        g = state["gallery"]
        if g is None or not g.labels:
            raise HTTPException(409, "the gallery is empty: enroll clips first (POST /gallery/{label})")
        return g

    def check_label(label: str) -> str:
        if not LABEL_RE.match(label) or label == "unknown":
            raise HTTPException(422, f"invalid label {label!r}: 1-64 letters, digits, space, '.', '_' or '-'")
        return label

    @app.exception_handler(SoundtwinError)
    async def soundtwin_error(_request: Any, exc: SoundtwinError):  # type: ignore[no-untyped-def]
        from fastapi.responses import JSONResponse

        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("soundtwin.web").joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        m = verifier.meta
        card: dict[str, Any] = {
            "soundtwin_version": __version__, "preset": verifier.cfg.preset, "runtime": runtime,
            "sample_rate": verifier.cfg.features.sample_rate, "features": verifier.cfg.features.kind,
            "model": verifier.cfg.model.name, "loss": verifier.cfg.loss.name, "distance": verifier.cfg.model.distance,
            "threshold": verifier.threshold, "threshold_rule": m.get("threshold_rule"),
            "heldout_eer": m.get("heldout_eer"), "classes_trained_on": m.get("classes"),
            "fingerprint": verifier.fingerprint, "limits": {"max_bytes": limits.max_bytes, "max_seconds": limits.max_seconds},
            "gallery_classes": state["gallery"].classes if state["gallery"] is not None else {},
        }
        bench = Path(model_dir) / "benchmark.json"
        if bench.is_file():
            import json

            card["benchmarks"] = json.loads(bench.read_text())
        return card

    @app.post("/compare")
    async def compare(a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """Score two clips: similarity, threshold, calibrated probability and decision."""
        ya, yb = await read_clip(a, "a"), await read_clip(b, "b")
        d = verifier.verify(ya, yb)
        return asdict(d)

    @app.post("/embed")
    async def embed(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        y = await read_clip(file, "file")
        e = verifier.embed([y])[0]
        return {"dim": int(e.shape[0]), "embedding": [float(x) for x in e]}

    @app.post("/identify")
    async def identify(file: Annotated[UploadFile, File()], top: Annotated[int, Form()] = 3) -> dict[str, Any]:
        y = await read_clip(file, "file")
        r = gallery().identify([y], top=max(1, min(top, 50)))[0]
        return {"label": r.label, "score": r.score, "threshold": gallery().threshold,
                "matches": [asdict(m) for m in r.matches]}

    @app.post("/verify")
    async def verify(label: Annotated[str, Form()], file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        y = await read_clip(file, "file")
        g = gallery()
        if label not in g.classes:
            raise HTTPException(404, f"no class {label!r} in the gallery")
        return {"label": label, **asdict(g.verify(label, [y])[0])}

    @app.get("/gallery")
    def list_gallery() -> dict[str, Any]:
        g = state["gallery"]
        return {"classes": g.classes if g is not None else {}, "threshold": g.threshold if g is not None else verifier.threshold}

    @app.post("/gallery/{label}")
    async def enroll(label: str, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        if gallery_dir is None:
            raise HTTPException(409, "the service was started without --gallery: enrollment is off")
        check_label(label)
        clips = [await read_clip(f, f"files[{k}]") for k, f in enumerate(files)]
        emb = verifier.embed(clips)
        with lock:
            g = state["gallery"]
            if g is None:
                g = Gallery(gallery_dir, verifier)
            g.add_embeddings(label, emb, [f.filename or "upload" for f in files])
            g.recalibrate()
            try:
                g.save()
            except GalleryError as exc:
                raise HTTPException(500, str(exc)) from None
            state["gallery"] = g
            return {"label": label, "added": len(clips), "classes": g.classes}

    @app.delete("/gallery/{label}")
    def remove(label: str) -> dict[str, Any]:
        with lock:
            g = state["gallery"]
            if g is None or label not in g.classes:
                raise HTTPException(404, f"no class {label!r} in the gallery")
            n = g.remove(label)
            return {"label": label, "removed": n, "classes": g.classes}

    return app
