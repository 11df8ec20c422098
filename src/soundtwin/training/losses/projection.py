"""A projection head for pretraining (SimCLR's ``g``): the class loss sees ``g(embedding)``, a small MLP
(Linear, BatchNorm, ReLU, Linear back to the embedding width), and the head is dropped after training, so
the encoder kept is the same shape and speed as without it. The loss is free to discard, in the head, what
tells two views of a clip apart; the embedding before it keeps more of the sound (Chen et al. 2020, section
4.2). Part of the loss module: trained and checkpointed with it, never saved with the model."""

from __future__ import annotations

import torch
from torch import nn


class Projected(nn.Module):
    """``base(head(emb), labels)``."""

    def __init__(self, base: nn.Module, width: int, hidden: int):
        super().__init__()
        self.base = base
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, width))

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.base(self.head(emb), labels)
