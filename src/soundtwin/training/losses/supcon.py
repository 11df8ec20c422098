"""Supervised contrastive loss (SupCon; NT-Xent, SimCLR's loss, where every class is one clip seen twice) over
cosine similarity, from pytorch-metric-learning. Every other clip of the batch is a negative, not only the
hardest few: the loss of self-supervised pretraining (``scripts/fetch_sounds.py`` manifests, two views per clip).
Temperature is ``1 / loss.scale`` (``loss.scale=10``: 0.1, SimCLR's)."""

from __future__ import annotations

import torch
from pytorch_metric_learning import distances, losses
from torch import nn

from ...config import ExperimentConfig


class SupConLoss(nn.Module):
    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.loss = losses.SupConLoss(temperature=temperature, distance=distances.CosineSimilarity())

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(emb, labels)


def build(cfg: ExperimentConfig, num_classes: int, width: int) -> SupConLoss:
    return SupConLoss(1.0 / cfg.loss.scale)
