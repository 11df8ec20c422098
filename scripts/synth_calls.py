"""Procedural animal-like calls for pretraining: "species" that differ by body, calls that vary.

What tells a cat from a dog is mostly the body that makes the sound (the vocal tract's resonances, the voice's
pitch range, breathiness and roughness), not one call: a cat meows, purrs and hisses. Game effects teach the
encoder little of that. Here each species is drawn as a body and a voice, and each of its clips is one call of its
repertoire, so two clips of one species are a genuine pair even when their calls differ:

- body: a vocal-tract length (formants at odd multiples of c / 4L, each moved up to 15 %), formant bandwidths;
- voice: a pitch centre (60-1,500 Hz), how fast the harmonics fall off, breath noise, roughness (a growl's
  amplitude flutter), pitch jitter;
- repertoire: 1-3 call shapes (pitch contour, pitch range, syllable length and count, gaps);
- a clip: one call, its pitch, timing and formants moved a little, in background noise at 5-40 dB SNR, sometimes
  in a simulated room.

Seeded: the same arguments write the same samples. Writes FLAC clips and a manifest.csv with the columns of
``scripts/fetch_sounds.py`` (``kind`` is the species); ``--with`` appends another manifest's rows (paths made
absolute), so ``benchmarks/pretrain.py --manifest`` takes both at once.

    python scripts/synth_calls.py --out benchmarks/work/synth-calls --species 400 --takes 4 \\
        --with benchmarks/work/sounds/manifest.csv --group 0ad-data

(tried in pretraining and not kept: benchmarks/RESULTS-notes.md, "Eighth session on it").
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_sounds import samples_hash  # noqa: E402

from soundtwin.io import atomic_write_text  # noqa: E402

SR = 16000
NYQ = 0.95 * SR / 2
SPEED_OF_SOUND = 350.0
CONTOURS = ("flat", "rise", "fall", "arch", "dip", "vibrato")
PACKAGE = "soundtwin-synth-calls"
#: the species fall in this many groups, so holding out a group for validation keeps most of them in training
GROUPS = 8


def species(rng: np.random.Generator) -> dict:
    """A body, a voice and a repertoire of call shapes."""
    length = np.exp(rng.uniform(np.log(0.04), np.log(0.25)))  # vocal tract, m
    formants = [(2 * k - 1) * SPEED_OF_SOUND / (4 * length) * rng.uniform(0.85, 1.15) for k in range(1, 9)]
    formants = sorted(f for f in formants if f < NYQ)[:6]
    calls = []
    for _ in range(int(rng.integers(1, 4))):
        calls.append({"contour": CONTOURS[int(rng.integers(len(CONTOURS)))],
                      "range": float(np.exp(rng.uniform(0, np.log(2.5)))),
                      "syllable_s": float(np.exp(rng.uniform(np.log(0.08), np.log(1.2)))),
                      "syllables": int(rng.integers(1, 5)),
                      "gap_s": float(rng.uniform(0.04, 0.4))})
    noisy = rng.random() < 0.25
    return {"formants": formants,
            "bandwidths": [float(rng.uniform(50, 250)) * (1 + 0.3 * k) for k in range(len(formants))],
            "f0": float(np.exp(rng.uniform(np.log(60), np.log(1500)))),
            "tilt": float(rng.uniform(0.5, 2.0)),
            "breath": float(rng.uniform(0.5, 1.0) if noisy else rng.uniform(0.0, 0.4)),
            "rough_hz": float(rng.uniform(20, 80)), "rough": float(rng.uniform(0, 0.8) if rng.random() < 0.4 else 0),
            "jitter": float(rng.uniform(0, 0.03)), "calls": calls}


def _contour(kind: str, n: int, span: float, rng: np.random.Generator) -> np.ndarray:
    """Pitch multiplier over a syllable of ``n`` samples, spanning a ratio of ``span``."""
    u = np.linspace(0, 1, n)
    if kind == "rise":
        return span ** (u - 0.5)
    if kind == "fall":
        return span ** (0.5 - u)
    if kind == "arch":
        return span ** (np.sin(np.pi * u) - 0.5)
    if kind == "dip":
        return span ** (0.5 - np.sin(np.pi * u))
    if kind == "vibrato":
        return span ** (0.25 * np.sin(2 * np.pi * rng.uniform(4, 9) * u * n / SR))
    return np.ones(n)


def _resonate(x: np.ndarray, formants: list[float], bandwidths: list[float]) -> np.ndarray:
    for f, b in zip(formants, bandwidths, strict=True):
        r = np.exp(-np.pi * b / SR)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return x


def syllable(sp: dict, call: dict, f0: float, n: int, formants: list[float], rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    wobble = lfilter([0.01], [1, -0.99], rng.standard_normal(n)) * sp["jitter"] * 10
    f = np.clip(f0 * _contour(call["contour"], n, call["range"], rng) * (1 + wobble), 30, NYQ)
    phase = 2 * np.pi * np.cumsum(f) / SR
    voiced = np.zeros(n)
    for k in range(1, 81):
        alive = k * f < NYQ
        if not alive.any():
            break
        voiced += alive * k ** -sp["tilt"] * np.sin(k * phase)
    voiced /= np.abs(voiced).max() + 1e-9
    noise = rng.standard_normal(n)
    noise /= np.abs(noise).max()
    src = (1 - sp["breath"]) * voiced + sp["breath"] * noise
    src *= 1 + sp["rough"] * np.sin(2 * np.pi * sp["rough_hz"] * t)
    y = _resonate(src, formants, sp["bandwidths"])
    attack, release = int(rng.uniform(0.005, 0.05) * SR), int(rng.uniform(0.02, 0.2) * SR)
    env = np.ones(n)
    env[: min(attack, n)] = np.linspace(0, 1, min(attack, n))
    env[n - min(release, n):] *= np.linspace(1, 0, min(release, n))
    return y * env / (np.abs(y).max() + 1e-9)


def clip(sp: dict, rng: np.random.Generator, max_s: float = 4.0) -> np.ndarray:
    """One call of ``sp``'s repertoire, moved a little, in background noise (and sometimes a room)."""
    call = sp["calls"][int(rng.integers(len(sp["calls"])))]
    f0 = sp["f0"] * np.exp(rng.normal(0, 0.08))
    formants = [f * np.exp(rng.normal(0, 0.03)) for f in sp["formants"]]
    parts = [np.zeros(int(rng.uniform(0.05, 0.4) * SR))]
    for _ in range(max(1, call["syllables"] + int(rng.integers(-1, 2)))):
        n = max(int(call["syllable_s"] * np.exp(rng.normal(0, 0.15)) * SR), 400)
        parts.append(syllable(sp, call, f0 * np.exp(rng.normal(0, 0.03)), n, formants, rng) * rng.uniform(0.6, 1))
        parts.append(np.zeros(int(call["gap_s"] * np.exp(rng.normal(0, 0.2)) * SR)))
    parts.append(np.zeros(int(rng.uniform(0.05, 0.4) * SR)))
    y = np.concatenate(parts)[: int(max_s * SR)]
    if rng.random() < 0.3:  # a room: an exponentially decaying noise tail
        rt60 = rng.uniform(0.1, 0.6)
        m = int(rt60 * SR)
        ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
        ir[0] = 1 / rng.uniform(0.3, 1.0)
        y = np.convolve(y, ir)[: len(y)]
    noise = lfilter([1], [1, -rng.uniform(0, 0.98)], rng.standard_normal(len(y)))  # white to reddish
    snr_db = rng.uniform(5, 40)
    y = y + noise * np.sqrt(np.mean(y ** 2) / (np.mean(noise ** 2) * 10 ** (snr_db / 10)))
    return (y / (np.abs(y).max() + 1e-9) * rng.uniform(0.2, 0.9)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--species", type=int, default=500)
    ap.add_argument("--takes", type=int, default=4, help="clips a species")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--group", help="the group column of every generated clip (default: the species fall in "
                    f"{GROUPS} groups of their own); a group of a --with manifest keeps pretraining's held-out "
                    "packages (whole groups, drawn by the seed) the same as without the generated clips")
    ap.add_argument("--with", dest="also", type=Path, action="append", default=[],
                    help="a manifest.csv whose rows are appended (paths made absolute)")
    args = ap.parse_args(argv)
    if args.species < 1 or args.takes < 1:
        sys.exit(f"--species and --takes: 1 or more, not {args.species} and {args.takes}")
    out = args.out.expanduser()
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.csv").is_file():
        sys.exit(f"{out}: holds files this script did not write; give a new or empty folder")
    rows = []
    for s in range(args.species):
        rng = np.random.default_rng([args.seed, s])
        sp = species(rng)
        for k in range(args.takes):
            y = clip(sp, rng)
            pcm = (y * 32767).astype(np.int16)
            rel = f"calls/s{s:05d}/t{k}.flac"
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            sf.write(buf, pcm, SR, format="FLAC", subtype="PCM_16")
            dest.write_bytes(buf.getvalue())
            sha = samples_hash(pcm[:, None], SR)
            rows.append({"path": rel, "label": f"{PACKAGE}:{rel}", "group": args.group or f"{PACKAGE}-{s % GROUPS}",
                         "kind": f"{PACKAGE}/s{s:05d}", "package": PACKAGE, "licence": "generated",
                         "seconds": round(len(y) / SR, 3), "sha": sha})
        if (s + 1) % 100 == 0:
            print(f"{s + 1} species", flush=True)
    for m in args.also:
        with open(m, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                rows.append({**r, "path": str((m.parent / r["path"]).resolve())})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["path", "label", "group", "kind", "package", "licence", "seconds", "sha"],
                       lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "manifest.csv", buf.getvalue())
    total = sum(float(r["seconds"]) for r in rows)
    print(f"{len(rows)} clips, {total / 3600:.2f} h -> {out / 'manifest.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
