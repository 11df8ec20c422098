"""Training speed alone and beside a busy core, for several thread settings, in one run; and start-up times.

Each setting trains the same small model on synthetic sounds (features cached first, so epochs are
pure training) with ``soundtwin train`` in a fresh process, once on idle cores and once while another
process keeps one core busy. Writes benchmarks/contention_results.json.

    python benchmarks/contention.py
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "contention_results.json"
SETTINGS = {
    "torch default threads, OpenMP spinning (the old default)": {"env": {"OMP_WAIT_POLICY": "ACTIVE"}, "set": []},
    "soundtwin default": {"env": {}, "set": []},
    "train.num_threads=1": {"env": {}, "set": ["train.num_threads=1"]},
}
TRAIN = ["train.epochs=4", "model.channels=64", "model.embedding_dim=64", "train.batch_size=32"]


def epoch_seconds(output: str) -> list[float]:
    return [float(m) for m in re.findall(r"epoch\s+\d+/\d+\s.*?\s([\d.]+)s\s*$", output, flags=re.M)]


def train_once(data: Path, out: Path, env: dict, sets: list[str], cache: Path) -> list[float]:
    args = [sys.executable, "-m", "soundtwin.cli", "train", str(data), "--out", str(out), "--overwrite", "--quiet",
            "--cache", str(cache)]
    for s in TRAIN + sets:
        args += ["--set", s]
    r = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return epoch_seconds(r.stdout + r.stderr)[1:]  # the first epoch warms up


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def startup() -> dict:
    """Median wall time of a few CLI commands (5 runs each, warm page cache)."""
    work = Path(tempfile.mkdtemp(prefix="soundtwin-startup-"))
    from soundtwin.synth import SR, synth_clip

    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    a, b = work / "a.wav", work / "b.wav"
    sf.write(a, synth_clip("hum", rng), SR)
    sf.write(b, synth_clip("whistle", rng), SR)
    data = work / "data"
    from soundtwin.synth import write_synthetic_dataset

    write_synthetic_dataset(data, ["whistle", "hum", "knock"], 16, seed=1, min_s=0.5, max_s=1.0)
    model = work / "m"
    subprocess.run([sys.executable, "-m", "soundtwin.cli", "train", str(data), "--out", str(model), "--quiet",
                    "--set", "train.epochs=2", "--set", "model.channels=32"], check=True, capture_output=True)
    gal = work / "g"
    subprocess.run([sys.executable, "-m", "soundtwin.cli", "enroll", str(gal), "--model", str(model), str(data)],
                   check=True, capture_output=True)
    exported = work / "mx"
    subprocess.run(["cp", "-r", str(model), str(exported)], check=True)
    subprocess.run([sys.executable, "-m", "soundtwin.cli", "export", str(exported)], check=True, capture_output=True)
    exe = str(Path(sys.executable).with_name("soundtwin"))
    cmds = {"soundtwin --help": [exe, "--help"], "soundtwin gallery GAL list": [exe, "gallery", str(gal), "list"],
            "soundtwin compare (torch model)": [exe, "compare", str(model), str(a), str(b), "--runtime", "torch"],
            "soundtwin compare (exported model: auto -> onnx)": [exe, "compare", str(exported), str(a), str(b)]}
    out = {}
    for name, cmd in cmds.items():
        times = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        out[name] = round(statistics.median(times), 2)
        print(name, out[name], flush=True)
    return out


def main() -> None:
    from soundtwin.synth import write_synthetic_dataset

    if "--startup-only" in sys.argv:
        res = json.loads(OUT.read_text()) if OUT.is_file() else {}
        res["startup"] = startup()
        from soundtwin.io import atomic_write_text

        atomic_write_text(OUT, json.dumps(res, indent=1) + "\n")
        return

    work = Path(tempfile.mkdtemp(prefix="soundtwin-contention-"))
    data = work / "data"
    write_synthetic_dataset(data, ["whistle", "hum", "knock", "hiss", "chirp_up", "buzz"], 40, seed=1, min_s=1.0, max_s=2.0)
    cache = work / "cache"
    rows = []
    for name, st in SETTINGS.items():
        row = {"setting": name}
        for load in ("idle", "one core busy"):
            hog = busy() if load != "idle" else None
            try:
                secs = train_once(data, work / "m", st["env"], st["set"], cache)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            row[f"{load} s/epoch"] = round(statistics.median(secs), 2)
        row["slowdown"] = round(row["one core busy s/epoch"] / row["idle s/epoch"], 2)
        print(row, flush=True)
        rows.append(row)
    res = {"training": rows, "startup": startup(), "command": "python benchmarks/contention.py",
           "cores": os.cpu_count()}
    from soundtwin.io import atomic_write_text

    atomic_write_text(OUT, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
