"""Open-set identification: does ``unknown`` fire for sounds of no enrolled class? (issue 14, part 2)

A gallery enrolls 5 clips (``--shots``) of each class of one protocol's test split (classes the models below
never trained on as such: unseen speakers for digits, unseen words for speakers); its queries are the rest of
those clips (knowns) and sounds of classes and datasets never enrolled (unknowns: spoken digits for an animal
gallery, cats and dogs for a digit or speaker gallery, both for a gallery of game effects (heldout-sounds' test
classes), and synthetic whistles, hums, chirps, knocks, hiss, beeps and buzz for all). At the gallery's own
threshold it reports the fraction of unknowns named as a class
(``unknown accepted``; target 5 % or less) and the fraction of knowns named correctly (``known correct``; target
90 % or more), for the threshold rules: ``pairs eer`` (the old rule: EER of every leave-one-out clip-vs-class
trial), the open-set rule (``open-set eer``, ``open-set far=F``: a left-out clip's best other class stands
for an unknown), ``model`` (the model's own threshold, as it was calibrated, whatever was enrolled) and ``auto``
(what ``enroll`` sets: :meth:`Gallery.set_threshold` with no arguments). 3 seeds of the enrolled clips. Writes
benchmarks/openset_results.json.

    python benchmarks/openset.py --models speech,voice
    python benchmarks/openset.py --models sound --galleries animals,effects --shots 2,3,5
    python benchmarks/openset.py --models digits=benchmarks/work/cal/fsdd-digits-auto-0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from run import protocol_dir  # noqa: E402

from soundtwin.data import discover  # noqa: E402
from soundtwin.gallery import Gallery  # noqa: E402
from soundtwin.io import atomic_write_text  # noqa: E402
from soundtwin.metrics import operating_threshold  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402
from soundtwin.synth import SR, synth_clip  # noqa: E402

RESULTS = HERE / "openset_results.json"
SHOTS = 5
GALLERIES = {"digits": "fsdd-digits", "speakers": "fsdd-speakers", "animals": "catsdogs",
             "effects": "heldout-sounds"}
#: unknowns of each gallery: the test clips of these protocols (classes never enrolled) and synthetic sounds
UNKNOWN_FROM = {"digits": ["catsdogs"], "speakers": ["catsdogs"], "animals": ["fsdd-digits"],
                "effects": ["catsdogs", "fsdd-digits"]}
SYNTH = ("whistle", "hum", "chirp_down", "chirp_up", "knock", "hiss", "beep", "buzz")
RULES = ("pairs eer", "open-set eer", "open-set far=0.05", "open-set far=0.01", "model", "auto")


def unknown_clips(gallery: str, rng: np.random.Generator) -> list:
    out: list = []
    for p in UNKNOWN_FROM[gallery]:
        clips = [str(c.path) for c in discover(protocol_dir(p) / "test.csv")]
        out += list(rng.choice(clips, min(len(clips), 150), replace=False))
    return out + [(synth_clip(k, rng), SR) for k in SYNTH for _ in range(10)]


def run(model: str, where: str, gallery: str, seed: int, shots: int = SHOTS) -> list[dict]:
    rng = np.random.default_rng(seed)
    v = load_verifier(where, "torch", cache_dir=str(HERE / "work" / "cache"))
    clips = discover(protocol_dir(GALLERIES[gallery]) / "test.csv")
    by_class: dict[str, list[str]] = {}
    for c in clips:
        by_class.setdefault(c.label, []).append(str(c.path))
    enrolled, known = [], []
    for lab, paths in sorted(by_class.items()):
        order = rng.permutation(len(paths))
        enrolled += [(lab, paths[i]) for i in order[:shots]]
        known += [(lab, paths[i]) for i in order[shots:]]
    known = [known[i] for i in rng.choice(len(known), min(len(known), 300), replace=False)]
    unknown = unknown_clips(gallery, rng)
    emb_e = v.embed([p for _, p in enrolled])
    emb_k = v.embed([p for _, p in known])
    emb_u = v.embed(unknown)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(Path(tmp) / "g", v)
        for lab in sorted(by_class):
            idx = [i for i, (x, _) in enumerate(enrolled) if x == lab]
            g.add_embeddings(lab, emb_e[idx], [enrolled[i][1] for i in idx])
        for rule in RULES:
            if rule == "pairs eer":
                g.threshold = operating_threshold(*g.enrolled_trials())[0]
            elif rule == "model":
                g.set_threshold(source="model")
            elif rule == "auto":
                g.set_threshold()
            else:
                far = float(rule.split("=")[1]) if "=" in rule else None
                g.set_threshold(far=far)
            ids_k = g.identify_embeddings(emb_k, [p for _, p in known], top=1)
            ids_u = g.identify_embeddings(emb_u, [str(k) for k in range(len(unknown))], top=1)
            truth = [lab for lab, _ in known]
            rows.append({
                "key": f"{model}|{gallery}|{rule}|{seed}" + (f"|{shots}" if shots != SHOTS else ""),
                "model": model, "gallery": gallery, "rule": rule, "seed": seed, "shots": shots,
                "threshold_rule": g.threshold_rule, "classes": len(by_class), "enrolled": len(enrolled),
                "knowns": len(known),
                "unknowns": len(unknown), "threshold": round(g.threshold, 4),
                "unknown_accepted": round(float(np.mean([i.label != "unknown" for i in ids_u])), 4),
                "known_correct": round(float(np.mean([i.label == t for i, t in zip(ids_k, truth)])), 4),
                "known_top1": round(float(np.mean([i.matches[0].label == t for i, t in zip(ids_k, truth)])), 4),
                "expected": g.expected if rule not in ("pairs eer", "model") else None,
                "when": time.strftime("%Y-%m-%d %H:%M")})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="speech,voice",
                    help="built-in names, or GALLERY=MODEL_DIR to run one gallery on a trained model")
    ap.add_argument("--galleries", default="digits,speakers,animals")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--shots", default=str(SHOTS), help="clips enrolled per class, comma-separated")
    args = ap.parse_args()
    rows = {r["key"]: r for r in json.loads(RESULTS.read_text())} if RESULTS.is_file() else {}
    for m in args.models.split(","):
        if "=" in m:
            gal, where = m.split("=", 1)
            jobs = [(f"trained:{Path(where).name}", where, gal)]
        else:
            jobs = [(m, m, gal) for gal in args.galleries.split(",")]
        for model, where, gal in jobs:
            for shots in [int(k) for k in args.shots.split(",")]:
                for seed in [int(s) for s in args.seeds.split(",")]:
                    for r in run(model, where, gal, seed, shots):
                        rows[r["key"]] = r
                atomic_write_text(RESULTS, json.dumps(sorted(rows.values(), key=lambda r: r["key"]), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
