"""``soundtwin report``: a self-contained HTML page of plots about a model on a trial list
(the ``plot`` extra). PNGs are written beside the page and also embedded in it."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .data import discover
from .errors import SoundtwinError, require_extra
from .evaluate import evaluate
from .io import atomic_write_bytes, atomic_write_text
from .metrics import error_rates


def _plt():
    require_extra("plot", "plots", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "font.size": 10})
    return plt


def _png(fig) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def training_curves_png(history: list[dict[str, Any]]) -> bytes:
    """Loss and held-out EER per epoch."""
    plt = _plt()
    if not history:
        raise SoundtwinError("the model has no training history to plot")
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(ep, [h["loss"] for h in history], "o-", color="#2f6fec", ms=3)
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].plot(ep, [h["heldout_eer"] for h in history], "o-", color="#d64545", ms=3)
    ax[1].set(title="held-out EER", xlabel="epoch", ylim=(0, max(0.05, max(h["heldout_eer"] for h in history) * 1.1)))
    return _png(fig)


def roc_det_png(scores: np.ndarray, labels: np.ndarray, eer: float) -> bytes:
    from scipy.stats import norm

    plt = _plt()
    _, far, frr = error_rates(scores, labels)
    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    ax[0].plot(far, 1 - frr, color="#2f6fec")
    ax[0].plot([0, 1], [0, 1], ":", color="grey")
    ax[0].plot([eer], [1 - eer], "o", color="#d64545", label=f"EER {eer:.3f}")
    ax[0].set(title="ROC", xlabel="false-accept rate", ylabel="true-accept rate")
    ax[0].legend(loc="lower right")
    clip = lambda p: norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))  # noqa: E731
    ax[1].plot(clip(far), clip(frr), color="#2f6fec")
    ax[1].plot([clip(eer)], [clip(eer)], "o", color="#d64545", label=f"EER {eer:.3f}")
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5])
    ax[1].set_xticks(clip(ticks), [f"{t:g}" for t in ticks])
    ax[1].set_yticks(clip(ticks), [f"{t:g}" for t in ticks])
    ax[1].set_xlim(clip(5e-4), clip(0.7))
    ax[1].set_ylim(clip(5e-4), clip(0.7))
    ax[1].set(title="DET", xlabel="false-accept rate", ylabel="false-reject rate")
    ax[1].legend(loc="upper right")
    return _png(fig)


def histogram_png(scores: np.ndarray, labels: np.ndarray, threshold: float) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.4))
    bins = np.linspace(scores.min(), scores.max(), 60)
    ax.hist(scores[labels == 1], bins, alpha=0.6, color="#1f9d55", label="genuine (same class)")
    ax.hist(scores[labels == 0], bins, alpha=0.6, color="#d64545", label="impostor (different)")
    ax.axvline(threshold, color="black", lw=1.5, label=f"stored threshold {threshold:.3f}")
    ax.set(title="score distributions", xlabel="score (higher = more alike)", ylabel="trials")
    ax.legend()
    return _png(fig)


def embedding_map_png(emb: np.ndarray, labels: list[str]) -> bytes:
    """2-D PCA of the embeddings, one colour per class."""
    plt = _plt()
    x = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    classes = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    lab = np.array(labels)
    for k, c in enumerate(classes):
        m = lab == c
        ax.scatter(xy[m, 0], xy[m, 1], s=9, alpha=0.7, color=cmap(k % cmap.N), label=c)
    ax.set(title="test embeddings (PCA)", xticks=[], yticks=[])
    if len(classes) <= 20:
        ax.legend(markerscale=2, fontsize=8, loc="best")
    return _png(fig)


def build_report(verifier, trials: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,  # type: ignore[no-untyped-def]
                 labels_csv: str | os.PathLike[str] | None = None, worst: int = 10) -> Path:
    """Write ``out_dir/index.html`` and its PNGs; returns the page's path."""
    out = Path(out_dir)
    ev = evaluate(verifier, trials)
    if ev.metrics is None:
        raise SoundtwinError(f"{trials}: no labelled trials to report on")
    m = ev.metrics
    lab = ev.trials.labelled
    s, y = ev.scores[lab], ev.trials.labels[lab]
    a = [p for p, k in zip(ev.trials.a, lab) if k]
    b = [p for p, k in zip(ev.trials.b, lab) if k]
    pngs: dict[str, bytes] = {"roc_det.png": roc_det_png(s, y, m.eer),
                              "scores.png": histogram_png(s, y, verifier.threshold)}
    if verifier.meta.get("history"):
        pngs["training.png"] = training_curves_png(verifier.meta["history"])
    csv = Path(labels_csv) if labels_csv else Path(trials).parent / "test.csv"
    if csv.is_file():
        clips = discover(csv)
        pngs["embeddings.png"] = embedding_map_png(verifier.embed([c.path for c in clips]), [c.label for c in clips])
    fa = np.flatnonzero((y == 0) & (s >= verifier.threshold))
    fr = np.flatnonzero((y == 1) & (s < verifier.threshold))
    fa = fa[np.argsort(-s[fa])][:worst]
    fr = fr[np.argsort(s[fr])][:worst]

    def rows(idx: np.ndarray) -> str:
        return "".join(f"<tr><td>{s[i]:.3f}</td><td>{html.escape(a[i])}</td><td>{html.escape(b[i])}</td></tr>" for i in idx) \
            or "<tr><td colspan=3>none</td></tr>"

    for name, blob in pngs.items():
        atomic_write_bytes(out / name, blob)
    img = lambda n: (f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode(pngs[n]).decode()}">'  # noqa: E731
                     if n in pngs else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>soundtwin report</title>
<style>body{{font:14px system-ui,sans-serif;max-width:1000px;margin:24px auto;color:#1d2330}}img{{max-width:100%}}
table{{border-collapse:collapse;width:100%;font-size:12px}}td,th{{border-bottom:1px solid #e5e8ee;padding:4px;text-align:left}}
.k{{display:inline-block;margin:0 22px 10px 0}}.k b{{font-size:22px;display:block}}</style></head><body>
<h1>soundtwin report</h1>
<p>model <code>{html.escape(str(verifier.model_dir))}</code> (preset {verifier.cfg.preset}, {verifier.cfg.model.name},
{verifier.cfg.loss.name}) on <code>{html.escape(str(trials))}</code>: {m.n_trials} trials over {ev.n_clips} clips.</p>
<div><span class="k"><b>{m.eer:.3f}</b>EER</span><span class="k"><b>{m.roc_auc:.3f}</b>ROC AUC</span>
<span class="k"><b>{m.min_dcf:.3f}</b>minDCF (0.01)</span><span class="k"><b>{m.accuracy:.3f}</b>accuracy at stored threshold {verifier.threshold:.3f}</span></div>
<h2>ROC and DET</h2>{img("roc_det.png")}<h2>Scores</h2>{img("scores.png")}
<h2>Embeddings</h2>{img("embeddings.png") or "<p>(no test.csv beside the trials, or --labels, to colour clips by class)</p>"}
<h2>Worst false accepts (impostor trials scored highest)</h2><table><tr><th>score</th><th>clip A</th><th>clip B</th></tr>{rows(fa)}</table>
<h2>Worst false rejects (genuine trials scored lowest)</h2><table><tr><th>score</th><th>clip A</th><th>clip B</th></tr>{rows(fr)}</table>
<h2>Training</h2>{img("training.png") or "<p>(no training history in the model)</p>"}
</body></html>"""
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
