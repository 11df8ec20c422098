"""A linear map of the mean input vector (``model.name=meanlinear``), starting as the identity: a head of
small capacity on a pretrained front end that begins exactly where the frozen front end is.
``model.name=unitmeanlinear`` maps the mean at unit length (what fine-tuning the ``speech`` built-in trains:
with its bias at minus the built-in's centre it starts exactly as the built-in scores)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ExperimentConfig
from .layers import length_mask


class MeanLinear(nn.Module):
    def __init__(self, n_features: int, unit: bool = False):
        super().__init__()
        self.unit = unit
        self.linear = nn.Linear(n_features, n_features)
        nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t = feats.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=feats.device)
        m = length_mask(lengths, t).to(feats.dtype)
        mean = (feats * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        return self.linear(nn.functional.normalize(mean, dim=-1) if self.unit else mean)


def build(cfg: ExperimentConfig) -> MeanLinear:
    return MeanLinear(cfg.features.n_features, unit=cfg.model.name == "unitmeanlinear")
