"""Google's speech_embedding (the ``speech`` built-in). Its weights ship as ONNX and it runs on
onnxruntime (:mod:`soundtwin.pretrained.speech`); there is no torch version of it to train yet."""

from __future__ import annotations

from ..config import ExperimentConfig
from ..errors import ModelError


def build(cfg: ExperimentConfig) -> None:
    raise ModelError("model.name=speech_embedding runs on onnxruntime only (its weights ship as ONNX): it can "
                     "embed and compare, but cannot be built in torch to train or export")
