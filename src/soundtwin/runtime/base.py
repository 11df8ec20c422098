"""What every runtime shares, torch-free: inputs, batching, long clips, scores, decisions, calibration.

:class:`~soundtwin.runtime.torch_runtime.Verifier` (torch) and
:class:`~soundtwin.runtime.onnx_runtime.OnnxVerifier` (onnxruntime) differ only in how they run one
padded batch of features through the encoder (``embed_batch``); how clips are batched, padded and
windowed, and how embeddings are compared and decided on, is here, once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig
from ..distance import Distance, get_distance, unit
from ..errors import SoundtwinError
from ..metrics import logistic

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


#: A clip longer than this many frames (60 s at a 10 ms hop) is embedded in windows of this length
#: (half overlapping), whose unit embeddings are averaged: memory stays bounded for hour-long input.
MAX_EMBED_FRAMES = 6000


def window_starts(n_frames: int, width: int) -> list[int]:
    """Starts of half-overlapping windows of ``width`` frames covering ``n_frames`` (the last one flush)."""
    starts = list(range(0, n_frames - width + 1, width // 2))
    if starts[-1] + width < n_frames:
        starts.append(n_frames - width)
    return starts


def pad_batch(feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad ``(n_features, T_i)`` matrices to ``(batch, n_features, max T)`` float32; also return the
    lengths (int64). Features served from the cache are read-only views: they are copied here."""
    lengths = np.array([f.shape[-1] for f in feats], dtype=np.int64)
    out = np.zeros((len(feats), feats[0].shape[0], int(lengths.max())), dtype=np.float32)
    for k, f in enumerate(feats):
        out[k, :, : f.shape[-1]] = f
    return out, lengths


#: One batch holds at most this many clips, and at most this many frames (clips x longest clip).
MAX_BATCH = 128
MAX_BATCH_FRAMES = 32768

BatchFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def length_batches(lengths: Sequence[int], *, max_batch: int = MAX_BATCH,
                   max_frames: int = MAX_BATCH_FRAMES) -> list[np.ndarray]:
    """Clip indices in batches of similar length (shortest first): little padding, bounded memory. A clip
    over :data:`MAX_EMBED_FRAMES` frames is a batch of its own (it is embedded in windows)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_batch and lengths[order[end]] <= MAX_EMBED_FRAMES \
                and (end - start + 1) * lengths[order[end]] <= max_frames:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def embed_in_batches(feats: Sequence[np.ndarray], run: BatchFn, *, normalize: bool) -> np.ndarray:
    """Embed clips of any lengths: ``run(x (batch, n_features, T) float32, lengths (batch,) int64)`` gives a
    batch's embeddings (unit rows when ``normalize``). A clip over :data:`MAX_EMBED_FRAMES` frames is
    embedded in half-overlapping windows whose (unit) embeddings are averaged. ``(n_clips, width)`` float32."""
    if not feats:
        raise SoundtwinError("nothing to embed")
    out: list[np.ndarray] = [None] * len(feats)  # type: ignore[list-item]
    for idx in length_batches([f.shape[-1] for f in feats]):
        if feats[idx[0]].shape[-1] > MAX_EMBED_FRAMES:  # a long clip (alone in its batch)
            out[idx[0]] = _embed_long(feats[idx[0]], run, normalize)
            continue
        emb = run(*pad_batch([feats[i] for i in idx]))
        for k, i in enumerate(idx):
            out[i] = emb[k]
    return np.stack(out).astype(np.float32)


def _embed_long(feat: np.ndarray, run: BatchFn, normalize: bool) -> np.ndarray:
    w = MAX_EMBED_FRAMES
    starts = window_starts(feat.shape[-1], w)
    acc = sum(run(np.ascontiguousarray(feat[None, :, s0:s0 + w]), np.array([w], np.int64))[0] for s0 in starts)
    emb = acc / len(starts)  # type: ignore[operator]
    return unit(emb) if normalize else emb


class EmbedderBase:
    """Shared behaviour; a runtime implements :meth:`embed_batch` (and its loading)."""

    def __init__(self, cfg: ExperimentConfig, *, threshold: float = 0.0, calibration: tuple[float, float] = (1.0, 0.0),
                 meta: dict[str, Any] | None = None, cache_dir: str | os.PathLike[str] | None | bool = None) -> None:
        self.cfg = cfg
        self.threshold = float(threshold)
        self.calibration = (float(calibration[0]), float(calibration[1]))
        self.meta: dict[str, Any] = dict(meta or {})
        self.distance: Distance = get_distance(cfg.model.distance)
        from ..extractor import FeatureExtractor  # (decoders: imported when a model is loaded)

        self.extractor = FeatureExtractor(cfg.features, cache_dir=cache_dir)
        self.model_dir: Path | None = None
        self.builtin: str | None = None  # the name of a built-in model (soundtwin.pretrained), if it is one
        # a mean embedding to subtract before scoring (a built-in's, from its calibration data), or None
        self.centre: np.ndarray | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies the exact weights and config; galleries record it to refuse other models."""
        return str(self.meta["fingerprint"])

    def embed_batch(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Embeddings of one zero-padded batch (unit rows when the distance normalises)."""
        raise NotImplementedError

    def embed_features(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings ``(n_clips, width)`` of feature matrices of any lengths."""
        return self.centred(embed_in_batches(feats, self.embed_batch, normalize=self.distance.normalizes))

    def centred(self, emb: np.ndarray) -> np.ndarray:
        """Embeddings less :attr:`centre` (at unit length again), where the model has one: the direction
        every clip shares (a pretrained encoder's mean over speech, say) otherwise dominates cosine scores."""
        if self.centre is None:
            return emb
        return unit(emb - self.centre).astype(np.float32)

    def card(self) -> dict[str, Any]:
        """The model card (``soundtwin info``, ``GET /info``): what the model is, and how its threshold and
        probabilities were set: on which held-out part (``on``), which classes, and the false-accept and
        false-reject rates expected at the threshold there."""
        m = self.meta
        return {
            "name": self.builtin or (str(self.model_dir) if self.model_dir else None),
            "builtin": self.builtin, "source": m.get("source"), "licence": m.get("licence"),
            "preset": self.cfg.preset, "sample_rate": self.cfg.features.sample_rate, "features": self.cfg.features.kind,
            "model": self.cfg.model.name, "loss": self.cfg.loss.name, "distance": self.cfg.model.distance,
            "fingerprint": self.fingerprint, "classes_trained_on": m.get("classes"), "heldout_eer": m.get("heldout_eer"),
            "fine_tuned_from": m.get("fine_tuned_from"),
            "threshold": self.threshold, "threshold_rule": m.get("threshold_rule"),
            "calibration": {"on": m.get("heldout") or m.get("data"), "classes": m.get("heldout_classes"),
                            "heldout_eer": m.get("heldout_eer"), "expected_at_threshold": m.get("expected"),
                            "probability": {"a": self.calibration[0], "b": self.calibration[1]}},
        }

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
            seconds = (feat.shape[-1] - 1) / f.frames_per_second
            if seconds < self.min_seconds:
                out.append(f"{name}: {seconds:.2f} s is shorter than the {self.min_seconds:g} s this model was "
                           f"trained on; its score is unreliable")
        return out

    def score_embeddings(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.distance.score(a, b)

    def score(self, a: AudioInput, b: AudioInput) -> float:
        e = self.embed([a, b])
        return float(self.score_embeddings(e[0], e[1])[0])

    def check_threshold(self, threshold: float | None) -> float:
        """``threshold`` (a decision threshold given for one call) checked against this model's scores, or the
        stored threshold when it is ``None``."""
        if threshold is None:
            return self.threshold
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            raise SoundtwinError(f"threshold {threshold!r}: not a number") from None
        if not np.isfinite(t):
            raise SoundtwinError(f"threshold {threshold!r}: must be a finite number")
        if self.distance.normalizes and not -1.0 <= t <= 1.0:
            raise SoundtwinError(f"threshold {t:g}: this model's scores are cosines, in [-1, 1] (its own threshold "
                                 f"is {self.threshold:.4f})")
        return t

    def decide(self, score: float, threshold: float | None = None) -> Decision:
        """Same or different at ``threshold`` (the stored one when ``None``); the probability does not depend
        on it."""
        t = self.check_threshold(threshold)
        return Decision(score=float(score), threshold=t, same=bool(score >= t),
                        probability=float(self.probability(score)))

    def verify(self, a: AudioInput, b: AudioInput, *, threshold: float | None = None) -> Decision:
        """Score two clips and decide same/different at the stored threshold, or at ``threshold`` for this call;
        ``warnings`` says when a clip is too short to judge."""
        t = self.check_threshold(threshold)  # before the slow part
        feats = self.features_of([a, b])
        e = self.embed_features(feats)
        d = self.decide(float(self.score_embeddings(e[0], e[1])[0]), t)
        names = [clip_name(c, k) for k, c in enumerate((a, b))]
        return replace(d, warnings=tuple(self.short_clip_warnings(feats, names)))
