"""The model directory: the only code that knows its files, reads, checks and writes them (torch-free).

A model directory (a :mod:`soundtwin.store` of kind ``"model"``) holds, in each version,
``config.json`` (the experiment config), ``model.safetensors`` (encoder weights), ``meta.json``
(threshold, calibration, feature settings, soundtwin version, fingerprint, checksum),
``calibration.npz`` (held-out trial scores), ``train_clips.txt`` (keys of the training clips),
``train_state.safetensors`` (what ``--resume`` needs) and ``model.onnx`` after ``soundtwin export``.
A ``benchmark.json`` put beside them by hand is shown by the server's ``/info``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..config import ExperimentConfig, config_from_dict
from ..errors import ConfigError, ModelError
from ..io import read_json
from ..store import StoreError, locked, new_version, read_version, version_dir

FORMAT_VERSION = 1
CONFIG, WEIGHTS, META = "config.json", "model.safetensors", "meta.json"
CALIBRATION, TRAIN_CLIPS, TRAIN_STATE, ONNX, BENCHMARK = (
    "calibration.npz", "train_clips.txt", "train_state.safetensors", "model.onnx", "benchmark.json")


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


def read_meta_config(d: Path, vd: Path, *, needs: tuple[str, ...] = (CONFIG, META)) -> tuple[dict[str, Any], dict[str, Any], ExperimentConfig]:
    """``(meta, raw config, config)`` of the model directory ``d``, read from its version folder ``vd``
    (checked; the weights are not read)."""
    for name in needs:
        if not (vd / name).is_file():
            raise ModelError(f"{d}: not a soundtwin model directory (missing {name})")
    try:
        meta = read_json(vd / META)
        raw_cfg = read_json(vd / CONFIG)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{d}: corrupt model files ({exc})") from None
    meta = check_meta(d, meta)
    if not isinstance(raw_cfg, dict):
        raise ModelError(f"{d}: corrupt config.json (expected an object, got {type(raw_cfg).__name__})")
    try:
        cfg = config_from_dict(raw_cfg)
    except ConfigError as exc:
        raise ModelError(f"{d}: corrupt model files ({exc})") from None
    return meta, raw_cfg, cfg


def read_model_files(d: Path, vd: Path) -> tuple[dict[str, Any], dict[str, Any], ExperimentConfig, bytes]:
    """``(meta, raw config, config, weights)`` of the model directory ``d``, read from its version folder
    ``vd``; the weights must match the fingerprint in ``meta.json``."""
    meta, raw_cfg, cfg = read_meta_config(d, vd, needs=(CONFIG, WEIGHTS, META))
    weights = (vd / WEIGHTS).read_bytes()
    if weights_fingerprint(weights, raw_cfg) != meta["fingerprint"]:
        raise ModelError(f"{d}: weights do not match meta.json fingerprint (corrupt or mixed model files)")
    return meta, raw_cfg, cfg, weights


def read_calibration(model_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's held-out trial ``(scores, labels)`` from ``calibration.npz`` (pickle-free)."""

    def read(vd: Path) -> tuple[np.ndarray, np.ndarray]:
        cal = vd / CALIBRATION
        if not cal.is_file():
            raise ModelError(f"{model_dir}: no calibration.npz (held-out scores) to set a threshold from")
        try:
            with np.load(cal, allow_pickle=False) as z:
                return np.asarray(z["scores"], np.float64), np.asarray(z["labels"])
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{cal}: corrupt calibration file ({exc})") from None

    return read_version(model_dir, read)


def calibration_npz(scores: np.ndarray, labels: np.ndarray) -> bytes:
    """``calibration.npz``'s bytes: held-out trial scores and labels (read back without pickles)."""
    buf = io.BytesIO()
    np.savez(buf, scores=np.asarray(scores, np.float64), labels=np.asarray(labels, np.int8))
    return buf.getvalue()


def write_model(model_dir: str | os.PathLike[str], cfg: ExperimentConfig, weights: bytes, meta: dict[str, Any], *,
                extra: dict[str, bytes] | None = None, carry: tuple[str, ...] | bool = ()) -> dict[str, Any]:
    """Write a new version of a model directory (see :mod:`soundtwin.store`): readers see the previous
    version until this one is complete. ``meta`` gets the format, version, fingerprint and checksum;
    ``extra``: more files by name; ``carry``: files of the current version to keep (``True``: all), e.g.
    ``model.onnx`` when only the threshold changes. Returns the sealed meta written."""
    meta = seal_meta({**meta, "format": FORMAT_VERSION, "soundtwin_version": __version__,
                      "distance": cfg.model.distance, "features": cfg.to_dict()["features"],
                      "fingerprint": weights_fingerprint(weights, cfg)})
    with new_version(model_dir, "model", carry=carry) as tmp:
        (tmp / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
        (tmp / WEIGHTS).write_bytes(weights)
        for name, blob in (extra or {}).items():
            (tmp / name).write_bytes(blob)
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def add_file(model_dir: str | os.PathLike[str], name: str, blob: bytes) -> None:
    """A new version of the model with every current file plus ``name`` (e.g. ``model.onnx``)."""
    with new_version(model_dir, "model", carry=True) as tmp:
        (tmp / name).write_bytes(blob)


def set_threshold(model_dir: str | os.PathLike[str], far: float | None = None, *,
                  trials: tuple[np.ndarray, np.ndarray] | None = None,
                  heldout: dict[str, Any] | None = None) -> dict[str, Any]:
    """Move a model's stored threshold to the EER point or a target false-accept rate of its held-out
    trials (``calibration.npz``), refitting the probability calibration: a new version with the same
    weights (and ``model.onnx``), under the model's lock. Returns the new meta.

    ``trials``: new held-out ``(scores, labels)`` to calibrate on instead (clips of the user's own, scored
    by this model: :func:`soundtwin.evaluate.calibration_trials`); they replace ``calibration.npz``, and
    ``heldout`` (``{"heldout": description, "heldout_classes": [...]}``) says in meta.json what they were."""
    from ..metrics import calibrate

    d = Path(model_dir)
    try:
        with locked(d, purpose="calibrating"):  # no other writer between reading and writing the model
            meta, raw_cfg, cfg, weights = read_version(d, lambda vd: read_model_files(d, vd))
            scores, labels = trials if trials is not None else read_calibration(d)
            meta = seal_meta({**meta, **(heldout or {}), **calibrate(scores, labels, far)})
            with new_version(d, "model", carry=True) as tmp:
                (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
                if trials is not None:
                    (tmp / CALIBRATION).write_bytes(calibration_npz(scores, labels))
    except StoreError as exc:
        raise ModelError(str(exc)) from None
    return meta


def is_model(model_dir: str | os.PathLike[str]) -> bool:
    """Whether ``model_dir`` holds a (current version of a) model."""
    return (version_dir(Path(model_dir)) / META).is_file()


def read_meta(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The current ``meta.json`` (checked)."""
    d = Path(model_dir)
    try:
        return check_meta(d, read_version(d, lambda vd: read_json(vd / META)))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{d}: cannot read meta.json ({exc})") from None


def read_config(model_dir: str | os.PathLike[str]) -> ExperimentConfig:
    """The experiment config the model was trained with."""
    d = Path(model_dir)
    try:
        raw = read_version(d, lambda vd: read_json(vd / CONFIG))
    except OSError:
        raise ModelError(f"{d}: no model there (missing {CONFIG})") from None
    except ValueError as exc:
        raise ModelError(f"{d}: corrupt {CONFIG} ({exc})") from None
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ModelError(f"{d}: corrupt model files ({exc})") from None


def read_training_clips(model_dir: str | os.PathLike[str]) -> set[str]:
    """Keys of the clips the model was trained on (empty for models saved before they were recorded)."""
    try:
        return set((version_dir(Path(model_dir)) / TRAIN_CLIPS).read_text().split())
    except OSError:
        return set()


def onnx_path(model_dir: str | os.PathLike[str]) -> Path:
    """Where ``soundtwin export`` puts the model's ONNX file (by default)."""
    return Path(model_dir) / ONNX


def has_onnx(model_dir: str | os.PathLike[str]) -> bool:
    return Path(model_dir).is_dir() and (version_dir(Path(model_dir)) / ONNX).is_file()


def read_benchmarks(model_dir: str | os.PathLike[str]) -> Any | None:
    """``benchmark.json`` beside the model's files, if someone put one there."""
    f = Path(model_dir) / BENCHMARK
    try:
        return read_json(f) if f.is_file() else None
    except (OSError, ValueError):
        return None
