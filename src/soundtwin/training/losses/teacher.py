"""Distillation from a teacher encoder: beside its own objective, the encoder learns to predict, through a
linear head, the teacher's embedding of each training class (the mean of the teacher's unit embeddings of
the class's clips, computed once before training: ``benchmarks/teacher.py``). The head is part of the
objective, not of the model: it is dropped with the objective after training, so the trained encoder has
the same shape and speed as without a teacher."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError


def save_targets(path: str | Path, targets: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> None:
    """Write ``{class name: target embedding}`` as a targets file (atomically)."""
    from safetensors.torch import save

    from ...io import atomic_write_bytes

    names = sorted(targets)
    t = torch.stack([targets[n].float() for n in names]).contiguous()
    atomic_write_bytes(Path(path), save({"targets": t}, metadata={"classes": json.dumps(names), **(meta or {})}))


def load_targets(path: str | Path, classes: list[str]) -> torch.Tensor:
    """The targets file's unit-length target of each of ``classes``, in their order; a class it lacks, or a
    file that is not a targets file, is a :class:`ModelError` naming the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            names = json.loads(fh.metadata()["classes"])
            t = fh.get_tensor("targets").float()
    except Exception as exc:  # noqa: BLE001 - any failure: not a targets file
        raise ModelError(f"loss.teacher: cannot read targets file {path} ({str(exc).splitlines()[0]})") from None
    if t.ndim != 2 or t.shape[0] != len(names):
        raise ModelError(f"loss.teacher: {path} holds {tuple(t.shape)} targets for {len(names)} classes")
    row = {n: i for i, n in enumerate(names)}
    missing = [c for c in classes if c not in row]
    if missing:
        raise ModelError(f"loss.teacher: {path} has no target for {len(missing)} training class(es), "
                         f"e.g. {missing[0]!r}: it was written for other labels")
    return F.normalize(t[[row[c] for c in classes]], dim=1)


class Distilled(nn.Module):
    """``base(emb, labels) + weight * mean(1 - cos(head(emb), target[label]))``."""

    def __init__(self, base: nn.Module, targets: torch.Tensor, width: int, weight: float):
        super().__init__()
        self.base, self.weight = base, weight
        self.head = nn.Linear(width, targets.shape[1])
        self.register_buffer("targets", targets, persistent=False)  # read from the file, not checkpointed

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pred = F.normalize(self.head(emb), dim=1)
        return self.base(emb, labels) + self.weight * (1 - (pred * self.targets[labels]).sum(1)).mean()
