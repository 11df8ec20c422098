"""Fine-tuned weights pulled back towards the pretrained ones (WiSE-FT, Wortsman et al., 2022: the weights
``(1 - a) x pretrained + a x fine-tuned``, which in their work kept more of what pretraining knew about unseen
data). For the members a ``finetune.py --ensemble --keep DIR`` run kept (``test-sN``: fine-tuned on the train
split, scored on the test trials; ``dev-sN``: fine-tuned on one half of it, every pair of the other half scored),
the EER at each ``a`` (1: the fine-tune as it is). Batch-norm running statistics are mixed like the weights.

    python benchmarks/wise_probe.py --kept benchmarks/work/soup-sound --source sound --protocol catsdogs

Writes benchmarks/wise_probe_results.json (one row per kept member).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from finetune import _complete, halves, pair_scores, soup  # noqa: E402
from run import protocol_dir, update_rows  # noqa: E402

from soundtwin.data import read_trials  # noqa: E402
from soundtwin.evaluate import evaluate  # noqa: E402
from soundtwin.metrics import eer  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402
from soundtwin.runtime.torch_runtime import Verifier  # noqa: E402

RESULTS = HERE / "wise_probe_results.json"
MIX = (1.0, 0.9, 0.8, 0.7, 0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kept", type=Path, required=True)
    ap.add_argument("--source", default="sound")
    ap.add_argument("--protocol", default="catsdogs")
    ap.add_argument("--halves-seed", type=int, default=0, help="the seed that drew the dev halves (the run's first)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    pretrained = load_verifier(args.source, "torch", cache_dir=False)
    pdir = protocol_dir(args.protocol)
    t = read_trials(pdir / "trials.txt")
    _, held = halves(pdir / "train.csv", args.halves_seed)

    for member in sorted(p for p in args.kept.iterdir() if _complete(p)):
        m = Verifier.load(member, cache_dir=False)
        dev = member.name.startswith("dev-")
        rates = {}
        for a in MIX:
            v = soup([m, pretrained], shares=[a, 1 - a])
            rates[str(a)] = round(eer(*pair_scores(v, held))[0] if dev else
                                  eer(np.asarray(evaluate(v, t).scores), t.labels)[0], 4)
        row = {"kept": str(args.kept), "member": member.name, "source": args.source, "protocol": args.protocol,
               "scored_on": "dev pairs" if dev else "test trials", "eer_by_mix": rates,
               "when": time.strftime("%Y-%m-%d %H:%M")}
        key = (row["kept"], row["member"], row["protocol"])
        update_rows(RESULTS, lambda rows, key=key, row=row: [
            r for r in rows if (r["kept"], r["member"], r["protocol"]) != key] + [row])
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
