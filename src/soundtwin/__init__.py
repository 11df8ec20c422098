"""soundtwin: Siamese-network audio verification and few-shot sound recognition."""

__version__ = "0.1.0"

import os as _os

# OpenMP threads (torch's intra-op pool) wait for work by spinning by default: on a 2-core laptop where
# anything else runs, each of training's many small parallel regions then waits for a descheduled
# spinner, and an epoch took 10-20 times longer (benchmarks/RESULTS.md, "Training beside other work").
# Passive waiting costs little when the cores are free. Set before torch starts its pool; an explicit
# OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import (  # noqa: E402
    AudioError,
    ConfigError,
    DatasetError,
    GalleryError,
    ModelError,
    NoSoundError,
    SoundtwinError,
)

#: Public names and the module each comes from; imported on first use, so ``import soundtwin`` (and
#: every CLI command) starts without torch, librosa or scipy until a command needs them.
_LAZY = {"load_audio": "audio", "ExperimentConfig": "config", "load_config": "config", "Decision": "scoring",
         "Verifier": "verifier", "Gallery": "gallery"}


def __getattr__(name: str):  # noqa: ANN202
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'soundtwin' has no attribute {name!r}")

__all__ = [
    "AudioError", "ConfigError", "DatasetError", "Decision", "ExperimentConfig", "Gallery", "GalleryError",
    "ModelError", "NoSoundError", "SoundtwinError", "Verifier", "__version__", "load_audio", "load_config",
]
