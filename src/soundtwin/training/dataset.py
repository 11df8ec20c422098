"""The labelled features training works on: every clip featurised once (through the cache)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..data import discover, encode_labels
from ..errors import DatasetError
from ..evaluate import clip_key
from ..extractor import FeatureExtractor


@dataclass
class LabelledFeatures:
    feats: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    groups: list[str | None] | None = None  # the manifest's group column, where it has one

    def fingerprint(self) -> str:
        """What ``--resume`` checks it continues on: the clips (identified as in ``train_clips.txt``, by
        file name and size) and their labels."""
        h = hashlib.blake2b(digest_size=12)
        for key, label in sorted((clip_key(p), self.classes[k]) for p, k in zip(self.paths, self.labels.tolist())):
            h.update(f"{key}\0{label}\n".encode())
        return h.hexdigest()

    def clip_keys(self) -> bytes:
        """``train_clips.txt``: the keys of the training clips, one per line (evaluate warns on overlap)."""
        return ("\n".join(sorted({clip_key(p) for p in self.paths})) + "\n").encode()


def load_labelled(data: str | os.PathLike[str], extractor: FeatureExtractor,
                  progress: Callable[[int], None] | None = None,
                  on_total: Callable[[int], None] | None = None) -> LabelledFeatures:
    """Features and labels of a dataset; bad clips are skipped and listed in ``skipped``."""
    clips = discover(data)
    if on_total is not None:
        on_total(len(clips))
    feats, errors = extractor.from_files([c.path for c in clips], skip_errors=True, progress=progress)
    keep = [k for k, f in enumerate(feats) if f is not None]
    if not keep:
        raise DatasetError(f"{data}: none of the {len(clips)} clips could be read ({errors[0][1]})")
    labels, classes = encode_labels([clips[k].label for k in keep])
    if len(classes) < 2:
        raise DatasetError(f"{data}: training needs at least two classes, found {classes}")
    groups = [clips[k].group for k in keep]
    return LabelledFeatures([feats[k] for k in keep], labels, classes,  # type: ignore[misc]
                            [str(clips[k].path) for k in keep], errors,
                            groups if any(g is not None for g in groups) else None)
