"""Write soundtwin's own held-out-class protocols into benchmarks/protocols/ (same format as ../shared/benchmarks).

In each, the test classes are absent from training (and so are the test speakers), which is what
enrolling a sound the model never saw looks like. Paths are relative to each protocol folder.

    python benchmarks/make_protocols.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", HERE.parent.parent / "shared"))
REC = SHARED / "data" / "fsdd" / "recordings"

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


if __name__ == "__main__":
    main()
