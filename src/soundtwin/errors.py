"""One small exception hierarchy: every error soundtwin raises on purpose is a ``SoundtwinError``."""

from __future__ import annotations


class SoundtwinError(Exception):
    """Root of soundtwin's errors. The CLI prints its message on one line and exits non-zero."""


class AudioError(SoundtwinError):
    """A clip is missing, unreadable, empty, non-finite or has a bad shape."""


class NoSoundError(AudioError):
    """A clip holds only digital silence."""


class ConfigError(SoundtwinError):
    """A configuration file or override names an unknown key or has a wrong type or value."""


class DatasetError(SoundtwinError):
    """A dataset folder, manifest or trial list is malformed or unusable."""


class ModelError(SoundtwinError):
    """A model directory is missing, incomplete or was made by an incompatible version."""


class NotTrainedError(ModelError):
    """An object that needs learned state was used before it was fitted or loaded."""


class GalleryError(SoundtwinError):
    """A gallery is missing, malformed, or was made by a different model."""
