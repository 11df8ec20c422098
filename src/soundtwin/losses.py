"""Objectives. Pair losses take ``(emb_a, emb_b, y)``; class losses take ``(emb, labels)``.

The tutorial's contrastive loss is written out (its exact formula); the margin-based softmax
losses and the triplet loss with mining come from pytorch-metric-learning.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import distances, losses, miners
from torch import nn

from .config import ExperimentConfig
from .models import degrees, embedding_dim


def euclidean_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Euclidean distance per row: ``sqrt(max(sum((a - b)^2), eps))``. ``eps=0`` is the tutorial's
    ``K.sqrt(K.sum(K.square(x - y)))`` exactly, whose gradient is NaN where ``a == b`` with active units."""
    s = (a - b).pow(2).sum(-1)
    return torch.sqrt(torch.clamp(s, min=eps) if eps > 0 else s)


class ContrastiveLoss(nn.Module):
    """Hadsell et al. (2006), as in the tutorial: ``mean(y d^2 + (1 - y) max(margin - d, 0)^2)``
    with ``d`` the Euclidean distance and ``y = 1`` for genuine pairs."""

    def __init__(self, margin: float = 1.0, distance_eps: float = 1e-7):
        super().__init__()
        self.margin = margin
        self.distance_eps = distance_eps

    def forward(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = euclidean_distance(a, b, self.distance_eps)
        return (y * d.square() + (1 - y) * torch.clamp(self.margin - d, min=0).square()).mean()


class TripletLoss(nn.Module):
    """Triplet margin loss over cosine similarity with semi-hard mining inside each batch."""

    def __init__(self, margin: float = 0.2):
        super().__init__()
        dist = distances.CosineSimilarity()
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=dist)
        self.loss = losses.TripletMarginLoss(margin=margin, distance=dist)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(emb, labels, self.miner(emb, labels))


def build_loss(cfg: ExperimentConfig, num_classes: int) -> nn.Module:
    """The objective ``cfg.loss`` names. Class-based losses hold learnable class centres."""
    lc, dim = cfg.loss, embedding_dim(cfg)
    if lc.name == "contrastive":
        return ContrastiveLoss(lc.margin, lc.distance_eps)
    if lc.name == "triplet":
        return TripletLoss(lc.margin)
    if lc.name == "aam":
        return losses.ArcFaceLoss(num_classes, dim, margin=degrees(lc.margin), scale=lc.scale)
    return losses.SubCenterArcFaceLoss(num_classes=num_classes, embedding_size=dim, margin=degrees(lc.margin),
                                       scale=lc.scale, sub_centers=lc.sub_centers)
