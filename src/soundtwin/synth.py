"""Synthetic sound classes for the demo and the tests: no download, seeded, distinct but varied.

Each class is a recipe (a whistle glide, a hum, knocks, hiss bursts...) whose pitch, timing,
duration, loudness and background noise are drawn at random for every clip.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _t(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _harmonic(f0: np.ndarray, n_harm: int, decay: float) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return sum((decay ** k) * np.sin((k + 1) * phase) for k in range(n_harm))


def _whistle(n: int, r: np.random.Generator) -> np.ndarray:
    t = _t(n)
    f = r.uniform(900, 1100) * (1 + 0.8 * t / t[-1]) * (1 + 0.02 * np.sin(2 * np.pi * r.uniform(4, 7) * t))
    return _harmonic(f, 2, 0.3)


def _hum(n: int, r: np.random.Generator) -> np.ndarray:
    return _harmonic(np.full(n, r.uniform(100, 140)), 12, 0.8)


def _chirp_down(n: int, r: np.random.Generator) -> np.ndarray:
    t = _t(n)
    return _harmonic(r.uniform(2600, 3200) * (0.2 / 1.0) ** (t / t[-1]), 1, 0)


def _chirp_up(n: int, r: np.random.Generator) -> np.ndarray:
    t = _t(n)
    return _harmonic(r.uniform(350, 450) * 6.0 ** (t / t[-1]), 2, 0.5)


def _knock(n: int, r: np.random.Generator) -> np.ndarray:
    y = np.zeros(n)
    rate, f = r.uniform(4, 7), r.uniform(700, 900)
    k = np.arange(int(0.08 * SR))
    click = np.exp(-k / (0.01 * SR)) * np.sin(2 * np.pi * f * k / SR)
    for s in np.arange(r.uniform(0, 0.1), n / SR - 0.08, 1 / rate):
        i = int(s * SR)
        y[i : i + len(click)] += click[: n - i]
    return y


def _hiss(n: int, r: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(r.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    lo = r.uniform(2800, 3200)
    spec[(freqs < lo) | (freqs > lo + 2000)] = 0
    env = 0.5 + 0.5 * np.sin(2 * np.pi * r.uniform(2, 4) * _t(n)) ** 2
    return np.fft.irfft(spec, n) * env


def _beep(n: int, r: np.random.Generator) -> np.ndarray:
    t = _t(n)
    gate = (np.sin(2 * np.pi * r.uniform(3, 5) * t) > 0).astype(float)
    return np.sin(2 * np.pi * r.uniform(1800, 2200) * t) * gate


def _buzz(n: int, r: np.random.Generator) -> np.ndarray:
    t = _t(n)
    return np.sign(np.sin(2 * np.pi * r.uniform(200, 300) * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * r.uniform(5, 9) * t))


RECIPES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "whistle": _whistle, "hum": _hum, "chirp_down": _chirp_down, "knock": _knock,
    "hiss": _hiss, "beep": _beep, "buzz": _buzz, "chirp_up": _chirp_up,
}


def synth_clip(kind: str, rng: np.random.Generator, *, min_s: float = 0.6, max_s: float = 2.0) -> np.ndarray:
    """One float32 clip at 16 kHz of class ``kind``: random duration, onset, level and noise."""
    n = int(rng.uniform(min_s, max_s) * SR)
    lead = int(rng.uniform(0, 0.15) * SR)
    y = np.zeros(n)
    body = RECIPES[kind](n - lead, rng)
    fade = np.minimum(1, np.minimum(np.arange(len(body)), np.arange(len(body))[::-1]) / (0.01 * SR))
    y[lead:] = body * fade / (np.max(np.abs(body)) + 1e-9)
    snr_db = rng.uniform(5, 30)
    noise = rng.standard_normal(n) * np.sqrt(np.mean(y**2) / 10 ** (snr_db / 10))
    y = (y + noise) * 10 ** (rng.uniform(-20, -3) / 20)
    return (y / max(1.0, np.max(np.abs(y)) / 0.99)).astype(np.float32)


def write_synthetic_dataset(root: str | os.PathLike[str], classes: list[str], per_class: int, seed: int = 0,
                            **kw: float) -> list[tuple[Path, str]]:
    """Write ``root/<class>/<class>_<k>.wav`` clips; returns ``[(path, class)]``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    out = []
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            p = root / c / f"{c}_{k:03d}.wav"
            sf.write(p, synth_clip(c, rng, **kw), SR, subtype="PCM_16")
            out.append((p, c))
    return out


#: Vowel formants (F1, F2, F3 in Hz) of an adult male voice; other voices scale them.
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                   [570, 840, 2410], [660, 1720, 2410], [440, 1020, 2240], [490, 1350, 1690]], dtype=float)


def synth_voice(voice: int, utterance: int, *, seconds: float = 2.0) -> np.ndarray:
    """A vowel-like utterance (float32, 16 kHz) of synthetic voice ``voice``: a glottal pulse train at the
    voice's pitch through its vocal tract (formants scaled by its length), a new random string of vowels
    and pitch contour for every ``utterance``. Two utterances of one voice share pitch range, formant
    scaling and breathiness; two voices differ in them (for testing speaker encoders without recordings)."""
    from scipy.signal import lfilter

    v = np.random.default_rng([voice, 11])
    f0, scale, breath, tilt = v.uniform(90, 260), v.uniform(0.8, 1.3), v.uniform(0.02, 0.3), v.uniform(0.9, 0.98)
    r = np.random.default_rng([voice, utterance, 12])
    n = int(seconds * SR)
    seg = int(0.18 * SR)
    pitch = f0 * (1 + 0.12 * np.sin(2 * np.pi * r.uniform(0.5, 1.5) * _t(n) + r.uniform(0, 6)))
    phase = np.cumsum(pitch / SR)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    src = lfilter([1.0], [1.0, -tilt], pulses) + breath * r.standard_normal(n) * 0.1
    y = np.zeros(n)
    for s in range(0, n, seg):  # one vowel per segment, its formants scaled by the voice's tract
        part = src[s:s + seg]
        for f, bw in zip(VOWELS[r.integers(len(VOWELS))] * scale, (80, 100, 140)):
            rad = np.exp(-np.pi * bw / SR)
            part = lfilter([1 - rad], [1, -2 * rad * np.cos(2 * np.pi * f / SR), rad**2], part)
        env = np.minimum(1, np.minimum(np.arange(len(part)), np.arange(len(part))[::-1]) / (0.02 * SR))
        y[s:s + seg] = part * env
    return (0.5 * y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32)
