"""Fine-tuning a built-in model on a protocol's training split (``train --from``), evaluated on its trials,
beside the built-in with no training.

    python benchmarks/finetune.py --protocols fsdd-speakers,heldout-speakers --source voice --set train.lr=2e-4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import protocol_dir, update_rows  # noqa: E402

from soundtwin.data import read_trials  # noqa: E402
from soundtwin.evaluate import evaluate  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402
from soundtwin.training import finetune_config, train  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default="fsdd-speakers,heldout-speakers")
    ap.add_argument("--source", default="voice")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--results", type=Path, default=HERE / "finetune_results.json")
    args = ap.parse_args()
    for protocol in args.protocols.split(","):
        pdir = protocol_dir(protocol)
        trials = read_trials(pdir / "trials.txt")
        zero = evaluate(load_verifier(args.source, "torch", cache_dir=False), trials).metrics
        for seed in map(int, args.seeds.split(",")):
            cfg = finetune_config(args.source, [*args.overrides, f"train.seed={seed}"])
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                res = train(pdir / "train.csv", Path(work) / "m", cfg, cache_dir=Path(work) / "c", init_from=args.source)
                seconds = time.perf_counter() - t0
                m = evaluate(res.verifier, trials).metrics
            row = {"protocol": protocol, "source": args.source, "trains": cfg.model.name, "seed": seed,
                   "overrides": args.overrides,
                   "zero_shot_eer": round(zero.eer, 4), "fine_tuned_eer": round(m.eer, 4),
                   "fine_tuned_accuracy": round(m.accuracy, 4), "heldout_eer": round(res.history[-1].heldout_eer, 4),
                   "train_seconds": round(seconds, 1), "when": time.strftime("%Y-%m-%d %H:%M")}
            key = (protocol, args.source, seed, args.overrides)
            update_rows(args.results, lambda rows, key=key, row=row: [
                r for r in rows if (r["protocol"], r["source"], r["seed"], r["overrides"]) != key] + [row])
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
