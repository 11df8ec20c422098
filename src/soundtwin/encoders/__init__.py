"""Encoders: a clip's features ``(batch, n_features, frames)`` and their valid ``lengths`` ->
embeddings ``(batch, width)``. One module per architecture, registered here by name.

Adding an encoder: write ``encoders/<name>.py`` with a ``build(cfg) -> torch.nn.Module``, and add one
line to :data:`ENCODERS` saying its module and the width of its embeddings. ``model.name`` in the
config then accepts the name. This module imports no torch: galleries and the ONNX runtime ask it for
widths without loading the encoder code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ExperimentConfig


@dataclass(frozen=True)
class EncoderSpec:
    module: str  # holding build(cfg): a name under soundtwin.encoders, or a full dotted module path
    width: Callable[[ExperimentConfig], int]  # width of one encoder's embedding
    fixed_input: bool = False  # needs features.max_frames > 0 (a fixed-size input)
    exportable: bool = True  # traces to ONNX (an encoder choosing its windows per clip in Python does not)
    # a head on a frozen pretrained network: its linear layer, which fine-tuning a built-in starts at the
    # built-in's scores (identity less the built-in's centre)
    head: str | None = None


#: The registry: ``model.name`` -> where the encoder lives and how wide its embeddings are.
ENCODERS: dict[str, EncoderSpec] = {
    "tdnn": EncoderSpec("tdnn", lambda c: c.model.embedding_dim),
    "mlp": EncoderSpec("mlp", lambda c: c.model.hidden, fixed_input=True),
    "meanlinear": EncoderSpec("meanlinear", lambda c: c.features.n_features),
    "unitmeanlinear": EncoderSpec("meanlinear", lambda c: c.features.n_features, head="linear"),  # of the unit mean
    "ge2e": EncoderSpec("ge2e", lambda c: c.model.embedding_dim, exportable=False),  # the ``voice`` built-in
    "ge2e_head": EncoderSpec("ge2e", lambda c: c.model.embedding_dim, exportable=False, head="head"),  # fine-tuned
    "speech_embedding": EncoderSpec("speech_embedding", lambda c: c.model.embedding_dim),  # ``speech``: ONNX only
}


def build_encoder(cfg: ExperimentConfig) -> Any:
    """The encoder ``cfg.model`` describes (``model.ensemble > 1``: that many side by side)."""
    if cfg.model.ensemble > 1:
        from .ensemble import build as build_ensemble

        return build_ensemble(cfg)
    mod = ENCODERS[cfg.model.name].module
    return importlib.import_module(mod if "." in mod else f"{__name__}.{mod}").build(cfg)


def member_width(cfg: ExperimentConfig) -> int:
    """Width of one encoder's embedding (an ensemble's members each give this many)."""
    return int(ENCODERS[cfg.model.name].width(cfg))


def embedding_width(cfg: ExperimentConfig) -> int:
    """Width of the embeddings a model of this config gives (all ensemble members side by side)."""
    return member_width(cfg) * max(1, int(cfg.model.ensemble))
