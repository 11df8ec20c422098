"""Which representation of a trained TDNN scores unseen sounds best with no training (issue #16)? For a model
(the built-in ``sound`` by default), zero-shot EER on catsdogs' and heldout-sounds' test trials and on every pair
of their train splits (dev pairs, which no test list holds), for:

- ``embedding``: the model's output (what soundtwin scores), and the same centred / standardised per dimension
  on a third of the pretraining clips (``--cohort``);
- ``pooled``: the pooled statistics the output layer reads (attentive mean and deviation, plus the spectral shape),
  raw, centred and standardised the same way;
- ``windows W/H``: a clip longer than W frames embedded as the mean of its W-frame windows every H frames (its
  training crops were 1-3 s; catsdogs' clips are 1-18 s, median 6 s), unweighted or weighted by window loudness.

Writes benchmarks/embed_probe_results.json.

    python benchmarks/embed_probe.py --model sound --cohort benchmarks/work/sounds/manifest.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from run import protocol_dir

from soundtwin.data import discover, read_trials
from soundtwin.io import atomic_write_text
from soundtwin.metrics import eer
from soundtwin.runtime import load_verifier

HERE = Path(__file__).resolve().parent
PROTOCOLS = ("catsdogs", "heldout-sounds")
WINDOWS = ((300, 150, "mean"), (200, 100, "mean"), (400, 200, "mean"), (200, 100, "loudness"))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Probe:
    def __init__(self, model: str):
        self.v = load_verifier(model, "torch", cache_dir=HERE / "work" / "cache")
        self.enc = self.v.encoder
        self._pooled: list[torch.Tensor] = []
        self.enc.fc.register_forward_hook(lambda m, i, o: self._pooled.append(i[0].detach().clone()))

    def feats(self, paths: list[str]) -> list[np.ndarray]:
        f, _ = self.v.extractor.from_files(paths, skip_errors=True)  # a silent clip has none: dropped
        return [np.ascontiguousarray(x) for x in f if x is not None]

    def layers(self, paths: list[str]) -> dict[str, np.ndarray]:
        """Each clip whole: ``embedding`` and ``pooled`` (one clip at a time, as ``embed`` sees it alone)."""
        emb = []
        self._pooled.clear()
        with torch.inference_mode():
            for x in self.feats(paths):
                emb.append(self.enc(torch.from_numpy(x)[None])[0].numpy())
        return {"embedding": np.stack(emb), "pooled": torch.cat(self._pooled).numpy()}

    def windowed(self, paths: list[str], w: int, h: int, weight: str) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for x in self.feats(paths):
                t = x.shape[1]  # a clip of w frames or fewer is one window, itself whole
                starts = sorted(set(range(0, t - w + 1, h)) | {t - w}) if t > w else [0]
                wins = [x[:, s:s + w] for s in starts]
                e = unit(self.enc(torch.from_numpy(np.stack(wins))).numpy())
                lv = np.array([win.mean() for win in wins])
                wt = np.exp(lv - lv.max()) if weight == "loudness" else np.ones(len(e))
                out.append(unit((e * wt[:, None]).sum(0)))
        return np.stack(out)


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
    cohort = probe.layers([c.path for c in discover(args.cohort)][::3])
    stats = {k: (v.mean(0), v.std(0) + 1e-5) for k, v in cohort.items()}
    rows = []
    for p in PROTOCOLS:
        for split, (paths, a, b, y) in trials(p).items():
            reps = {}
            for k, v in probe.layers(paths).items():
                mu, sd = stats[k]
                reps.update({k: v, f"{k} centred": v - mu, f"{k} standardised": (v - mu) / sd})
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
