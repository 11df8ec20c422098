"""Does adaptive score normalisation (AS-norm) against a cohort of training embeddings pay?

For each kept default model (``benchmarks/work/models/<protocol>-default``, written by
``run.py --keep benchmarks/work/models``), embeds the protocol's training clips as the cohort and
scores its trials raw (cosine) and AS-normalised with the top-k cohort scores of each side:
``0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b)``. Writes benchmarks/score_norm_results.json.

    python benchmarks/score_norm.py

``--zero-shot MODEL --cohort MANIFEST`` asks the same of a model no protocol trained (a built-in): the cohort is
a manifest's clips (for ``sound``, its pretraining recipe), and besides each protocol's test trials it scores every
pair of the protocol's train split (dev pairs, which no test list holds). Writes
benchmarks/score_norm_zeroshot_results.json.

    python benchmarks/score_norm.py --zero-shot sound --cohort benchmarks/work/sounds/manifest.csv
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from run import PUBLIC, own_protocols, protocol_dir

from soundtwin.data import discover
from soundtwin.data import read_trials
from soundtwin.io import atomic_write_text
from soundtwin.metrics import eer
from soundtwin.runtime import load_verifier
from soundtwin.runtime.torch_runtime import Verifier

HERE = Path(__file__).resolve().parent
TOP_K = (50, 200, 1000)


def asnorm(raw: np.ndarray, a: np.ndarray, b: np.ndarray, emb: np.ndarray, cohort: np.ndarray,
           k: int) -> np.ndarray:
    """AS-norm of the scores ``raw`` of pairs ``(emb[a], emb[b])`` with the top ``k`` cohort scores of each side."""
    top = -np.sort(-(emb @ cohort.T), axis=1)[:, :k]
    mu, sd = top.mean(1), top.std(1) + 1e-6
    return 0.5 * ((raw - mu[a]) / sd[a] + (raw - mu[b]) / sd[b])


def zero_shot(model: str, cohort_manifest: Path) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        v = load_verifier(model, "torch", cache_dir=cache)
        # a clip with no sound (digital silence) has no embedding: dropped, as the trainer drops it
        feats, _ = v.extractor.from_files([c.path for c in discover(cohort_manifest)], skip_errors=True)
        cohort = v.embed_features([f for f in feats if f is not None])
        ks = (*TOP_K, len(cohort))
        for p in PUBLIC + own_protocols():
            pdir = protocol_dir(p)
            t = read_trials(pdir / "trials.txt")
            uniq = sorted(set(t.a) | set(t.b))
            ix = {u: i for i, u in enumerate(uniq)}
            clips = discover(pdir / "train.csv")
            labels = np.array([c.label for c in clips])
            i, j = np.triu_indices(len(clips), 1)
            for split, emb, a, b, y in (
                    ("test", v.embed(uniq), np.array([ix[u] for u in t.a]), np.array([ix[u] for u in t.b]),
                     np.asarray(t.labels)),
                    ("dev", v.embed([c.path for c in clips]), i, j, (labels[i] == labels[j]).astype(int))):
                raw = (emb[a] * emb[b]).sum(1)
                row = {"model": model, "cohort": len(cohort), "protocol": p, "trials": split,
                       "raw": round(eer(raw, y)[0], 4)}
                for k in ks:
                    row["asnorm_all" if k == len(cohort) else f"asnorm_{k}"] = round(
                        eer(asnorm(raw, a, b, emb, cohort, k), y)[0], 4)
                rows.append(row)
                print(row, flush=True)
    atomic_write_text(HERE / "score_norm_zeroshot_results.json", json.dumps(rows, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zero-shot", metavar="MODEL", help="a model no protocol trained (a built-in's name)")
    ap.add_argument("--cohort", type=Path, help="with --zero-shot: the manifest whose clips are the cohort")
    args = ap.parse_args()
    if args.zero_shot:
        if args.cohort is None:
            ap.error("--zero-shot needs --cohort MANIFEST")
        zero_shot(args.zero_shot, args.cohort)
        return
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
            for k in TOP_K:
                row[f"asnorm_{k}"] = round(eer(asnorm(raw, a, b, emb, cohort, k), t.labels)[0], 4)
            rows.append(row)
            print(row, flush=True)
    atomic_write_text(HERE / "score_norm_results.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
