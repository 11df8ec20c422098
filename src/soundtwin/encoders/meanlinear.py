"""A linear map of the mean input vector (``model.name=meanlinear``), starting as the identity: a head of
small capacity on a pretrained front end that begins exactly where the frozen front end is."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ExperimentConfig
from .layers import length_mask


class MeanLinear(nn.Module):
    def __init__(self, n_features: int):
        super().__init__()
        self.linear = nn.Linear(n_features, n_features)
        nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t = feats.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=feats.device)
        m = length_mask(lengths, t).to(feats.dtype)
        return self.linear((feats * m).sum(-1) / m.sum(-1).clamp(min=1.0))


def build(cfg: ExperimentConfig) -> MeanLinear:
    return MeanLinear(cfg.features.n_features)
