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


class PCEN(nn.Module):
    """Per-channel energy normalisation (Wang et al., 2017) of a log-mel input, its parameters trained per band
    as in LEAF (Zeghidour et al., 2021): ``(E / (eps + M)^alpha + delta)^r - delta^r``, where ``E = exp(log-mel)``
    is the band's power and ``M`` the same smoothed over the past by a first-order filter (``M[t] = (1 - s) M[t-1]
    + s E[t]``). An automatic gain control per band that follows the background: a stationary hum or room tone
    flattens out and onsets stand out, where a log-mel keeps the background's level in every frame.

    The filter runs as a causal depthwise convolution with its impulse response cut at ``taps`` frames and
    divided by the part of it that falls on the clip, so ``M`` starts at the first frame's power (librosa's
    ``pcen`` starts from a power of 1, whatever the clip's level) and a frame never reads a later one: frames
    past a clip's end change nothing before it. ``(batch, bands, T)`` -> ``(batch, bands, T)``."""

    def __init__(self, n_bands: int, taps: int = 128, s: float = 0.04, alpha: float = 0.96, delta: float = 2.0,
                 r: float = 0.5, eps: float = 1e-8):
        super().__init__()
        self.taps, self.eps = taps, eps
        self.s_logit = nn.Parameter(torch.full((n_bands,), float(torch.logit(torch.tensor(s)))))
        self.alpha = nn.Parameter(torch.full((n_bands,), alpha))
        self.log_delta = nn.Parameter(torch.full((n_bands,), float(torch.log(torch.tensor(delta)))))
        self.r = nn.Parameter(torch.full((n_bands,), r))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        _, f, t = logmel.shape
        s = torch.sigmoid(self.s_logit)[:, None]  # (F, 1)
        k = torch.arange(self.taps, device=logmel.device, dtype=logmel.dtype)[None, :]
        w = s * torch.pow(1.0 - s, k)  # impulse response, w[:, j] weighs the frame j back
        energy = torch.exp(logmel)
        smooth = nn.functional.conv1d(nn.functional.pad(energy, (self.taps - 1, 0)), w.flip(-1)[:, None, :], groups=f)
        covered = torch.cumsum(w, dim=-1)[:, torch.arange(t, device=logmel.device).clamp(max=self.taps - 1)]
        smooth = smooth / covered  # (F, T) broadcast: a weighted mean of the frames the clip has
        alpha = self.alpha.clamp(0.0, 1.0)[:, None]
        delta = torch.exp(self.log_delta)[:, None]
        r = self.r.clamp(0.05, 1.0)[:, None]
        return torch.pow(energy / torch.pow(self.eps + smooth, alpha) + delta, r) - torch.pow(delta, r)
