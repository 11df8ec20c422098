"""The tutorial's contrastive loss (Hadsell et al., 2006), its exact formula."""

from __future__ import annotations

import torch
from torch import nn

from ...config import ExperimentConfig


def euclidean_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Euclidean distance per row: ``sqrt(max(sum((a - b)^2), eps))``. ``eps=0`` is the tutorial's
    ``K.sqrt(K.sum(K.square(x - y)))`` exactly, whose gradient is NaN where ``a == b`` with active units."""
    s = (a - b).pow(2).sum(-1)
    return torch.sqrt(torch.clamp(s, min=eps) if eps > 0 else s)


class ContrastiveLoss(nn.Module):
    """``mean(y d^2 + (1 - y) max(margin - d, 0)^2)`` with ``d`` the Euclidean distance and ``y = 1``
    for genuine pairs."""

    def __init__(self, margin: float = 1.0, distance_eps: float = 1e-7):
        super().__init__()
        self.margin = margin
        self.distance_eps = distance_eps

    def forward(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = euclidean_distance(a, b, self.distance_eps)
        return (y * d.square() + (1 - y) * torch.clamp(self.margin - d, min=0).square()).mean()


def build(cfg: ExperimentConfig, num_classes: int, width: int) -> ContrastiveLoss:
    return ContrastiveLoss(cfg.loss.margin, cfg.loss.distance_eps)
