"""GE2E voice encoder (Wan et al., 2018) as Resemblyzer ships it: 3-layer LSTM over 40 mel bands, 256-d.

Input: log-mel features (the ``voice`` built-in's front end: 40 bands, 25 ms windows, 10 ms hop, 16 kHz).
A clip is cut into partial windows of 160 frames (1.6 s) every 77 frames (Resemblyzer's rate of 1.3 per
second; a last window covering less than 75 % of its span is dropped unless it is the only one); each
window is embedded (LSTM, last hidden state, linear, ReLU, unit length) and their mean, at unit length,
is the clip's embedding. Resemblyzer's voice-activity trimming (webrtcvad) is not applied; its volume normalisation
is a no-op for real clips and is left out.
"""

from __future__ import annotations

import hashlib

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
        return nn.functional.normalize(sums, dim=-1)  # Resemblyzer's embed_utterance: the mean at unit length


#: Most frozen GE2E outputs a training run keeps (about 1 KB each).
MEMO_MAX = 50_000


class GE2EHead(GE2E):
    """GE2E frozen, with a linear map of its embedding on top that starts as the identity
    (``model.name=ge2e_head``): what fine-tuning the ``voice`` built-in trains.

    While training (:attr:`memo` is a dict: the trainer sets it), the frozen GE2E output of each clip is kept,
    keyed by the clip's features, so a clip seen whole again (every clip shorter than the training crops,
    every epoch) costs no LSTM pass: fine-tuning on FSDD runs several times faster, with the same result."""

    def __init__(self, n_mels: int = 40, hidden: int = 256, layers: int = 3, width: int = 256):
        super().__init__(n_mels, hidden, layers, width)
        for p in self.parameters():
            p.requires_grad_(False)
        self.head = nn.Linear(width, width)
        nn.init.eye_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.memo: dict[bytes, torch.Tensor] | None = None

    def load_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.memo is not None:
            self.memo.clear()  # other GE2E weights: other outputs
        return super().load_state_dict(*args, **kwargs)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.memo is None:
            return self.head(super().forward(feats, lengths))
        b, _, t = feats.shape
        lens = [t] * b if lengths is None else [int(x) for x in lengths]
        keys = [hashlib.blake2b(feats[k, :, : lens[k]].detach().cpu().numpy().tobytes(), digest_size=16).digest()
                for k in range(b)]
        todo = [k for k in range(b) if keys[k] not in self.memo]
        new: dict[bytes, torch.Tensor] = {}
        if todo:
            with torch.no_grad():
                out = super().forward(feats[todo], None if lengths is None else lengths[todo])
            new = {keys[k]: e for k, e in zip(todo, out)}
            for key, e in new.items():
                if len(self.memo) < MEMO_MAX:
                    self.memo[key] = e
        trunk = torch.stack([new[key] if key in new else self.memo[key] for key in keys])
        return self.head(trunk)


def build(cfg: ExperimentConfig) -> GE2E:
    kind = GE2EHead if cfg.model.name == "ge2e_head" else GE2E
    return kind(cfg.features.n_mels, hidden=cfg.model.hidden, layers=cfg.model.layers, width=cfg.model.embedding_dim)
