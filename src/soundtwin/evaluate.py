"""Trial lists (VoxCeleb style) and their scoring: every clip is embedded once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Trials, read_trials
from .io import atomic_write_text
from .metrics import Metrics, summarize
from .runtime.base import EmbedderBase


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


def hardest_clips(ev: Evaluation, n: int) -> tuple[list[dict[str, Any]], float | None]:
    """The ``n`` clips that take part in the largest share of wrong decisions at the EER threshold (a genuine
    trial scored below it is a false reject, an impostor one at or above it a false accept), worst first, and the
    EER of the labelled trials that hold none of them (``None`` when no trials of both kinds are left).
    Mislabelled or unusual clips show up here: a few clips often carry much of a small test list's errors."""
    if ev.metrics is None:
        raise ValueError("the trial list has no labels: no decision is wrong or right")
    m = ev.trials.labelled
    a = [str(x) for x, keep in zip(ev.trials.a, m, strict=True) if keep]
    b = [str(x) for x, keep in zip(ev.trials.b, m, strict=True) if keep]
    y, s = ev.trials.labels[m].astype(bool), ev.scores[m]
    accept = s >= ev.metrics.eer_threshold
    stats: dict[str, list[int]] = {}  # clip: [trials, false rejects, false accepts]
    for side in (a, b):
        for clip, same, yes in zip(side, y, accept, strict=True):
            st = stats.setdefault(clip, [0, 0, 0])
            st[0] += 1
            st[1] += int(same and not yes)
            st[2] += int(yes and not same)
    order = sorted(stats, key=lambda c: (-(stats[c][1] + stats[c][2]) / stats[c][0], -stats[c][0], c))[:max(n, 0)]
    worst = [{"clip": c, "trials": stats[c][0], "false_rejects": stats[c][1], "false_accepts": stats[c][2],
              "error_share": round((stats[c][1] + stats[c][2]) / stats[c][0], 4)} for c in order]
    gone = set(order)
    keep = np.array([x not in gone and z not in gone for x, z in zip(a, b, strict=True)], dtype=bool)
    rest = None
    if keep.any() and 0 < y[keep].sum() < keep.sum():
        rest = round(summarize(s[keep], y[keep].astype(int)).eer, 4)
    return worst, rest


def calibration_trials(verifier: EmbedderBase, data: str | os.PathLike[str], max_trials: int = 20000,
                       seed: int = 0, emb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Trials to calibrate ``verifier`` on from a labelled set of the user's own (a folder of class folders or a
    ``path,label`` CSV): every clip embedded once (or ``emb``, its clips' embeddings in the set's order), up to
    ``max_trials`` balanced pairs (seeded). Returns ``(scores, labels, heldout)``, ``heldout`` being what
    meta.json records of them."""
    from .data import discover, encode_labels, trial_pairs
    from .errors import DatasetError

    clips = discover(data)
    labels, classes = encode_labels([c.label for c in clips])
    try:
        i, j, y = trial_pairs(labels, max_trials, np.random.default_rng(seed))
    except DatasetError as exc:
        raise DatasetError(f"{data}: {exc}") from None
    if emb is None:
        emb = verifier.embed([c.path for c in clips])
    trained_on = set(verifier.meta.get("classes") or [])
    new = [c for c in classes if c not in trained_on]
    how = (f"{data}: {len(clips)} clips of {len(classes)} classes given to soundtwin calibrate, "
           f"{len(new)} of them not trained on")
    return verifier.score_embeddings(emb[i], emb[j]), y, {"heldout": how, "heldout_classes": classes}


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
    from .runtime.modeldir import read_training_clips

    return read_training_clips(verifier.model_dir) if verifier.model_dir is not None else set()


def write_scores(path: str | os.PathLike[str], ev: Evaluation) -> None:
    """``PATH_A PATH_B SCORE`` lines, written atomically."""
    text = "".join(f"{a} {b} {s:.6f}\n" for a, b, s in zip(ev.trials.a, ev.trials.b, ev.scores))
    atomic_write_text(path, text)
