"""The torch runtime: a trained encoder with its calibrated threshold, on a chosen device.

Model files are read and written by :mod:`soundtwin.runtime.modeldir` (no pickles are read).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..config import ExperimentConfig
from ..device import resolve_device
from ..encoders import build_encoder
from ..errors import ModelError
from ..metrics import calibrate
from ..store import read_version
from .base import BatchFn, EmbedderBase, embed_in_batches
from .modeldir import read_model_files, weights_fingerprint, write_model


def batch_runner(encoder: nn.Module, device: torch.device, *, normalize: bool) -> BatchFn:
    """``run(x, lengths)`` for :func:`~soundtwin.runtime.base.embed_in_batches`: the batch moved to
    ``device``, embedded (unit rows with ``normalize``), brought back as numpy."""

    def run(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        emb = encoder(torch.from_numpy(x).to(device), torch.from_numpy(lengths).to(device))
        if normalize:
            emb = nn.functional.normalize(emb, dim=-1)
        return emb.float().cpu().numpy()

    return run


def embed_with(encoder: nn.Module, feats: Sequence[np.ndarray], *, normalize: bool,
               device: torch.device | None = None) -> np.ndarray:
    """Embed feature matrices with ``encoder`` in eval mode (its mode is restored after)."""
    device = device or next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            return embed_in_batches(feats, batch_runner(encoder, device, normalize=normalize), normalize=normalize)
    finally:
        encoder.train(was_training)


def weights_bytes(encoder: nn.Module) -> bytes:
    """The encoder's weights as safetensors bytes (from the CPU: the same bytes whatever the device)."""
    return st_save({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()})


class Verifier(EmbedderBase):
    """A trained encoder (torch) plus its decision threshold and score calibration.

    >>> v = Verifier.load("models/dogs")            # doctest: +SKIP
    >>> v.verify("a.wav", "b.wav").same              # doctest: +SKIP
    True
    """

    def __init__(self, encoder: nn.Module, cfg: ExperimentConfig, *, threshold: float = 0.0,
                 calibration: tuple[float, float] = (1.0, 0.0), meta: dict[str, Any] | None = None,
                 cache_dir: str | os.PathLike[str] | None | bool = None, device: Any = None) -> None:
        super().__init__(cfg, threshold=threshold, calibration=calibration, meta=meta, cache_dir=cache_dir)
        self.device = resolve_device(device) if device is not None else next(encoder.parameters()).device
        self.encoder = encoder.to(self.device).eval()

    @property
    def fingerprint(self) -> str:
        """Identifies the exact weights and config; galleries record it to refuse other models."""
        return self.meta.get("fingerprint") or weights_fingerprint(weights_bytes(self.encoder), self.cfg)

    def save(self, model_dir: str | os.PathLike[str], *, extra: dict[str, bytes] | None = None,
             meta_updates: dict[str, Any] | None = None, carry: tuple[str, ...] | bool = ()) -> Path:
        """Write a new version of the model directory (:func:`~soundtwin.runtime.modeldir.write_model`)."""
        meta = {**self.meta, **(meta_updates or {}), "threshold": self.threshold,
                "calibration": {"a": self.calibration[0], "b": self.calibration[1]}}
        self.meta = write_model(model_dir, self.cfg, weights_bytes(self.encoder), meta, extra=extra, carry=carry)
        self.model_dir = Path(model_dir)
        return self.model_dir

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None | bool = None,
             device: Any = "cpu") -> Verifier:
        """Rebuild a verifier from a model directory alone; every file comes from one version of it."""
        d = Path(model_dir)
        if not d.is_dir():
            raise ModelError(f"{d}: no such model directory")
        meta, _raw, cfg, weights = read_version(d, lambda vd: read_model_files(d, vd))
        encoder = build_encoder(cfg)
        try:
            encoder.load_state_dict(st_load(weights), strict=True)
        except Exception as exc:  # noqa: BLE001 - any mismatch: the files are not this architecture's
            raise ModelError(f"{d}: weights do not fit the configured model ({str(exc).splitlines()[0]})") from None
        cal = meta.get("calibration", {})
        v = cls(encoder, cfg, threshold=meta["threshold"], calibration=(cal.get("a", 1.0), cal.get("b", 0.0)),
                meta=meta, cache_dir=cache_dir, device=device)
        v.model_dir = d
        return v

    def calibrate(self, scores: np.ndarray, labels: np.ndarray, *, far: float | None = None) -> None:
        """Set the threshold (at the EER point, or at a target false-accept rate) and fit the
        score-to-probability calibration on held-out trials."""
        cal = calibrate(scores, labels, far)
        self.threshold = cal.pop("threshold")
        self.calibration = (cal["calibration"]["a"], cal["calibration"]["b"])
        self.meta.update(cal)

    def embed_batch(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return batch_runner(self.encoder, self.device, normalize=self.distance.normalizes)(x, lengths)

    def embed_features(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        return self.centred(embed_with(self.encoder, feats, normalize=self.distance.normalizes, device=self.device))
