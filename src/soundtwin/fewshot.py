"""N-way K-shot evaluation: enroll K clips of N classes, classify held-out queries, repeat."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from .data import discover, encode_labels
from .errors import DatasetError
from .distance import get_distance
from .runtime.base import EmbedderBase


@dataclass(frozen=True)
class FewShotResult:
    ways: int
    shots: int
    episodes: int
    queries_per_class: int
    accuracy: float
    ci95: float
    scoring: str

    def as_dict(self) -> dict:
        return asdict(self)


def fewshot_embeddings(emb: np.ndarray, labels: np.ndarray, *, ways: int, shots: int, episodes: int,
                       queries: int = 5, seed: int = 0, scoring: str = "mean", distance: str = "cosine") -> FewShotResult:
    """Episodes over precomputed embeddings; accuracy mean and 95 % confidence half-width."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    eligible = np.flatnonzero(counts >= shots + 1)
    if len(eligible) < ways:
        raise DatasetError(f"{ways}-way {shots}-shot needs {ways} classes with at least {shots + 1} clips; "
                           f"only {len(eligible)} have enough")
    q = int(min(queries, counts[eligible].min() - shots))
    accs = []
    for _ in range(episodes):
        cls = rng.choice(eligible, ways, replace=False)
        sup, qry, qlab = [], [], []
        for k, c in enumerate(cls):
            idx = rng.permutation(np.flatnonzero(labels == c))
            sup.append(idx[:shots])
            qry.append(idx[shots:shots + q])
            qlab += [k] * q
        sup_idx = np.concatenate(sup)
        sup_lab = np.repeat(np.arange(ways), shots).astype(str)
        s = get_distance(distance).class_scores(emb[np.concatenate(qry)], emb[sup_idx], sup_lab,
                                                [str(k) for k in range(ways)], scoring)
        accs.append(float(np.mean(s.argmax(1) == np.array(qlab))))
    a = np.array(accs)
    ci = 1.96 * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
    return FewShotResult(ways, shots, episodes, q, float(a.mean()), float(ci), scoring)


def fewshot(verifier: EmbedderBase, data: str | os.PathLike[str], *, ways: int, shots: int, episodes: int,
            queries: int = 5, seed: int = 0, scoring: str = "mean") -> FewShotResult:
    """Few-shot accuracy on a labelled set (a ``path,label`` CSV or class folders); each clip embedded once."""
    clips = discover(data)
    labels, _ = encode_labels([c.label for c in clips])
    emb = verifier.embed([c.path for c in clips])
    return fewshot_embeddings(emb, labels, ways=ways, shots=shots, episodes=episodes, queries=queries, seed=seed,
                              scoring=scoring, distance=verifier.cfg.model.distance)
