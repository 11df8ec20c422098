"""Targets for pretraining the general-sound encoder on what its clips' file names say (issue #16).

The recipe's clips come with names: ``.../fauna/animal/dog_bark2.ogg``, ``.../sound/weapons/grenade/explode.wav``.
A word that two packages both use (``dog``, ``footstep``, ``explosion``, ``door``) names the same kind of sound
recorded by different people in different rooms: what the encoder should bring together and what two crops of
one clip cannot teach. This writes a ``loss.teacher`` targets file (``soundtwin.training.losses.teacher``) with
one target a kind: its file-name words, each weighted by its inverse document frequency over the kinds, scaled
to unit length. The encoder then also learns to predict those words through a linear head that is dropped
after training (multi-task pretraining; the shipped encoder has the same shape and speed).

Which words count: a path is split at separators and camelCase, digits dropped, lower-cased, a plural's ``s``
dropped; words of three letters or more that appear in at least two packages' kinds and in at most a tenth of
all kinds, less the words of the package names and of file-system paths (``usr``, ``sounds``, ``data``...). A
kind with no such word gets the zero target: it adds a constant to the loss and no gradient.

    python scripts/name_targets.py --manifest benchmarks/work/sounds/manifest.csv \\
        --out benchmarks/work/teacher/names-kind.safetensors
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

# path words that say where a file lies, not what it sounds like
PATH_WORDS = frozenset("""usr share game data sound audio sfx default core resource base mod public effect misc stereo
theme zip pak wav ogg oga flac local lib""".split())
MIN_PACKAGES = 2
MAX_SHARE = 0.1


def words(text: str) -> set[str]:
    """The words of a path or name: split at separators and camelCase, digits dropped, lower case, a final
    plural ``s`` dropped (``Footsteps`` -> ``footstep``), three letters or more."""
    out = set()
    for part in re.split(r"[^A-Za-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text)):
        w = re.sub(r"\d+", "", part).lower()
        if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if len(w) >= 3:
            out.add(w)
    return out


def name_targets(kinds: dict[str, str]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """``kinds``: {kind: package}. Returns the vocabulary and each kind's unit-length idf-weighted words
    (``{}`` for a kind with none)."""
    stop = set(PATH_WORDS)
    for package in set(kinds.values()):
        stop |= words(package)
    by_kind = {k: words(k.removeprefix(p + "/")) - stop for k, p in kinds.items()}
    packages, df = defaultdict(set), defaultdict(int)
    for k, ws in by_kind.items():
        for w in ws:
            packages[w].add(kinds[k])
            df[w] += 1
    vocab = sorted(w for w in df if len(packages[w]) >= MIN_PACKAGES and df[w] <= MAX_SHARE * len(kinds))
    keep = set(vocab)
    targets = {}
    for k, ws in by_kind.items():
        weights = {w: math.log(len(kinds) / df[w]) for w in ws & keep}
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        targets[k] = {w: v / norm for w, v in weights.items()}
    return vocab, targets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True, help="fetch_sounds.py's manifest (kind, package)")
    ap.add_argument("--out", type=Path, required=True, help="the targets file to write (safetensors)")
    args = ap.parse_args(argv)
    import torch

    from soundtwin.training.losses.teacher import save_targets

    with open(args.manifest, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not {"kind", "package"} <= set(reader.fieldnames or ()):
            sys.exit(f"{args.manifest}: needs kind and package columns (a manifest of scripts/fetch_sounds.py)")
        kinds = {r["kind"]: r["package"] for r in reader}
    vocab, targets = name_targets(kinds)
    column = {w: i for i, w in enumerate(vocab)}
    vectors = {}
    for k, ws in targets.items():
        v = torch.zeros(len(vocab))
        for w, x in ws.items():
            v[column[w]] = x
        vectors[k] = v
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_targets(args.out, vectors, {"teacher": "file-name words", "vocabulary": " ".join(vocab),
                                     "manifest": str(args.manifest), "labels": "kind"})
    named = sum(1 for t in targets.values() if t)
    print(f"{args.out}: {len(vocab)} words, {named} of {len(kinds)} kinds have some")
    return 0


if __name__ == "__main__":
    sys.exit(main())
