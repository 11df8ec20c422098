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
from .verifier import Decision, Verifier  # noqa: E402

__all__ = [
    "AudioError", "ConfigError", "DatasetError", "Decision", "ExperimentConfig", "GalleryError",
    "ModelError", "NoSoundError", "SoundtwinError", "Verifier", "__version__", "load_audio", "load_config",
]
