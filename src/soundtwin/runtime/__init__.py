"""Runtimes: a model directory loaded for inference (embed, score, decide).

``modeldir`` is the only code that knows a model directory's files; ``base`` holds what every runtime
shares (batching, long clips, scores, decisions); ``torch_runtime`` and ``onnx_runtime`` run the
encoder; ``export`` writes the ONNX file. Importing this package loads neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ..errors import ModelError, SoundtwinError
from .base import AudioInput, Decision, EmbedderBase

RUNTIMES = ("torch", "onnx", "auto")

__all__ = ["RUNTIMES", "AudioInput", "Decision", "EmbedderBase", "load_verifier"]


def load_verifier(model_dir: str | os.PathLike[str], runtime: str = "torch", *, device: Any = "cpu",
                  cache_dir: str | os.PathLike[str] | None | bool = None) -> EmbedderBase:
    """A model directory's (or a built-in model's, by name) verifier on the torch runtime (on ``device``), on onnxruntime (no torch import),
    or ``"auto"``: onnxruntime when the directory holds this model's ``model.onnx`` (``soundtwin export``),
    the ``onnx`` extra is installed and the device is the CPU, since it starts in a fraction of torch's
    import time; torch otherwise. Export checks the two agree within 1e-4 on every embedding."""
    if runtime not in RUNTIMES:
        raise SoundtwinError(f"runtime must be {', '.join(RUNTIMES)}, got {runtime!r}")
    from ..pretrained import is_builtin

    if is_builtin(model_dir):  # a built-in model's name (soundtwin models)
        from ..pretrained import load_builtin

        return load_builtin(str(model_dir), device=device, cache_dir=cache_dir)
    if runtime == "auto":
        from .modeldir import has_onnx

        if str(device) == "cpu" and has_onnx(model_dir) and importlib.util.find_spec("onnxruntime") is not None:
            from .onnx_runtime import OnnxVerifier

            try:
                return OnnxVerifier.load(model_dir, cache_dir=cache_dir)
            except ModelError:  # e.g. exported from an earlier version of the model: use torch
                pass
        runtime = "torch"
    if runtime == "onnx":
        from .onnx_runtime import OnnxVerifier

        return OnnxVerifier.load(model_dir, cache_dir=cache_dir)
    from .torch_runtime import Verifier

    return Verifier.load(model_dir, device=device, cache_dir=cache_dir)
