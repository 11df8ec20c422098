"""Datasets (a folder of class sub-folders or a ``path,label`` CSV), audio file lists, splits, pairs and
trial lists."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import audio_extensions
from .errors import DatasetError

_SUB_PREFIX = re.compile(r"^sub[_\- ]+", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    group: str | None = None  # a manifest's ``group`` column: speaker, session, recording...


def class_from_folder(name: str) -> str:
    """Class label of a dataset sub-folder: lower case, with a ``Sub_`` prefix dropped, so the
    tutorial's ``Dogs/`` and ``Sub_dogs/`` both hold class ``dogs`` and ``Cats/`` holds ``cats``."""
    return _SUB_PREFIX.sub("", name.strip()).lower()


def audio_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (at any depth) with an audio extension, hidden ones left out, sorted."""
    exts = audio_extensions()
    return [f for f in sorted(folder.rglob("*")) if f.is_file() and f.suffix.lower() in exts
            and not f.name.startswith(".")]


def list_audio(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Clips named on a command line: files as given, folders searched for audio files."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += audio_files(p) if p.is_dir() else [p]
    if not out:
        raise DatasetError("no audio files among the inputs")
    return out


def scan_folder(root: Path) -> list[Clip]:
    """Clips under ``root/<class>/**`` with an audio extension, sorted by path."""
    clips: list[Clip] = []
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DatasetError(f"{root}: no class sub-folders (expected one folder per class, e.g. {root}/dogs/*.wav)")
    for sub in subdirs:
        label = class_from_folder(sub.name)
        clips += [Clip(f, label) for f in audio_files(sub)]
    if not clips:
        raise DatasetError(f"{root}: no audio files found in its class sub-folders")
    return clips


def read_manifest(path: Path) -> list[Clip]:
    """Clips of a ``path,label`` CSV (UTF-8, with or without a BOM); relative paths resolve against the
    CSV's folder. An optional ``group`` column (speaker, session, recording: what a new clip will not
    share with the training clips) makes training calibrate on whole held-out groups. A row with more fields than the header (an unquoted comma in a label), the same
    file under two labels, or a non-UTF-8 file is an error naming the line; a repeated row is
    dropped (it would put one clip in both training and calibration)."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read manifest ({exc.strerror})") from None
    clips: list[Clip] = []
    seen: dict[Path, tuple[str, int]] = {}
    try:
        with fh:
            reader = csv.DictReader(fh)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            if "path" not in cols or "label" not in cols:
                raise DatasetError(f"{path}: manifest needs 'path' and 'label' columns, found {cols}")
            reader.fieldnames = cols
            for lineno, row in enumerate(reader, start=2):
                if None in row:
                    raise DatasetError(f"{path}:{lineno}: {len(cols) + len(row[None])} fields for {len(cols)} "
                                       f"columns; quote a value that holds a comma (\"smith, john\")")
                p, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
                if not p or not label:
                    raise DatasetError(f"{path}:{lineno}: empty path or label")
                f = Path(p)
                f = f if f.is_absolute() else path.parent / f
                key = Path(os.path.normpath(f))
                if key in seen:
                    other, line0 = seen[key]
                    if other != label:
                        raise DatasetError(f"{path}:{lineno}: {p} is labelled {label!r} here and {other!r} on "
                                           f"line {line0}")
                    continue  # the same row again
                seen[key] = (label, lineno)
                group = ((row.get("group") or "").strip() or None) if "group" in cols else None
                clips.append(Clip(f, label, group))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}); save the manifest as UTF-8") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from None
    if not clips:
        raise DatasetError(f"{path}: manifest lists no clips")
    return clips


def discover(data: str | os.PathLike[str]) -> list[Clip]:
    """Clips of a dataset given as a folder of class sub-folders or a CSV manifest."""
    data = Path(data)
    if data.is_dir():
        return scan_folder(data)
    if data.is_file() and data.suffix.lower() == ".csv":
        return read_manifest(data)
    if not data.exists():
        raise DatasetError(f"{data}: no such folder or manifest")
    raise DatasetError(f"{data}: expected a folder of class sub-folders or a .csv manifest")


def group_by_label(data: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """A dataset's clips by class, in order of first appearance."""
    groups: dict[str, list[Path]] = {}
    for c in discover(data):
        groups.setdefault(c.label, []).append(c.path)
    return groups


def encode_labels(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """``(int labels, sorted class names)``."""
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[x] for x in labels], dtype=np.int64), classes


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, held_out)``: about ``fraction`` of each class held out (at least one clip of
    every class with 3 or more clips; smaller classes stay whole in training)."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx))) if len(idx) >= 3 else 0
        k = max(k, 1) if len(idx) >= 3 else 0
        held.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))


#: How :func:`validation_split` chooses the part that validates and calibrates a model.
CALIBRATE_ON = ("auto", "groups", "classes", "clips")
def _held_out_classes(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    classes = np.unique(labels)
    k = max(2, int(round(fraction * len(classes))))
    if len(classes) - k < 2:
        raise DatasetError(f"too few classes to hold some out whole ({len(classes)}; 4 or more needed)")
    out = np.random.default_rng([seed, 3]).permutation(classes)[:k]
    mask = np.isin(labels, out)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _held_out_groups(labels: np.ndarray, groups: Sequence[str | None], fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.array(["" if x is None else x for x in groups])
    names = np.unique(g)
    if len(names) < 2:
        raise DatasetError(f"the manifest's group column names {len(names)} group(s); 2 or more are needed to "
                           f"hold some out whole")
    order = np.random.default_rng([seed, 5]).permutation(names)
    target = max(1, int(round(fraction * len(names))))
    for k in range(target, len(names)):  # widen until the held-out part has two classes (impostor trials;
        mask = np.isin(g, order[:k])     # genuine ones come from a class's two clips, or two halves of one)
        held, train = labels[mask], labels[~mask]
        if len(np.unique(held)) >= 2 and len(np.unique(train)) >= 2:
            return np.flatnonzero(~mask), np.flatnonzero(mask)
    raise DatasetError("no choice of whole groups leaves two classes for training and two for calibration; drop "
                       "the group column or use train.calibrate_on=clips")


def validation_split(labels: np.ndarray, fraction: float, seed: int, groups: Sequence[str | None] | None = None,
                     on: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """``(train, held_out, how)``: the part held out to validate and calibrate on.

    The threshold and the probability map are fitted on it, so it should be as new to the model as the
    clips it will judge: ``how`` is

    - ``"groups"``: whole groups (the manifest's ``group`` column: speakers, sessions, recordings), about
      ``fraction`` of them, so calibration sees speakers or recordings training never saw;
    - ``"classes"``: whole classes (about ``fraction``, at least 2, at least 2 staying for training), so it
      sees sounds of classes training never saw, as a user enrolling new sounds does;
    - ``"clips"``: about ``fraction`` of each class's clips (expect an optimistic calibration: the same
      classes and often the same recordings as training).

    ``on="auto"`` picks groups when the manifest has them, else clips, and classes when classes are too
    small to split (one or two clips each: a speaker list with one clip per speaker). Holding out whole
    classes by default was measured to cost too much: on fsdd-digits (10 classes) EER 0.074 against 0.037,
    two of the ten digits never trained on (benchmarks/RESULTS.md)."""
    if on not in CALIBRATE_ON:
        raise DatasetError(f"train.calibrate_on: one of {', '.join(CALIBRATE_ON)}, got {on!r}")
    has_groups = groups is not None and any(x is not None for x in groups)
    if on == "groups" or (on == "auto" and has_groups):
        if not has_groups:
            raise DatasetError("train.calibrate_on=groups needs a manifest with a 'group' column")
        return (*_held_out_groups(labels, groups, fraction, seed), "groups")  # type: ignore[arg-type]
    n_classes = len(np.unique(labels))
    if on == "classes":
        return (*_held_out_classes(labels, fraction, seed), "classes")
    train, held = stratified_split(labels, fraction, seed)
    if len(held) >= 3 and len(np.unique(labels[held])) >= 2:
        return train, held, "clips"
    if on == "clips":
        raise DatasetError(f"too few clips to hold out a validation part of each class ({len(labels)} clips in "
                           f"{n_classes} classes): give 3 or more clips to 2 classes, or use "
                           f"train.calibrate_on=classes")
    try:
        return (*_held_out_classes(labels, fraction, seed), "classes")
    except DatasetError:
        raise DatasetError(f"too few clips to hold out a validation part ({len(labels)} clips in {n_classes} "
                           f"classes): give 3 or more clips to 2 classes, or 4 classes or more") from None


def sample_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced pairs as in the tutorial: ``(i, j, y)`` with y=1 genuine (same class) and y=0 impostor.

    Anchors cycle through every clip; each anchor gets alternately a genuine partner (another clip
    of its class) and an impostor (a clip of another class), so the two kinds are balanced.
    """
    labels = np.asarray(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    if len(by_class) < 2:
        raise DatasetError("pair sampling needs at least two classes")
    n = len(labels)
    anchors = np.concatenate([rng.permutation(n) for _ in range(-(-n_pairs // n))])[:n_pairs]
    ii, jj, yy = [], [], []
    for k, a in enumerate(anchors):
        same = by_class[labels[a]]
        genuine = k % 2 == 0 and len(same) > 1
        if genuine:
            b = a
            while b == a:
                b = same[rng.integers(len(same))]
        else:
            b = a
            while labels[b] == labels[a]:
                b = rng.integers(n)
        ii.append(a)
        jj.append(b)
        yy.append(1 if genuine else 0)
    return np.array(ii), np.array(jj), np.array(yy, dtype=np.float32)


def trial_pairs(labels: np.ndarray, max_trials: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation trials over a labelled set: all pairs if few, else a balanced random sample."""
    labels = np.asarray(labels)
    n = len(labels)
    iu, ju = np.triu_indices(n, k=1)
    same = labels[iu] == labels[ju]
    gen, imp = np.flatnonzero(same), np.flatnonzero(~same)
    if len(gen) == 0 or len(imp) == 0:
        raise DatasetError("held-out trials need at least two classes and two clips of one class")
    half = max_trials // 2
    if len(gen) > half:
        gen = rng.choice(gen, half, replace=False)
    if len(imp) > half:
        imp = rng.choice(imp, half, replace=False)
    sel = np.concatenate([gen, imp])
    return iu[sel], ju[sel], same[sel].astype(np.float32)


@dataclass(frozen=True)
class Trials:
    labels: np.ndarray  # (n,) int, -1 where the line had no label
    a: list[str]
    b: list[str]

    @property
    def labelled(self) -> np.ndarray:
        return self.labels >= 0


def read_trials(path: str | os.PathLike[str]) -> Trials:
    """Parse ``LABEL PATH_A PATH_B`` (LABEL 1 or 0) or ``PATH_A PATH_B`` lines; relative paths
    resolve against the list's folder. Blank lines and ``#`` comments are ignored."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read trial list ({exc.strerror})") from None
    labels, a, b = [], [], []

    def resolve(p: str) -> str:
        q = Path(p)
        return str(q if q.is_absolute() else path.parent / q)

    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) == 3:
            if parts[0] not in ("0", "1"):
                raise DatasetError(f"{path}:{n}: label must be 1 or 0, got {parts[0]!r}")
            labels.append(int(parts[0]))
            a.append(resolve(parts[1]))
            b.append(resolve(parts[2]))
        elif len(parts) == 2:
            labels.append(-1)
            a.append(resolve(parts[0]))
            b.append(resolve(parts[1]))
        else:
            raise DatasetError(f"{path}:{n}: expected 'LABEL PATH_A PATH_B' or 'PATH_A PATH_B', got {line.strip()!r}")
    if not a:
        raise DatasetError(f"{path}: no trials")
    return Trials(np.array(labels, dtype=np.int64), a, b)
