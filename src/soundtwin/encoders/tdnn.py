"""The default encoder (``model.name=tdnn``): a compact ECAPA-like TDNN over mel channels."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ExperimentConfig
from .layers import PCEN, AttentiveStatsPool, ConvBlock, Stem2d, length_mask


class TDNNEncoder(nn.Module):
    """1-D convolutions over mel channels (a compact ECAPA-like TDNN) with attentive statistics pooling.

    Per-clip mean normalisation of each feature channel over valid frames happens inside the model,
    so gain changes do not move the embedding and any clip length is accepted. ``pcen``: a trainable
    per-channel energy normalisation (:class:`~soundtwin.encoders.layers.PCEN`) of the log-mel input first.
    """

    def __init__(self, n_features: int, channels: int = 256, embedding_dim: int = 128, dropout: float = 0.0,
                 dilation: int = 1, stride: int = 1, spectral_shape: bool = False, stem: int = 0,
                 pcen: bool = False):
        super().__init__()
        c = channels
        self.spectral_shape = spectral_shape
        self.stride = stride
        self.pcen = PCEN(n_features) if pcen else None
        self.stem = Stem2d(stem) if stem else None
        self.block1 = ConvBlock(Stem2d.out_features(n_features, stem) if stem else n_features, c, 5, stride=stride)
        self.block2 = ConvBlock(c, c, 3, dilation=2 * dilation)
        self.block3 = ConvBlock(c, c, 3, dilation=3 * dilation)
        self.block4 = ConvBlock(c, c, 1)
        self.aggregate = ConvBlock(3 * c, 2 * c, 1)
        self.pool = AttentiveStatsPool(2 * c)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(4 * c + (n_features if spectral_shape else 0), embedding_dim)
        self.bn_out = nn.BatchNorm1d(embedding_dim)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The weights block by block, the output end first (pooling and output layer), then the aggregating
        layer and each convolution block down to the first (with the stem): for layer-wise rate decay."""
        top = [*self.pool.parameters(), *self.fc.parameters(), *self.bn_out.parameters()]
        first = [*(self.pcen.parameters() if self.pcen is not None else ()),
                 *(self.stem.parameters() if self.stem is not None else ()), *self.block1.parameters()]
        return [top, *(list(b.parameters()) for b in (self.aggregate, self.block4, self.block3, self.block2)), first]

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t = feats.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=feats.device)
        mask = length_mask(lengths, t)
        m = mask.to(feats.dtype)
        frames = m.sum(-1, keepdim=True).clamp(min=1.0)
        mean = (feats * m).sum(-1, keepdim=True) / frames
        if self.pcen is not None:
            p = self.pcen(feats)
            x = (p - (p * m).sum(-1, keepdim=True) / frames) * m
        else:
            x = (feats - mean) * m
        if self.stem is not None:
            x = self.stem(x, mask)
        h1 = self.block1(x)
        if self.stride > 1:
            lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
            mask = length_mask(lengths, h1.shape[-1])
        # every block's output is zeroed past a clip's end, as a clip embedded alone sees the convolutions' zero
        # padding there: a clip's embedding does not depend on the longer clips batched with it
        mt = mask.to(h1.dtype)
        h1 = h1 * mt
        h2 = (self.block2(h1) + h1) * mt
        h3 = (self.block3(h2) + h2) * mt
        h4 = (self.block4(h3) + h3) * mt
        h = self.aggregate(torch.cat([h2, h3, h4], dim=1))
        pooled = self.pool(h, mask)
        if self.spectral_shape:  # the long-term spectrum without its level: a gain-free timbre cue
            shape = mean[:, :, 0] - mean.mean(1)
            pooled = torch.cat([pooled, shape], dim=-1)
        return self.bn_out(self.fc(self.dropout(pooled)))


def build(cfg: ExperimentConfig) -> TDNNEncoder:
    m, f = cfg.model, cfg.features
    return TDNNEncoder(f.n_features, channels=m.channels, embedding_dim=m.embedding_dim, dropout=m.dropout,
                       dilation=m.dilation, stride=m.stride, spectral_shape=m.spectral_shape, stem=m.stem, pcen=m.pcen)
