"""Galleries: enrolled embeddings with labels, for identification, verification and scanning.

A gallery directory holds ``gallery.json`` (labels, source paths, the model's directory and
fingerprint, the decision threshold) and ``embeddings.npy`` (``(n, dim)`` float32). It is rewritten
atomically on every change, so an interrupted enrollment leaves the previous gallery intact.
Clips are always embedded by the gallery's own model; another model is refused.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .distance import SCORINGS, unit
from .encoders import embedding_width
from .errors import GalleryError, ModelError
from .index import EXACT_MAX
from .io import load_npy, read_json
from .metrics import calibrate, logistic
from .runtime import load_verifier
from .runtime.base import AudioInput, Decision, EmbedderBase, clip_name
from .runtime.modeldir import read_calibration
from .store import StoreError, check_writable, locked, new_version, read_version, version_dir

UNKNOWN = "unknown"
#: Seconds a writer waits for another process's enrollment into the same gallery before giving up.
LOCK_TIMEOUT = 60.0


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


#: A class label: 1-64 characters without control characters or slashes, not blank-edged, not only dots,
#: and not ``unknown``. Labels are data in ``gallery.json``, never file names; the rule keeps them
#: printable and unambiguous in the CLI's tab-separated output and in URLs.
LABEL_RE = re.compile(r"^(?!\s)(?!\.+$)[^\x00-\x1f\x7f/\\]{1,64}(?<!\s)$")


def check_label(label: str) -> str:
    """``label`` if it is a valid class label, else :class:`GalleryError` naming it."""
    if not isinstance(label, str) or not LABEL_RE.match(label) or label == UNKNOWN:
        raise GalleryError(f"invalid class label {label!r}: 1-64 printable characters without slashes, "
                           f"not only dots, not {UNKNOWN!r}")
    return label


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
        self.calibration: tuple[float, float] | None = None  # the gallery's own probability map (a, b)
        self.expected: dict[str, Any] | None = None  # rates expected at the threshold on its trials
        self.exact_max = EXACT_MAX
        self._index: tuple[Any, np.ndarray] | None = None  # built lazily for large galleries

    # -- persistence --------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], model_dir: str | os.PathLike[str], *, runtime: str = "auto",
               device: Any = "cpu", **kw: Any) -> Gallery:
        """A new, empty gallery for a model (written on the first enrollment). ``path`` must be new,
        empty, or hold nothing but soundtwin's own files (never a folder of your clips)."""
        if check_writable(path, "gallery") == "existing":
            raise GalleryError(f"{path}: a gallery already exists here")
        return cls(path, load_verifier(model_dir, runtime, device=device), **kw)

    @staticmethod
    def read_files(p: Path, vd: Path) -> tuple[dict[str, Any], np.ndarray]:
        """``(gallery.json, embeddings)`` of gallery ``p`` from its version folder ``vd``, checked."""
        try:
            meta = read_json(vd / "gallery.json")
            emb = load_npy(vd / "embeddings.npy")
        except FileNotFoundError:
            raise
        except (OSError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GalleryError(f"{p}: corrupt gallery ({exc})") from None
        problem = None
        if not isinstance(meta, dict):
            problem = "gallery.json is not an object"
        elif not isinstance(meta.get("model_fingerprint"), str) or not meta["model_fingerprint"]:
            problem = "no model fingerprint"
        elif not isinstance(meta.get("labels"), list) or not all(isinstance(x, str) and x for x in meta["labels"]):
            problem = "labels are not a list of names"
        elif not isinstance(meta.get("paths"), list) or len(meta["paths"]) != len(meta["labels"]):
            problem = "paths do not match labels"
        elif isinstance(meta.get("threshold"), bool) or not isinstance(meta.get("threshold"), (int, float)) \
                or not np.isfinite(meta["threshold"]):
            problem = f"threshold is {meta.get('threshold')!r}"
        elif emb.ndim != 2 or not np.issubdtype(emb.dtype, np.floating):
            problem = f"embeddings of shape {emb.shape} and type {emb.dtype}"
        elif len(emb) != len(meta["labels"]):
            problem = f"{len(emb)} embeddings for {len(meta['labels'])} labels"
        elif len(emb) and not np.all(np.isfinite(emb)):
            problem = "non-finite embeddings"
        if problem:
            raise GalleryError(f"{p}: corrupt gallery ({problem})")
        return meta, emb

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, model_dir: str | os.PathLike[str] | None = None,
             runtime: str = "auto", device: Any = "cpu") -> Gallery:
        """Open a gallery; its model is loaded from the directory it records (or ``model_dir``)
        with the torch or onnx runtime, and must have the fingerprint the gallery was made with."""
        p = Path(path)
        if not (version_dir(p) / "gallery.json").is_file():  # (puts back a swap the 0.1 code left half done)
            raise GalleryError(f"{p}: no gallery here (missing gallery.json)")
        meta, emb = read_version(p, lambda vd: cls.read_files(p, vd))
        mdir = Path(model_dir) if model_dir else Path(str(meta.get("model_dir", "")))
        v = load_verifier(mdir, runtime, device=device)
        g = cls(p, v, scoring=meta.get("scoring", "mean"), threshold=meta["threshold"],
                threshold_rule=meta.get("threshold_rule"))
        g._adopt(meta, emb)
        return g

    def _adopt(self, meta: dict[str, Any], emb: np.ndarray, *, settings: bool = True) -> None:
        """Take the contents read from disk (checked against this gallery's model); with ``settings``
        also its scoring, threshold and operating point (a reload keeps this object's own)."""
        # made with this built-in before it subtracted its centre: the stored (unit) embeddings become
        # today's exactly once centred, and the threshold is set again on them
        stale = meta["model_fingerprint"] == self.verifier.meta.get("uncentred_fingerprint")
        if self.verifier.fingerprint != meta["model_fingerprint"] and not stale:
            raise GalleryError(f"{self.path}: made with model {meta['model_fingerprint']}, but "
                               f"{self.verifier.builtin or self.verifier.model_dir} is model "
                               f"{self.verifier.fingerprint}; enroll again into a new gallery")
        width = embedding_width(self.verifier.cfg)
        if len(emb) and emb.shape[1] != width:
            raise GalleryError(f"{self.path}: corrupt gallery (embeddings of dimension {emb.shape[1]}, the model "
                               f"gives {width})")
        if stale and len(emb):
            emb = self.verifier.centred(emb.astype(np.float32))
        self.embeddings = emb.astype(np.float32) if len(meta["labels"]) else np.zeros((0, 0), np.float32)
        self.labels, self.paths = list(meta["labels"]), [str(x) for x in meta["paths"]]
        self._index = None
        if settings:
            self.scoring = meta.get("scoring", self.scoring)
            self.threshold, self.threshold_rule = float(meta["threshold"]), meta.get("threshold_rule")
            self.far = meta.get("far")
            cal = meta.get("calibration")
            self.calibration = (float(cal["a"]), float(cal["b"])) if isinstance(cal, dict) else None
            self.expected = meta.get("expected")
        if stale and self.labels:
            self.recalibrate()  # (in memory; written with the new fingerprint at the next save)

    def reload(self) -> None:
        """Re-read the enrolled clips from disk (another process may have changed them); this object's
        scoring and operating point stay. A gallery not yet written stays as it is."""
        if (version_dir(self.path) / "gallery.json").is_file():
            meta, emb = read_version(self.path, lambda vd: self.read_files(self.path, vd))
            self._adopt(meta, emb, settings=False)

    def copy(self) -> Gallery:
        """An independent copy sharing the model (for copy-on-write updates in the server)."""
        g = Gallery(self.path, self.verifier, scoring=self.scoring, threshold=self.threshold,
                    threshold_rule=self.threshold_rule)
        g.embeddings, g.labels, g.paths, g.far = self.embeddings, list(self.labels), list(self.paths), self.far
        g.calibration, g.expected = self.calibration, self.expected
        g.exact_max = self.exact_max
        return g

    def save(self) -> None:
        """Write the gallery as a new version (atomic; see :mod:`soundtwin.store`). Callers changing a
        gallery another process may also change use :meth:`transaction`."""
        model = self.verifier.builtin or str(Path(self.verifier.model_dir or "").resolve())  # a built-in by name
        meta = {"format": 1, "soundtwin_version": __version__, "model_dir": model,
                "model_fingerprint": self.verifier.fingerprint, "scoring": self.scoring, "threshold": self.threshold,
                "threshold_rule": self.threshold_rule, "far": self.far, "expected": self.expected,
                "calibration": None if self.calibration is None else {"a": self.calibration[0], "b": self.calibration[1]},
                "labels": self.labels, "paths": self.paths}
        buf = io.BytesIO()
        np.save(buf, self.embeddings if len(self.labels) else np.zeros((0, 1), np.float32), allow_pickle=False)
        try:
            with new_version(self.path, "gallery", timeout=LOCK_TIMEOUT) as tmp:
                (tmp / "embeddings.npy").write_bytes(buf.getvalue())
                (tmp / "gallery.json").write_text(json.dumps(meta, indent=1) + "\n")
        except StoreError as exc:
            raise GalleryError(str(exc)) from None
        except OSError as exc:
            raise GalleryError(f"{self.path}: cannot save the gallery ({exc.strerror or exc}); nothing was "
                               f"changed") from None

    @contextlib.contextmanager
    def transaction(self, timeout: float = LOCK_TIMEOUT) -> Iterator[Gallery]:
        """Change the gallery with no update lost to another process: take its lock, re-read it from
        disk, let the body change it, recalibrate and save; all under the lock.

        >>> with g.transaction():                        # doctest: +SKIP
        ...     g.add_embeddings("dog", emb, paths)
        """
        try:
            check_writable(self.path, "gallery")
            with locked(self.path, timeout=timeout, purpose="enrolling"):
                self.reload()
                yield self
                self.recalibrate()
                self.save()
        except StoreError as exc:
            raise GalleryError(str(exc)) from None
        except OSError as exc:
            raise GalleryError(f"{self.path}: cannot save the gallery ({exc.strerror or exc}); nothing was "
                               f"changed") from None

    def enrolled_trials(self, max_queries: int = 2000) -> tuple[np.ndarray, np.ndarray] | None:
        """Leave-one-out trials on the enrolled clips, scored the way queries are: each clip against its own
        class without it (genuine) and against every other class (impostor); at most ``max_queries`` clips
        (seeded sample). A clip of a class enrolled with one clip has no genuine trial (its class is empty
        without it) but still gives impostor trials. ``None`` unless there are two or more classes, at least
        one with two or more clips, and the gallery is small enough to search exactly."""
        m = self._enrolled_matrix(max_queries)
        if m is None:
            return None
        scores, genuine, usable = m
        return scores[usable], genuine[usable]

    def open_set_trials(self, max_queries: int = 2000) -> tuple[np.ndarray, np.ndarray] | None:
        """The trials an open-set threshold is set on: each enrolled clip, left out, is a query whose own
        class is either enrolled (genuine: its score against its own class without it) or not (impostor:
        its best score against every *other* class, what a sound of no enrolled class has to beat to be
        taken for one). So the false-accept rate here is the rate at which a sound of a class nobody
        enrolled is answered with a class instead of ``unknown``. ``None`` as for :meth:`enrolled_trials`."""
        m = self._enrolled_matrix(max_queries)
        if m is None:
            return None
        scores, genuine, usable = m
        own = usable.all(axis=1)  # rows of a class with two clips or more
        best_other = np.where(genuine == 1, -np.inf, scores).max(axis=1)
        gen = (scores * genuine).sum(axis=1)[own]
        return np.concatenate([gen, best_other]), np.concatenate([np.ones(len(gen)), np.zeros(len(best_other))])

    def _enrolled_matrix(self, max_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(scores, genuine, usable)``, each ``(queries, classes)``: leave-one-out class scores of enrolled
        clips, which column is the clip's own class, and which entries are trials (not the own column of a
        one-clip class)."""
        counts = self.classes
        if len(counts) < 2 or max(counts.values()) < 2 or len(self.labels) > self.exact_max:
            return None
        names = list(counts)
        lab = np.searchsorted(names, self.labels)  # names are sorted
        emb = self.embeddings.astype(np.float64)
        n = len(lab)
        q = np.arange(n) if n <= max_queries else np.sort(np.random.default_rng(0).choice(n, max_queries, replace=False))
        genuine = (lab[q][:, None] == np.arange(len(names))[None, :]).astype(np.int64)
        if self.scoring == "mean" and self.verifier.distance.name == "cosine":
            sums = np.zeros((len(names), emb.shape[1]))
            np.add.at(sums, lab, emb)
            scores = emb[q] @ unit(sums).T
            own = unit(sums[lab[q]] - emb[q])  # own class without the query clip
            scores[np.arange(len(q)), lab[q]] = np.sum(emb[q] * own, axis=1)
        else:
            labels = np.array(self.labels)
            scores = np.empty((len(q), len(names)))
            for k, i in enumerate(q[:500]):
                keep = np.arange(n) != i
                with warnings.catch_warnings():  # (a singleton's own class is empty without it: masked below)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    scores[k] = self.verifier.distance.class_scores(
                        self.embeddings[i:i + 1], self.embeddings[keep], labels[keep], names, self.scoring)[0]
            q, scores, genuine = q[:500], scores[: min(len(q), 500)], genuine[: min(len(q), 500)]
        sizes = np.array([counts[c] for c in names])
        usable = ~((genuine == 1) & (sizes[lab[q]] < 2)[:, None])  # no genuine trial from a one-clip class
        return scores, genuine, usable

    def recalibrate(self) -> None:
        """Re-derive the threshold at the gallery's operating point (``self.far``) after a change."""
        if self.labels:
            self.set_threshold(far=self.far)

    def set_threshold(self, *, far: float | None = None, source: str = "auto") -> None:
        """Set the decision threshold at the EER point, or at a target false-accept rate, of held-out trials,
        and the probability map.

        ``source``: ``"gallery"`` (:meth:`open_set_trials`: leave-one-out trials on the enrolled clips, scored
        as queries are, where a clip whose class is left out stands for a sound of no enrolled class; so
        ``far`` is the rate at which such a sound is named as a class instead of ``unknown``), ``"model"`` (the
        model's held-out pair trials), or ``"auto"`` (gallery when it has two classes or more, one of them
        with two clips or more, else model)."""
        trials = self.open_set_trials() if source in ("auto", "gallery") else None
        if trials is None and source == "gallery":
            raise GalleryError(f"{self.path}: gallery calibration needs two classes, one of them with two or more clips")
        if trials is None and self.verifier.builtin and not far:  # a built-in model: its shipped threshold
            self.far, self.threshold, self.calibration, self.expected = None, self.verifier.threshold, None, None
            self.threshold_rule = f"model {self.verifier.meta.get('threshold_rule', 'eer')} (built-in)"
            return
        if trials is None:
            try:
                trials = read_calibration(self.verifier.model_dir or "")
            except ModelError as exc:
                raise GalleryError(f"{exc}; the model has no held-out scores to set a threshold from") from None
            origin = "model"
        else:
            origin = "gallery open-set"
        scores, labels = trials
        cal = calibrate(scores, labels, far)
        self.far, self.threshold = far, cal["threshold"]
        self.threshold_rule = f"{origin} {cal['threshold_rule']}"
        # the gallery's own probability map where it has its own trials; else the model's
        self.calibration = (cal["calibration"]["a"], cal["calibration"]["b"]) if origin != "model" else None
        self.expected = cal["expected"]

    def probability(self, score: float | np.ndarray) -> np.ndarray | float:
        """Probability that a clip with this score against a class is of that class: from the gallery's own
        open-set trials where it has them, else the model's calibration."""
        if self.calibration is None:
            return self.verifier.probability(score)
        p = logistic(score, *self.calibration)
        return float(p) if np.ndim(p) == 0 else p

    def card(self) -> dict[str, Any]:
        """How the gallery decides: classes, threshold and how it was set, and the rates expected there
        (``far``: sounds of no enrolled class named as one; ``frr``: enrolled sounds answered ``unknown``)."""
        return {"classes": self.classes, "threshold": self.threshold, "threshold_rule": self.threshold_rule,
                "far": self.far, "scoring": self.scoring, "expected_at_threshold": self.expected,
                "probability": None if self.calibration is None else
                {"a": self.calibration[0], "b": self.calibration[1]}}

    # -- contents -----------------------------------------------------------------------------
    @property
    def classes(self) -> dict[str, int]:
        """Enrolled classes and their number of clips."""
        out: dict[str, int] = {}
        for lab in self.labels:
            out[lab] = out.get(lab, 0) + 1
        return dict(sorted(out.items()))

    def add_embeddings(self, label: str, emb: np.ndarray, paths: Sequence[str]) -> None:
        check_label(label)
        emb = np.atleast_2d(emb).astype(np.float32)
        if not np.all(np.isfinite(emb)):
            bad = [str(p) for p, row in zip(paths, emb) if not np.all(np.isfinite(row))]
            raise GalleryError(f"non-finite embedding for {', '.join(bad[:3])}: not enrolled")
        self.embeddings = emb if not self.labels else np.concatenate([self.embeddings, emb])
        self._index = None
        self.labels = self.labels + [label] * len(emb)
        self.paths = self.paths + [str(p) for p in paths]

    def enroll(self, label: str, clips: Sequence[AudioInput], *, save: bool = True, recalibrate: bool = True) -> int:
        """Embed ``clips`` and add them under ``label``; returns the number added.

        With ``save`` (the default) the addition is one :meth:`transaction`: the gallery is re-read
        under its lock, so enrollments by other processes in the meantime are kept. ``save=False``
        only changes this object (then call :meth:`recalibrate` and :meth:`save`, or use a transaction)."""
        if not clips:
            raise GalleryError(f"no clips to enroll for {label!r}")
        check_label(label)
        emb = self.verifier.embed(list(clips))  # outside the lock: the slow part
        names = [c if not isinstance(c, tuple) else "<array>" for c in clips]
        if save:
            with self.transaction():
                self.add_embeddings(label, emb, names)
            return len(emb)
        self.add_embeddings(label, emb, names)
        if recalibrate:
            self.recalibrate()
        return len(emb)

    def remove(self, label: str, *, save: bool = True) -> int:
        """Remove a class; with ``save``, as one :meth:`transaction` (re-read under the lock)."""
        if save:
            with self.transaction():
                return self._remove(label)
        n = self._remove(label)
        self.recalibrate()
        return n

    def _remove(self, label: str) -> int:
        keep = [k for k, lab in enumerate(self.labels) if lab != label]
        n = len(self.labels) - len(keep)
        if n == 0:
            raise GalleryError(f"{self.path}: no class {label!r} (classes: {', '.join(self.classes) or 'none'})")
        self.embeddings = self.embeddings[keep]
        self._index = None
        self.labels = [self.labels[k] for k in keep]
        self.paths = [self.paths[k] for k in keep]
        return n

    # -- recognition --------------------------------------------------------------------------
    def _require(self) -> None:
        if not self.labels:
            raise GalleryError(f"{self.path}: the gallery is empty; enroll some clips first")

    def scores(self, emb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``(n_queries, n_classes)`` class scores for embeddings, and the class names."""
        self._require()
        names = list(self.classes)
        return self.verifier.distance.class_scores(emb, self.embeddings, self.labels, names, self.scoring), names

    @property
    def index_built(self) -> bool:
        """Whether an approximate index is in use (built on the first search of a large gallery)."""
        return self._index is not None

    def _search_table(self) -> tuple[Any, np.ndarray]:
        """(index, row labels) for large galleries: class centroids for "mean", exemplars otherwise."""
        if self._index is None:
            from .index import build_index

            labels = np.array(self.labels)
            if self.scoring == "mean":
                names = np.array(list(self.classes))
                cent = np.stack([self.verifier.distance.centroid(self.embeddings[labels == n]) for n in names])
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
        if rows <= self.exact_max or not self.verifier.distance.normalizes:
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

    def check_threshold(self, threshold: float | None) -> float:
        """The gallery's threshold, or ``threshold`` given for one call (checked as the model checks it)."""
        return self.threshold if threshold is None else self.verifier.check_threshold(threshold)

    def identify_embeddings(self, emb: np.ndarray, names: Sequence[str], top: int = 3, *,
                            threshold: float | None = None) -> list[Identification]:
        t = self.check_threshold(threshold)
        out = []
        for q, found in enumerate(self.top_classes(emb, max(1, top))):
            matches = [Match(label, score, float(self.probability(score))) for label, score in found]
            best = matches[0]
            out.append(Identification(str(names[q]), best.label if best.score >= t else UNKNOWN,
                                      best.score, matches))
        return out

    def identify(self, clips: Sequence[AudioInput], top: int = 3, *,
                 threshold: float | None = None) -> list[Identification]:
        """The ``top`` best classes of each clip; ``unknown`` when none clears the gallery's threshold, or
        ``threshold`` for this call (nothing is saved) (open set)."""
        self._require()
        self.check_threshold(threshold)  # before the slow part
        return self.identify_embeddings(self.verifier.embed(list(clips)),
                                        [str(c) if not isinstance(c, tuple) else "<array>" for c in clips], top,
                                        threshold=threshold)

    def verify(self, label: str, clips: Sequence[AudioInput], *, threshold: float | None = None) -> list[Decision]:
        """Is each clip of class ``label``? One decision per clip, against that class alone, at the gallery's
        threshold or ``threshold`` for this call (with a warning where a clip is too short to judge)."""
        if label not in self.classes:
            raise GalleryError(f"{self.path}: no class {label!r} (classes: {', '.join(self.classes) or 'none'})")
        t = self.check_threshold(threshold)
        feats = self.verifier.features_of(list(clips))
        s, classes = self.scores(self.verifier.embed_features(feats))
        col = s[:, classes.index(label)]
        out = []
        for k, (x, c) in enumerate(zip(col, clips)):
            warn = tuple(self.verifier.short_clip_warnings([feats[k]], [clip_name(c, k)]))
            out.append(Decision(float(x), t, bool(x >= t), float(self.probability(x)), warn))
        return out
