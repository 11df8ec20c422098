"""Training on several processes (torchrun, gloo on CPU): disjoint shards, one model directory, resume across
a changed process count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from soundtwin.runtime import load_verifier
from soundtwin.runtime.modeldir import read_meta

from .conftest import TINY

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)


def test_two_processes_train_on_disjoint_shards_into_one_loadable_model(synth_data, tmp_path):
    out = tmp_path / "m"
    r = torchrun(2, str(HERE / "ddp_probe.py"), str(out), str(synth_data / "train"), str(tmp_path / "seen"),
                 *TINY, "train.epochs=6")
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"seen.{k}.json").read_text()) for k in (0, 1)]
    a, b = (set(x["paths"]) for x in ranks)
    meta = read_meta(out)
    assert meta["processes"] == 2 and meta["complete"]
    every = {str(p) for p in (synth_data / "train").rglob("*.wav")}
    n_train, n_held = meta["n_train_clips"], meta["n_heldout_clips"]
    assert len(every) == 64 == n_train + n_held and n_held > 0
    # rank 1 saw only its half of the training clips; rank 0 the other half and the held-out part
    assert not (a & b) and a | b == every
    assert len(b) == n_train // 2 and len(a) == n_train - n_train // 2 + n_held
    loss = ranks[0]["losses"]
    assert ranks[1]["losses"] == loss  # the loss of the gathered global batch: the same on both ranks
    assert np.mean(loss[-2:]) < np.mean(loss[:2])
    v = load_verifier(out)
    clips = sorted((synth_data / "test" / "hum").glob("*.wav"))[:3] + sorted((synth_data / "test" / "hiss").glob("*.wav"))[:3]
    e = v.embed(clips)
    s = e @ e.T
    assert s[:3, :3].mean() > s[:3, 3:].mean()  # it learned: same class closer than two classes


def test_resume_continues_on_another_number_of_processes(synth_data, tmp_path):
    out = tmp_path / "m"
    cli = ["-m", "soundtwin", "train", str(synth_data / "train"), "--out", str(out), "--no-export", "--no-cache",
           *sum((["--set", o] for o in TINY), [])]
    r = torchrun(2, *cli, "--set", "train.epochs=4")
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_meta(out)["epoch"] == 4 and "done in" in r.stdout and r.stdout.count("training preset=") == 1
    r = subprocess.run([sys.executable, "-m", "soundtwin", "train", str(synth_data / "train"), "--out", str(out),
                        "--resume", "--set", "train.epochs=6", "--no-export", "--no-cache"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = read_meta(out)
    assert meta["epoch"] == 6 and meta["complete"] and len(meta["history"]) == 6 and "processes" not in meta
