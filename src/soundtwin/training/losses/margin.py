"""Additive angular margin softmax (ArcFace) and its sub-center variant (pytorch-metric-learning).

``loss.margin`` is in radians here (pytorch-metric-learning takes degrees)."""

from __future__ import annotations

import math

from pytorch_metric_learning import losses
from torch import nn

from ...config import ExperimentConfig


def build(cfg: ExperimentConfig, num_classes: int, width: int) -> nn.Module:
    lc = cfg.loss
    degrees = lc.margin * 180.0 / math.pi
    if lc.name == "aam":
        return losses.ArcFaceLoss(num_classes, width, margin=degrees, scale=lc.scale)
    return losses.SubCenterArcFaceLoss(num_classes=num_classes, embedding_size=width, margin=degrees,
                                       scale=lc.scale, sub_centers=lc.sub_centers)
