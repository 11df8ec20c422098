"""Training on several processes with ``torch.distributed`` (launched by ``torchrun``, or ``soundtwin train
--nproc N``, which runs torchrun): DistributedDataParallel over gloo on CPU, NCCL on GPUs.

Each rank reads and featurises only its own shard of the training clips (every ``world``-th clip of the
training part, so the shards are disjoint) and draws its batches from it; rank 0 also holds the held-out part,
validates, calibrates and is the only one that writes the model directory. A class loss sees the whole global
batch: every rank's embeddings and labels are gathered (with their gradients) before mining or the softmax, so
hard negatives and positives come from all ranks, as in one process with the same batch size. Steps per epoch,
the schedule and the optimiser state do not depend on the number of processes, so ``--resume`` works across a
changed process count.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch


def world() -> tuple[int, int]:
    """``(rank, world size)``: ``(0, 1)`` unless running under torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(device: torch.device) -> bool:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); ``False`` when alone."""
    import torch.distributed as dist

    if world()[1] <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def gather(emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's batch embeddings (differentiable) and labels, concatenated in rank order. Ranks' batches may
    differ in size: each is padded to the largest for the collective and cut back after."""
    import torch.distributed as dist
    import torch.distributed.nn.functional as dnn

    n = torch.tensor([len(emb)], device=emb.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    top = int(max(int(s) for s in sizes))
    pad = top - len(emb)
    e = torch.nn.functional.pad(emb, (0, 0, 0, pad)) if pad else emb
    lab = torch.nn.functional.pad(labels, (0, pad), value=-1) if pad else labels
    with warnings.catch_warnings():  # (torch 2.13 flags it deprecated in favour of a private module)
        warnings.simplefilter("ignore", FutureWarning)
        embs = dnn.all_gather(e)
    labs = [torch.zeros_like(lab) for _ in sizes]
    dist.all_gather(labs, lab)
    keep = [slice(0, int(s)) for s in sizes]
    return torch.cat([x[k] for x, k in zip(embs, keep, strict=True)]), torch.cat(
        [x[k] for x, k in zip(labs, keep, strict=True)])


def total(value: int | np.ndarray) -> Any:
    """The sum over ranks of an int or an int array (steps per epoch, class counts)."""
    import torch.distributed as dist

    t = torch.as_tensor(np.asarray(value, dtype=np.int64))
    dist.all_reduce(t)
    return int(t) if t.ndim == 0 else t.numpy()


def gather_objects(obj: Any) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def fit(batches: list[np.ndarray], steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Exactly ``steps`` batches of at least two clips (every rank must take the same number of steps):
    the list cycled or cut, a one-clip batch given a second clip."""
    if not batches:
        raise ValueError("a rank has no training clips")
    out = [batches[k % len(batches)] for k in range(steps)]
    pool = np.concatenate(batches)
    return [b if len(b) >= 2 else np.concatenate([b, rng.choice(pool, 2 - len(b))]) for b in out]


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
