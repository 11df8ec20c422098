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
    index: np.ndarray | None = None  # with ``only``: each clip's position in the dataset's list

    def fingerprint(self) -> str:
        """What ``--resume`` checks it continues on: the clips (identified as in ``train_clips.txt``, by
        file name and size) and their labels."""
        return data_fingerprint(self.paths, [self.classes[k] for k in self.labels.tolist()])

    def clip_keys(self) -> bytes:
        """``train_clips.txt``: the keys of the training clips, one per line (evaluate warns on overlap)."""
        return clip_keys(self.paths)


def data_fingerprint(paths: list[str], labels: list[str]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for key, label in sorted((clip_key(p), lab) for p, lab in zip(paths, labels, strict=True)):
        h.update(f"{key}\0{label}\n".encode())
    return h.hexdigest()


def clip_keys(paths: list[str]) -> bytes:
    return ("\n".join(sorted({clip_key(p) for p in paths})) + "\n").encode()


def load_labelled(data: str | os.PathLike[str], extractor: FeatureExtractor,
                  progress: Callable[[int], None] | None = None,
                  on_total: Callable[[int], None] | None = None, *, only: np.ndarray | None = None,
                  classes: list[str] | None = None) -> LabelledFeatures:
    """Features and labels of a dataset; bad clips are skipped and listed in ``skipped``. ``only``: just
    these clips of the dataset's list (one rank's shard), labelled against the whole dataset's ``classes``."""
    clips = discover(data)
    if only is not None:
        return _load_subset(data, clips, extractor, np.asarray(only, dtype=np.int64), classes or [], progress,
                            on_total)
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


def _load_subset(data: str | os.PathLike[str], clips: list, extractor: FeatureExtractor, only: np.ndarray,
                 classes: list[str], progress: Callable[[int], None] | None,
                 on_total: Callable[[int], None] | None) -> LabelledFeatures:
    if on_total is not None:
        on_total(len(only))
    sub = [clips[k] for k in only]
    feats, errors = extractor.from_files([c.path for c in sub], skip_errors=True, progress=progress)
    keep = [k for k, f in enumerate(feats) if f is not None]
    if not keep:
        raise DatasetError(f"{data}: none of this process's {len(sub)} clips could be read")
    index = {c: i for i, c in enumerate(classes)}
    groups = [sub[k].group for k in keep]
    return LabelledFeatures([feats[k] for k in keep], np.array([index[sub[k].label] for k in keep], dtype=np.int64),
                            list(classes), [str(sub[k].path) for k in keep], errors,  # type: ignore[misc]
                            groups if any(g is not None for g in groups) else None, index=only[keep])
