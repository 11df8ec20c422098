"""Which test clips carry a model's errors on a protocol, and what they sound like next to their class.

Scores the protocol's trials with MODEL (a model directory or a built-in; with ``--fine-tune-seed N``, MODEL
fine-tuned first on the protocol's train split as the README advises for the classes you will verify against:
``train.lr=2e-3 train.val_fraction=0.05``, seed N, one torch thread), lists the clips in the largest share of
wrong decisions at the EER threshold (``soundtwin evaluate --worst``) with each one's duration, level, median
pitch (librosa's pYIN, 80-2000 Hz), voiced share and spectral centroid, beside the medians of every test clip of
each label, and the EER without the worst clips' trials. Writes ``benchmarks/hard_clips_results.json``.

    python benchmarks/hard_clips.py sound --protocol catsdogs --fine-tune-seed 0 --worst 5   # about 6 min
    python benchmarks/hard_clips.py sound --protocol catsdogs --worst 12                     # no training
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from finetune import fine_tune  # noqa: E402
from run import protocol_dir, update_rows  # noqa: E402

import numpy as np  # noqa: E402

from soundtwin.data import discover, read_trials  # noqa: E402
from soundtwin.evaluate import evaluate, hardest_clips  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402

SR = 16000


def describe(path: str) -> dict[str, float]:
    """Duration (s), RMS level (dBFS), median f0 over voiced frames (Hz; NaN when none), voiced share and
    median spectral centroid (Hz) of one clip at 16 kHz."""
    import librosa

    y, _ = librosa.load(path, sr=SR)
    f0, voiced, _ = librosa.pyin(y, fmin=80, fmax=2000, sr=SR, frame_length=1024)
    return {"seconds": round(len(y) / SR, 2),
            "level_db": round(float(20 * np.log10(np.sqrt(np.mean(y ** 2)) + 1e-9)), 1),
            "f0_hz": round(float(np.nanmedian(f0)), 0) if voiced.any() else float("nan"),
            "voiced": round(float(np.mean(voiced)), 2),
            "centroid_hz": round(float(np.median(librosa.feature.spectral_centroid(y=y, sr=SR))), 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--protocol", default="catsdogs")
    ap.add_argument("--worst", type=int, default=5)
    ap.add_argument("--fine-tune-seed", type=int, default=None)
    args = ap.parse_args()
    pdir = protocol_dir(args.protocol)
    trials = read_trials(pdir / "trials.txt")
    if args.fine_tune_seed is None:
        ev = evaluate(load_verifier(args.model, "torch", cache_dir=False), trials)
    else:
        how = argparse.Namespace(source=args.model, overrides=["train.lr=2e-3", "train.val_fraction=0.05"], threads=1)
        with tempfile.TemporaryDirectory() as work:
            _, res, _ = fine_tune(pdir, how, args.fine_tune_seed, Path(work) / "m", Path(work) / "c")
            ev = evaluate(res.verifier, trials)
    worst, rest = hardest_clips(ev, args.worst)
    label = {str(Path(c.path).resolve()): c.label for c in discover(pdir / "test.csv")}
    desc = {path: describe(path) for path in label}  # (every trial's clip is a test clip)
    per_label: dict[str, list[dict[str, float]]] = {}
    for path, lab in label.items():
        per_label.setdefault(lab, []).append(desc[path])
    medians = {lab: {k: round(float(np.nanmedian([d[k] for d in ds])), 2) for k in ds[0]}
               for lab, ds in sorted(per_label.items())}
    for w in worst:
        path = str(Path(w["clip"]).resolve())
        w["label"] = label.get(path, "?")
        w.update(desc[path] if path in desc else describe(w["clip"]))
    cols = ("seconds", "level_db", "f0_hz", "voiced", "centroid_hz")
    how = "" if args.fine_tune_seed is None else f" fine-tuned (seed {args.fine_tune_seed})"
    print(f"{args.model}{how} on {args.protocol}: EER {ev.metrics.eer:.4f}, without the {len(worst)} worst clips' trials "
          f"{rest}")
    print(f"{'clip':28s} {'label':6s} {'wrong':>6s} " + " ".join(f"{c:>11s}" for c in cols))
    for lab, m in medians.items():
        print(f"{'(median of the test ' + lab + 's)':28s} {lab:6s} {'':6s} " + " ".join(f"{m[c]:11g}" for c in cols))
    for w in worst:
        print(f"{Path(w['clip']).name:28s} {w['label']:6s} {w['error_share']:6.1%} "
              + " ".join(f"{w[c]:11g}" for c in cols))
    row = {"model": args.model, "protocol": args.protocol, "fine_tune_seed": args.fine_tune_seed,
           "eer": round(ev.metrics.eer, 4),
           "eer_without_worst": rest, "worst": [{**w, "clip": Path(w["clip"]).name} for w in worst],
           "label_medians": medians, "when": time.strftime("%Y-%m-%d %H:%M")}
    key = (args.model, args.protocol, args.fine_tune_seed)
    update_rows(HERE / "hard_clips_results.json",
                lambda rows: [r for r in rows if (r["model"], r["protocol"], r["fine_tune_seed"]) != key] + [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
