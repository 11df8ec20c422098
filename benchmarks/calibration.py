"""Does a model's threshold and probability hold on clips it never saw? (issue 14, part 1)

For each protocol and seed, trains the default preset on ``train.csv`` with the held-out part that sets the
threshold and the probability map chosen by ``train.calibrate_on``: ``clips`` (clips of the training classes: the
old behaviour, and still ``auto`` without a group column), ``classes`` (whole classes), or ``groups`` (whole groups
of a ``group`` column, added here as a user would from FSDD's file names ``DIGIT_SPEAKER_N.wav``: the speaker for
fsdd-digits, whose test speakers are new, and the word for fsdd-speakers, whose test words are new), then on the
protocol's test trials measures: EER; for requested false-accept rates of 1 % and 5 % (thresholds from the
model's own held-out trials, ``soundtwin calibrate --far``) the achieved FAR and FRR; the FAR and FRR at the
stored EER-point threshold; and the expected calibration error (ECE, 10 bins) of the probabilities. Built-in
models are measured the same way with their shipped calibration (no training). Writes
benchmarks/calibration_results.json (one row per run, merged by key).

    python benchmarks/calibration.py --protocols fsdd-digits --seeds 0,1,2 --calibrate-on auto,clips
    python benchmarks/calibration.py --builtins speech,voice --protocols all
    python benchmarks/calibration.py --remeasure benchmarks/work/cal   # models kept by --keep, no training
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PUBLIC, own_protocols, protocol_dir  # noqa: E402

from soundtwin.config import load_config  # noqa: E402
from soundtwin.data import read_trials  # noqa: E402
from soundtwin.evaluate import score_trials  # noqa: E402
from soundtwin.io import atomic_write_text  # noqa: E402
from soundtwin.metrics import eer, expected_calibration_error, rates_at, threshold_at_far  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402
from soundtwin.runtime.modeldir import read_calibration  # noqa: E402
from soundtwin.training import train  # noqa: E402

TARGETS = (0.01, 0.05)
#: the group column a user of each protocol would give: what its test clips do not share with training
GROUP_BY = {"fsdd-digits": 1, "fsdd-speakers": 0}  # field of DIGIT_SPEAKER_N in FSDD's file names


def grouped_manifest(protocol: str, dest: Path) -> Path:
    """The protocol's train.csv with a ``group`` column (absolute paths)."""
    from soundtwin.data import discover

    lines = ["path,label,group"]
    for c in discover(protocol_dir(protocol) / "train.csv"):
        lines.append(f"{c.path.resolve()},{c.label},{c.path.stem.split('_')[GROUP_BY[protocol]]}")
    dest.write_text("\n".join(lines) + "\n")
    return dest
RESULTS = HERE / "calibration_results.json"


def measure(v, protocol: str) -> dict:
    trials = read_trials(protocol_dir(protocol) / "trials.txt")
    scores, _, _ = score_trials(v, trials)
    y = trials.labels
    fa, fr = rates_at(scores, y, v.threshold)
    row = {"eer": round(eer(scores, y)[0], 4), "stored_rule": v.meta.get("threshold_rule"),
           "stored_far": round(fa, 4), "stored_frr": round(fr, 4),
           "expected_far": (v.meta.get("expected") or {}).get("far"),
           "ece": round(expected_calibration_error(v.probability(scores), y), 4)}
    if v.model_dir is not None:
        cs, cl = read_calibration(v.model_dir)
        for t in TARGETS:
            thr = threshold_at_far(cs, cl, t)
            fa, fr = rates_at(scores, y, thr)
            row[f"far@{t}"], row[f"frr@{t}"] = round(fa, 4), round(fr, 4)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default="all")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--calibrate-on", default="auto")
    ap.add_argument("--builtins", default="", help="built-in models to measure instead of training")
    ap.add_argument("--keep", type=Path, default=None, help="keep the trained models here (PROTOCOL-ON-SEED)")
    ap.add_argument("--remeasure", type=Path, default=None, help="measure the models kept there again")
    args = ap.parse_args()
    protocols = PUBLIC + own_protocols() if args.protocols == "all" else args.protocols.split(",")
    rows = {r["key"]: r for r in json.loads(RESULTS.read_text())} if RESULTS.is_file() else {}

    def put(row: dict) -> None:
        rows[row["key"]] = row
        print(json.dumps(row), flush=True)
        atomic_write_text(RESULTS, json.dumps(sorted(rows.values(), key=lambda r: r["key"]), indent=1) + "\n")

    if args.remeasure is not None:
        for d in sorted(p for p in args.remeasure.iterdir() if p.is_dir()):
            protocol, on, seed = d.name.rsplit("-", 2)
            row = rows.get(f"{protocol}|default|{on}|{seed}")
            if row is not None:
                v = load_verifier(d, "torch", cache_dir=str(HERE / "work" / "cache"))
                put({**row, **measure(v, protocol), "remeasured": time.strftime("%Y-%m-%d %H:%M")})
        return 0
    for protocol in protocols:
        for name in filter(None, args.builtins.split(",")):
            v = load_verifier(name, "torch", cache_dir=False)
            put({"key": f"{protocol}|{name}", "protocol": protocol, "model": name, "on": v.meta.get("data"),
                 **measure(v, protocol), "when": time.strftime("%Y-%m-%d %H:%M")})
        if args.builtins:
            continue
        for on in args.calibrate_on.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                cfg = load_config("default", overrides=[f"train.seed={seed}", f"train.calibrate_on={on}"])
                work = Path(tempfile.mkdtemp(prefix=f"st-cal-{protocol}-"))
                try:
                    t0 = time.perf_counter()
                    data = protocol_dir(protocol) / "train.csv"
                    if on == "groups":
                        data = grouped_manifest(protocol, work / "train-grouped.csv")
                    train(data, work / "model", cfg, cache_dir=str(HERE / "work" / "cache"))
                    secs = time.perf_counter() - t0
                    v = load_verifier(work / "model", "torch", cache_dir=str(HERE / "work" / "cache"))
                    put({"key": f"{protocol}|default|{on}|{seed}", "protocol": protocol, "model": "default",
                         "calibrate_on": on, "seed": seed, "heldout": v.meta.get("heldout"),
                         "heldout_classes": v.meta.get("heldout_classes"), **measure(v, protocol),
                         "train_seconds": round(secs, 1), "when": time.strftime("%Y-%m-%d %H:%M")})
                    if args.keep is not None:
                        dest = args.keep / f"{protocol}-{on}-{seed}"
                        shutil.rmtree(dest, ignore_errors=True)
                        shutil.copytree(work / "model", dest, symlinks=True)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
