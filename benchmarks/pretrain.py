"""The general-sound encoder (issue #16): pretrain it on the recipe's clips, or measure a model with no training
on any protocol (zero-shot): every protocol's trials, every pair of catsdogs' and heldout-sounds' train splits
(``dev_eer``: a development check that the test trials never see; a choice that wins on the test trials alone is
not one to keep), and 5-way 1-shot and 5-shot accuracy on the unseen sound classes of ``heldout-sounds``. Writes
benchmarks/pretrain_results.json (one row per run, merged by its settings).

Pretraining is two-view training (every clip its own class; two random crops of a clip are a genuine pair, other
clips impostors), whole source packages held out for validation (the manifest's groups):

    python scripts/fetch_sounds.py --out benchmarks/work/heldout-sounds --packages megaglest-data
    python scripts/fetch_sounds.py --out benchmarks/work/sounds --exclude benchmarks/work/heldout-sounds/manifest.csv
    python benchmarks/make_protocols.py
    python benchmarks/pretrain.py --manifest benchmarks/work/sounds/manifest.csv --preset sound --keep DIR
    python benchmarks/pretrain.py --model sound          # the shipped built-in (or any model directory)
    python benchmarks/pretrain.py --model mfcc           # the untrained MFCC statistics reference
    python benchmarks/pretrain.py --manifest ... --keep DIR --measure-kept   # a kept run measured again

With a teacher (distillation: ``loss.teacher``, benchmarks/teacher.py writes its targets file):

    pip install --no-deps aisfx==0.1.2
    python benchmarks/teacher.py --manifest benchmarks/work/sounds/manifest.csv --labels kind \
        --out benchmarks/work/teacher/aisfx-kind.safetensors
    python benchmarks/pretrain.py --manifest benchmarks/work/sounds/manifest.csv --preset sound --labels kind \
        --set loss.teacher=benchmarks/work/teacher/aisfx-kind.safetensors ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import DEV, PUBLIC, own_protocols, protocol_dir, update_rows  # noqa: E402

from soundtwin.data import discover, encode_labels, read_trials  # noqa: E402
from soundtwin.fewshot import fewshot_embeddings  # noqa: E402
from soundtwin.metrics import eer  # noqa: E402

RESULTS = HERE / "pretrain_results.json"
FEWSHOT = "heldout-sounds"
CACHE = str(HERE / "work" / "cache")


def dev_eer(embed, protocol: str) -> float:  # type: ignore[no-untyped-def]
    """EER over every pair of ``protocol``'s train clips (same label = genuine): a second check of a choice,
    beside the test trials, that the test trials never see."""
    clips = discover(protocol_dir(protocol) / "train.csv")
    e = embed([c.path for c in clips])
    labels = np.array([c.label for c in clips])
    i, j = np.triu_indices(len(clips), 1)
    return round(eer((e[i] * e[j]).sum(1), (labels[i] == labels[j]).astype(int))[0], 4)


def measure(embed) -> dict:  # type: ignore[no-untyped-def]
    """Zero-shot EER on every protocol, EER on the train-split pairs of :data:`DEV`, and few-shot accuracy on
    heldout-sounds' test classes; ``embed(paths)`` gives unit vectors (cosine scores)."""
    eers = {}
    for p in PUBLIC + own_protocols():
        t = read_trials(protocol_dir(p) / "trials.txt")
        paths = sorted(set(t.a) | set(t.b))
        e = dict(zip(paths, embed(paths), strict=True))
        s = np.array([float(e[i] @ e[j]) for i, j in zip(t.a, t.b, strict=True)])
        eers[p] = round(eer(s, np.asarray(t.labels))[0], 4)
    few = {}
    if FEWSHOT in own_protocols():
        clips = discover(protocol_dir(FEWSHOT) / "test.csv")
        labels, _ = encode_labels([c.label for c in clips])
        emb = embed([c.path for c in clips])
        for shots in (1, 5):
            r = fewshot_embeddings(emb, labels, ways=5, shots=shots, episodes=2000, seed=0)
            few[f"5-way {shots}-shot"] = {"accuracy": round(r.accuracy, 4), "ci95": round(r.ci95, 4)}
    dev = {p: dev_eer(embed, p) for p in DEV if p in PUBLIC + own_protocols()}
    return {"zero_shot_eer": eers, "dev_eer": dev, "fewshot": few}


def model_embed(model: str):  # type: ignore[no-untyped-def]
    if model == "mfcc":
        from baseline import stats

        def mf(paths: list[str]) -> np.ndarray:
            x = np.stack([stats(p) for p in paths])
            return x / np.linalg.norm(x, axis=1, keepdims=True)
        return mf
    from soundtwin.runtime import load_verifier

    v = load_verifier(model, "torch", cache_dir=CACHE)
    return lambda paths: v.embed(paths)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--manifest", type=Path, help="pretrain on this manifest, then measure")
    what.add_argument("--model", help="measure this model (a built-in, a model directory, or mfcc) as it is")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--keep", type=Path, help="also copy the pretrained model directory here")
    ap.add_argument("--measure-kept", action="store_true",
                    help="train nothing: the run of these arguments was kept in --keep; measure that model again "
                         "and update the run's row (its training figures stay)")
    ap.add_argument("--labels", choices=("clip", "kind"), default="clip",
                    help="clip: every clip its own class (self-supervised); kind: the takes of one sound effect "
                         "(the manifest's kind column) share a class, the rest stay single clips")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.model:
        row = {"model": args.model, **measure(model_embed(args.model))}
        key = ("model", args.model)
    else:
        from soundtwin.config import load_config
        from soundtwin.runtime import load_verifier
        from soundtwin.training import train

        clips = discover(args.manifest)
        cfg = load_config(args.preset, overrides=args.overrides)
        if args.measure_kept:
            return _measure_kept(args, len(clips))
        with tempfile.TemporaryDirectory() as work:
            manifest = args.manifest if args.labels == "clip" else _relabel(args.manifest, Path(work) / "kind.csv")
            t0 = time.perf_counter()
            train(manifest, Path(work) / "m", cfg, cache_dir=CACHE)
            seconds = time.perf_counter() - t0
            if args.keep:  # before measuring: a failure there loses no training
                shutil.copytree(Path(work) / "m", args.keep, dirs_exist_ok=False)
            v = load_verifier(Path(work) / "m", "torch", cache_dir=CACHE)
            got = measure(lambda paths: v.embed(paths))
        row = {"preset": args.preset, "settings": args.overrides, "manifest": _shown(args.manifest),
               "clips": len(clips),
               "groups": len({c.group for c in clips}), "hours": round(_hours(args.manifest), 3),
               "pretrain_seconds": round(seconds, 1), "threads": args.threads, "machine": "CPU, 2 cores",
               "heldout_eer": v.meta.get("heldout_eer"), **got}
        if args.labels != "clip":
            row["labels"] = args.labels
        key = _key(row)
    row["when"] = time.strftime("%Y-%m-%d %H:%M")
    print(json.dumps(row), flush=True)
    update_rows(RESULTS, lambda rows: [r for r in rows if _key(r) != key] + [row])
    return 0


def _measure_kept(args: argparse.Namespace, n_clips: int) -> int:
    """``--measure-kept``: the kept model of the run these arguments describe, measured again; its row is
    updated in place (pretraining time, clips and the like are the run's)."""
    from soundtwin.runtime import load_verifier

    if args.keep is None or not args.keep.is_dir():
        sys.exit("--measure-kept needs --keep DIR, the model directory that run kept")
    key = _key({"preset": args.preset, "settings": args.overrides, "labels": args.labels, "clips": n_clips,
                "threads": args.threads})

    def ours(rows: list[dict]) -> dict | None:
        return next((r for r in rows if "settings" in r and _key(r) == key), None)

    if ours(json.loads(RESULTS.read_text()) if RESULTS.is_file() else []) is None:
        sys.exit(f"{RESULTS.name} has no run of these arguments to update ({key[1]})")
    v = load_verifier(args.keep, "torch", cache_dir=CACHE)
    got = measure(lambda paths: v.embed(paths))

    def change(rows: list[dict]) -> list[dict]:
        row = ours(rows)
        if row is None:  # removed while this one measured
            sys.exit(f"{RESULTS.name}: the run's row went away while it was measured; nothing written")
        row.update(got)
        print(json.dumps(row), flush=True)
        return rows

    update_rows(RESULTS, change)
    return 0


def _key(row: dict) -> tuple:
    """A run's row is replaced by a run of the same arguments; a run with another thread count is a run of its
    own (torch sums in another order: other weights, other figures), so both rows stay."""
    if "model" in row:
        return ("model", row["model"])
    return ("settings", [row.get("preset", "default"), *row["settings"], row.get("labels", "clip"), row["clips"],
                         row.get("threads", 2)])


def _relabel(manifest: Path, out: Path) -> Path:
    """A copy of the manifest whose label is its kind column (paths made absolute)."""
    import csv
    import io

    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "path": str((manifest.parent / r["path"]).resolve()), "label": r["kind"]})
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out


def _shown(path: Path) -> str:
    """``path`` as the row records it: from the repository root where it lies under it."""
    p = path.resolve()
    return str(p.relative_to(HERE.parent)) if p.is_relative_to(HERE.parent) else str(p)


def _hours(manifest: Path) -> float:
    import csv

    with open(manifest, newline="", encoding="utf-8") as fh:
        return sum(float(r.get("seconds") or 0) for r in csv.DictReader(fh)) / 3600


if __name__ == "__main__":
    sys.exit(main())
