"""The untrained reference of ../shared/benchmarks/README.md: mean and std of 20 MFCCs per clip, cosine.
Run on every protocol (public and our own) so each has a no-learning reference.
Writes benchmarks/baseline_results.json.

    python benchmarks/baseline.py
"""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
from run import PUBLIC, own_protocols, protocol_dir

from soundtwin.audio import load_audio
from soundtwin.data import read_trials
from soundtwin.io import atomic_write_text
from soundtwin.metrics import eer, roc_auc

HERE = Path(__file__).resolve().parent


def stats(path: str) -> np.ndarray:
    y, sr = load_audio(path, 16000)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    v = np.concatenate([m.mean(1), m.std(1)])
    return v / np.linalg.norm(v)


def main() -> None:
    rows = []
    for p in PUBLIC + own_protocols():
        t = read_trials(protocol_dir(p) / "trials.txt")
        uniq = sorted(set(t.a) | set(t.b))
        emb = {u: stats(u) for u in uniq}
        s = np.array([emb[a] @ emb[b] for a, b in zip(t.a, t.b)])
        rows.append({"protocol": p, "eer": round(eer(s, t.labels)[0], 4), "roc_auc": round(roc_auc(s, t.labels), 4)})
        print(rows[-1], flush=True)
    atomic_write_text(HERE / "baseline_results.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
