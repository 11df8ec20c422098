"""Inference on onnxruntime, without importing torch: features in numpy, the encoder in ONNX.

Needs ``model.onnx`` in the model directory (``soundtwin export MODEL_DIR``); its recorded
fingerprint must match the model directory's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import config_from_dict
from .errors import ConfigError, ModelError, SoundtwinError
from .io import read_json
from . import scoring
from .scoring import EmbedderBase, window_starts
from .store import read_version
from .modeldir import check_meta


def _pad(feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([f.shape[-1] for f in feats], dtype=np.int64)
    out = np.zeros((len(feats), feats[0].shape[0], int(lengths.max())), dtype=np.float32)
    for k, f in enumerate(feats):
        out[k, :, : f.shape[-1]] = f
    return out, lengths


class OnnxVerifier(EmbedderBase):

    """Same interface as :class:`~soundtwin.verifier.Verifier` for embedding, scoring and deciding."""

    def _embed_long(self, feat: np.ndarray) -> np.ndarray:
        w = scoring.MAX_EMBED_FRAMES
        acc = None
        for s0 in window_starts(feat.shape[-1], w):
            x = np.ascontiguousarray(feat[None, :, s0:s0 + w])
            e = self.session.run(["embedding"], {"feats": x, "lengths": np.array([w], np.int64)})[0][0]
            e = e / max(float(np.linalg.norm(e)), 1e-12) if self.cfg.model.distance == "cosine" else e
            acc = e if acc is None else acc + e
        emb = acc / len(window_starts(feat.shape[-1], w))  # type: ignore[operator]
        if self.cfg.model.distance == "cosine":
            emb = emb / max(float(np.linalg.norm(emb)), 1e-12)
        return emb.astype(np.float32)

    def __init__(self, session, cfg, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(cfg, **kw)
        self.session = session

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], *, onnx_path: str | os.PathLike[str] | None = None,
             cache_dir: str | os.PathLike[str] | None | bool = None) -> OnnxVerifier:
        try:
            import onnxruntime as ort
        except ImportError:
            raise SoundtwinError("the onnx runtime needs the 'onnx' extra: pip install 'soundtwin[onnx]'") from None
        d = Path(model_dir)
        if not d.is_dir():
            raise ModelError(f"{d}: no such model directory")

        def read(vd: Path) -> tuple[dict, object, object]:
            p = Path(onnx_path) if onnx_path else vd / "model.onnx"
            for f in (vd / "config.json", vd / "meta.json", p):
                if not f.is_file():
                    raise ModelError(f"{d}: missing {f.name}" + (" (run: soundtwin export MODEL_DIR)" if f == p else ""))
            try:
                meta = check_meta(d, read_json(vd / "meta.json"))
                raw = read_json(vd / "config.json")
                if not isinstance(raw, dict):
                    raise ConfigError("config.json is not an object")
                cfg = config_from_dict(raw)
            except (json.JSONDecodeError, UnicodeDecodeError, ConfigError) as exc:
                raise ModelError(f"{d}: corrupt model files ({exc})") from None
            try:
                sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ModelError(f"{p}: cannot load ONNX model ({exc})") from None
            fp = sess.get_modelmeta().custom_metadata_map.get("soundtwin_fingerprint")
            if fp != meta.get("fingerprint"):
                raise ModelError(f"{p}: exported from another model ({fp}); export {d} again")
            return meta, cfg, sess

        meta, cfg, sess = read_version(d, read)
        cal = meta.get("calibration", {})
        v = cls(sess, cfg, threshold=meta["threshold"], calibration=(cal.get("a", 1.0), cal.get("b", 0.0)),
                meta=meta, cache_dir=cache_dir)
        v.model_dir = d
        return v

    def embed_features(self, feats: Sequence[np.ndarray], max_batch: int = 64) -> np.ndarray:
        if not feats:
            raise SoundtwinError("nothing to embed")
        long = [i for i, f in enumerate(feats) if f.shape[-1] > scoring.MAX_EMBED_FRAMES]
        if long:  # as the torch runtime does: windows, unit embeddings averaged
            out_long = {i: self._embed_long(feats[i]) for i in long}
            rest = [i for i in range(len(feats)) if i not in out_long]
            emb_rest = self.embed_features([feats[i] for i in rest], max_batch) if rest else None
            dim = next(iter(out_long.values())).shape[-1]
            out = np.zeros((len(feats), dim), dtype=np.float32)
            for i, e in out_long.items():
                out[i] = e
            for k, i in enumerate(rest):
                out[i] = emb_rest[k]  # type: ignore[index]
            return out
        order = np.argsort([f.shape[-1] for f in feats], kind="stable")
        chunks = []
        for k in range(0, len(order), max_batch):
            idx = order[k:k + max_batch]
            x, lengths = _pad([feats[i] for i in idx])
            chunks.append((idx, self.session.run(["embedding"], {"feats": x, "lengths": lengths})[0]))
        out = np.zeros((len(feats), chunks[0][1].shape[1]), dtype=np.float32)
        for idx, emb in chunks:
            out[idx] = emb
        return out
