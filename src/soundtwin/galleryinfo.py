"""What ``soundtwin gallery GAL list`` shows, read from ``gallery.json`` alone.

Kept apart from :mod:`soundtwin.gallery` so that listing a gallery imports neither numpy nor the
model (it answers in a fraction of a second); :meth:`soundtwin.gallery.Gallery.load` does the full check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import GalleryError
from .io import read_json
from .store import read_version, version_dir


def gallery_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Classes with clip counts, threshold, how it was set, scoring and the model it belongs to."""
    p = Path(path)
    if not (version_dir(p) / "gallery.json").is_file():
        raise GalleryError(f"{p}: no gallery here (missing gallery.json)")
    try:
        meta = read_version(p, lambda vd: read_json(vd / "gallery.json"))
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise GalleryError(f"{p}: corrupt gallery ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise GalleryError(f"{p}: corrupt gallery (gallery.json has no list of labels)")
    if not isinstance(meta.get("model_fingerprint"), str) or not meta["model_fingerprint"]:
        raise GalleryError(f"{p}: corrupt gallery (no model fingerprint)")
    counts: dict[str, int] = {}
    for lab in meta["labels"]:
        counts[str(lab)] = counts.get(str(lab), 0) + 1
    return {"classes": dict(sorted(counts.items())), "threshold": meta.get("threshold"),
            "threshold_rule": meta.get("threshold_rule"), "far": meta.get("far"),
            "expected_at_threshold": meta.get("expected"),
            "scoring": meta.get("scoring", "mean"), "model_fingerprint": meta["model_fingerprint"],
            "model_dir": meta.get("model_dir")}
