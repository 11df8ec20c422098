"""The ``voice`` built-in: Resemblyzer's GE2E weights in our :class:`~soundtwin.encoders.ge2e.GE2E`, on torch."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, FeatureConfig, ModelConfig, TrainConfig

CONFIG = ExperimentConfig(
    features=FeatureConfig(kind="logmel", sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=40,
                           fmin=0.0, fmax=0.0),
    model=ModelConfig(name="ge2e", embedding_dim=256, hidden=256, layers=3, distance="cosine", spectral_shape=False),
)
#: Fine-tuning ``voice`` (``train --from voice``) trains a linear map of its embedding that starts as the
#: identity, GE2E frozen, at lr 2e-4: fine-tuning the whole encoder fitted the training speakers and made
#: unseen ones worse (heldout-speakers EER 0.40 against 0.31 with no training; benchmarks/RESULTS.md).
HEAD_CONFIG = replace(CONFIG, model=replace(CONFIG.model, name="ge2e_head"), train=TrainConfig(lr=2e-4))


def load(b: Any, weights: Path, cal: dict[str, Any], *, device: Any = "cpu",
         cache_dir: str | os.PathLike[str] | None | bool = None) -> Any:
    import torch
    from safetensors.torch import save as st_save

    from ..encoders import build_encoder
    from ..errors import ModelError
    from ..runtime.modeldir import weights_fingerprint
    from ..runtime.torch_runtime import Verifier

    try:  # a checkpoint of tensors and numbers only: read without unpickling arbitrary objects
        saved = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in saved["model_state"].items() if k.startswith(("lstm.", "linear."))}
        encoder = build_encoder(CONFIG)
        encoder.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - any failure: the file is not the weights we know
        raise ModelError(f"built-in model 'voice': cannot read {weights} ({str(exc).splitlines()[0]})") from None
    meta = {"builtin": b.name, "source": b.package, "licence": b.licence,
            "fingerprint": weights_fingerprint(st_save({k: v.contiguous() for k, v in state.items()}), CONFIG),
            **{k: cal[k] for k in ("threshold_rule", "heldout_eer", "data", "expected") if k in cal}}
    v = Verifier(encoder, CONFIG, threshold=cal["threshold"], calibration=(cal["calibration"]["a"],
                 cal["calibration"]["b"]), meta=meta, cache_dir=cache_dir, device=device)
    v.builtin = b.name
    return v
