"""Ensembles (``model.ensemble=K``): K encoders of one architecture trained side by side."""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from ..config import ExperimentConfig


class EnsembleEncoder(nn.Module):
    """Several encoders of the same shape trained side by side from different initial weights.

    The embedding is the members' unit-length embeddings side by side, divided by ``sqrt(k)``, so
    it has unit length and its cosine with another is the mean of the members' cosines: score
    averaging, the usual ensemble for verification, behind the one-vector interface that galleries,
    indexes and the ONNX export already take.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The members' :meth:`layer_groups` depth by depth (each member's top in the first group)."""
        per = [m.layer_groups() for m in self.members]
        return [[p for groups in per for p in groups[d]] for d in range(len(per[0]))]

    def member_embeddings(self, x: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        return [m(x, lengths) for m in self.members]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embs = [nn.functional.normalize(e, dim=-1) for e in self.member_embeddings(x, lengths)]
        return torch.cat(embs, dim=-1) / math.sqrt(len(embs))


def build(cfg: ExperimentConfig) -> EnsembleEncoder:
    from . import build_encoder

    single = replace(cfg, model=replace(cfg.model, ensemble=1))
    return EnsembleEncoder([build_encoder(single) for _ in range(cfg.model.ensemble)])
