"""Audio in: decode any file libsndfile reads, mix to mono, resample with soxr, validate.

All functions return float32 mono signals in [-1, 1] (for integer sources) with shape ``(n_samples,)``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, NoSoundError

#: Peak amplitude (full scale = 1.0) at or below which a clip counts as digital silence (-120 dBFS).
SILENCE_PEAK = 1e-6
#: A float clip whose peak passes this (about +18 dBFS: no real headroom) is rescaled to a peak of 1.0
#: at decoding, so that e.g. integer sample values stored as floats, or 1e30, give finite features.
MAX_PEAK = 8.0
#: Recordings longer than this (seconds) are resampled while decoding when a target rate is given.
STREAM_RESAMPLE_MIN_S = 600
#: Native frames decoded at a time: a file is mixed to mono block by block, so its channels are
#: never all in memory at once.
DECODE_BLOCK = 1 << 16


class UndecodableError(AudioError):
    """A file's bytes are not audio in a format libsndfile reads."""


class AudioLimitError(AudioError):
    """A clip is over a limit (duration, channels or sample rate) checked before it is decoded."""


def _source_name(source: object, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "upload"


def decode(source: str | os.PathLike[str] | bytes, *, name: str | None = None, max_seconds: float | None = None,
           max_channels: int | None = None, max_rate: int | None = None,
           target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a file or its bytes to mono float32 at its native rate, in bounded blocks.

    Duration, channels and rate are checked from the header first (``max_*``; :class:`AudioLimitError`),
    and the duration again while decoding (a header can lie). Peak memory is the mono signal plus
    one block of :data:`DECODE_BLOCK` frames, whatever the channel count. Non-finite samples are an
    error; a peak above :data:`MAX_PEAK` is rescaled to 1.0. Errors name the file (or ``name``) and
    say which formats are read.

    ``target_sr``: a recording longer than :data:`STREAM_RESAMPLE_MIN_S` is resampled block by block
    while it is decoded (soxr's streaming resampler), so its native-rate signal is never whole in
    memory; shorter clips come back at their native rate (resampled in one go by the caller)."""
    label = _source_name(source, name)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise AudioError(f"{label}: no such file")
        if not p.is_file():
            raise AudioError(f"{label}: not a regular file (a device, FIFO or folder cannot be read as audio)")
        opener: object = str(p)
    else:
        if not source:
            raise AudioError(f"{label}: empty file")
        opener = io.BytesIO(source)
    try:
        fh = sf.SoundFile(opener)
    except Exception as exc:
        raise UndecodableError(f"{label}: cannot decode audio ({_first_line(exc)}; readable formats: WAV, FLAC, OGG/Vorbis, "
                         f"Opus, MP3, AIFF and the others libsndfile reads)") from None
    with fh:
        sr, ch, frames = int(fh.samplerate), int(fh.channels), int(fh.frames)
        if sr <= 0:
            raise AudioError(f"{label}: sample rate {sr} in its header")
        if max_rate is not None and sr > max_rate:
            raise AudioLimitError(f"{label}: sample rate {sr} Hz is above the {max_rate} Hz limit")
        if max_channels is not None and ch > max_channels:
            raise AudioLimitError(f"{label}: {ch} channels is more than the {max_channels} allowed")
        limit = None if max_seconds is None else int(max_seconds * sr)
        if limit is not None and frames > limit:
            raise AudioLimitError(f"{label}: {frames / sr:.1f} s is longer than the {max_seconds:g} s limit")
        stream = None
        if target_sr is not None and target_sr != sr and frames > STREAM_RESAMPLE_MIN_S * sr:
            stream = soxr.ResampleStream(sr, int(target_sr), 1, dtype="float32", quality="HQ")
            frames = int(frames * target_sr / sr) + 64  # the output's length, about
        known = 0 < frames < (1 << 40)
        out = np.empty(frames if known else 0, dtype=np.float32)
        parts: list[np.ndarray] = []
        got = 0
        flushed = False
        try:
            while True:
                block = fh.read(DECODE_BLOCK, dtype="float32", always_2d=True)
                if not len(block):
                    if stream is None or flushed:
                        break
                    mono, flushed = stream.resample_chunk(np.zeros(0, np.float32), last=True), True
                else:
                    mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                    if limit is not None and got + len(mono) > limit and stream is None:
                        raise AudioLimitError(f"{label}: longer than the {max_seconds:g} s limit")
                    if stream is not None:
                        flushed = len(block) < DECODE_BLOCK
                        mono = stream.resample_chunk(np.ascontiguousarray(mono), last=flushed)
                if known and got + len(mono) <= len(out):
                    out[got:got + len(mono)] = mono
                else:
                    if known:  # the header under-counted: keep what we have, go on in parts
                        parts, known = [out[:got].copy()], False
                    parts.append(np.array(mono, dtype=np.float32))
                got += len(mono)
        except AudioError:
            raise
        except Exception as exc:
            raise UndecodableError(f"{label}: cannot decode audio ({_first_line(exc)})") from None
    y = out[:got] if known else (np.concatenate(parts) if parts else np.zeros(0, np.float32))
    return _normalise(y, label), (int(target_sr) if stream is not None else sr)


def _first_line(exc: BaseException) -> str:
    """libsndfile's message, without its "Error opening <object at 0x...>: " prefix."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return re.sub(r"^Error opening .*?: ", "", line).rstrip(".") or line


def _normalise(y: np.ndarray, name: str) -> np.ndarray:
    """Check finiteness, and rescale an implausibly hot float clip to a peak of 1.0."""
    peak = _finite_peak(y, name)
    if peak > MAX_PEAK:
        y = (y / np.float32(peak)).astype(np.float32)
    return y


def _finite_peak(y: np.ndarray, name: str) -> float:
    """Largest absolute sample, without a temporary array (an hour of audio is 230 MB); NaN and
    infinities propagate through max and min, so this also checks finiteness."""
    if y.size == 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    hi, lo = float(np.max(y)), float(np.min(y))
    if not (np.isfinite(hi) and np.isfinite(lo)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return max(hi, -lo)


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
    peak = _finite_peak(y, name)
    if check_silence and peak <= SILENCE_PEAK:
        raise NoSoundError(f"{name}: audio is digitally silent")
    return y


def prepare_signal(
    y: np.ndarray, sr: int, target_sr: int | None, *, name: str = "signal"
) -> tuple[np.ndarray, int]:
    """Mono-mix, validate and resample an in-memory signal. Returns ``(y, sr)``."""
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"{name}: sample rate must be a positive integer, got {sr!r}")
    y = validate_signal(_normalise(to_mono(y), name), name=name)
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
    y, native_sr = decode(path)
    return prepare_signal(y, native_sr, sr, name=str(path))


def stream_audio(
    path: str | os.PathLike[str], sr: int, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``path`` resampled to ``sr``, in constant memory.

    Blocks hold about ``block_seconds`` of output audio each (the last may be shorter); their
    concatenation equals the resampled file up to soxr's streaming edge effects.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file (a device, FIFO or folder cannot be read as audio)")
    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:
        raise UndecodableError(f"{path}: cannot decode audio ({exc})") from None
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
            if y.size and float(np.max(np.abs(y))) > MAX_PEAK:
                y = y / np.float32(np.max(np.abs(y)))
            if stream is not None:
                y = stream.resample_chunk(y, last=last)
            if y.size:
                yield y
            if last:
                break
