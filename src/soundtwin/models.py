"""Encoders: a clip's features ``(batch, n_features, frames)`` -> an embedding ``(batch, embedding_dim)``.

Every encoder takes ``(feats, lengths)`` where ``lengths`` holds each clip's number of valid frames
(padding beyond it is ignored by the length-aware encoders).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from .config import ExperimentConfig


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(batch, 1, max_len)`` boolean mask, True on valid frames."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


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


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
                              stride=stride)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): attention-weighted mean and standard
    deviation over valid frames, ``(batch, C, T)`` -> ``(batch, 2C)``."""

    def __init__(self, channels: int, bottleneck: int = 64):
        super().__init__()
        self.attn = nn.Sequential(nn.Conv1d(channels, bottleneck, 1), nn.Tanh(), nn.Conv1d(bottleneck, channels, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.attn(x).masked_fill(~mask, -1e4)
        w = torch.softmax(logits, dim=-1)
        mean = (w * x).sum(-1)
        var = (w * x * x).sum(-1) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-5))], dim=-1)


class TDNNEncoder(nn.Module):
    """1-D convolutions over mel channels (a compact ECAPA-like TDNN) with attentive statistics pooling.

    Per-clip mean normalisation of each feature channel over valid frames happens inside the model,
    so gain changes do not move the embedding and any clip length is accepted.
    """

    def __init__(self, n_features: int, channels: int = 256, embedding_dim: int = 128, dropout: float = 0.0,
                 dilation: int = 1, stride: int = 1, spectral_shape: bool = False):
        super().__init__()
        c = channels
        self.spectral_shape = spectral_shape
        self.stride = stride
        self.block1 = ConvBlock(n_features, c, 5, stride=stride)
        self.block2 = ConvBlock(c, c, 3, dilation=2 * dilation)
        self.block3 = ConvBlock(c, c, 3, dilation=3 * dilation)
        self.block4 = ConvBlock(c, c, 1)
        self.aggregate = ConvBlock(3 * c, 2 * c, 1)
        self.pool = AttentiveStatsPool(2 * c)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(4 * c + (n_features if spectral_shape else 0), embedding_dim)
        self.bn_out = nn.BatchNorm1d(embedding_dim)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t = feats.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=feats.device)
        mask = length_mask(lengths, t)
        m = mask.to(feats.dtype)
        mean = (feats * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
        x = (feats - mean) * m
        h1 = self.block1(x)
        if self.stride > 1:
            lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
            mask = length_mask(lengths, h1.shape[-1])
        h2 = self.block2(h1) + h1
        h3 = self.block3(h2) + h2
        h4 = self.block4(h3) + h3
        h = self.aggregate(torch.cat([h2, h3, h4], dim=1))
        pooled = self.pool(h, mask)
        if self.spectral_shape:  # the long-term spectrum without its level: a gain-free timbre cue
            shape = mean[:, :, 0] - mean.mean(1)
            pooled = torch.cat([pooled, shape], dim=-1)
        return self.bn_out(self.fc(self.dropout(pooled)))


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

    def member_embeddings(self, x: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        return [m(x, lengths) for m in self.members]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embs = [nn.functional.normalize(e, dim=-1) for e in self.member_embeddings(x, lengths)]
        return torch.cat(embs, dim=-1) / math.sqrt(len(embs))


def build_encoder(cfg: ExperimentConfig) -> nn.Module:
    """The encoder ``cfg.model`` describes, for inputs of ``cfg.features.n_features`` channels."""
    m, f = cfg.model, cfg.features
    if m.name == "mlp":
        return TutorialMLP(f.n_features, f.max_frames, hidden=m.hidden, layers=m.layers, dropout=m.dropout)
    if m.ensemble > 1:
        return EnsembleEncoder([build_encoder(replace(cfg, model=replace(m, ensemble=1))) for _ in range(m.ensemble)])
    return TDNNEncoder(f.n_features, channels=m.channels, embedding_dim=m.embedding_dim, dropout=m.dropout,
                       dilation=m.dilation, stride=m.stride, spectral_shape=m.spectral_shape)


def embedding_dim(cfg: ExperimentConfig) -> int:
    """Width of one member's embedding (the whole ensemble's is ``ensemble`` times this)."""
    return cfg.model.hidden if cfg.model.name == "mlp" else cfg.model.embedding_dim


def degrees(radians: float) -> float:
    return radians * 180.0 / math.pi
