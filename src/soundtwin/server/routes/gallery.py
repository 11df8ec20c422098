"""The gallery: identify, verify, list, enroll, remove."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile

from ...errors import GalleryError
from ...gallery import Gallery, check_label
from ..service import Service, service

router = APIRouter()
Svc = Annotated[Service, Depends(service)]


@router.post("/identify")
async def identify(svc: Svc, file: Annotated[UploadFile, File()], top: Annotated[int, Form()] = 3) -> dict[str, Any]:
    """The best enrolled classes of a clip; ``unknown`` when none clears the threshold."""
    g = svc.enrolled()  # one version of the gallery for the whole request
    (y,) = await svc.read_clips([(file, "file")])
    r = (await svc.work(g.identify, [y], max(1, min(top, 50))))[0]
    return {"label": r.label, "score": r.score, "threshold": g.threshold, "matches": [asdict(m) for m in r.matches]}


@router.post("/verify")
async def verify(svc: Svc, label: Annotated[str, Form()], file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Is a clip of the enrolled class ``label``?"""
    g = svc.enrolled()
    if label not in g.classes:
        raise HTTPException(404, f"no class {label!r} in the gallery")
    (y,) = await svc.read_clips([(file, "file")])
    return {"label": label, **asdict((await svc.work(g.verify, label, [y]))[0])}


@router.get("/gallery")
def list_gallery(svc: Svc) -> dict[str, Any]:
    """Enrolled classes with their clip counts, the threshold in use, how it was set (``far``: the gallery's
    operating point, set with ``soundtwin enroll --far`` and kept in the gallery) and the rates expected there."""
    g, v = svc.gallery, svc.verifier
    return {"classes": g.classes if g is not None else {},
            "threshold": g.threshold if g is not None else v.threshold,
            "threshold_rule": g.threshold_rule if g is not None else v.meta.get("threshold_rule"),
            "far": g.far if g is not None else None,
            "expected_at_threshold": g.expected if g is not None else v.meta.get("expected")}


@router.post("/gallery/{label}")
async def enroll(svc: Svc, label: str, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
    """Add clips under ``label`` (the class is created if new)."""
    if svc.gallery_dir is None:
        raise HTTPException(409, "the service was started without --gallery: enrollment is off")
    try:
        check_label(label)
    except GalleryError as exc:
        raise HTTPException(422, str(exc)) from None
    clips = await svc.read_clips([(f, f"files[{k}]") for k, f in enumerate(files)])
    emb = await svc.work(svc.verifier.embed, clips)
    names = [f.filename or "upload" for f in files]

    def add(g: Gallery) -> dict[str, Any]:
        g.add_embeddings(label, emb, names)
        return {"label": label, "added": len(clips)}

    out = await svc.work(svc.change_gallery, add)
    return {**out, "classes": svc.gallery.classes}  # type: ignore[union-attr]


@router.delete("/gallery/{label}")
async def remove(svc: Svc, label: str) -> dict[str, Any]:
    """Remove the class ``label``."""
    g = svc.gallery
    if g is None or label not in g.classes:
        raise HTTPException(404, f"no class {label!r} in the gallery")

    def rm(g: Gallery) -> int:
        if label not in g.classes:
            raise HTTPException(404, f"no class {label!r} in the gallery")
        return g.remove(label, save=False)  # (the transaction saves)

    n = await svc.work(svc.change_gallery, rm)
    return {"label": label, "removed": n, "classes": svc.gallery.classes}  # type: ignore[union-attr]
