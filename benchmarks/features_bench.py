"""Feature extraction speed: the tutorial's ``audio2vector`` against soundtwin's extractor, cold
(nothing cached: decode + resample + features + cache write) and warm (served from the cache),
side by side on the same files in one run. Writes benchmarks/features_results.json.

    python benchmarks/features_bench.py [--n 600]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

from soundtwin.config import PRESETS
from soundtwin.extractor import FeatureExtractor
from soundtwin.io import atomic_write_text

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", HERE.parent.parent / "shared"))


def audio2vector(file_path: str, max_pad_len: int = 400) -> np.ndarray:
    """The tutorial's function, as written there (plus a cut for clips longer than 400 frames)."""
    audio, sr = librosa.load(file_path, mono=True)
    audio = audio[::3]
    mfcc = librosa.feature.mfcc(y=audio, sr=sr)
    pad_width = max_pad_len - mfcc.shape[1]
    if pad_width < 0:
        return mfcc[:, :max_pad_len]
    return np.pad(mfcc, pad_width=((0, 0), (0, pad_width)), mode="constant")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600, help="files per dataset")
    args = ap.parse_args()
    sets = {
        "fsdd (0.4 s median, 8 kHz)": sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav")),
        "cats-dogs (5.9 s median, 16 kHz)": sorted((SHARED / "data" / "audio-cats-and-dogs" / "cats_dogs").glob("*.wav")),
    }
    rows = []
    for name, files in sets.items():
        rng = np.random.default_rng(0)
        files = [files[i] for i in rng.choice(len(files), min(args.n, len(files)), replace=False)]
        for f in files[:5]:  # warm up imports and the OS page cache for all contenders alike
            audio2vector(str(f))
        for f in files:
            f.read_bytes()
        t = time.perf_counter()
        for f in files:
            audio2vector(str(f))
        tut = len(files) / (time.perf_counter() - t)
        for preset in ("default", "tutorial"):
            with tempfile.TemporaryDirectory() as cache:
                ex = FeatureExtractor(PRESETS[preset].features, cache_dir=cache, workers=2)
                t = time.perf_counter()
                ex.from_files(files)
                cold = len(files) / (time.perf_counter() - t)
                t = time.perf_counter()  # a new extractor, as a new process would have: the index is read again
                FeatureExtractor(PRESETS[preset].features, cache_dir=cache, workers=2).from_files(files)
                warm = len(files) / (time.perf_counter() - t)
            rows.append({"files": name, "n": len(files), "front_end": f"soundtwin {preset} preset",
                         "tutorial_audio2vector_clips_per_s": round(tut, 1), "cold_clips_per_s": round(cold, 1),
                         "warm_clips_per_s": round(warm, 1), "cold_ratio": round(cold / tut, 1),
                         "warm_ratio": round(warm / tut, 1)})
            print(rows[-1], flush=True)
    atomic_write_text(HERE / "features_results.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
