"""The onnxruntime runtime, without importing torch: features in numpy, the encoder in ONNX.

Needs ``model.onnx`` in the model directory (``soundtwin export MODEL_DIR``, or ``train`` with the
``onnx`` extra installed); its recorded fingerprint must match the model directory's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, require_extra
from ..store import read_version
from .base import EmbedderBase
from .modeldir import ONNX, read_meta_config


class OnnxVerifier(EmbedderBase):
    """Same interface as :class:`~soundtwin.runtime.torch_runtime.Verifier` for embedding, scoring and deciding."""

    def __init__(self, session: Any, cfg: Any, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.session = session

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], *, onnx_path: str | os.PathLike[str] | None = None,
             cache_dir: str | os.PathLike[str] | None | bool = None) -> OnnxVerifier:
        require_extra("onnx", "the onnx runtime", "onnxruntime")
        import onnxruntime as ort

        d = Path(model_dir)
        if not d.is_dir():
            raise ModelError(f"{d}: no such model directory")

        def read(vd: Path) -> tuple[dict, Any, Any]:
            p = Path(onnx_path) if onnx_path else vd / ONNX
            if not p.is_file():
                raise ModelError(f"{d}: missing {ONNX} (run: soundtwin export MODEL_DIR)")
            meta, _raw, cfg = read_meta_config(d, vd)
            try:
                sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
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

    def embed_batch(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self.session.run(["embedding"], {"feats": x, "lengths": lengths})[0]
