"""Does re-measuring a pretrained encoder's batch-norm statistics on a protocol's own (unlabelled) clips help it
score sounds it never trained on (AdaBN, Li et al., 2016)? For a model (the built-in ``sound`` by default), the
zero-shot EER on catsdogs' and heldout-sounds' test trials with the statistics as shipped and re-measured on the
protocol's train-split clips (labels unused); and, as a check the test trials never see, the EER of every pair of
one half of the train split (stratified, halves drawn by seed 0, as ``finetune.py --dev``) with the statistics as
shipped and re-measured on the other half. Re-measuring: two passes of random ``--frames``-long crops, batches of
32 (:func:`finetune.soup` with one member), once per ``--seeds`` seed.

    python benchmarks/adapt_probe.py --model sound --frames 200 --seeds 0,1

Writes benchmarks/adapt_probe_results.json (one row per model, frames and seed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from finetune import halves, pair_scores, soup  # noqa: E402
from run import protocol_dir, update_rows  # noqa: E402

from soundtwin.data import discover, read_trials  # noqa: E402
from soundtwin.evaluate import evaluate  # noqa: E402
from soundtwin.metrics import eer  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402

RESULTS = HERE / "adapt_probe_results.json"
PROTOCOLS = ("catsdogs", "heldout-sounds")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sound")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    v = load_verifier(args.model, "torch", cache_dir=HERE / "work" / "cache")
    for p in PROTOCOLS:
        pdir = protocol_dir(p)
        t = read_trials(pdir / "trials.txt")
        every = discover(pdir / "train.csv")
        feats = v.features_of([c.path for c in every])
        fit, held = halves(pdir / "train.csv", 0)
        mine = {c.path for c in fit}
        fit_feats = [feats[k] for k, c in enumerate(every) if c.path in mine]

        def test_eer(m) -> float:  # type: ignore[no-untyped-def]
            return eer(np.asarray(evaluate(m, t).scores), t.labels)[0]

        def dev_eer(m) -> float:  # type: ignore[no-untyped-def]
            return eer(*pair_scores(m, held))[0]

        test0, dev0 = test_eer(v), dev_eer(v)
        for seed in map(int, args.seeds.split(",")):
            test1 = test_eer(soup([v], feats, frames=args.frames, seed=seed))
            dev1 = dev_eer(soup([v], fit_feats, frames=args.frames, seed=seed))
            row = {"model": args.model, "protocol": p, "frames": args.frames, "seed": seed,
                   "test_eer": round(test0, 4), "test_eer_adapted": round(test1, 4),
                   "dev_eer": round(dev0, 4), "dev_eer_adapted": round(dev1, 4),
                   "when": time.strftime("%Y-%m-%d %H:%M")}
            key = (args.model, p, args.frames, seed)
            update_rows(RESULTS, lambda rows, key=key, row=row: [
                r for r in rows if (r["model"], r["protocol"], r["frames"], r["seed"]) != key] + [row])
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
