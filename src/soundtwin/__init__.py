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
from .audio import load_audio  # noqa: E402
from .config import ExperimentConfig, load_config  # noqa: E402
from .scoring import Decision  # noqa: E402


def __getattr__(name: str):  # torch is imported only when a torch-backed object is asked for
    if name == "Verifier":
        from .verifier import Verifier

        return Verifier
    if name == "Gallery":
        from .gallery import Gallery

        return Gallery
    raise AttributeError(f"module 'soundtwin' has no attribute {name!r}")

__all__ = [
    "AudioError", "ConfigError", "DatasetError", "Decision", "ExperimentConfig", "Gallery", "GalleryError",
    "ModelError", "NoSoundError", "SoundtwinError", "Verifier", "__version__", "load_audio", "load_config",
]
