"""The web page, the health check and the model card."""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from ... import __version__
from ...runtime.modeldir import read_benchmarks
from ..service import Service, service

router = APIRouter()
Svc = Annotated[Service, Depends(service)]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> str:
    return resources.files("soundtwin.server").joinpath("web/index.html").read_text(encoding="utf-8")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answered on the event loop, so it stays quick while the work pool is busy."""
    return {"status": "ok"}


@router.get("/info")
def info(svc: Svc) -> dict[str, Any]:
    """The model card: what the model is, how its threshold was set, the service's limits."""
    v, g = svc.verifier, svc.gallery
    card: dict[str, Any] = {
        "soundtwin_version": __version__, "runtime": svc.runtime, **v.card(),
        "limits": asdict(svc.limits), "gallery_classes": g.classes if g is not None else {},
    }
    if g is not None:
        card["gallery"] = g.card()
    bench = read_benchmarks(svc.model_dir)
    if bench is not None:
        card["benchmarks"] = bench
    return card
