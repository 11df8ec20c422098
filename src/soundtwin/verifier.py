"""The verifier: a trained encoder with its calibrated threshold, saved to and loaded from a model directory.

A model directory holds ``config.json`` (the experiment config), ``model.safetensors`` (encoder
weights), ``meta.json`` (threshold, calibration, feature settings, soundtwin version, fingerprint),
``calibration.npz`` (held-out trial scores, for re-calibration) and, while training, the
optimiser state. Loading reads JSON, safetensors and a pickle-free npz only.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from . import __version__
from .config import ExperimentConfig
from .errors import ModelError, SoundtwinError
from .metrics import eer as compute_eer
from .metrics import fit_logistic, threshold_at_far
from .models import build_encoder
from . import scoring
from .scoring import AudioInput, Decision, EmbedderBase, score_embeddings, window_starts  # noqa: F401 (re-exported)
from .modeldir import FORMAT_VERSION, read_model_files, seal_meta, weights_fingerprint  # noqa: F401
from .store import new_version, read_version



def pad_batch(feats: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(n_features, T_i)`` matrices to ``(batch, n_features, max T)``; also return lengths."""
    lengths = torch.tensor([f.shape[-1] for f in feats], dtype=torch.long)
    out = np.zeros((len(feats), feats[0].shape[0], int(lengths.max())), dtype=np.float32)
    for k, f in enumerate(feats):  # features served from the cache are read-only views: copied here
        out[k, :, : f.shape[-1]] = f
    return torch.from_numpy(out), lengths


def _embed_long(encoder: nn.Module, feat: np.ndarray, normalize: bool) -> np.ndarray:
    w = scoring.MAX_EMBED_FRAMES
    starts = window_starts(feat.shape[-1], w)
    acc = None
    for s0 in starts:
        x = torch.from_numpy(np.ascontiguousarray(feat[:, s0:s0 + w]))[None]
        e = encoder(x, torch.tensor([w]))[0]
        e = nn.functional.normalize(e, dim=-1) if normalize else e
        acc = e if acc is None else acc + e
    emb = acc / len(starts)
    return (nn.functional.normalize(emb, dim=-1) if normalize else emb).numpy()


def embed_feature_list(encoder: nn.Module, feats: Sequence[np.ndarray], *, normalize: bool,
                       max_frames_per_batch: int = 32768, max_batch: int = 128) -> np.ndarray:
    """Embed clips of any lengths in length-sorted batches: ``(n_clips, embedding_dim)`` float32."""
    if not feats:
        raise SoundtwinError("nothing to embed")
    order = np.argsort([f.shape[-1] for f in feats], kind="stable")
    out: list[np.ndarray] = [None] * len(feats)  # type: ignore[list-item]
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            start = 0
            while start < len(order):
                end = start + 1
                while end < len(order) and end - start < max_batch and \
                        (end - start + 1) * feats[order[end]].shape[-1] <= max_frames_per_batch:
                    end += 1
                idx = order[start:end]
                if feats[idx[0]].shape[-1] > scoring.MAX_EMBED_FRAMES:  # one long clip: in windows
                    out[idx[0]] = _embed_long(encoder, feats[idx[0]], normalize)
                    start = end
                    continue
                x, lengths = pad_batch([feats[i] for i in idx])
                emb = encoder(x, lengths)
                if normalize:
                    emb = nn.functional.normalize(emb, dim=-1)
                for k, i in enumerate(idx):
                    out[i] = emb[k].numpy()
                start = end
    finally:
        encoder.train(was_training)
    return np.stack(out).astype(np.float32)


class Verifier(EmbedderBase):
    """A trained encoder (torch) plus its decision threshold and score calibration.

    >>> v = Verifier.load("models/dogs")            # doctest: +SKIP
    >>> v.verify("a.wav", "b.wav").same              # doctest: +SKIP
    True
    """

    def __init__(self, encoder: nn.Module, cfg: ExperimentConfig, *, threshold: float = 0.0,
                 calibration: tuple[float, float] = (1.0, 0.0), meta: dict[str, Any] | None = None,
                 cache_dir: str | os.PathLike[str] | None | bool = None) -> None:
        super().__init__(cfg, threshold=threshold, calibration=calibration, meta=meta, cache_dir=cache_dir)
        self.encoder = encoder.eval()

    # -- persistence --------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Identifies the exact weights and config; galleries record it to refuse other models."""
        return self.meta.get("fingerprint") or weights_fingerprint(self._weights_bytes(), self.cfg)

    def _weights_bytes(self) -> bytes:
        state = {k: v.detach().contiguous() for k, v in self.encoder.state_dict().items()}
        return st_save(state)

    def save(self, model_dir: str | os.PathLike[str], *, extra: dict[str, bytes] | None = None,
             meta_updates: dict[str, Any] | None = None, carry: tuple[str, ...] | bool = ()) -> Path:
        """Write a new version of the model directory (see :mod:`soundtwin.store`): readers see the
        previous version until the new one is complete. ``carry``: files of the current version to
        keep (``True``: all), e.g. ``model.onnx`` when only the threshold changes."""
        weights = self._weights_bytes()
        meta = {**self.meta, **(meta_updates or {})}
        meta.update(
            format=FORMAT_VERSION, soundtwin_version=__version__, threshold=self.threshold,
            calibration={"a": self.calibration[0], "b": self.calibration[1]},
            distance=self.cfg.model.distance, features=self.cfg.to_dict()["features"],
            fingerprint=weights_fingerprint(weights, self.cfg),
        )
        meta = seal_meta(meta)
        self.meta = meta
        with new_version(model_dir, "model", carry=carry) as tmp:
            (tmp / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2, sort_keys=True) + "\n")
            (tmp / "model.safetensors").write_bytes(weights)
            for name, blob in (extra or {}).items():
                (tmp / name).write_bytes(blob)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        self.model_dir = Path(model_dir)
        return self.model_dir

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None | bool = None) -> Verifier:
        """Rebuild a verifier from a model directory alone (no pickles are read); every file comes
        from one version of the directory."""
        d = Path(model_dir)
        if not d.is_dir():
            raise ModelError(f"{d}: no such model directory")
        meta, raw_cfg, cfg, weights = read_version(d, lambda vd: read_model_files(d, vd))
        encoder = build_encoder(cfg)
        try:
            encoder.load_state_dict(st_load(weights), strict=True)
        except Exception as exc:
            raise ModelError(f"{d}: weights do not fit the configured model ({str(exc).splitlines()[0]})") from None
        cal = meta.get("calibration", {})
        v = cls(encoder, cfg, threshold=meta["threshold"], calibration=(cal.get("a", 1.0), cal.get("b", 0.0)),
                meta=meta, cache_dir=cache_dir)
        v.model_dir = d
        return v

    # -- calibration --------------------------------------------------------------------------
    def calibrate(self, scores: np.ndarray, labels: np.ndarray, *, far: float | None = None) -> None:
        """Set the threshold (at the EER point, or at a target false-accept rate) and fit the
        score-to-probability calibration on held-out trials."""
        e, t = compute_eer(scores, labels)
        self.threshold = threshold_at_far(scores, labels, far) if far else t
        self.calibration = fit_logistic(scores, labels)
        self.meta["threshold_rule"] = f"far={far}" if far else "eer"
        self.meta["heldout_eer"] = e

    def embed_features(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        return embed_feature_list(self.encoder, feats, normalize=self.cfg.model.distance == "cosine")

    def calibration_npz(self, scores: np.ndarray, labels: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, scores=np.asarray(scores, np.float64), labels=np.asarray(labels, np.int8))
        return buf.getvalue()
