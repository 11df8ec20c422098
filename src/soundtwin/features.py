"""Features: log-mel and MFCC as small pure functions, plus the tutorial's exact MFCC front end.

Shapes: a signal is ``(n_samples,)`` (or ``(batch, n_samples)`` where noted); a feature matrix is
``(n_features, n_frames)`` float32, frames ``hop_length`` samples apart (centered STFT, so
``n_frames = 1 + n_samples // hop_length``).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .config import FeatureConfig
from .errors import AudioError

#: Floor added to mel energies before the log (about -80 dB).
LOG_FLOOR = 1e-8
#: Frames whose spectrum is computed at once (about 80 s at a 10 ms hop); longer signals go in chunks.
FRAME_CHUNK = 8192


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` triangular filters on the Slaney mel scale with Slaney (area)
    normalisation: ``librosa.filters.mel``'s defaults, computed here so that featurising a clip does not
    import librosa (about 2.5 s of start-up); a test checks the two agree."""
    fmax = fmax or sr / 2
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)  # rounded where librosa rounds,
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]     # so the two agree to the bit
    return weights


@functools.lru_cache(maxsize=16)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` centred in ``n_fft`` samples."""
    win = np.zeros(n_fft, dtype=np.float32)
    off = (n_fft - win_length) // 2
    win[off:off + win_length] = np.hanning(win_length + 1)[:-1]
    return win


def log_mel(
    y: np.ndarray,
    *,
    sr: int = 16000,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
    fmin: float = 20.0,
    fmax: float = 0.0,
) -> np.ndarray:
    """Natural-log mel energies of ``y`` (``(n,)`` -> ``(n_mels, frames)``, ``(b, n)`` -> ``(b, n_mels, frames)``).

    Centered STFT with zero padding and a periodic Hann window (numpy's FFT), librosa's mel
    filterbank (Slaney scale and normalisation); ``fmax=0`` means ``sr / 2``.
    """
    x = np.asarray(y, dtype=np.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    pad = n_fft // 2
    n_frames = 1 + (x.shape[1] + 2 * pad - n_fft) // hop_length
    basis = mel_basis(sr, n_fft, n_mels, float(fmin), float(fmax))
    win = _window(n_fft, win_length)
    if n_frames <= FRAME_CHUNK:
        xp = np.pad(x, ((0, 0), (pad, pad)))
        frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=1)[:, ::hop_length][:, :n_frames]
        out = _log_mel_frames(frames, win, basis)
    else:  # a long recording: FRAME_CHUNK frames at a time, padding only each chunk, so memory stays bounded
        out = np.empty((x.shape[0], n_mels, n_frames), dtype=np.float32)
        for t0 in range(0, n_frames, FRAME_CHUNK):
            t1 = min(n_frames, t0 + FRAME_CHUNK)
            a, b = t0 * hop_length - pad, (t1 - 1) * hop_length + n_fft - pad  # samples, in x's coordinates
            seg = np.zeros((x.shape[0], b - a), dtype=np.float32)
            lo, hi = max(a, 0), min(b, x.shape[1])
            seg[:, lo - a:hi - a] = x[:, lo:hi]
            frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft, axis=1)[:, ::hop_length][:, :t1 - t0]
            out[:, :, t0:t1] = _log_mel_frames(frames, win, basis)
    return out[0] if single else out


def _log_mel_frames(frames: np.ndarray, win: np.ndarray, basis: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft(frames * win, axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = np.matmul(basis, power.transpose(0, 2, 1))
    return np.log(mel + LOG_FLOOR).astype(np.float32)


def mfcc_from_log_mel(logmel: np.ndarray, *, n_mfcc: int = 20) -> np.ndarray:
    """DCT-II (orthonormal) over the mel axis of a log-mel matrix, keeping ``n_mfcc`` coefficients."""
    import librosa

    return librosa.feature.mfcc(S=10.0 / np.log(10.0) * logmel, n_mfcc=n_mfcc).astype(np.float32)


def fix_frames(feat: np.ndarray, n_frames: int) -> np.ndarray:
    """Zero-pad on the right, or cut, ``(n_features, T)`` to exactly ``n_frames`` frames."""
    t = feat.shape[-1]
    if t >= n_frames:
        return np.ascontiguousarray(feat[..., :n_frames])
    pad = [(0, 0)] * (feat.ndim - 1) + [(0, n_frames - t)]
    return np.pad(feat, pad, mode="constant")


def tutorial_mfcc(y: np.ndarray, *, sr: int = 22050, decimate: int = 3, n_mfcc: int = 20,
                  max_frames: int = 400) -> np.ndarray:
    """The tutorial's ``audio2vector``: ``y[::3]``, librosa MFCC at the (undecimated) rate ``sr``,
    zero-padded or cut to ``max_frames`` frames. ``y`` must already be at ``sr`` (librosa's default 22,050 Hz)."""
    import librosa

    y = np.asarray(y, dtype=np.float32)[::decimate]
    with warnings.catch_warnings():  # librosa warns when a short clip is below n_fft; the tutorial ignores it
        warnings.simplefilter("ignore", UserWarning)
        feat = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    return fix_frames(feat.astype(np.float32), max_frames)


def compute_features(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Features of a mono signal already at ``cfg.sample_rate``: ``(cfg.n_features, frames)`` float32."""
    if y.ndim != 1:
        raise AudioError(f"compute_features expects a mono signal, got shape {y.shape}")
    if cfg.kind == "tutorial":
        return tutorial_mfcc(y, sr=cfg.sample_rate, decimate=cfg.decimate, n_mfcc=cfg.n_mfcc,
                             max_frames=cfg.max_frames)
    if cfg.decimate > 1:
        y = y[:: cfg.decimate]
    if cfg.kind == "speech_embedding":  # the pretrained speech model's vectors, (96, frames)
        from .pretrained.speech import speech_frames

        return np.ascontiguousarray(speech_frames(y).T, dtype=np.float32)
    feat = log_mel(y, sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
                   hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    if cfg.kind == "mfcc":
        feat = mfcc_from_log_mel(feat, n_mfcc=cfg.n_mfcc)
    if cfg.max_frames:
        feat = fix_frames(feat, cfg.max_frames)
    return np.ascontiguousarray(feat, dtype=np.float32)


def frames_for(n_samples: int, cfg: FeatureConfig) -> int:
    """Number of frames ``compute_features`` gives for ``n_samples`` samples (before any fixing)."""
    return 1 + (n_samples // cfg.decimate) // cfg.hop_length


def compute_features_batch(ys: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Features of equal-length signals ``(batch, n_samples)`` -> ``(batch, n_features, frames)``,
    in one STFT for the log-mel front end."""
    if cfg.kind != "logmel" or cfg.decimate > 1 or cfg.max_frames:  # (mfcc, speech_embedding, tutorial: one by one)
        return np.stack([compute_features(y, cfg) for y in ys])
    return log_mel(ys, sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
                   hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax).astype(np.float32)
