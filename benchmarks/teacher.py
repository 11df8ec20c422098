"""A teacher for pretraining the general-sound encoder (issue #16): aiSFX (Ma and Lerch, ISMIR 2022; weights
CC BY 4.0, inside the ``aisfx`` wheel on PyPI: ``pip install --no-deps aisfx==0.1.2``), a 9-layer CNN trained
to classify the sound categories of nine commercial sound-effect libraries. It writes the targets file that
``--set loss.teacher=FILE`` distils from (one target a class: the mean of the teacher's centred unit embeddings
of the class's clips), or measures the teacher itself zero-shot like ``pretrain.py --model``.

    python benchmarks/teacher.py --manifest benchmarks/work/sounds/manifest.csv --labels kind \\
        --out benchmarks/work/teacher/aisfx-kind.safetensors
    python benchmarks/teacher.py --measure --manifest benchmarks/work/sounds/manifest.csv [--uncentred]

The teacher's embedding of a clip: its 44.1 kHz log-mel spectrogram (96 bands, aiSFX's own recipe) cut in
2.3-s blocks with half overlap, each block's 512-d embedding, averaged; centred by the mean over the manifest's
clips (the embeddings are all positive: uncentred, every pair has a high cosine) and scaled to unit length.
The checkpoint is a pickle: it is read with ``torch.load(weights_only=True)``, which builds tensors, numbers and
plain containers only (numpy scalars allowed by name), never arbitrary objects.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CACHE = HERE / "work" / "teacher"
SR, N_FFT, HOP, MELS, BLOCK = 44100, 2048, 1024, 96, 100
SPEC_MAX = 9.457798957824707  # aiSFX's normalisation ("original": the maximum over its training spectrograms)


def aisfx_net():  # type: ignore[no-untyped-def]
    import torch

    try:
        from aisfx.models.cnn2d import EmbeddingNet
    except ImportError:
        sys.exit("benchmarks/teacher.py reads aiSFX's weights out of its wheel: pip install --no-deps aisfx==0.1.2")

    path = Path(__import__("aisfx").__file__).parent / "models" / "checkpoint.pth"
    allowed = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype] + \
        [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    with torch.serialization.safe_globals(allowed):
        weights, _ = torch.load(path, map_location="cpu", weights_only=True)
    net = EmbeddingNet("max", 3, 1, 64)
    net.load_state_dict({k.removeprefix("embedding_net."): v for k, v in weights.items()
                         if k.startswith("embedding_net.")})
    return net.eval()


def spectrogram(path: str) -> np.ndarray:
    """``(frames, 96)``, aiSFX's librosa recipe (peak-normalised audio, log10(1 + 10^4 power))."""
    import librosa

    y, _ = librosa.load(path, sr=SR)
    y = y / (np.max(np.abs(y)) or 1.0)
    s = librosa.feature.melspectrogram(y=y, sr=SR, n_mels=MELS, norm=1.0, fmin=0.0, fmax=SR / 2, htk=True,
                                       power=2.0, hop_length=HOP, win_length=N_FFT)
    return (np.log10(s * 10000.0 + 1) / SPEC_MAX).T


class Teacher:
    """aiSFX embeddings (raw, 512-d) of files, cached by path in ``CACHE/aisfx-raw.npz``."""

    def __init__(self) -> None:
        self.net = aisfx_net()
        self.file = CACHE / "aisfx-raw.npz"
        self.raw: dict[str, np.ndarray] = dict(np.load(self.file)) if self.file.is_file() else {}
        self.new = 0

    def __call__(self, path: str) -> np.ndarray:
        import torch

        key = str(Path(path).resolve())
        if key not in self.raw:
            s = spectrogram(key)
            if len(s) <= BLOCK:
                blocks = [np.vstack([s, np.zeros((BLOCK - len(s), MELS))])]
            else:
                blocks = [s[i:i + BLOCK] for i in range(0, len(s) - BLOCK + 1, BLOCK // 2)]
            with torch.no_grad():
                self.raw[key] = self.net(torch.tensor(np.stack(blocks), dtype=torch.float32)).numpy().mean(0)
            self.new += 1
            if self.new % 500 == 0:
                self.save()
        return self.raw[key]

    def save(self) -> None:
        """Write the cache atomically, under the benchmarks' lock, merged with what another run saved meanwhile
        (two runs side by side lose none of each other's embeddings)."""
        import io

        from soundtwin.io import atomic_write_bytes
        from soundtwin.store import locked

        with locked(HERE / "work" / "locks" / self.file.name, timeout=300, purpose=f"updating {self.file.name}"):
            if self.file.is_file():
                self.raw = {**dict(np.load(self.file)), **self.raw}
            buf = io.BytesIO()
            np.savez(buf, **self.raw)
            CACHE.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.file, buf.getvalue())


def manifest_rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str((manifest.parent / r["path"]).resolve())
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True, help="the pretraining clips (their mean centres)")
    ap.add_argument("--labels", choices=("clip", "kind"), default="kind", help="as pretrain.py's --labels")
    ap.add_argument("--out", type=Path, help="write the targets file here")
    ap.add_argument("--measure", action="store_true", help="measure the teacher zero-shot (pretrain.py's measure)")
    ap.add_argument("--uncentred", action="store_true", help="--measure: the teacher's embeddings as they are")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    teacher = Teacher()
    rows = manifest_rows(args.manifest)
    t0 = time.perf_counter()
    raw = np.stack([teacher(r["path"]) for r in rows])
    teacher.save()
    centre = raw.mean(0) if not (args.measure and args.uncentred) else np.zeros(raw.shape[1], raw.dtype)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - centre
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)

    if args.out and args.uncentred:
        sys.exit("--uncentred is for --measure: the targets are centred")
    if args.out:
        from soundtwin.training.losses.teacher import save_targets

        by: dict[str, list[np.ndarray]] = {}
        for r, e in zip(rows, unit(raw), strict=True):
            label = r["kind"] if args.labels == "kind" else r["label"]
            by.setdefault(label, []).append(e)
        save_targets(args.out, {k: torch.from_numpy(np.mean(v, 0)) for k, v in by.items()},
                     {"teacher": "aisfx 0.1.2", "manifest": str(args.manifest), "labels": args.labels})
        print(f"{args.out}: {len(by)} targets from {len(rows)} clips ({time.perf_counter() - t0:.0f} s)")
    if args.measure:
        from pretrain import RESULTS, measure
        from run import update_rows

        got = measure(lambda paths: np.stack([unit(teacher(str(p))) for p in paths]))
        teacher.save()
        name = "uncentred" if args.uncentred else "centred on the pretraining clips"
        row = {"model": f"aisfx (teacher, {name})", **got,
               "when": time.strftime("%Y-%m-%d %H:%M")}
        print(json.dumps(row), flush=True)
        update_rows(RESULTS, lambda rs: [r for r in rs if r.get("model") != row["model"]] + [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
