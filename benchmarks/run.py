"""Benchmark soundtwin presets on verification protocols and write benchmarks/RESULTS.md.

Each (protocol, preset, seed) run happens in its own process with a fresh feature cache, so the
training time includes decoding and the peak memory is that run's alone. Results accumulate in
benchmarks/results.json (keyed by run), from which RESULTS.md is regenerated.

    python benchmarks/run.py                                   # all protocols, both presets
    python benchmarks/run.py --protocols catsdogs --presets default
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", HERE.parent.parent / "shared"))
PUBLIC = ["catsdogs", "fsdd-digits", "fsdd-speakers"]
REFERENCE_TUTORIAL = {"catsdogs": 0.472, "fsdd-digits": 0.440, "fsdd-speakers": 0.497}


def protocol_dir(name: str) -> Path:
    own = HERE / "protocols" / name
    return own if own.is_dir() else SHARED / "benchmarks" / name


def own_protocols() -> list[str]:
    d = HERE / "protocols"
    return sorted(p.name for p in d.iterdir() if (p / "trials.txt").is_file()) if d.is_dir() else []


def run_one(protocol: str, preset: str, seed: int, overrides: list[str], keep: Path | None = None) -> dict:
    import numpy as np

    from soundtwin.config import load_config
    from soundtwin.evaluate import evaluate, read_trials
    from soundtwin.train import train
    from soundtwin.verifier import Verifier

    pdir = protocol_dir(protocol)
    cfg = load_config(preset, overrides=[f"train.seed={seed}", *overrides])
    work = Path(tempfile.mkdtemp(prefix=f"st-{protocol}-{preset}-"))
    try:
        t0 = time.perf_counter()
        train(pdir / "train.csv", work / "model", cfg, cache_dir=work / "cache")
        train_s = time.perf_counter() - t0
        v = Verifier.load(work / "model", cache_dir=work / "cache")
        trials = read_trials(pdir / "trials.txt")
        t1 = time.perf_counter()
        ev = evaluate(v, trials)  # cold: decode + features + embed for every test clip
        cold = ev.n_clips / (time.perf_counter() - t1)
        uniq = sorted(set(trials.a) | set(trials.b))
        feats, _ = v.extractor.from_files(uniq)
        t2 = time.perf_counter()
        v.embed_features(feats)  # the network alone, on cached features
        net = len(uniq) / (time.perf_counter() - t2)
        m = ev.metrics
        if keep is not None:
            dest = keep / f"{protocol}-{preset}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(work / "model", dest)
        durations = [f.shape[-1] for f in feats]
        return {
            "protocol": protocol, "preset": preset, "seed": seed, "overrides": overrides,
            "eer": m.eer, "roc_auc": m.roc_auc, "min_dcf": m.min_dcf, "accuracy": m.accuracy,
            "threshold": m.threshold, "heldout_eer": v.meta.get("heldout_eer"),
            "train_seconds": round(train_s, 1), "clips_per_s_cold": round(cold, 1), "clips_per_s_net": round(net, 1),
            "test_clips": len(uniq), "median_frames": int(np.median(durations)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "trials": int(m.n_trials), "when": time.strftime("%Y-%m-%d %H:%M"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def key(r: dict) -> str:
    return f"{r['protocol']}|{r['preset']}|{r['seed']}|{' '.join(r.get('overrides', []))}"


def render(results: dict[str, dict], command: str) -> str:
    import numpy as np

    rows = list(results.values())
    protos = [p for p in PUBLIC if any(r["protocol"] == p for r in rows)] + \
             sorted({r["protocol"] for r in rows} - set(PUBLIC))
    lines = ["# Benchmark results", "",
             f"Produced by `{command}` on this project's 2-core CPU machine (no GPU). Each run trains on the protocol's",
             "`train.csv` only (15 % of it held out for the threshold), then scores every trial of `trials.txt`.",
             "Accuracy is at the threshold stored with the model (chosen on training data).",
             "Training seconds are end to end with a cold feature cache (decoding included); `clips/s cold` decodes,",
             "featurises and embeds each test clip; `clips/s net` is the encoder alone on cached features; peak RSS is",
             "the whole process's. Rows with several seeds show the mean (and the range of EER).", ""]
    lines += ["| protocol | preset | seeds | EER | EER range | ROC AUC | minDCF | accuracy @ stored thr. | train s | "
              "clips/s cold | clips/s net | peak RSS MB | tutorial ref. EER |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in protos:
        for preset in ("tutorial", "default"):
            rs = [r for r in rows if r["protocol"] == p and r["preset"] == preset and not r.get("overrides")]
            if not rs:
                continue
            mean = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
            eers = [r["eer"] for r in rs]
            ref = REFERENCE_TUTORIAL.get(p)
            lines.append(f"| {p} | {preset} | {len(rs)} | {mean('eer'):.3f} | {min(eers):.3f}-{max(eers):.3f} | "
                         f"{mean('roc_auc'):.3f} | {mean('min_dcf'):.3f} | {mean('accuracy'):.3f} | "
                         f"{mean('train_seconds'):.0f} | {mean('clips_per_s_cold'):.0f} | {mean('clips_per_s_net'):.0f} | "
                         f"{max(r['peak_rss_mb'] for r in rs):.0f} | {'' if ref is None else f'{ref:.3f}'} |")
    extra = [r for r in rows if r.get("overrides")]
    if extra:
        lines += ["", "## Variants", "", "| protocol | preset | overrides | seed | EER | accuracy | train s |", "|---|---|---|---|---|---|---|"]
        for r in sorted(extra, key=key):
            lines.append(f"| {r['protocol']} | {r['preset']} | `{' '.join(r['overrides'])}` | {r['seed']} | "
                         f"{r['eer']:.3f} | {r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default=",".join(PUBLIC + own_protocols()))
    ap.add_argument("--presets", default="tutorial,default")
    ap.add_argument("--tutorial-seeds", type=int, default=3)
    ap.add_argument("--default-seeds", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="config override for a variant run")
    ap.add_argument("--one", nargs=3, metavar=("PROTOCOL", "PRESET", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    ap.add_argument("--keep", type=Path, help="copy each trained model to KEEP/<protocol>-<preset>")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], int(args.one[2]), args.overrides, args.keep)))
        return
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for protocol in args.protocols.split(","):
        for preset in args.presets.split(","):
            seeds = args.tutorial_seeds if preset == "tutorial" else args.default_seeds
            for seed in range(seeds):
                cmd = [sys.executable, __file__, "--one", protocol, preset, str(seed)]
                for o in args.overrides:
                    cmd += ["--set", o]
                if args.keep:
                    cmd += ["--keep", str(args.keep.resolve())]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"run {protocol}/{preset}/{seed} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[key(r)] = r
                print(f"{protocol:22s} {preset:9s} seed {seed}  EER {r['eer']:.4f}  AUC {r['roc_auc']:.4f}  "
                      f"minDCF {r['min_dcf']:.4f}  acc {r['accuracy']:.4f}  train {r['train_seconds']:.0f}s  "
                      f"{r['clips_per_s_cold']:.0f} clips/s cold  {r['peak_rss_mb']:.0f} MB", flush=True)
                tmp = args.results.with_suffix(".tmp")
                tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
                os.replace(tmp, args.results)
    md = HERE / "RESULTS.md"
    body = render(results, "python benchmarks/run.py")
    extra = HERE / "RESULTS-notes.md"
    if extra.is_file():
        body += "\n" + extra.read_text()
    tmp = md.with_suffix(".tmp")
    tmp.write_text(body)
    os.replace(tmp, md)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
