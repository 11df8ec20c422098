"""Does adaptive score normalisation (AS-norm) against a cohort of training embeddings pay?

For each kept default model (``benchmarks/work/models/<protocol>-default``, written by
``run.py --keep benchmarks/work/models``), embeds the protocol's training clips as the cohort and
scores its trials raw (cosine) and AS-normalised with the top-k cohort scores of each side:
``0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b)``. Writes benchmarks/score_norm_results.json.

    python benchmarks/score_norm.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from run import PUBLIC, own_protocols, protocol_dir

from soundtwin.data import discover
from soundtwin.data import read_trials
from soundtwin.io import atomic_write_text
from soundtwin.metrics import eer
from soundtwin.runtime.torch_runtime import Verifier

HERE = Path(__file__).resolve().parent
TOP_K = (50, 200, 1000)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for p in PUBLIC + own_protocols():
            model = HERE / "work" / "models" / f"{p}-default"
            if not model.is_dir():
                print(f"{p}: no kept model at {model}; skipped", flush=True)
                continue
            v = Verifier.load(model, cache_dir=cache)
            pdir = protocol_dir(p)
            t = read_trials(pdir / "trials.txt")
            uniq = sorted(set(t.a) | set(t.b))
            ix = {u: i for i, u in enumerate(uniq)}
            emb = v.embed(uniq)  # unit length: the default scores by cosine
            cohort = v.embed([c.path for c in discover(pdir / "train.csv")])
            a = np.array([ix[u] for u in t.a])
            b = np.array([ix[u] for u in t.b])
            raw = (emb[a] * emb[b]).sum(1)
            row = {"protocol": p, "margin": v.cfg.loss.margin, "cohort": len(cohort), "raw": round(eer(raw, t.labels)[0], 4)}
            sims = -np.sort(-(emb @ cohort.T), axis=1)
            for k in TOP_K:
                top = sims[:, :k]
                mu, sd = top.mean(1), top.std(1) + 1e-6
                normed = 0.5 * ((raw - mu[a]) / sd[a] + (raw - mu[b]) / sd[b])
                row[f"asnorm_{k}"] = round(eer(normed, t.labels)[0], 4)
            rows.append(row)
            print(row, flush=True)
    atomic_write_text(HERE / "score_norm_results.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
