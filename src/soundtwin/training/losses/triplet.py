"""Triplet margin loss over cosine similarity with semi-hard mining (pytorch-metric-learning)."""

from __future__ import annotations

import torch
from pytorch_metric_learning import distances, losses, miners
from torch import nn

from ...config import ExperimentConfig


class TripletLoss(nn.Module):
    """Mines semi-hard triplets inside each batch, then the triplet margin loss on them."""

    def __init__(self, margin: float = 0.2):
        super().__init__()
        dist = distances.CosineSimilarity()
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=dist)
        self.loss = losses.TripletMarginLoss(margin=margin, distance=dist)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(emb, labels, self.miner(emb, labels))


def build(cfg: ExperimentConfig, num_classes: int, width: int) -> TripletLoss:
    return TripletLoss(cfg.loss.margin)
