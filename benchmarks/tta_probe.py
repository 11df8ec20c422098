"""Does averaging test-time views help a model score unseen sounds with no training (issue #16)? Each clip of
catsdogs' and heldout-sounds' test trials and of every pair of their train splits (dev pairs, which no test list
holds) is embedded whole at several playback speeds (resampled: pitch and tempo move together, as speed
perturbation does in training), and the unit embeddings of a set of speeds are averaged; zero-shot EER by cosine.
The set ``1.0`` alone is what soundtwin scores today.

Writes benchmarks/tta_results.json (rows of other models kept).

    python benchmarks/tta_probe.py --model sound
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from embed_probe import PROTOCOLS, Probe, trials, unit  # noqa: E402
from run import update_rows  # noqa: E402

from soundtwin.audio import load_audio, resample  # noqa: E402
from soundtwin.metrics import eer  # noqa: E402

#: the sets of playback speeds whose embeddings are averaged
VIEWS = ((1.0,), (0.95, 1.0, 1.05), (0.9, 1.0, 1.1), (0.85, 0.92, 1.0, 1.08, 1.15))
RESULTS = HERE / "tta_results.json"


def embeddings(probe: Probe, paths: list[str], speeds: set[float]) -> dict[float, np.ndarray]:
    """``{speed: unit embeddings of paths}``, each clip whole, played ``speed`` times as fast."""
    sr = probe.v.extractor.cfg.sample_rate
    out: dict[float, list[np.ndarray]] = {s: [] for s in sorted(speeds)}
    with torch.inference_mode():
        for path in paths:
            y, _ = load_audio(path, sr)
            for s in out:
                ys = y if s == 1.0 else resample(y, int(round(sr * s)), sr)
                x = probe.v.extractor.from_signal(ys, sr, name=path)
                out[s].append(unit(probe.enc(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()))
    return {s: np.stack(e) for s, e in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sound")
    args = ap.parse_args()
    torch.set_num_threads(1)
    probe = Probe(args.model)
    rows = []
    for p in PROTOCOLS:
        for split, (paths, a, b, y) in trials(p).items():
            emb = embeddings(probe, paths, {s for v in VIEWS for s in v})
            for speeds in VIEWS:
                e = unit(np.mean([emb[s] for s in speeds], axis=0))
                row = {"model": args.model, "protocol": p, "trials": split, "speeds": list(speeds),
                       "eer": round(eer((e[a] * e[b]).sum(1), y)[0], 4)}
                rows.append(row)
                print(row, flush=True)
    update_rows(RESULTS, lambda old: [r for r in old if r["model"] != args.model] + rows)


if __name__ == "__main__":
    main()
