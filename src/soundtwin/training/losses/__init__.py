"""Training objectives, one module each, registered here by name (``loss.name`` in the config).

A *pair* loss takes ``(emb_a, emb_b, y)`` (``y = 1`` for a genuine pair); a *class* loss takes
``(emb, labels)`` over a labelled batch. Adding a loss: write ``training/losses/<name>.py`` with a
``build(cfg, num_classes, width) -> torch.nn.Module`` and add one line to :data:`LOSSES`.
This module imports no torch (the config checks names against it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...config import ExperimentConfig


@dataclass(frozen=True)
class LossSpec:
    module: str  # holding build(cfg, num_classes, width): a name under soundtwin.training.losses, or a dotted path
    pairs: bool = False  # trains on (a, b, same?) pairs rather than labelled batches
    distance: str | None = None  # the only model.distance it fits, if it constrains it


LOSSES: dict[str, LossSpec] = {
    "contrastive": LossSpec("contrastive", pairs=True),
    "triplet": LossSpec("triplet"),
    "aam": LossSpec("margin", distance="cosine"),
    "subcenter_aam": LossSpec("margin", distance="cosine"),
    "supcon": LossSpec("supcon", distance="cosine"),
}


def build_loss(cfg: ExperimentConfig, classes: list[str]) -> Any:
    """The objective ``cfg.loss`` names, for these training classes (class losses hold learnable class
    centres of the encoder's embedding width); with ``loss.projection``, seeing the embedding through a
    projection head (:mod:`.projection`); with ``loss.teacher``, wrapped in distillation towards the
    teacher's target for each class (:mod:`.teacher`, from the embedding itself)."""
    from ...encoders import member_width

    name = LOSSES[cfg.loss.name].module
    mod = importlib.import_module(name if "." in name else f"{__name__}.{name}")
    loss = mod.build(cfg, len(classes), member_width(cfg))
    if cfg.loss.projection:
        from .projection import Projected

        loss = Projected(loss, member_width(cfg), cfg.loss.projection)
    if cfg.loss.teacher:
        from .teacher import Distilled, load_targets

        loss = Distilled(loss, load_targets(cfg.loss.teacher, classes), member_width(cfg), cfg.loss.teacher_weight)
    return loss
