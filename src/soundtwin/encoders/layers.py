"""Building blocks shared by encoders."""

from __future__ import annotations

import torch
from torch import nn


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(batch, 1, max_len)`` boolean mask, True on valid frames."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
                              stride=stride)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Stem2d(nn.Module):
    """Two 2-D convolutions over ``(band, frame)``, each halving the band axis: ``(batch, F, T)`` ->
    ``(batch, channels * ceil(ceil(F / 2) / 2), T)``. The same 3x3 filters slide along the mel axis, so a
    harmonic stack or a chirp is the same feature at any pitch; the 1-D layers after it see every band's.
    Outputs are zeroed past a clip's end (``mask``), as everywhere in the TDNN."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=(2, 1), padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    @staticmethod
    def out_features(n_features: int, channels: int) -> int:
        return channels * (((n_features + 1) // 2 + 1) // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, :, None, :].to(x.dtype)  # (batch, 1, 1, T)
        h = torch.relu(self.bn1(self.conv1(x[:, None]))) * m
        h = torch.relu(self.bn2(self.conv2(h))) * m
        return h.flatten(1, 2)


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
