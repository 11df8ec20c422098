"""Trial lists (VoxCeleb style) and their scoring: every clip is embedded once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .io import atomic_write_text
from .metrics import Metrics, summarize
from .scoring import EmbedderBase


@dataclass(frozen=True)
class Trials:
    labels: np.ndarray  # (n,) int, -1 where the line had no label
    a: list[str]
    b: list[str]

    @property
    def labelled(self) -> np.ndarray:
        return self.labels >= 0


def read_trials(path: str | os.PathLike[str]) -> Trials:
    """Parse ``LABEL PATH_A PATH_B`` (LABEL 1 or 0) or ``PATH_A PATH_B`` lines; relative paths
    resolve against the list's folder. Blank lines and ``#`` comments are ignored."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read trial list ({exc.strerror})") from None
    labels, a, b = [], [], []

    def resolve(p: str) -> str:
        q = Path(p)
        return str(q if q.is_absolute() else path.parent / q)

    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) == 3:
            if parts[0] not in ("0", "1"):
                raise DatasetError(f"{path}:{n}: label must be 1 or 0, got {parts[0]!r}")
            labels.append(int(parts[0]))
            a.append(resolve(parts[1]))
            b.append(resolve(parts[2]))
        elif len(parts) == 2:
            labels.append(-1)
            a.append(resolve(parts[0]))
            b.append(resolve(parts[1]))
        else:
            raise DatasetError(f"{path}:{n}: expected 'LABEL PATH_A PATH_B' or 'PATH_A PATH_B', got {line.strip()!r}")
    if not a:
        raise DatasetError(f"{path}: no trials")
    return Trials(np.array(labels, dtype=np.int64), a, b)


@dataclass
class Evaluation:
    trials: Trials
    scores: np.ndarray
    metrics: Metrics | None
    n_clips: int
    embed_seconds: float
    warnings: list[str] = field(default_factory=list)


def score_trials(verifier: EmbedderBase, trials: Trials,
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, int, float]:
    """Scores of every trial, embedding each distinct clip once. Returns ``(scores, n_clips, seconds)``."""

    uniq = sorted(set(trials.a) | set(trials.b))
    index = {p: k for k, p in enumerate(uniq)}
    t0 = time.perf_counter()
    feats, _ = verifier.extractor.from_files(uniq, progress=progress)
    emb = verifier.embed_features(feats)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    ia = np.array([index[p] for p in trials.a])
    ib = np.array([index[p] for p in trials.b])
    return verifier.score_embeddings(emb[ia], emb[ib]), len(uniq), seconds


def evaluate(verifier: EmbedderBase, trials: Trials | str | os.PathLike[str],
             progress: Callable[[int], None] | None = None) -> Evaluation:
    """Score a trial list; metrics cover the labelled lines (accuracy at the stored threshold)."""
    if not isinstance(trials, Trials):
        trials = read_trials(trials)
    scores, n, secs = score_trials(verifier, trials, progress)
    m = trials.labelled
    metrics = summarize(scores[m], trials.labels[m], verifier.threshold) if m.any() else None
    warnings = [w for w in (chance_warning(verifier.meta.get("heldout_eer")),) if w]
    seen = training_clip_keys(verifier)
    if seen:
        uniq = sorted(set(trials.a) | set(trials.b))
        inside = sum(clip_key(p) in seen for p in uniq)
        if inside:
            warnings.append(f"{inside} of the {len(uniq)} evaluation clips were in this model's training data: "
                            f"the figures overstate how it does on new clips")
    return Evaluation(trials, scores, metrics, n, secs, warnings)


#: A held-out EER at or above this is reported as near chance (0.5).
CHANCE_EER = 0.4


def chance_warning(heldout_eer: float | None) -> str | None:
    """A warning when a model's held-out EER is near chance, else ``None``."""
    if heldout_eer is None or heldout_eer < CHANCE_EER:
        return None
    return (f"the model's held-out EER is {heldout_eer:.2f}, near chance (0.5): it barely tells these classes apart, "
            f"so its scores mean little")


def clip_key(path: str | os.PathLike[str]) -> str:
    """What identifies a training clip in ``train_clips.txt``: a hash of its file name and size (no paths,
    so a moved dataset still matches; no content read)."""
    import hashlib

    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        size = -1
    return hashlib.blake2b(f"{p.name}\0{size}".encode(), digest_size=8).hexdigest()


def training_clip_keys(verifier: EmbedderBase) -> set[str]:
    """Keys of the clips the model was trained on (empty for models saved before they were recorded)."""
    if verifier.model_dir is None:
        return set()
    from .store import version_dir

    f = version_dir(verifier.model_dir) / "train_clips.txt"
    try:
        return set(f.read_text().split())
    except OSError:
        return set()


def write_scores(path: str | os.PathLike[str], ev: Evaluation) -> None:
    """``PATH_A PATH_B SCORE`` lines, written atomically."""
    text = "".join(f"{a} {b} {s:.6f}\n" for a, b, s in zip(ev.trials.a, ev.trials.b, ev.scores))
    atomic_write_text(path, text)
