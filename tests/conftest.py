"""Seeded fixtures that synthesise signals and tiny datasets: no data files needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundtwin.config import load_config
from soundtwin.synth import write_synthetic_dataset

TINY = ["train.epochs=20", "model.channels=48", "model.embedding_dim=32", "train.batch_size=32",
        "train.crop_min_s=0.5", "train.crop_max_s=1.0", "train.lr=0.005"]


def tone(freq: float = 440.0, sr: int = 16000, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def snapshot(d: Path) -> dict[str, bytes | str]:
    """Every regular file under ``d`` (by relative path) with its bytes, and every link with its target."""
    import os

    out: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


@pytest.fixture
def wav(tmp_path: Path):
    """Write a signal to a WAV file and return its path."""

    def make(y: np.ndarray, sr: int = 16000, name: str = "clip.wav", subtype: str | None = None) -> Path:
        p = tmp_path / name
        sf.write(p, y, sr, subtype=subtype)
        return p

    return make


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root / "train", ["whistle", "hum", "knock", "hiss"], 16, seed=1, min_s=0.5, max_s=1.0)
    write_synthetic_dataset(root / "test", ["whistle", "hum", "knock", "hiss"], 6, seed=2, min_s=0.5, max_s=1.0)
    return root


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_config("default", overrides=TINY)


@pytest.fixture(scope="session")
def trained(synth_data: Path, tiny_cfg, tmp_path_factory):
    """A tiny default-preset model trained once for the whole session: (model_dir, TrainResult)."""
    from soundtwin.training import train

    out = tmp_path_factory.mktemp("models") / "tiny"
    res = train(synth_data / "train", out, tiny_cfg, cache_dir=tmp_path_factory.mktemp("cache"))
    return out, res


@pytest.fixture(scope="session")
def trials_file(synth_data: Path) -> Path:
    """All cross pairs of the synthetic test clips as a VoxCeleb-style list (relative paths)."""
    clips = sorted((synth_data / "test").rglob("*.wav"))
    lines = []
    for i, a in enumerate(clips):
        for b in clips[i + 1:]:
            label = int(a.parent.name == b.parent.name)
            lines.append(f"{label} {a.relative_to(synth_data)} {b.relative_to(synth_data)}")
    p = synth_data / "trials.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def gallery(trained, synth_data, tmp_path):
    """A gallery of three synthetic classes (four clips each) for the tiny model."""
    from soundtwin.gallery import Gallery

    g = Gallery.create(tmp_path / "gal", trained[0])
    for name in ("hum", "whistle", "knock"):
        g.enroll(name, sorted((synth_data / "train" / name).glob("*.wav"))[:4], save=False)
    g.save()
    return g
