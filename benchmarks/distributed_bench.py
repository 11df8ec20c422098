"""Training on several processes (issue #17): throughput of 2 processes (torchrun, gloo, 1 thread each) against
one process with 2 threads on the same 2 cores, same data, config and global batch; and the per-step
communication measured alone (the gradient all-reduce DDP does, and the gather of the batch's embeddings the loss
needs), from which the 8-GPU estimate in RESULTS.md is made. Writes benchmarks/distributed_results.json.

    python benchmarks/distributed_bench.py [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "work" / "ddp-data"
CFG = ["train.batch_size=64", "train.crop_min_s=1.0", "train.crop_max_s=2.0"]


def comm() -> None:
    """Under torchrun: time an all-reduce of the default encoder's gradient and a gather of one batch's
    embeddings (what one step communicates)."""
    import torch
    import torch.distributed as dist

    from soundtwin.config import load_config
    from soundtwin.encoders import build_encoder
    from soundtwin.training.distributed import gather

    dist.init_process_group("gloo")
    n = sum(p.numel() for p in build_encoder(load_config("default")).parameters())
    grad = torch.randn(n)
    emb = torch.randn(32, 128, requires_grad=True)
    lab = torch.arange(32)
    out = {"params": n}
    for name, fn in (("allreduce_grad_ms", lambda: dist.all_reduce(grad)),
                     ("gather_embeddings_ms", lambda: gather(emb, lab))):
        for _ in range(10):
            fn()
        dist.barrier()
        t = time.perf_counter()
        for _ in range(200):
            fn()
        out[name] = round((time.perf_counter() - t) / 200 * 1000, 3)
    if dist.get_rank() == 0:
        print(json.dumps(out), flush=True)
    dist.destroy_process_group()


def train_run(nproc: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "m"
        sets = [*CFG, f"train.epochs={epochs}", f"train.num_threads={2 // nproc}"]
        args = ["-m", "soundtwin", "train", str(DATA), "--out", str(out), "--no-export", "--quiet",
                "--cache", str(HERE / "work" / "cache"), *sum((["--set", s] for s in sets), [])]
        cmd = [sys.executable, *args] if nproc == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(2 // nproc)})
        wall = time.perf_counter() - t
        meta = json.loads((out / "meta.json").read_text())
    epoch_s = [h["seconds"] for h in meta["history"]]
    steady = epoch_s[1:]  # the first epoch warms up
    return {"processes": nproc, "threads_each": 2 // nproc, "epochs": epochs, "wall_s": round(wall, 1),
            "epoch_s_median": round(sorted(steady)[len(steady) // 2], 2), "heldout_eer": meta["heldout_eer"],
            "train_clips": meta["n_train_clips"]}


def main() -> int:
    if "RANK" in os.environ:
        comm()
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    if not DATA.is_dir():
        from soundtwin.synth import RECIPES, write_synthetic_dataset

        write_synthetic_dataset(DATA, list(RECIPES), 48,
                                seed=3, min_s=1.0, max_s=2.0)
    rows = [train_run(1, args.epochs), train_run(2, args.epochs)]
    for r in rows:
        print(json.dumps(r), flush=True)
    rows[1]["throughput_vs_one_process"] = round(rows[0]["epoch_s_median"] / rows[1]["epoch_s_median"], 3)
    c = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        str(Path(__file__).resolve())], check=True, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    comm_row = json.loads([ln for ln in c.stdout.splitlines() if ln.startswith("{")][-1])
    steps = -(-rows[0]["train_clips"] * 1 // 64)
    comm_row["steps_per_epoch_about"] = steps
    comm_row["comm_share_of_epoch"] = round((comm_row["allreduce_grad_ms"] + comm_row["gather_embeddings_ms"])
                                            * steps / 1000 / rows[1]["epoch_s_median"], 3)
    print(json.dumps(comm_row))
    from soundtwin.io import atomic_write_text

    atomic_write_text(HERE / "distributed_results.json", json.dumps({"runs": rows, "comm": comm_row}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
