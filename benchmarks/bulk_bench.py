"""Bulk embedding (issue #17): clips/s of Ray Data (2 actors, 1 thread each) against one process (2 threads) on the
same clips, and a corpus of synthetic clips embedded to Parquet shards and enrolled end to end, with each
step's peak RSS (a subprocess each, measured by the kernel: ``ru_maxrss`` of the child). The corpus: 1-s clips
of 200 synthetic sound kinds, written once under benchmarks/work/bulk/. Writes benchmarks/bulk_results.json.

    python benchmarks/bulk_bench.py [--n 100000] [--speed-n 4000] [--model sound]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "bulk"


def corpus(n: int) -> Path:
    """``n`` clips as a Parquet manifest (path, label); files written once, a class folder per kind."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = WORK / f"corpus-{n}.parquet"
    if manifest.is_file():
        return manifest
    rng = np.random.default_rng(0)
    sr, t = 16000, np.arange(16000) / 16000
    paths, labels = [], []
    for i in range(n):
        k = i % 200
        f0 = 100 * 2 ** (k / 40)
        y = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.05 * rng.standard_normal())) * np.exp(-t * (k % 7))
        y = y + 0.02 * rng.standard_normal(len(t))
        p = WORK / "clips" / f"k{k:03d}" / f"{i:06d}.wav"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, y.astype(np.float32), sr, subtype="PCM_16")
        paths.append(str(p))
        labels.append(f"k{k:03d}")
    pq.write_table(pa.table({"path": paths, "label": labels}), manifest)
    return manifest


def child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall s, peak RSS MB of the child, stdout) of ``python -m soundtwin ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "soundtwin", *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, r.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--speed-n", type=int, default=8000)
    ap.add_argument("--model", default="sound")
    args = ap.parse_args()
    rows = []
    small = corpus(args.speed_n)
    for engine, extra in (("local", ["--threads", "2"]), ("ray", ["--workers", "2", "--threads", "1"])):
        out = WORK / f"speed-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        wall, _, stdout = child(["embed", args.model, str(small), "--out", str(out), "--engine", engine, *extra])
        tail = stdout.rsplit("(", 1)[1]  # "local, 12.3 s)" or "ray, 20.1 s, of which 4.2 s starting Ray)"
        secs = float(tail.split(",")[1].split()[0])
        startup = float(tail.split("of which")[1].split()[0]) if "of which" in tail else 0.0
        rows.append({"what": f"embed {args.speed_n} clips ({engine})", "clips_per_s": round(args.speed_n / secs, 1),
                     "clips_per_s_after_startup": round(args.speed_n / (secs - startup), 1),
                     "embed_s": secs, "ray_startup_s": startup, "wall_s": round(wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    rows[1]["vs_one_process"] = round(rows[1]["clips_per_s"] / rows[0]["clips_per_s"], 3)
    rows[1]["vs_one_process_after_startup"] = round(rows[1]["clips_per_s_after_startup"] / rows[0]["clips_per_s"], 3)
    big = corpus(args.n)
    out, gal = WORK / "shards", WORK / "gallery"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(gal, ignore_errors=True)
    wall, rss, stdout = child(["embed", args.model, str(big), "--out", str(out), "--threads", "2", "--chunk", "1000"])
    rows.append({"what": f"embed {args.n} clips to Parquet shards (local)", "wall_s": round(wall, 1),
                 "clips_per_s": round(args.n / wall, 1), "peak_rss_mb": round(rss)})
    print(json.dumps(rows[-1]), flush=True)
    # (each child's peak is its own: RUSAGE_CHILDREN keeps the largest so far, so enrol runs in a fresh shell)
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/env", "bash", "-c", f"{sys.executable} -m soundtwin enroll {gal} --model "
                        f"{args.model} --embeddings {out} >/dev/null && {sys.executable} -c \"import resource; "
                        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\""],
                       capture_output=True, text=True, check=True)
    rows.append({"what": f"enroll {args.n} vectors from the shards", "wall_s": round(time.perf_counter() - t, 1),
                 "peak_rss_mb": round(int(r.stdout.split()[-1]) / 1024)})
    print(json.dumps(rows[-1]), flush=True)
    from soundtwin.io import atomic_write_text

    atomic_write_text(HERE / "bulk_results.json", json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
