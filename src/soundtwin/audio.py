"""Audio in: decode any file libsndfile reads, mix to mono, resample with soxr, validate.

All functions return float32 mono signals in [-1, 1] (for integer sources) with shape ``(n_samples,)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, NoSoundError

#: Peak amplitude (full scale = 1.0) at or below which a clip counts as digital silence (-120 dBFS).
SILENCE_PEAK = 1e-6


def audio_extensions() -> frozenset[str]:
    """File extensions (lower case, with the dot) that libsndfile can decode on this machine."""
    exts = {"." + k.lower() for k in sf.available_formats()}
    exts |= {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".opus"}
    return frozenset(exts)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Mix ``(n_samples, n_channels)`` or ``(n_samples,)`` to ``(n_samples,)`` float32."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.mean(axis=1)
    elif y.ndim != 1:
        raise AudioError(f"audio must be 1-D or 2-D (samples, channels), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        info = np.iinfo(y.dtype)
        y = y.astype(np.float32) / float(max(abs(info.min), info.max))
    return np.ascontiguousarray(y, dtype=np.float32)


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a mono float signal with soxr (high quality); a no-op when the rates match."""
    if int(sr_in) == int(sr_out):
        return y
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    return soxr.resample(y, int(sr_in), int(sr_out), quality="HQ").astype(np.float32, copy=False)


def validate_signal(y: np.ndarray, *, name: str = "signal", check_silence: bool = True) -> np.ndarray:
    """Check a decoded mono signal: non-empty, finite, not digitally silent. Returns it unchanged."""
    if y.size == 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if check_silence and float(np.max(np.abs(y))) <= SILENCE_PEAK:
        raise NoSoundError(f"{name}: audio is digitally silent")
    return y


def prepare_signal(
    y: np.ndarray, sr: int, target_sr: int | None, *, name: str = "signal"
) -> tuple[np.ndarray, int]:
    """Mono-mix, validate and resample an in-memory signal. Returns ``(y, sr)``."""
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"{name}: sample rate must be a positive integer, got {sr!r}")
    y = validate_signal(to_mono(y), name=name)
    if target_sr is not None:
        y = resample(y, int(sr), int(target_sr))
        sr = int(target_sr)
    return y, int(sr)


def load_audio(path: str | os.PathLike[str], sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to a mono float32 signal, resampled to ``sr`` (native rate if None).

    Raises
    ------
    AudioError
        The file is missing, unreadable, empty or holds non-finite samples (message names the file).
    NoSoundError
        The file holds only digital silence.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"{path}: cannot decode audio ({exc})") from None
    return prepare_signal(data, int(native_sr), sr, name=str(path))


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration in seconds from the file header, without decoding."""
    try:
        return float(sf.info(str(path)).duration)
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio header ({exc})") from None


def stream_audio(
    path: str | os.PathLike[str], sr: int, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``path`` resampled to ``sr``, in constant memory.

    Blocks hold about ``block_seconds`` of output audio each (the last may be shorter); their
    concatenation equals the resampled file up to soxr's streaming edge effects.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from None
    with fh:
        native = int(fh.samplerate)
        stream = soxr.ResampleStream(native, sr, 1, dtype="float32", quality="HQ") if native != sr else None
        frames = max(1, int(round(block_seconds * native)))
        while True:
            block = fh.read(frames, dtype="float32", always_2d=True)
            last = block.shape[0] < frames
            y = to_mono(block)
            if not np.all(np.isfinite(y)):
                raise AudioError(f"{path}: audio contains NaN or infinite samples")
            if stream is not None:
                y = stream.resample_chunk(y, last=last)
            if y.size:
                yield y
            if last:
                break
