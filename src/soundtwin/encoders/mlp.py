"""The tutorial's base network (the ``tutorial`` preset's ``model.name=mlp``)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ExperimentConfig


class TutorialMLP(nn.Module):
    """The tutorial's base network: Flatten, then ``layers`` x Dense(``hidden``, ReLU) with Dropout
    between them (Keras Glorot-uniform weights, zero biases). Input must be a fixed size."""

    def __init__(self, n_features: int, n_frames: int, hidden: int = 128, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        mods: list[nn.Module] = [nn.Flatten()]
        width = n_features * n_frames
        for k in range(layers):
            lin = nn.Linear(width, hidden)
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
            mods += [lin, nn.ReLU()]
            if k < layers - 1 and dropout > 0:
                mods.append(nn.Dropout(dropout))
            width = hidden
        self.net = nn.Sequential(*mods)
        self.n_frames = n_frames

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        t = feats.shape[-1]
        if t < self.n_frames:
            feats = nn.functional.pad(feats, (0, self.n_frames - t))
        return self.net(feats[..., : self.n_frames])


def build(cfg: ExperimentConfig) -> TutorialMLP:
    m, f = cfg.model, cfg.features
    return TutorialMLP(f.n_features, f.max_frames, hidden=m.hidden, layers=m.layers, dropout=m.dropout)
