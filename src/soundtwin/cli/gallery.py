"""Commands on a gallery: enroll, gallery (list / remove), identify, verify, scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SoundtwinError
from .common import AsJson, Device, Threshold, command, echo_json, warn

@command()
def enroll(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory (created if missing).")],
    clips: Annotated[Optional[list[Path]], typer.Argument(help="A dataset (class folders or CSV), or clips with --label.")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Model directory (needed to create a gallery).")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Enroll the given clips under this class.")] = None,
    far: Annotated[Optional[float], typer.Option("--far", help="Set the gallery threshold at this false-accept rate.")] = None,
    scoring: Annotated[str, typer.Option(help="Class scoring for a new gallery: mean, max or topk.")] = "mean",
    embeddings: Annotated[Optional[Path], typer.Option(
        "--embeddings", help="Enroll vectors already embedded (Parquet shards of soundtwin embed --out FOLDER) "
                             "under their labels (or --label), instead of clips; they must be the gallery "
                             "model's.")] = None,
    device: Device = "cpu",
) -> None:
    """Create or extend a gallery from a dataset, from clips under --label, or from embedding shards."""
    from ..data import group_by_label, list_audio
    from ..gallery import Gallery, check_label
    from ..store import check_writable

    if check_writable(gallery, "gallery") == "existing":
        g = Gallery.load(gallery, model_dir=model, device=device)
    else:
        if model is None:
            raise SoundtwinError(f"{gallery}: no gallery yet; pass --model MODEL_DIR to create it")
        g = Gallery.create(gallery, model, scoring=scoring, device=device)
    if embeddings is not None:
        if clips:
            raise SoundtwinError("give clips or --embeddings, not both")
        return _enroll_shards(g, gallery, embeddings, label, far)
    if not clips:
        raise SoundtwinError("nothing to enroll: give a dataset, or --label NAME and clips")
    if label is not None:
        groups = {label: list_audio(clips)}
    elif len(clips) != 1:
        raise SoundtwinError("without --label, give exactly one dataset (class folders or a CSV)")
    else:
        groups = group_by_label(clips[0])
    for lab in groups:
        check_label(lab)
    # embed first (the slow part), then add under the gallery's lock to what is on disk by then,
    # so an enrollment another process made meanwhile is kept
    embedded = {lab: g.verifier.embed(paths) for lab, paths in groups.items()}
    with g.transaction():
        for lab, emb in embedded.items():
            g.add_embeddings(lab, emb, [str(p) for p in groups[lab]])
        if far is not None:
            g.far = far
    added = {lab: len(paths) for lab, paths in groups.items()}
    typer.echo(f"enrolled {sum(added.values())} clip(s) in {len(added)} class(es) into {gallery}; "
               f"gallery has {len(g.classes)} classes, threshold {g.threshold:.4f} ({g.threshold_rule})")


def _enroll_shards(g, gallery: Path, shards: Path, label: Optional[str], far: Optional[float]) -> None:  # type: ignore[no-untyped-def]
    """Enroll the vectors of Parquet shards, read a shard at a time, under one transaction."""
    import numpy as np

    from ..bulk import iter_shards, shard_fingerprint
    from ..gallery import check_label

    fp = shard_fingerprint(shards)
    if fp != g.verifier.fingerprint:
        raise SoundtwinError(f"{shards}: embedded by another model (fingerprint {fp}) than the gallery's "
                             f"({g.verifier.fingerprint}); nothing enrolled")
    groups: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    for paths, labels, vec in iter_shards(shards):
        for k, (p, lab) in enumerate(zip(paths, labels, strict=True)):
            lab = label if label is not None else lab
            if not lab:
                raise SoundtwinError(f"{shards}: {p} has no label; give --label for unlabelled shards")
            groups.setdefault(lab, ([], []))[0].append(vec[k])
            groups[lab][1].append(p)
    for lab in groups:
        check_label(lab)
    with g.transaction():
        for lab, (rows, paths) in groups.items():
            g.add_embeddings(lab, np.stack(rows), paths)
        if far is not None:
            g.far = far
    n = sum(len(v[1]) for v in groups.values())
    typer.echo(f"enrolled {n} vector(s) in {len(groups)} class(es) from {shards} into {gallery}; "
               f"gallery has {len(g.classes)} classes, threshold {g.threshold:.4f} ({g.threshold_rule})")


@command("gallery")
def gallery_cmd(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    action: Annotated[str, typer.Argument(help="list or remove")],
    label: Annotated[Optional[str], typer.Argument(help="Class to remove.")] = None,
    as_json: AsJson = False,
) -> None:
    """List a gallery's classes, or remove one."""
    if action == "list":  # from gallery.json alone: neither numpy nor the model is loaded
        from ..galleryinfo import gallery_summary

        info = gallery_summary(gallery)
        if as_json:
            echo_json(info)
        else:
            for name, n in info["classes"].items():
                typer.echo(f"{name}\t{n}")
    elif action == "remove":
        if not label:
            raise SoundtwinError("remove needs a LABEL")
        from ..gallery import Gallery

        n = Gallery.load(gallery).remove(label)
        typer.echo(f"removed {label} ({n} clip(s)) from {gallery}")
    else:
        raise SoundtwinError(f"unknown action {action!r}: use list or remove")


@command()
def identify(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    clips: Annotated[list[Path], typer.Argument(help="Clips to identify.")],
    top: Annotated[int, typer.Option("--top", help="How many classes to list.")] = 3,
    as_json: AsJson = False,
    threshold: Threshold = None,
    device: Device = "cpu",
) -> None:
    """Which enrolled class is each clip? 'unknown' when none clears the threshold."""
    from dataclasses import asdict

    from ..data import list_audio
    from ..gallery import Gallery

    g = Gallery.load(gallery, device=device)
    res = g.identify(list_audio(clips), top=top, threshold=threshold)
    if as_json:
        echo_json([asdict(r) for r in res])
        return
    for r in res:
        alts = ", ".join(f"{m.label} {m.score:.3f}" for m in r.matches)
        typer.echo(f"{r.clip}\t{r.label}\t({alts})")


@command()
def verify(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    label: Annotated[str, typer.Argument(help="Enrolled class to verify against.")],
    clips: Annotated[list[Path], typer.Argument(help="Clips to verify.")],
    as_json: AsJson = False,
    threshold: Threshold = None,
    device: Device = "cpu",
) -> None:
    """Is each clip of class LABEL? yes/no with its score."""
    from ..data import list_audio
    from ..gallery import Gallery

    g = Gallery.load(gallery, device=device)
    paths = list_audio(clips)
    res = g.verify(label, paths, threshold=threshold)
    for d in res:
        warn(d.warnings)
    if as_json:
        echo_json([{"clip": str(p), "label": label, "score": d.score, "threshold": d.threshold, "same": d.same,
                     "probability": d.probability, "warnings": list(d.warnings)} for p, d in zip(paths, res)])
        return
    for p, d in zip(paths, res):
        typer.echo(f"{p}\t{'yes' if d.same else 'no'}\tscore {d.score:.3f}\tprobability {d.probability:.2f}")


@command("scan")
def scan_cmd(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    recording: Annotated[Path, typer.Argument(help="A recording of any length.")],
    window: Annotated[float, typer.Option(help="Window length in seconds.")] = 1.0,
    hop: Annotated[float, typer.Option(help="Hop between windows in seconds.")] = 0.5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write segments to .csv or .json.")] = None,
    threshold: Threshold = None,
    device: Device = "cpu",
) -> None:
    """Find enrolled sounds in a long recording: start,end,label,score segments."""
    import csv
    import io

    from ..gallery import Gallery
    from ..io import atomic_write_text
    from ..scan import scan

    segs = scan(Gallery.load(gallery, device=device), recording, window=window, hop=hop, threshold=threshold)
    if out is not None and out.suffix.lower() == ".json":
        text = json.dumps([s.as_dict() for s in segs], indent=1) + "\n"
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["start", "end", "label", "score"])
        for s in segs:
            w.writerow([f"{s.start:.2f}", f"{s.end:.2f}", s.label, f"{s.score:.4f}"])
        text = buf.getvalue()
    if out is not None:
        atomic_write_text(out, text)
        typer.echo(f"{len(segs)} segment(s) written to {out}")
    else:
        typer.echo(text, nl=False)
