"""What every verifier shares, torch-free: embedding inputs, scores, decisions, calibration.

:class:`~soundtwin.verifier.Verifier` (torch) and :class:`~soundtwin.onnx_runtime.OnnxVerifier`
(onnxruntime) differ only in how they turn features into embeddings (``embed_features``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import ExperimentConfig
from .metrics import logistic

AudioInput = str | os.PathLike | tuple[np.ndarray, int]


@dataclass(frozen=True)
class Decision:
    """Outcome of one verification trial."""

    score: float
    threshold: float
    same: bool
    probability: float
    warnings: tuple[str, ...] = ()  # e.g. a clip shorter than the model was trained on


def clip_name(clip: AudioInput, k: int = 0) -> str:
    """How a clip is named in messages: its path, or ``signal k`` for an in-memory one."""
    return f"signal {k}" if isinstance(clip, tuple) else str(clip)


def score_embeddings(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """Row-wise scores, higher = more alike: cosine similarity of unit vectors, or minus the Euclidean distance."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if distance == "cosine":
        return np.sum(a * b, axis=-1)
    return -np.sqrt(np.maximum(np.sum((a - b) ** 2, axis=-1), 1e-7))


#: A clip longer than this many frames (60 s at a 10 ms hop) is embedded in windows of this length
#: (half overlapping), whose unit embeddings are averaged: memory stays bounded for hour-long input.
MAX_EMBED_FRAMES = 6000


def window_starts(n_frames: int, width: int) -> list[int]:
    """Starts of half-overlapping windows of ``width`` frames covering ``n_frames`` (the last one flush)."""
    starts = list(range(0, n_frames - width + 1, width // 2))
    if starts[-1] + width < n_frames:
        starts.append(n_frames - width)
    return starts


class EmbedderBase:
    """Shared behaviour; subclasses implement :meth:`embed_features`."""

    def __init__(self, cfg: ExperimentConfig, *, threshold: float = 0.0, calibration: tuple[float, float] = (1.0, 0.0),
                 meta: dict[str, Any] | None = None, cache_dir: str | os.PathLike[str] | None | bool = None) -> None:
        self.cfg = cfg
        self.threshold = float(threshold)
        self.calibration = (float(calibration[0]), float(calibration[1]))
        self.meta: dict[str, Any] = dict(meta or {})
        from .extract import FeatureExtractor  # (decoders: imported when a model is loaded)

        self.extractor = FeatureExtractor(cfg.features, cache_dir=cache_dir)
        self.model_dir: Path | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies the exact weights and config; galleries record it to refuse other models."""
        return str(self.meta["fingerprint"])

    def embed_features(self, feats: Sequence[np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def probability(self, score: float | np.ndarray) -> np.ndarray | float:
        """Calibrated probability that a trial with this score is genuine (prior 0.5)."""
        p = logistic(score, *self.calibration)
        return float(p) if np.ndim(p) == 0 else p

    def features(self, clip: AudioInput) -> np.ndarray:
        if isinstance(clip, tuple):
            y, sr = clip
            return self.extractor.from_signal(np.asarray(y), int(sr))
        return self.extractor.from_file(clip)

    def features_of(self, clips: Sequence[AudioInput]) -> list[np.ndarray]:
        """Feature matrices of paths or ``(signal, sample_rate)`` tuples, in order."""
        paths = [c for c in clips if not isinstance(c, tuple)]
        from_files = iter(self.extractor.from_files(paths)[0]) if paths else iter(())
        return [self.features(c) if isinstance(c, tuple) else next(from_files) for c in clips]  # type: ignore[misc]

    def embed(self, clips: AudioInput | Sequence[AudioInput]) -> np.ndarray:
        """Embeddings ``(n_clips, dim)`` of paths or ``(signal, sample_rate)`` tuples (one clip -> ``(1, dim)``)."""
        if isinstance(clips, (str, os.PathLike, tuple)):
            clips = [clips]
        return self.embed_features(self.features_of(clips))

    @property
    def min_seconds(self) -> float:
        """The shortest clip this model was trained to judge (its shortest training crop), in seconds."""
        return float(self.cfg.train.crop_min_s)

    def short_clip_warnings(self, feats: Sequence[np.ndarray], names: Sequence[str]) -> list[str]:
        """A warning for each clip shorter than :attr:`min_seconds` (models on fixed-length features,
        such as the tutorial's, are not checked: their features do not tell the clip's length)."""
        f = self.cfg.features
        if f.max_frames:
            return []
        out = []
        for feat, name in zip(feats, names):
            seconds = (feat.shape[-1] - 1) * f.hop_length * max(1, f.decimate) / f.sample_rate
            if seconds < self.min_seconds:
                out.append(f"{name}: {seconds:.2f} s is shorter than the {self.min_seconds:g} s this model was "
                           f"trained on; its score is unreliable")
        return out

    def score_embeddings(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return score_embeddings(a, b, self.cfg.model.distance)

    def score(self, a: AudioInput, b: AudioInput) -> float:
        e = self.embed([a, b])
        return float(self.score_embeddings(e[0], e[1])[0])

    def decide(self, score: float) -> Decision:
        return Decision(score=float(score), threshold=self.threshold, same=bool(score >= self.threshold),
                        probability=float(self.probability(score)))

    def verify(self, a: AudioInput, b: AudioInput) -> Decision:
        """Score two clips and decide same/different at the stored threshold; ``warnings`` says when a
        clip is too short to judge."""
        feats = self.features_of([a, b])
        e = self.embed_features(feats)
        d = self.decide(float(self.score_embeddings(e[0], e[1])[0]))
        names = [clip_name(c, k) for k, c in enumerate((a, b))]
        return replace(d, warnings=tuple(self.short_clip_warnings(feats, names)))
