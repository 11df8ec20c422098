"""Write soundtwin's own held-out-class protocols into benchmarks/protocols/ (same format as ../shared/benchmarks).

In each, the test classes are absent from training (and so are the test speakers), which is what
enrolling a sound the model never saw looks like. Paths are relative to each protocol folder.

``heldout-sounds`` (same sound?) is made only where its recordings were fetched (they are not in ../shared):
sound effects of one game, MegaGlest (``scripts/fetch_sounds.py --out benchmarks/work/heldout-sounds
--packages megaglest-data``), a class being every take of one effect (``swordman_die1.wav``, ``swordman_die2.wav``,
...; voice lines, ``*_ack`` and ``*_select``, left out), classes split in two halves, train and test. No pretraining
set may hold its package (the general-sound encoder's recipe excludes its clips by content hash).

    python benchmarks/make_protocols.py
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", HERE.parent.parent / "shared"))
REC = SHARED / "data" / "fsdd" / "recordings"
SOUNDS = HERE / "work" / "heldout-sounds"
VOICE_LINES = ("_ack", "_select", "_sel")

PROTOCOLS = {
    # same digit? digits 7-9 never seen, spoken by unseen speakers
    "heldout-digits-a": dict(train=({0, 1, 2, 3, 4, 5, 6}, {"george", "jackson", "lucas", "nicolas"}),
                             test=({7, 8, 9}, {"theo", "yweweler"}), question="digit"),
    # same digit? digits 0-2 never seen, spoken by unseen speakers
    "heldout-digits-b": dict(train=({3, 4, 5, 6, 7, 8, 9}, {"theo", "yweweler", "lucas", "nicolas"}),
                             test=({0, 1, 2}, {"george", "jackson"}), question="digit"),
    # same speaker? speakers theo and yweweler never seen in training
    "heldout-speakers": dict(train=(set(range(10)), {"george", "jackson", "lucas", "nicolas"}),
                             test=(set(range(10)), {"theo", "yweweler"}), question="speaker"),
}


def clips(digits: set[int], speakers: set[str]) -> list[tuple[str, str, str]]:
    out = []
    for p in sorted(REC.glob("*.wav")):
        d, s, _ = p.stem.split("_")
        if int(d) in digits and s in speakers:
            out.append((p.name, d, s))
    return out


def trials(rel_paths: list[str], labels: list[str], n_trials: int, rng: np.random.Generator) -> list[str]:
    """Up to ``n_trials`` distinct trials, half genuine (all of them where there are fewer), half impostor."""
    lab = np.array(labels)
    same_pairs = [(i, j) for i in range(len(lab)) for j in range(i + 1, len(lab)) if lab[i] == lab[j]]
    gen = [same_pairs[k] for k in rng.permutation(len(same_pairs))[: n_trials // 2]]
    imp: set[tuple[int, int]] = set()
    while len(imp) < len(gen):
        i, j = sorted(rng.integers(len(lab), size=2))
        if lab[i] != lab[j]:
            imp.add((int(i), int(j)))
    out = [(1, i, j) for i, j in gen] + [(0, i, j) for i, j in sorted(imp)]
    return [f"{t} {rel_paths[i]} {rel_paths[j]}" for t, i, j in (out[k] for k in rng.permutation(len(out)))]


def heldout_sounds(n_trials: int = 4000, min_takes: int = 3) -> None:
    manifest = SOUNDS / "manifest.csv"
    if not manifest.is_file():
        print(f"heldout-sounds: {manifest} missing (scripts/fetch_sounds.py makes it); not made")
        return
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["kind"].endswith(VOICE_LINES)]
    by: dict[str, list[str]] = {}
    for r in rows:  # one class per effect name, whichever faction folder holds a take of it
        by.setdefault(r["kind"].rsplit("/", 1)[-1], []).append(r["path"])
    classes = sorted(k for k, v in by.items() if len(v) >= min_takes)
    order = np.random.default_rng(0).permutation(len(classes))
    train_c, test_c = sorted(classes[i] for i in order[::2]), sorted(classes[i] for i in order[1::2])
    d = HERE / "protocols" / "heldout-sounds"
    d.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(SOUNDS, d)
    split = {}
    for fname, cs in (("train.csv", train_c), ("test.csv", test_c)):
        split[fname] = [(f"{rel}/{p}", c) for c in cs for p in sorted(by[c])]
        (d / fname).write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in split[fname]))
    te = split["test.csv"]
    lines = trials([p for p, _ in te], [c for _, c in te], n_trials, np.random.default_rng(0))
    (d / "trials.txt").write_text("\n".join(lines) + "\n")
    info = {"train": len(split["train.csv"]), "test": len(te), "trials": len(lines), "question": "sound",
            "source": "Debian megaglest-data (CC-BY-SA-3.0 / GPL-2+), scripts/fetch_sounds.py",
            "train_classes": train_c, "test_classes": test_c}
    (d / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    print("heldout-sounds", info["train"], info["test"], info["trials"], len(train_c), len(test_c))


def main(n_trials: int = 4000) -> None:
    for name, spec in PROTOCOLS.items():
        d = HERE / "protocols" / name
        d.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(REC, d)
        key = 1 if spec["question"] == "digit" else 2
        tr, te = clips(*spec["train"]), clips(*spec["test"])
        for fname, rows in (("train.csv", tr), ("test.csv", te)):
            (d / fname).write_text("path,label\n" + "".join(f"{rel}/{r[0]},{r[key]}\n" for r in rows))
        rng = np.random.default_rng(0)
        labels = np.array([r[key] for r in te])
        lines, gen, imp = [], 0, 0
        seen = set()
        while gen + imp < n_trials:
            i, j = sorted(rng.integers(len(te), size=2))
            same = labels[i] == labels[j]
            if i == j or (i, j) in seen or (same and gen >= n_trials // 2) or (not same and imp >= n_trials // 2):
                continue
            seen.add((i, j))
            gen, imp = gen + same, imp + (not same)
            lines.append(f"{int(same)} {rel}/{te[i][0]} {rel}/{te[j][0]}")
        (d / "trials.txt").write_text("\n".join(lines) + "\n")
        info = {"train": len(tr), "test": len(te), "trials": len(lines), "question": spec["question"],
                "train_classes": sorted({r[key] for r in tr}), "test_classes": sorted({r[key] for r in te})}
        (d / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        print(name, info["train"], info["test"], info["trials"])
    heldout_sounds(n_trials)


if __name__ == "__main__":
    main()
