"""Which representation of a trained TDNN scores unseen sounds best with no training (issue #16)? For a model
(the built-in ``sound`` by default), zero-shot EER on catsdogs' and heldout-sounds' test trials and on every pair
of their train splits (dev pairs, which no test list holds), for:

- ``embedding``: the model's output (what soundtwin scores), and the same centred / standardised per dimension
  on a third of the pretraining clips (``--cohort``);
- ``pooled``: the pooled statistics the output layer reads (attentive mean and deviation, plus the spectral shape),
  raw, centred and standardised the same way;
- ``windows W/H``: a clip longer than W frames embedded as the mean of its W-frame windows every H frames (its
  training crops were 1-3 s; catsdogs' clips are 1-18 s, median 6 s), unweighted or weighted by window loudness;
- back ends fitted on every pretraining clip's (unit-length) embedding, as speaker verification fits them on its
  training speakers: PCA whitening, within-class covariance normalisation (WCCN) with the takes of one sound effect
  (the manifest's ``kind``) as a class, and LDA with a kind's main file-name word (``dog``, ``door``: the words of
  ``scripts/name_targets.py``) as a class, so that one class spans packages. Covariances are shrunk towards
  their mean variance by ``SHRINK``.

Writes benchmarks/embed_probe_results.json.

    python benchmarks/embed_probe.py --model sound --cohort benchmarks/work/sounds/manifest.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
from run import protocol_dir

from soundtwin.data import discover, read_trials
from soundtwin.io import atomic_write_text
from soundtwin.metrics import eer
from soundtwin.runtime import load_verifier

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
from name_targets import name_targets  # noqa: E402

PROTOCOLS = ("catsdogs", "heldout-sounds")
WINDOWS = ((300, 150, "mean"), (200, 100, "mean"), (400, 200, "mean"), (200, 100, "loudness"))
SHRINK = 0.3
LDA_DIMS = 64


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Probe:
    def __init__(self, model: str):
        self.v = load_verifier(model, "torch", cache_dir=HERE / "work" / "cache")
        self.enc = self.v.encoder
        self._pooled: list[torch.Tensor] = []
        self.enc.fc.register_forward_hook(lambda m, i, o: self._pooled.append(i[0].detach().clone()))

    def feats(self, paths: list[str]) -> list[np.ndarray | None]:
        f, _ = self.v.extractor.from_files(paths, skip_errors=True)  # a silent clip has none: None
        return [None if x is None else np.ascontiguousarray(x) for x in f]

    def layers(self, paths: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each clip whole: ``embedding`` and ``pooled`` (one clip at a time, as ``embed`` sees it alone), and the
        indices of the clips that have them (a silent clip has none)."""
        emb, kept = [], []
        self._pooled.clear()
        with torch.inference_mode():
            for i, x in enumerate(self.feats(paths)):
                if x is not None:
                    emb.append(self.enc(torch.from_numpy(x)[None])[0].numpy())
                    kept.append(i)
        return {"embedding": np.stack(emb), "pooled": torch.cat(self._pooled).numpy()}, np.array(kept)

    def windowed(self, paths: list[str], w: int, h: int, weight: str) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for x in filter(lambda f: f is not None, self.feats(paths)):
                t = x.shape[1]  # a clip of w frames or fewer is one window, itself whole
                starts = sorted(set(range(0, t - w + 1, h)) | {t - w}) if t > w else [0]
                wins = [x[:, s:s + w] for s in starts]
                e = unit(self.enc(torch.from_numpy(np.stack(wins))).numpy())
                lv = np.array([win.mean() for win in wins])
                wt = np.exp(lv - lv.max()) if weight == "loudness" else np.ones(len(e))
                out.append(unit((e * wt[:, None]).sum(0)))
        return np.stack(out)


def shrunk(cov: np.ndarray) -> np.ndarray:
    return (1 - SHRINK) * cov + SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))


def within_class(x: np.ndarray, labels: list) -> np.ndarray:
    """Within-class covariance of ``x`` over the classes (not None) that have two members or more."""
    cov, n = np.zeros((x.shape[1],) * 2), 0
    for c in set(labels) - {None}:
        d = x[[i for i, lab in enumerate(labels) if lab == c]]
        if len(d) > 1:
            d = d - d.mean(0)
            cov, n = cov + d.T @ d, n + len(d)
    return cov / n


def back_ends(e: np.ndarray, kinds: list[str], words: list) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (mean, projection)}`` fitted on the pretraining clips' unit-length embeddings ``e``."""
    mu = e.mean(0)
    total = np.cov((e - mu).T)

    def inv_sqrt(cov: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(shrunk(cov))
        return v @ np.diag(w ** -0.5) @ v.T

    # LDA: directions maximising total over within-word variance (generalised symmetric eigenproblem)
    lw = np.linalg.cholesky(shrunk(within_class(e, words)))
    m = np.linalg.solve(lw, np.linalg.solve(lw, total).T)
    _, vecs = np.linalg.eigh((m + m.T) / 2)
    lda = np.linalg.solve(lw.T, vecs[:, ::-1][:, :LDA_DIMS])
    return {"embedding whitened (PCA)": (mu, inv_sqrt(total)),
            "embedding WCCN by kind": (mu, inv_sqrt(within_class(e, kinds))),
            f"embedding LDA by file-name word ({LDA_DIMS} dims)": (mu, lda)}


def cohort_labels(manifest: Path, n_clips: int, kept: np.ndarray) -> tuple[list[str], list]:
    """Each kept cohort clip's kind and main file-name word (None for a kind with no word); ``n_clips``: how many
    clips ``discover`` found in the manifest (its rows and its clips must be the same list)."""
    with open(manifest, newline="") as f:
        every = list(csv.DictReader(f))
    if len(every) != n_clips:
        raise SystemExit(f"{manifest}: its rows and its clips differ")
    rows = [every[i] for i in kept]
    _, targets = name_targets({r["kind"]: r["package"] for r in rows})
    word = {k: max(t, key=t.get) if t else None for k, t in targets.items()}
    return [r["kind"] for r in rows], [word[r["kind"]] for r in rows]


def trials(p: str) -> dict[str, tuple]:
    """``{"test": (paths, a, b, y), "dev": (...)}`` for protocol ``p``."""
    t = read_trials(protocol_dir(p) / "trials.txt")
    uniq = sorted(set(t.a) | set(t.b))
    ix = {u: i for i, u in enumerate(uniq)}
    clips = discover(protocol_dir(p) / "train.csv")
    labels = np.array([c.label for c in clips])
    i, j = np.triu_indices(len(clips), 1)
    return {"test": (uniq, np.array([ix[u] for u in t.a]), np.array([ix[u] for u in t.b]), np.asarray(t.labels)),
            "dev": ([c.path for c in clips], i, j, (labels[i] == labels[j]).astype(int))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sound")
    ap.add_argument("--cohort", type=Path, default=HERE / "work" / "sounds" / "manifest.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    probe = Probe(args.model)
    clips = discover(args.cohort)
    cohort, kept = probe.layers([c.path for c in clips])
    third = np.flatnonzero(kept % 3 == 0)  # the per-dimension statistics read a third of the clips
    stats = {k: (v[third].mean(0), v[third].std(0) + 1e-5) for k, v in cohort.items()}
    backs = back_ends(unit(cohort["embedding"]), *cohort_labels(args.cohort, len(clips), kept))
    rows = []
    for p in PROTOCOLS:
        for split, (paths, a, b, y) in trials(p).items():
            reps = {}
            layers, kept = probe.layers(paths)
            if len(kept) < len(paths):
                raise SystemExit(f"{p}: {len(paths) - len(kept)} silent clips in its trials")
            for k, v in layers.items():
                mu, sd = stats[k]
                reps.update({k: v, f"{k} centred": v - mu, f"{k} standardised": (v - mu) / sd})
            for name, (mu, proj) in backs.items():
                reps[name] = (unit(layers["embedding"]) - mu) @ proj
            for w, h, weight in WINDOWS:
                reps[f"windows {w}/{h} {weight}"] = probe.windowed(paths, w, h, weight)
            for name, e in reps.items():
                e = unit(e)
                row = {"model": args.model, "protocol": p, "trials": split, "representation": name,
                       "eer": round(eer((e[a] * e[b]).sum(1), y)[0], 4)}
                rows.append(row)
                print(row, flush=True)
    atomic_write_text(HERE / "embed_probe_results.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
