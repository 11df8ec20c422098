"""Fit the shipped threshold and probability calibration of the built-in models (writes
src/soundtwin/pretrained/calibration.json).

Each built-in is calibrated on the training split of the public protocol that asks its question, so the
protocol's test speakers / words stay unseen: ``voice`` on "same speaker?" trials over fsdd-speakers'
train.csv (digits 0-4), ``speech`` on "same word?" trials over fsdd-digits' train.csv (speakers george,
jackson, lucas, nicolas), ``sound`` on "same sound?" trials over our heldout-sounds protocol's train.csv (its
train classes of game sound effects: needs ``scripts/fetch_sounds.py``, see that protocol; its test classes stay
unseen). Trials: 20,000 balanced pairs, seed 0. The same clips give each built-in its
``centre``, the mean of their embeddings, subtracted from every embedding before scoring (measured on those
protocols' test trials, benchmarks/zeroshot.py: speech on fsdd-digits EER 0.034 -> 0.023, voice on fsdd-speakers 0.150 -> 0.095).
``sound`` gets none: a centre from game sound effects helped on game sound effects (heldout-sounds 0.249 ->
0.241) and hurt elsewhere (catsdogs 0.349 -> 0.362, heldout-digits-a 0.231 -> 0.234).

    python scripts/calibrate_builtins.py            # needs ../shared beside the repo
    python scripts/calibrate_builtins.py sound      # only these (the others' entries are kept as they are)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


from soundtwin.data import discover
from soundtwin.evaluate import calibration_trials
from soundtwin.io import atomic_write_text
from soundtwin.metrics import calibrate
from soundtwin.pretrained import load_builtin

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", ROOT.parent / "shared"))
DATA = {"voice": SHARED / "benchmarks" / "fsdd-speakers", "speech": SHARED / "benchmarks" / "fsdd-digits",
        "sound": ROOT / "benchmarks" / "protocols" / "heldout-sounds"}
CENTRED = {"voice", "speech"}


def main() -> int:
    names = sys.argv[1:] or list(DATA)
    unknown = [n for n in names if n not in DATA]
    if unknown:
        sys.exit(f"not a built-in with calibration data: {', '.join(unknown)} (have {', '.join(DATA)})")
    target = ROOT / "src" / "soundtwin" / "pretrained" / "calibration.json"
    out = json.loads(target.read_text()) if target.is_file() else {}
    for name in names:
        protocol = DATA[name]
        csv = protocol / "train.csv"
        clips = discover(csv)
        v = load_builtin(name, cache_dir=False)
        v.centre = None  # the mean is measured on the uncentred embeddings
        emb = v.embed([c.path for c in clips])
        centre = emb.mean(axis=0) if name in CENTRED else None
        v.centre = centre
        scores, y, _ = calibration_trials(v, csv, 20000, 0, emb=v.centred(emb))
        out[name] = {**calibrate(scores, y), "centre": None if centre is None else [round(float(x), 7) for x in centre],
                     "data": f"{protocol.name} train.csv ({len(clips)} clips), {len(y)} balanced trials, seed 0",
                     "command": "python scripts/calibrate_builtins.py"}
        print(f"{name:8s} threshold {out[name]['threshold']:.4f}  EER on its calibration trials "
              f"{out[name]['heldout_eer']:.4f}")
    atomic_write_text(target, json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
