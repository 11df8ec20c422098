"""The model directory: the only code that knows its files and checks them (torch-free).

A model directory (a :mod:`soundtwin.store` of kind ``"model"``) holds, in each version,
``config.json`` (the experiment config), ``model.safetensors`` (encoder weights), ``meta.json``
(threshold, calibration, feature settings, soundtwin version, fingerprint, checksum),
``calibration.npz`` (held-out trial scores) and, while training, ``train_state.safetensors``;
``model.onnx`` after ``soundtwin export``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .config import ExperimentConfig, config_from_dict
from .errors import ConfigError, ModelError
from .io import read_json

FORMAT_VERSION = 1


def weights_fingerprint(weights: bytes, cfg: ExperimentConfig | dict[str, Any]) -> str:
    """Hash of the weights and the config as written to ``config.json`` (a dict read back is hashed as
    stored, so a model stays loadable after a later soundtwin adds config keys with defaults)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps(cfg if isinstance(cfg, dict) else cfg.to_dict(), sort_keys=True).encode())
    h.update(weights)
    return h.hexdigest()


def meta_checksum(meta: dict[str, Any]) -> str:
    """Hash of ``meta.json``'s content (all but the checksum itself)."""
    body = {k: v for k, v in meta.items() if k != "meta_checksum"}
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=12).hexdigest()


def seal_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its checksum: an edited ``meta.json`` (a threshold typed in by hand, a deleted
    fingerprint) is then refused on load instead of silently changing every decision."""
    return {**meta, "meta_checksum": meta_checksum(meta)}


def check_meta(d: Path, meta: Any) -> dict[str, Any]:
    """Validate a model's ``meta.json`` (its checksum where it has one, and the values decisions use)."""
    if not isinstance(meta, dict):
        raise ModelError(f"{d}: corrupt meta.json (expected an object, got {type(meta).__name__})")
    if "meta_checksum" in meta and meta["meta_checksum"] != meta_checksum(meta):
        raise ModelError(f"{d}: meta.json was edited or is corrupt (checksum mismatch); change the threshold "
                         f"with 'soundtwin calibrate', not by hand")
    if meta.get("format", 0) > FORMAT_VERSION:
        raise ModelError(f"{d}: made by a newer soundtwin ({meta.get('soundtwin_version')}); upgrade to load it")
    if not isinstance(meta.get("fingerprint"), str) or not meta["fingerprint"]:
        raise ModelError(f"{d}: corrupt meta.json (no model fingerprint)")
    thr = meta.get("threshold", 0.0)
    cal = meta.get("calibration", {})
    numbers = {"threshold": thr, **({f"calibration.{k}": cal.get(k, 0.0) for k in ("a", "b")}
                                     if isinstance(cal, dict) else {"calibration": cal})}
    for key, x in numbers.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x):
            raise ModelError(f"{d}: corrupt meta.json ({key} is {x!r}, not a finite number)")
    meta.setdefault("threshold", 0.0)
    return meta


def read_model_files(d: Path, vd: Path) -> tuple[dict[str, Any], dict[str, Any], ExperimentConfig, bytes]:
    """``(meta, raw config, config, weights)`` of the model directory ``d``, read from its version folder ``vd``."""
    for name in ("config.json", "model.safetensors", "meta.json"):
        if not (vd / name).is_file():
            raise ModelError(f"{d}: not a soundtwin model directory (missing {name})")
    try:
        meta = read_json(vd / "meta.json")
        raw_cfg = read_json(vd / "config.json")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{d}: corrupt model files ({exc})") from None
    meta = check_meta(d, meta)
    if not isinstance(raw_cfg, dict):
        raise ModelError(f"{d}: corrupt config.json (expected an object, got {type(raw_cfg).__name__})")
    try:
        cfg = config_from_dict(raw_cfg)
    except ConfigError as exc:
        raise ModelError(f"{d}: corrupt model files ({exc})") from None
    weights = (vd / "model.safetensors").read_bytes()
    if weights_fingerprint(weights, raw_cfg) != meta["fingerprint"]:
        raise ModelError(f"{d}: weights do not match meta.json fingerprint (corrupt or mixed model files)")
    return meta, raw_cfg, cfg, weights


def embedding_width(cfg: ExperimentConfig) -> int:
    """Width of the embeddings a model of this config gives (all ensemble members side by side)."""
    member = cfg.model.hidden if cfg.model.name == "mlp" else cfg.model.embedding_dim
    return member * max(1, int(cfg.model.ensemble))


def read_calibration(model_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's held-out trial ``(scores, labels)`` from ``calibration.npz`` (pickle-free)."""
    from .store import read_version

    def read(vd: Path) -> tuple[np.ndarray, np.ndarray]:
        cal = vd / "calibration.npz"
        if not cal.is_file():
            raise ModelError(f"{model_dir}: no calibration.npz (held-out scores) to set a threshold from")
        try:
            with np.load(cal, allow_pickle=False) as z:
                return np.asarray(z["scores"], np.float64), np.asarray(z["labels"])
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{cal}: corrupt calibration file ({exc})") from None

    return read_version(model_dir, read)
