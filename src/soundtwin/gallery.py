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
from .index import EXACT_MAX
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
        self.far: float | None = None  # operating point: None = EER point, else target false-accept rate
        self.exact_max = EXACT_MAX
        self._index: tuple[Any, np.ndarray] | None = None  # built lazily for large galleries

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
        g.far = meta.get("far")
        return g

    def save(self) -> None:
        meta = {"format": 1, "soundtwin_version": __version__, "model_dir": str(Path(self.verifier.model_dir or "").resolve()),
                "model_fingerprint": self.verifier.fingerprint, "scoring": self.scoring, "threshold": self.threshold,
                "threshold_rule": self.threshold_rule, "far": self.far, "labels": self.labels, "paths": self.paths}
        buf = io.BytesIO()
        np.save(buf, self.embeddings if len(self.labels) else np.zeros((0, 1), np.float32), allow_pickle=False)
        with atomic_directory(self.path) as tmp:
            (tmp / "embeddings.npy").write_bytes(buf.getvalue())
            (tmp / "gallery.json").write_text(json.dumps(meta, indent=1) + "\n")

    def enrolled_trials(self, max_queries: int = 2000) -> tuple[np.ndarray, np.ndarray] | None:
        """Leave-one-out trials on the enrolled clips, scored the way queries are: each clip against its own
        class without it (genuine) and against every other class (impostor); at most ``max_queries`` clips
        (seeded sample). ``None`` unless there are two or more classes, every class has two or more clips,
        and the gallery is small enough to search exactly."""
        counts = self.classes
        if len(counts) < 2 or min(counts.values()) < 2 or len(self.labels) > self.exact_max:
            return None
        names = list(counts)
        lab = np.searchsorted(names, self.labels)  # names are sorted
        emb = self.embeddings.astype(np.float64)
        n = len(lab)
        q = np.arange(n) if n <= max_queries else np.sort(np.random.default_rng(0).choice(n, max_queries, replace=False))
        genuine = (lab[q][:, None] == np.arange(len(names))[None, :]).astype(np.int64)
        if self.scoring == "mean" and self.verifier.cfg.model.distance == "cosine":
            sums = np.zeros((len(names), emb.shape[1]))
            np.add.at(sums, lab, emb)
            unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # noqa: E731
            scores = emb[q] @ unit(sums).T
            own = unit(sums[lab[q]] - emb[q])  # own class without the query clip
            scores[np.arange(len(q)), lab[q]] = np.sum(emb[q] * own, axis=1)
        else:
            labels = np.array(self.labels)
            scores = np.empty((len(q), len(names)))
            for k, i in enumerate(q[:500]):
                keep = np.arange(n) != i
                scores[k] = class_scores(self.embeddings[i:i + 1], self.embeddings[keep], labels[keep], names,
                                         self.scoring, self.verifier.cfg.model.distance)[0]
            scores, genuine = scores[: min(len(q), 500)], genuine[: min(len(q), 500)]
        return scores.ravel(), genuine.ravel()

    def recalibrate(self) -> None:
        """Re-derive the threshold at the gallery's operating point (``self.far``) after a change."""
        if self.labels:
            self.set_threshold(far=self.far)

    def set_threshold(self, *, far: float | None = None, source: str = "auto") -> None:
        """Set the decision threshold at the EER point, or at a target false-accept rate, of held-out trials.

        ``source``: ``"gallery"`` (leave-one-out trials on the enrolled clips, scored as queries are, so the
        threshold fits class scoring), ``"model"`` (the model's held-out pair trials), or ``"auto"``
        (gallery when it has at least two classes of two clips or more, else model)."""
        from .metrics import eer, threshold_at_far

        trials = self.enrolled_trials() if source in ("auto", "gallery") else None
        if trials is None and source == "gallery":
            raise GalleryError(f"{self.path}: gallery calibration needs two classes with two or more clips each")
        if trials is None:
            cal = Path(self.verifier.model_dir or "") / "calibration.npz"
            if not cal.is_file():
                raise GalleryError(f"{cal}: missing; the model has no held-out scores to set a threshold from")
            with np.load(cal, allow_pickle=False) as z:
                trials = (z["scores"], z["labels"])
            origin = "model"
        else:
            origin = "gallery"
        scores, labels = trials
        self.far = far
        self.threshold = threshold_at_far(scores, labels, far) if far else eer(scores, labels)[1]
        self.threshold_rule = f"{origin} far={far}" if far else f"{origin} eer"

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
        self._index = None
        self.labels += [label] * len(emb)
        self.paths += [str(p) for p in paths]

    def enroll(self, label: str, clips: Sequence[AudioInput], *, save: bool = True, recalibrate: bool = True) -> int:
        """Embed ``clips`` and add them under ``label``; returns the number added. The threshold is
        re-derived unless ``recalibrate=False`` (then call :meth:`recalibrate` after a batch of enrollments)."""
        if not clips:
            raise GalleryError(f"no clips to enroll for {label!r}")
        emb = self.verifier.embed(list(clips))
        self.add_embeddings(label, emb, [c if not isinstance(c, tuple) else "<array>" for c in clips])
        if recalibrate:
            self.recalibrate()
        if save:
            self.save()
        return len(emb)

    def remove(self, label: str, *, save: bool = True) -> int:
        keep = [k for k, lab in enumerate(self.labels) if lab != label]
        n = len(self.labels) - len(keep)
        if n == 0:
            raise GalleryError(f"{self.path}: no class {label!r} (classes: {', '.join(self.classes) or 'none'})")
        self.embeddings = self.embeddings[keep]
        self._index = None
        self.labels = [self.labels[k] for k in keep]
        self.paths = [self.paths[k] for k in keep]
        self.recalibrate()
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

    def _search_table(self) -> tuple[Any, np.ndarray]:
        """(index, row labels) for large galleries: class centroids for "mean", exemplars otherwise."""
        if self._index is None:
            from .index import build_index

            labels = np.array(self.labels)
            if self.scoring == "mean":
                names = np.array(list(self.classes))
                cent = np.stack([self.embeddings[labels == n].mean(0) for n in names])
                cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
                self._index = (build_index(cent, exact_max=self.exact_max), names)
            else:
                self._index = (build_index(self.embeddings, exact_max=self.exact_max), labels)
        return self._index

    def top_classes(self, emb: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
        """The ``top`` best ``(class, score)`` of each query embedding, best first.

        Galleries of up to ``exact_max`` rows (exemplars, or classes with "mean" scoring) are scored
        exactly; larger ones (cosine only) through an approximate index (see :mod:`soundtwin.index`)."""
        self._require()
        emb = np.atleast_2d(emb)
        rows = len(self.classes) if self.scoring == "mean" else len(self.labels)
        if rows <= self.exact_max or self.verifier.cfg.model.distance != "cosine":
            s, names = self.scores(emb)
            order = np.argsort(-s, axis=1)[:, :top]
            return [[(names[c], float(s[q, c])) for c in order[q]] for q in range(len(s))]
        index, row_labels = self._search_table()
        k = top if self.scoring == "mean" else min(len(self.labels), max(10 * top, 50))
        sc, ids = index.search(emb.astype(np.float32), k)
        out = []
        for q in range(len(emb)):
            best: dict[str, float] = {}
            for s_, i in zip(sc[q], ids[q]):
                if i >= 0 and row_labels[i] not in best:
                    best[str(row_labels[i])] = float(s_)
            out.append(sorted(best.items(), key=lambda kv: -kv[1])[:top])
        return out

    def identify_embeddings(self, emb: np.ndarray, names: Sequence[str], top: int = 3) -> list[Identification]:
        out = []
        for q, found in enumerate(self.top_classes(emb, max(1, top))):
            matches = [Match(label, score, float(self.verifier.probability(score))) for label, score in found]
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
