"""Pretraining a general-sound encoder on the recipe's clips (issue #16, first experiments): two-view training of
the default preset with every clip its own class (``scripts/fetch_sounds.py`` writes that manifest; its groups are
the source packages, so whole packages are held out for validation), then every protocol's trials with no training
on them. Writes benchmarks/pretrain_results.json (one row per run, merged by its settings).

    python scripts/fetch_sounds.py --out ~/.cache/soundtwin/sounds
    python benchmarks/pretrain.py --manifest ~/.cache/soundtwin/sounds/manifest.csv --set augment.enabled=true
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

from run import PUBLIC, own_protocols, protocol_dir  # noqa: E402

from soundtwin.config import load_config  # noqa: E402
from soundtwin.data import discover  # noqa: E402
from soundtwin.evaluate import evaluate  # noqa: E402
from soundtwin.io import atomic_write_text  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402
from soundtwin.training import train  # noqa: E402

RESULTS = HERE / "pretrain_results.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    clips = discover(args.manifest)
    cfg = load_config("default", overrides=args.overrides)
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        train(args.manifest, Path(work) / "m", cfg, cache_dir=str(HERE / "work" / "cache"))
        seconds = time.perf_counter() - t0
        v = load_verifier(Path(work) / "m", "torch", cache_dir=str(HERE / "work" / "cache"))
        eers = {p: round(evaluate(v, protocol_dir(p) / "trials.txt").metrics.eer, 4) for p in PUBLIC + own_protocols()}
    row = {"settings": args.overrides, "clips": len(clips), "groups": len({c.group for c in clips}),
           "pretrain_seconds": round(seconds, 1), "heldout_eer": v.meta.get("heldout_eer"), "zero_shot_eer": eers,
           "when": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(row), flush=True)
    rows = [r for r in (json.loads(RESULTS.read_text()) if RESULTS.is_file() else []) if r["settings"] != args.overrides]
    atomic_write_text(RESULTS, json.dumps(rows + [row], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
