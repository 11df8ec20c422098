"""Galleries: enrolled embeddings with labels, for identification, verification and scanning.

A gallery directory holds ``gallery.json`` (labels, source paths, the model's directory and
fingerprint, the decision threshold) and ``embeddings.npy`` (``(n, dim)`` float32). It is rewritten
atomically on every change, so an interrupted enrollment leaves the previous gallery intact.
Clips are always embedded by the gallery's own model; another model is refused.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import GalleryError
from .io import atomic_directory, read_json
from .scoring import AudioInput, Decision, EmbedderBase

UNKNOWN = "unknown"
#: How a class is scored against a query: cosine to the class's mean embedding ("mean"), to its best
#: exemplar ("max"), or the mean of its ``TOPK`` best exemplars ("topk"). See the README for the measurement.
SCORINGS = ("mean", "max", "topk")
TOPK = 3


@dataclass(frozen=True)
class Match:
    label: str
    score: float
    probability: float


@dataclass(frozen=True)
class Identification:
    """Best classes for one clip; ``label`` is the top class, or ``unknown`` if none clears the threshold."""

    clip: str
    label: str
    score: float
    matches: list[Match] = field(default_factory=list)


def class_scores(query: np.ndarray, emb: np.ndarray, labels: np.ndarray, classes: list[str],
                 scoring: str, distance: str) -> np.ndarray:
    """``(n_queries, n_classes)`` scores, higher = more alike."""
    if distance == "cosine":
        sims = query @ emb.T
    else:
        sims = -np.sqrt(np.maximum(((query[:, None, :] - emb[None]) ** 2).sum(-1), 1e-7))
    out = np.empty((len(query), len(classes)), dtype=np.float64)
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == name)
        if scoring == "mean":
            if distance == "cosine":
                centre = emb[idx].mean(0)
                centre /= max(np.linalg.norm(centre), 1e-12)
                out[:, c] = query @ centre
            else:
                out[:, c] = -np.linalg.norm(query - emb[idx].mean(0), axis=-1)
        elif scoring == "max":
            out[:, c] = sims[:, idx].max(1)
        else:
            k = min(TOPK, len(idx))
            out[:, c] = np.sort(sims[:, idx], axis=1)[:, -k:].mean(1)
    return out


def load_verifier(model_dir: str | os.PathLike[str], runtime: str = "torch") -> EmbedderBase:
    """A model directory's verifier on the torch runtime, or on onnxruntime (no torch import)."""
    if runtime == "onnx":
        from .onnx_runtime import OnnxVerifier

        return OnnxVerifier.load(model_dir)
    from .verifier import Verifier

    return Verifier.load(model_dir)


class Gallery:
    """Enrolled classes for one model.

    >>> g = Gallery.create("gal", "models/dogs")        # doctest: +SKIP
    >>> g.enroll("dog", ["bark1.wav", "bark2.wav"])     # doctest: +SKIP
    >>> g.identify(["new.wav"])[0].label                # doctest: +SKIP
    'dog'
    """

    def __init__(self, path: str | os.PathLike[str], verifier: EmbedderBase, *, scoring: str = "mean",
                 threshold: float | None = None, threshold_rule: str | None = None) -> None:
        if scoring not in SCORINGS:
            raise GalleryError(f"scoring {scoring!r} is not one of {', '.join(SCORINGS)}")
        self.path = Path(path)
        self.verifier = verifier
        self.scoring = scoring
        self.threshold = verifier.threshold if threshold is None else float(threshold)
        self.threshold_rule = threshold_rule or verifier.meta.get("threshold_rule", "eer")
        self.embeddings = np.zeros((0, 0), dtype=np.float32)
        self.labels: list[str] = []
        self.paths: list[str] = []

    # -- persistence --------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], model_dir: str | os.PathLike[str], **kw: Any) -> Gallery:
        from .verifier import Verifier

        v = Verifier.load(model_dir)
        g = cls(path, v, **kw)
        if (Path(path) / "gallery.json").exists():
            raise GalleryError(f"{path}: a gallery already exists here")
        return g

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, model_dir: str | os.PathLike[str] | None = None,
             runtime: str = "torch") -> Gallery:
        """Open a gallery; its model is loaded from the directory it records (or ``model_dir``)
        with the torch or onnx runtime, and must have the fingerprint the gallery was made with."""
        p = Path(path)
        if not (p / "gallery.json").is_file():
            raise GalleryError(f"{p}: no gallery here (missing gallery.json)")
        try:
            meta = read_json(p / "gallery.json")
            emb = np.load(p / "embeddings.npy", allow_pickle=False)
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise GalleryError(f"{p}: corrupt gallery ({exc})") from None
        mdir = Path(model_dir) if model_dir else Path(meta["model_dir"])
        v = load_verifier(mdir, runtime)
        if v.fingerprint != meta["model_fingerprint"]:
            raise GalleryError(f"{p}: made with model {meta['model_fingerprint']}, but {mdir} is model "
                               f"{v.fingerprint}; enroll again into a new gallery")
        if len(emb) != len(meta["labels"]):
            raise GalleryError(f"{p}: corrupt gallery ({len(emb)} embeddings for {len(meta['labels'])} labels)")
        g = cls(p, v, scoring=meta.get("scoring", "mean"), threshold=meta["threshold"],
                threshold_rule=meta.get("threshold_rule"))
        g.embeddings, g.labels, g.paths = emb.astype(np.float32), list(meta["labels"]), list(meta["paths"])
        return g

    def save(self) -> None:
        meta = {"format": 1, "soundtwin_version": __version__, "model_dir": str(Path(self.verifier.model_dir or "").resolve()),
                "model_fingerprint": self.verifier.fingerprint, "scoring": self.scoring, "threshold": self.threshold,
                "threshold_rule": self.threshold_rule, "labels": self.labels, "paths": self.paths}
        buf = io.BytesIO()
        np.save(buf, self.embeddings if len(self.labels) else np.zeros((0, 1), np.float32), allow_pickle=False)
        with atomic_directory(self.path) as tmp:
            (tmp / "embeddings.npy").write_bytes(buf.getvalue())
            (tmp / "gallery.json").write_text(json.dumps(meta, indent=1) + "\n")

    def set_threshold(self, *, far: float | None = None) -> None:
        """Decision threshold at the model's held-out EER point, or at a target false-accept rate."""
        from .metrics import eer, threshold_at_far

        cal = Path(self.verifier.model_dir or "") / "calibration.npz"
        if not cal.is_file():
            raise GalleryError(f"{cal}: missing; the model has no held-out scores to set a threshold from")
        with np.load(cal, allow_pickle=False) as z:
            scores, labels = z["scores"], z["labels"]
        self.threshold = threshold_at_far(scores, labels, far) if far else eer(scores, labels)[1]
        self.threshold_rule = f"far={far}" if far else "eer"

    # -- contents -----------------------------------------------------------------------------
    @property
    def classes(self) -> dict[str, int]:
        """Enrolled classes and their number of clips."""
        out: dict[str, int] = {}
        for lab in self.labels:
            out[lab] = out.get(lab, 0) + 1
        return dict(sorted(out.items()))

    def add_embeddings(self, label: str, emb: np.ndarray, paths: Sequence[str]) -> None:
        if not label or label == UNKNOWN or "\n" in label:
            raise GalleryError(f"invalid class label {label!r}")
        emb = np.atleast_2d(emb).astype(np.float32)
        self.embeddings = emb if not self.labels else np.concatenate([self.embeddings, emb])
        self.labels += [label] * len(emb)
        self.paths += [str(p) for p in paths]

    def enroll(self, label: str, clips: Sequence[AudioInput], *, save: bool = True) -> int:
        """Embed ``clips`` and add them under ``label``; returns the number added."""
        if not clips:
            raise GalleryError(f"no clips to enroll for {label!r}")
        emb = self.verifier.embed(list(clips))
        self.add_embeddings(label, emb, [c if not isinstance(c, tuple) else "<array>" for c in clips])
        if save:
            self.save()
        return len(emb)

    def remove(self, label: str, *, save: bool = True) -> int:
        keep = [k for k, lab in enumerate(self.labels) if lab != label]
        n = len(self.labels) - len(keep)
        if n == 0:
            raise GalleryError(f"{self.path}: no class {label!r} (classes: {', '.join(self.classes) or 'none'})")
        self.embeddings = self.embeddings[keep]
        self.labels = [self.labels[k] for k in keep]
        self.paths = [self.paths[k] for k in keep]
        if save:
            self.save()
        return n

    # -- recognition --------------------------------------------------------------------------
    def _require(self) -> None:
        if not self.labels:
            raise GalleryError(f"{self.path}: the gallery is empty; enroll some clips first")

    def scores(self, emb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``(n_queries, n_classes)`` class scores for embeddings, and the class names."""
        self._require()
        names = list(self.classes)
        return class_scores(np.atleast_2d(emb), self.embeddings, np.array(self.labels), names, self.scoring,
                            self.verifier.cfg.model.distance), names

    def identify_embeddings(self, emb: np.ndarray, names: Sequence[str], top: int = 3) -> list[Identification]:
        s, classes = self.scores(emb)
        out = []
        for q in range(len(s)):
            order = np.argsort(-s[q])[: max(1, top)]
            matches = [Match(classes[c], float(s[q, c]), float(self.verifier.probability(s[q, c]))) for c in order]
            best = matches[0]
            out.append(Identification(str(names[q]), best.label if best.score >= self.threshold else UNKNOWN,
                                      best.score, matches))
        return out

    def identify(self, clips: Sequence[AudioInput], top: int = 3) -> list[Identification]:
        """The ``top`` best classes of each clip; ``unknown`` when none clears the threshold (open set)."""
        self._require()
        return self.identify_embeddings(self.verifier.embed(list(clips)), [str(c) if not isinstance(c, tuple) else "<array>" for c in clips], top)

    def verify(self, label: str, clips: Sequence[AudioInput]) -> list[Decision]:
        """Is each clip of class ``label``? One decision per clip, against that class alone."""
        if label not in self.classes:
            raise GalleryError(f"{self.path}: no class {label!r} (classes: {', '.join(self.classes) or 'none'})")
        s, classes = self.scores(self.verifier.embed(list(clips)))
        col = s[:, classes.index(label)]
        return [Decision(float(x), self.threshold, bool(x >= self.threshold), float(self.verifier.probability(x)))
                for x in col]
