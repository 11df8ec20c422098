"""Clips against the model alone: compare two, embed one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile

from ..service import Service, service

router = APIRouter()
Svc = Annotated[Service, Depends(service)]


@router.post("/compare")
async def compare(svc: Svc, a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Score two clips: similarity, threshold, calibrated probability and decision."""
    ya, yb = await svc.read_clips([(a, "a"), (b, "b")])
    return asdict(await svc.work(svc.verifier.verify, ya, yb))


@router.post("/embed")
async def embed(svc: Svc, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """A clip's embedding."""
    (y,) = await svc.read_clips([(file, "file")])
    e = (await svc.work(svc.verifier.embed, [y]))[0]
    return {"dim": int(e.shape[0]), "embedding": [float(x) for x in e]}
