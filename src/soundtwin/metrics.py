"""Verification metrics as pure numpy functions over ``(scores, labels)``.

``scores``: ``(n_trials,)`` floats, higher = more alike. ``labels``: ``(n_trials,)`` with 1 for a
genuine (same-class) trial and 0 for an impostor trial. Decisions accept when ``score >= threshold``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import SoundtwinError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(np.int64)
    if s.shape != y.shape:
        raise SoundtwinError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.all(np.isfinite(s)):
        raise SoundtwinError("scores contain NaN or infinite values")
    if not set(np.unique(y)) <= {0, 1}:
        raise SoundtwinError("labels must be 0 or 1")
    if y.sum() == 0 or y.sum() == y.size:
        raise SoundtwinError("metrics need both genuine (1) and impostor (0) trials")
    return s, y


def error_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, far, frr)`` over every distinct score plus ``+inf`` (ascending thresholds).

    far: fraction of impostors with ``score >= t``; frr: fraction of genuines with ``score < t``.
    """
    s, y = _check(scores, labels)
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    thr = np.append(np.unique(s), np.inf)
    frr = np.searchsorted(pos, thr, side="left") / pos.size
    far = (neg.size - np.searchsorted(neg, thr, side="left")) / neg.size
    return thr, far, frr


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where it occurs (linear interpolation between points).

    >>> eer(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))[0]
    0.0
    """
    thr, far, frr = error_rates(scores, labels)
    d = frr - far  # non-decreasing in the threshold
    i1 = int(np.argmax(d >= 0))
    if i1 == 0:
        return float((far[0] + frr[0]) / 2), float(thr[0])
    i0 = i1 - 1
    t = d[i0] / (d[i0] - d[i1])
    rate = far[i0] + t * (far[i1] - far[i0])
    # Any threshold between the two bracketing scores gives these rates: take the midpoint.
    hi = thr[i1] if np.isfinite(thr[i1]) else thr[i0] + 1e-6
    return float(rate), float(0.5 * (thr[i0] + hi))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a genuine trial outscores an impostor; ties count half)."""
    s, y = _check(scores, labels)
    from scipy.stats import rankdata  # (scipy.stats takes a second to import: only where needed)

    ranks = rankdata(s)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float = 0.01,
            c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum normalised detection cost over all thresholds (NIST SRE definition)."""
    _, far, frr = error_rates(scores, labels)
    dcf = c_miss * p_target * frr + c_fa * (1 - p_target) * far
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Fraction of trials decided correctly when accepting ``score >= threshold``."""
    s, y = _check(scores, labels)
    return float(np.mean((s >= threshold).astype(np.int64) == y))


#: Below this many impostor trials beyond a target false-accept rate (``n_impostors * far``), the rate is
#: read off a normal fitted to the impostor scores instead of counting the few trials above the threshold.
MIN_TAIL_TRIALS = 10


def threshold_at_far(scores: np.ndarray, labels: np.ndarray, target_far: float) -> float:
    """The lowest threshold whose false-accept rate is at most ``target_far``.

    With too few impostor trials to count that rate (fewer than :data:`MIN_TAIL_TRIALS` expected above the
    threshold: 50 trials at 5 %, a gallery of 10 classes of 5 clips), the threshold is the impostor scores'
    mean plus the normal quantile times their standard deviation, or the empirical one if that is higher:
    two or three trials would otherwise decide it."""
    if not 0 < target_far < 1:
        raise SoundtwinError(f"target false-accept rate must be in (0, 1), got {target_far}")
    thr, far, _ = error_rates(scores, labels)
    ok = np.flatnonzero(far <= target_far)
    t = thr[ok[0]]
    t = float(t if np.isfinite(t) else np.max(scores) + 1e-6)
    neg = np.asarray(scores, dtype=np.float64)[np.asarray(labels).ravel() == 0]
    if neg.size * target_far < MIN_TAIL_TRIALS and neg.size >= 2:
        from statistics import NormalDist

        t = max(t, float(neg.mean() + NormalDist().inv_cdf(1 - target_far) * neg.std(ddof=1)))
    return t


def operating_threshold(scores: np.ndarray, labels: np.ndarray, far: float | None = None) -> tuple[float, str]:
    """The decision threshold at the EER point, or at a target false-accept rate, and how it was set
    (``"eer"`` or ``"far=<far>"``): the one rule models and galleries use."""
    if far:
        return threshold_at_far(scores, labels, far), f"far={far}"
    return eer(scores, labels)[1], "eer"


def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(far, frr)`` when accepting ``score >= threshold``."""
    s, y = _check(scores, labels)
    return float(np.mean(s[y == 0] >= threshold)), float(np.mean(s[y == 1] < threshold))


def calibrate(scores: np.ndarray, labels: np.ndarray, far: float | None = None) -> dict[str, Any]:
    """Everything a model or gallery stores from its held-out trials: the threshold (EER point or target
    false-accept rate) and how it was set, the probability map, the held-out EER, and the false-accept and
    false-reject rates expected at the threshold on those trials (``expected``)."""
    threshold, rule = operating_threshold(scores, labels, far)
    a, b = fit_logistic(scores, labels)
    fa, fr = rates_at(scores, labels, threshold)
    y = np.asarray(labels)
    return {"threshold": threshold, "threshold_rule": rule, "heldout_eer": eer(scores, labels)[0],
            "calibration": {"a": a, "b": b},
            "expected": {"far": round(fa, 5), "frr": round(fr, 5), "genuine_trials": int(np.sum(y == 1)),
                         "impostor_trials": int(np.sum(y == 0))}}


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the trial-weighted mean, over ``bins`` equal-width probability bins,
    of ``|mean predicted probability - fraction genuine|`` (Guo et al., 2017)."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape or p.size == 0:
        raise SoundtwinError(f"probabilities and labels differ in length or are empty: {p.size} vs {y.size}")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for k in range(bins):
        m = which == k
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / p.size)


def fit_logistic(scores: np.ndarray, labels: np.ndarray, l2: float = 1e-4, iters: int = 50) -> tuple[float, float]:
    """Logistic calibration ``P(same | s) = 1 / (1 + exp(-(a s + b)))`` fitted by Newton's method.

    Genuine and impostor trials are weighted equally (a prior of 0.5)."""
    s, y = _check(scores, labels)
    w = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum())
    x = np.stack([s, np.ones_like(s)], axis=1)
    theta = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(x @ theta, -500, 500)))
        grad = x.T @ (w * (p - y)) + l2 * theta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def logistic(scores: np.ndarray | float, a: float, b: float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(a * np.asarray(scores, dtype=np.float64) + b, -500, 500)))


@dataclass(frozen=True)
class Metrics:
    eer: float
    eer_threshold: float
    roc_auc: float
    min_dcf: float
    accuracy: float | None
    threshold: float | None
    n_trials: int
    n_genuine: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarize(scores: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> Metrics:
    """All headline metrics at once; accuracy is at ``threshold`` (chosen elsewhere) when given."""
    e, t = eer(scores, labels)
    return Metrics(
        eer=e, eer_threshold=t, roc_auc=roc_auc(scores, labels), min_dcf=min_dcf(scores, labels),
        accuracy=None if threshold is None else accuracy(scores, labels, threshold),
        threshold=threshold, n_trials=int(np.size(scores)), n_genuine=int(np.sum(labels)),
    )
