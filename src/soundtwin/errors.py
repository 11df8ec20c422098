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


class GalleryError(SoundtwinError):
    """A gallery is missing, malformed, or was made by a different model."""


class MissingExtraError(SoundtwinError):
    """A feature needs an optional part of soundtwin (an "extra") that is not installed."""

    def __init__(self, extra: str, purpose: str, module: str, install: str | None = None) -> None:
        how = install or f"the '{extra}' extra: pip install 'soundtwin[{extra}]'"
        super().__init__(f"{purpose} needs {how} ({module} is not installed)")
        self.extra, self.module = extra, module


def require_extra(extra: str, purpose: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless every one of ``modules`` can be imported."""
    import importlib.util

    for mod in modules:
        if importlib.util.find_spec(mod) is None:
            raise MissingExtraError(extra, purpose, mod)
