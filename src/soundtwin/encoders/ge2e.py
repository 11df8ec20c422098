"""GE2E voice encoder (Wan et al., 2018) as Resemblyzer ships it: 3-layer LSTM over 40 mel bands, 256-d.

Input: log-mel features (the ``voice`` built-in's front end: 40 bands, 25 ms windows, 10 ms hop, 16 kHz).
A clip is cut into partial windows of 160 frames (1.6 s) every 77 frames (Resemblyzer's rate of 1.3 per
second; a last window covering less than 75 % of its span is dropped unless it is the only one); each
window is embedded (LSTM, last hidden state, linear, ReLU, unit length) and their mean is the clip's
embedding. Resemblyzer's voice-activity trimming (webrtcvad) is not applied; its volume normalisation
is a no-op for real clips and is left out.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ExperimentConfig
from ..features import LOG_FLOOR

PARTIAL_FRAMES = 160
PARTIAL_STEP = 77  # round(16000 / 1.3 / 160)
MIN_COVERAGE = 0.75


def partial_starts(n_frames: int) -> list[int]:
    """Starts of the partial windows over a clip of ``n_frames`` mel frames (Resemblyzer's slicing)."""
    steps = max(1, n_frames - PARTIAL_FRAMES + PARTIAL_STEP + 1)
    starts = list(range(0, steps, PARTIAL_STEP))
    if len(starts) > 1:
        coverage = (n_frames - starts[-1]) / PARTIAL_FRAMES
        if coverage < MIN_COVERAGE:
            starts.pop()
    return starts


class GE2E(nn.Module):
    """The voice encoder; parameter names match Resemblyzer's ``pretrained.pt``."""

    def __init__(self, n_mels: int = 40, hidden: int = 256, layers: int = 3, width: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, width)

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        """``(n, frames, n_mels)`` mel power -> ``(n, width)`` unit embeddings."""
        _, (h, _) = self.lstm(mels)
        return nn.functional.normalize(torch.relu(self.linear(h[-1])), dim=-1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t = feats.shape
        lens = [t] * b if lengths is None else [int(x) for x in lengths]
        mel = (torch.exp(feats) - LOG_FLOOR).clamp(min=0.0)  # back from our log-mel to mel power
        parts, owner = [], []
        for k in range(b):
            m = mel[k, :, : lens[k]].transpose(0, 1)  # (frames, n_mels)
            starts = partial_starts(lens[k])
            need = starts[-1] + PARTIAL_FRAMES
            if need > m.shape[0]:  # Resemblyzer pads the waveform with silence: mel power 0
                m = nn.functional.pad(m, (0, 0, 0, need - m.shape[0]))
            parts += [m[s:s + PARTIAL_FRAMES] for s in starts]
            owner += [k] * len(starts)
        emb = self.embed_partials(torch.stack(parts))  # every window of every clip in one pass
        idx = torch.tensor(owner, device=emb.device)
        sums = torch.zeros(b, emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(0, idx, emb)
        counts = torch.bincount(idx, minlength=b).to(emb.dtype)[:, None]
        return sums / counts


class GE2EHead(GE2E):
    """GE2E frozen, with a linear map of its embedding on top that starts as the identity
    (``model.name=ge2e_head``): what fine-tuning the ``voice`` built-in trains."""

    def __init__(self, n_mels: int = 40, hidden: int = 256, layers: int = 3, width: int = 256):
        super().__init__(n_mels, hidden, layers, width)
        for p in self.parameters():
            p.requires_grad_(False)
        self.head = nn.Linear(width, width)
        nn.init.eye_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(super().forward(feats, lengths))


def build(cfg: ExperimentConfig) -> GE2E:
    kind = GE2EHead if cfg.model.name == "ge2e_head" else GE2E
    return kind(cfg.features.n_mels, hidden=cfg.model.hidden, layers=cfg.model.layers, width=cfg.model.embedding_dim)
