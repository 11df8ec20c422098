"""Export the encoder to ONNX (variable batch and time axes) and check it against torch."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import SoundtwinError, require_extra
from ..io import atomic_write_bytes
from .base import pad_batch
from .modeldir import ONNX, add_file, onnx_path
from .torch_runtime import Verifier


class _Exportable(nn.Module):
    def __init__(self, encoder: nn.Module, normalize: bool):
        super().__init__()
        self.encoder, self.normalize = encoder, normalize

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        emb = self.encoder(feats, lengths)
        return nn.functional.normalize(emb, dim=-1) if self.normalize else emb


def export_onnx(verifier: Verifier, path: str | os.PathLike[str], *, check_clips: Sequence[np.ndarray] = (),
                tolerance: float = 1e-4) -> float:
    """Write ``verifier``'s encoder as ONNX (inputs ``feats (batch, n_features, frames)`` float32 and
    ``lengths (batch,)`` int64; output ``embedding``), then compare onnxruntime with torch on random
    features and on ``check_clips`` (feature matrices). Returns the largest absolute difference;
    raises if it exceeds ``tolerance`` (and then writes nothing)."""
    require_extra("onnx", "export", "onnx", "onnxruntime")
    from ..encoders import ENCODERS

    if not ENCODERS[verifier.cfg.model.name].exportable:
        raise SoundtwinError(f"model.name={verifier.cfg.model.name} cannot be exported to ONNX (it chooses its "
                             f"windows per clip in Python); it runs on the torch runtime")
    import onnx
    import onnxruntime as ort

    cfg = verifier.cfg
    fixed = cfg.model.name == "mlp"
    encoder = verifier.encoder.cpu()  # (exported from the CPU whatever the verifier's device)
    model = _Exportable(encoder, verifier.distance.normalizes).eval()
    n_feat = cfg.features.n_features
    t = cfg.features.max_frames if fixed else 120
    x = torch.randn(2, n_feat, t)
    lengths = torch.tensor([t, t - (0 if fixed else 37)])
    axes = {"feats": {0: "batch"} if fixed else {0: "batch", 2: "frames"}, "lengths": {0: "batch"},
            "embedding": {0: "batch"}}
    buf = io.BytesIO()
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # the fixed-size MLP checks its input shape in Python; traced once, that check is a constant (intended)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (x, lengths), buf, input_names=["feats", "lengths"], output_names=["embedding"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"soundtwin_fingerprint": verifier.fingerprint, "soundtwin_preset": cfg.preset}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    blob = proto.SerializeToString()
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    batches = [[rng.standard_normal((n_feat, t)).astype(np.float32) * 3 for _ in range(3)]]
    if not fixed:
        batches += [[rng.standard_normal((n_feat, n)).astype(np.float32) * 3 for n in (5, 60, 333)]]
    batches += [[c] for c in check_clips]
    worst = 0.0
    for feats in batches:
        xb, lb = pad_batch(feats)
        with torch.no_grad():
            ref = model(torch.from_numpy(xb), torch.from_numpy(lb)).numpy()
        got = sess.run(["embedding"], {"feats": xb, "lengths": lb})[0]
        worst = max(worst, float(np.max(np.abs(ref - got))))
    if worst > tolerance:
        raise SoundtwinError(f"ONNX export differs from torch by {worst:.2e} (> {tolerance:g}); nothing written")
    verifier.encoder.to(verifier.device)
    target = Path(path)
    if verifier.model_dir is not None and target == onnx_path(verifier.model_dir):
        add_file(verifier.model_dir, ONNX, blob)  # inside the model directory: a new version
    else:
        atomic_write_bytes(target, blob)
    return worst


def check_clips(verifier: Verifier, paths: Sequence[str | os.PathLike[str]] = ()) -> list[np.ndarray]:
    """Features to compare torch and onnxruntime on: ``paths`` plus two synthetic sounds."""
    from ..synth import SR, synth_clip

    rng = np.random.default_rng(0)
    return [verifier.features(p) for p in paths] + \
        [verifier.features((synth_clip(k, rng), SR)) for k in ("whistle", "knock")]
