"""Find enrolled sounds in a long recording: stream it, embed sliding windows, merge runs.

Memory stays constant in the recording's length: audio is read in blocks, and only the current
block's windows (plus one window of overlap) are held at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from .audio import SILENCE_PEAK, stream_audio
from .errors import SoundtwinError
from .features import compute_features_batch
from .gallery import UNKNOWN, Gallery


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


def _windows(path: str | os.PathLike[str], sr: int, win: int, hop: int, block_windows: int = 64
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(starts_in_samples, windows (n, win))`` batches over a streamed file."""
    buf = np.zeros(0, dtype=np.float32)
    offset = 0  # sample index of buf[0]
    next_start = 0
    for block in stream_audio(path, sr, block_seconds=max(1.0, block_windows * hop / sr)):
        buf = np.concatenate([buf, block])
        starts = []
        while next_start + win <= offset + len(buf):
            starts.append(next_start)
            next_start += hop
        if starts:
            idx = np.array(starts) - offset
            yield np.array(starts), np.stack([buf[i:i + win] for i in idx])
        drop = max(0, next_start - offset)
        buf, offset = buf[drop:], offset + drop
    if len(buf) and next_start < offset + len(buf) and (next_start == 0 or len(buf) >= win // 2):
        tail = np.zeros(win, dtype=np.float32)
        tail[: len(buf) - (next_start - offset)] = buf[next_start - offset:]
        yield np.array([next_start]), tail[None]


def scan(gallery: Gallery, recording: str | os.PathLike[str], *, window: float = 1.0, hop: float = 0.5,
         min_rms_db: float = -50.0, threshold: float | None = None) -> list[Segment]:
    """Label sliding windows of ``recording`` against the gallery and merge adjacent windows of the
    same label into segments ``(start, end, label, score)`` in seconds; ``score`` is the segment's best.

    Windows quieter than ``min_rms_db`` (dBFS) or identified as ``unknown`` (at the gallery's threshold, or
    ``threshold``) produce no segment.
    """
    if window <= 0 or hop <= 0:
        raise SoundtwinError(f"window and hop must be positive, got window={window}, hop={hop}")
    gallery.check_threshold(threshold)
    v = gallery.verifier
    sr = v.cfg.features.sample_rate
    win, step = int(round(window * sr)), int(round(hop * sr))
    segments: list[Segment] = []
    floor = 10 ** (min_rms_db / 20)
    for starts, frames in _windows(recording, sr, win, step):
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        loud = np.flatnonzero((rms > floor) & (np.max(np.abs(frames), axis=1) > SILENCE_PEAK))
        if not len(loud):
            continue
        feats = list(compute_features_batch(frames[loud], v.cfg.features))
        ids = gallery.identify_embeddings(v.embed_features(feats), [str(s) for s in starts[loud]], top=1,
                                          threshold=threshold)
        for i, ident in zip(loud, ids):
            if ident.label == UNKNOWN:
                continue
            s, e = starts[i] / sr, (starts[i] + win) / sr
            last = segments[-1] if segments else None
            if last is not None and last.label == ident.label and s <= last.end + 1e-9:
                segments[-1] = Segment(last.start, max(last.end, e), last.label, max(last.score, ident.score))
            else:
                segments.append(Segment(s, e, ident.label, ident.score))
    return segments
