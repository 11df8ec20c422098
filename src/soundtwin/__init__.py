"""soundtwin: Siamese-network audio verification and few-shot sound recognition."""

__version__ = "0.1.0"

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
